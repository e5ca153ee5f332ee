"""Structural checks of the Dockerfile that hadolint does not make: the facts the deploy
manifests and the runbooks rely on. Prints one line per fact; exits 1 on the first failure.

Usage: python check_dockerfile.py Dockerfile        (prints the runtime ENV as KEY=VALUE lines
       to the file named by $DOCKERFILE_ENV_OUT, and the HEALTHCHECK command to
       $DOCKERFILE_HEALTHCHECK_OUT, for the run test)
"""
import json
import os
import re
import shlex
import sys


def instructions(text):
    """(instruction, arguments) pairs with continuation lines joined and comments dropped."""
    joined, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        joined.append(current)
        current = ""
    out = []
    for line in joined:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(parsed):
    """Splits the instructions into stages: [(name, base, [(instr, args)…])]."""
    result = []
    for instr, args in parsed:
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", args, re.IGNORECASE)
            if not m:
                fail(f"unreadable FROM {args!r}")
            result.append((m.group(2) or str(len(result)), m.group(1), []))
        elif result:
            result[-1][2].append((instr, args))
    return result


def fail(message):
    print(f"  FAIL {message}")
    sys.exit(1)


def ok(message):
    print(f"  ok   {message}")


def main(path):
    parsed = instructions(open(path, encoding="utf-8").read())
    all_stages = stages(parsed)
    names = [name for name, _, _ in all_stages]
    if len(all_stages) < 2:
        fail("the build is not multi-stage")
    ok(f"multi-stage: {' → '.join(names)}")

    for name, _, body in all_stages:
        for instr, args in body:
            if instr == "COPY":
                m = re.search(r"--from=(\S+)", args)
                if m and m.group(1) not in names[: names.index(name)]:
                    fail(f"stage {name}: COPY --from={m.group(1)} names no earlier stage")
    ok("every COPY --from names an earlier stage")

    builder = [body for name, _, body in all_stages if name == "builder"]
    if not builder:
        fail("no stage named builder")
    steps = [(i, a) for i, a in builder[0]]
    cook = next((n for n, (i, a) in enumerate(steps) if i == "RUN" and "cargo chef cook" in a), None)
    source = next((n for n, (i, a) in enumerate(steps) if i == "COPY" and a.split()[0] == "."), None)
    build = next((n for n, (i, a) in enumerate(steps) if i == "RUN" and "deploy/container/build" in a), None)
    if cook is None or source is None or build is None:
        fail("the builder must cook the dependencies, copy the source, then run deploy/container/build")
    if not cook < source < build:
        fail("the dependency layer (cargo chef cook) must come before the source is copied")
    if "--locked" not in steps[cook][1] or "--release" not in steps[cook][1]:
        fail("the dependencies must be cooked --release --locked, like the build")
    if "--profile release" not in steps[build][1]:
        fail("the image's binary must be the release profile")
    ok("dependencies cooked in their own layer before the source; the build runs deploy/container/build --profile release")

    _, base, runtime = all_stages[-1]
    if "distroless" not in base and "slim" not in base:
        fail(f"the runtime base {base} is not a minimal image")
    users = [a for i, a in runtime if i == "USER"]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        fail("the runtime stage must end as a non-root USER")
    ok(f"runtime on {base} as USER {users[-1]}")

    health = [a for i, a in runtime if i == "HEALTHCHECK"]
    if not health or "CMD" not in health[-1]:
        fail("no HEALTHCHECK CMD in the runtime stage")
    cmd = health[-1].split("CMD", 1)[1].strip()
    argv = json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)
    entry = [a for i, a in runtime if i == "ENTRYPOINT"]
    if not entry or json.loads(entry[-1])[0] != argv[0]:
        fail("the HEALTHCHECK must run the image's own binary (no shell or curl in the image)")
    ok(f"HEALTHCHECK runs {' '.join(argv)}")

    env = {}
    for i, a in runtime:
        if i == "ENV":
            for pair in shlex.split(a):
                key, _, value = pair.partition("=")
                env[key] = value
    for key in ("OUTGROW_LISTEN", "OUTGROW_DATA_DIR", "OUTGROW_LOG_FORMAT"):
        if key not in env:
            fail(f"the runtime ENV lacks {key}")
    if not env["OUTGROW_LISTEN"].startswith("0.0.0.0:"):
        fail("a container must listen on every interface")
    ok("runtime ENV: " + ", ".join(f"{k}={v}" for k, v in env.items()))

    if os.environ.get("DOCKERFILE_ENV_OUT"):
        with open(os.environ["DOCKERFILE_ENV_OUT"], "w", encoding="utf-8") as f:
            for k, v in env.items():
                f.write(f"{k}={v}\n")
    if os.environ.get("DOCKERFILE_HEALTHCHECK_OUT"):
        with open(os.environ["DOCKERFILE_HEALTHCHECK_OUT"], "w", encoding="utf-8") as f:
            f.write(" ".join(argv[1:]) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
