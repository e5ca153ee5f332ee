"""What the pipeline must do, beyond what actionlint and the workflow schema say
(tests/deploy/workflows.sh).

  python check_workflows.py .github/workflows [--self-test]

ci.yml: runs on pushes to main and on pull requests; a job `test` on ubuntu-latest installs Rust
stable, restores the cargo caches and runs `./scripts/test` (the README's test command); only
read permissions.

fuzz.yml: the long libFuzzer run (scripts/fuzz, not --ci) every night on Rust nightly, never on
pushes or pull requests, with time for 13 targets of 300 s; only read permissions.

deploy.yml: triggered only by CI's completion (workflow_run on ci.yml's name, branch main), and
every job is gated on that run's success for a push in this repository — either directly (`if:`
on the conclusion, the event and the repository) or through `needs:` on a gated job, with no
`always()`/`failure()` that would bypass the gate. The image job pushes with
docker/build-push-action to GHCR with the GitHub Actions cache; the deploy job, in environment
production, needs it, sets the overlay's image tag from its output with `kustomize edit set
image`, then in this order: applies the configuration, applies the migrate Job and waits for
condition=complete (failing when it does not complete), applies the rest, waits for `rollout
status` of deployment/api and deployment/worker, and has a failure-only step that runs `rollout
undo` for both and exits non-zero. One deploy at a time (a concurrency group that never cancels
a running deploy); least privilege (no write-all, nothing but packages: write where the image is
pushed); checkouts of the tested commit; no ${{ github.event… }} spliced into a script.

Every `uses:` is pinned to a commit SHA with its version in a comment, and both match
tests/deploy/workflows/actions.json (read from the action's action.yml at that commit), whose
inputs and outputs the steps must use. Every job has a timeout.

--self-test breaks the workflow files (as text) one way at a time and fails unless each
breakage is reported, and the unbroken files pass.
"""

import json
import pathlib
import re
import sys

import yaml

HERE = pathlib.Path(__file__).parent
ACTIONS = json.loads((HERE / "actions.json").read_text())["actions"]
GATE = [
    "github.event.workflow_run.conclusion == 'success'",
    "github.event.workflow_run.event == 'push'",
    "github.event.workflow_run.head_repository.full_name == github.repository",
]
HEAD_SHA = "${{ github.event.workflow_run.head_sha }}"


class Report:
    def __init__(self):
        self.failures = []
        self.checks = 0

    def check(self, ok, where, message):
        self.checks += 1
        if not ok:
            self.failures.append(f"{where}: {message}")
        return ok


def triggers(workflow):
    # YAML 1.1 reads the key `on` as the boolean true.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {name: None for name in on}
    return on or {}


def steps(job):
    return job.get("steps", [])


def script(step):
    return step.get("run", "") or ""


def check_pins(report, file, text, workflow):
    """Every uses: pinned to a vendored SHA with its version comment; with:/outputs as declared."""
    for number, line in enumerate(text.splitlines(), 1):
        match = re.search(r"uses:\s*([^\s#]+)\s*(?:#\s*(.*))?$", line)
        if not match or match[1].startswith("./"):
            continue
        where = f"{file}:{number}"
        action, _, ref = match[1].partition("@")
        if not report.check(re.fullmatch(r"[0-9a-f]{40}", ref), where, f"{match[1]} is not pinned to a commit SHA"):
            continue
        meta = ACTIONS.get(match[1])
        if report.check(meta is not None, where, f"{match[1]} is not in tests/deploy/workflows/actions.json (vendor its action.yml's metadata)"):
            report.check((match[2] or "").strip() == meta["version"], where,
                         f"the comment says {match[2]!r} but {action}@{ref[:10]}… is {meta['version']}")
    for job_id, job in workflow.get("jobs", {}).items():
        outputs_by_step = {}
        for index, step in enumerate(steps(job)):
            where = f"{file}: job {job_id} step {step.get('name') or step.get('uses') or index}"
            if "uses" in step:
                meta = ACTIONS.get(step["uses"])
                if meta:
                    given = set((step.get("with") or {}).keys())
                    report.check(given <= set(meta["inputs"]), where, f"inputs {sorted(given - set(meta['inputs']))} are not inputs of {step['uses'].split('@')[0]}")
                    report.check(set(meta["required"]) <= given, where, f"required inputs {sorted(set(meta['required']) - given)} are missing")
                    if step.get("id"):
                        outputs_by_step[step["id"]] = set(meta["outputs"])
            elif step.get("id"):
                # a run step's outputs: the NAME=… lines it appends to $GITHUB_OUTPUT
                outputs_by_step[step["id"]] = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_-]*)=[^\n]*>>\s*\"?\$GITHUB_OUTPUT", script(step)))
        body = yaml.safe_dump(job)
        for step_id, output in re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)", body):
            report.check(step_id in outputs_by_step and output in outputs_by_step[step_id], f"{file}: job {job_id}",
                         f"steps.{step_id}.outputs.{output} is not an output of step {step_id}")


def check_common(report, file, workflow):
    permissions = workflow.get("permissions")
    report.check(isinstance(permissions, dict), file, "no top-level permissions map (the default token may write)")
    for scope in [("workflow", permissions)] + [(f"job {j}", job.get("permissions")) for j, job in workflow.get("jobs", {}).items()]:
        where, perms = scope
        report.check(perms not in ("write-all", "read-all"), f"{file}: {where}", f"permissions {perms}")
        if isinstance(perms, dict):
            for name, level in perms.items():
                report.check(level != "write" or name == "packages", f"{file}: {where}", f"{name}: write")
    for job_id, job in workflow.get("jobs", {}).items():
        report.check(isinstance(job.get("timeout-minutes"), int), f"{file}: job {job_id}", "no timeout-minutes")
        for step in steps(job):
            report.check("${{ github.event." not in script(step), f"{file}: job {job_id} step {step.get('name')}",
                         "splices ${{ github.event… }} into a script (pass it through env:)")
    report.check(bool(workflow.get("concurrency")), file, "no concurrency group")


def check_ci(report, file, workflow):
    on = triggers(workflow)
    report.check("pull_request" in on, file, "does not run on pull requests")
    push = on.get("push") or {}
    report.check("push" in on and (not push.get("branches") or "main" in push["branches"]), file, "does not run on pushes to main")
    job = workflow.get("jobs", {}).get("test")
    if not report.check(job is not None, file, "no job `test`"):
        return
    report.check(job.get("runs-on") == "ubuntu-latest", file, f"job test runs on {job.get('runs-on')}, not ubuntu-latest")
    uses = [step.get("uses", "").split("@")[0] for step in steps(job)]
    toolchain = [s for s in steps(job) if s.get("uses", "").startswith("dtolnay/rust-toolchain@")]
    report.check(toolchain and toolchain[0].get("with", {}).get("toolchain") == "stable", file, "job test does not install Rust stable")
    report.check("Swatinem/rust-cache" in uses, file, "job test has no cargo cache (Swatinem/rust-cache)")
    report.check(any(script(s).strip() == "./scripts/test" for s in steps(job)), file, "job test does not run ./scripts/test")
    report.check(workflow.get("permissions") == {"contents": "read"}, file, "permissions are not just contents: read")


def check_fuzz(report, file, workflow):
    on = triggers(workflow)
    report.check("schedule" in on, file, "is not scheduled (the long fuzzing run is nightly)")
    report.check("pull_request" not in on and "push" not in on, file, "runs on pushes or pull requests (scripts/test has the bounded run)")
    job = workflow.get("jobs", {}).get("fuzz")
    if not report.check(job is not None, file, "no job `fuzz`"):
        return
    toolchain = [s for s in steps(job) if s.get("uses", "").startswith("dtolnay/rust-toolchain@")]
    report.check(toolchain and toolchain[0].get("with", {}).get("toolchain") == "nightly", file, "job fuzz does not install Rust nightly (cargo-fuzz needs it)")
    runs = [script(s) for s in steps(job) if "scripts/fuzz" in script(s)]
    report.check(runs and "--ci" not in runs[0], file, "job fuzz does not run scripts/fuzz (the long run, not --ci)")
    # 13 targets × 300 s is 65 min before the build
    report.check(job.get("timeout-minutes", 0) >= 90, file, f"job fuzz times out after {job.get('timeout-minutes')} min, before 13 targets × 300 s and a cold build")
    report.check(workflow.get("permissions") == {"contents": "read"}, file, "permissions are not just contents: read")


def gated(job):
    condition = " ".join(str(job.get("if", "")).split())
    return all(part in condition for part in GATE)


def needs_of(job):
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def check_deploy(report, file, workflow, ci_name):
    on = triggers(workflow)
    run = on.get("workflow_run") or {}
    report.check(set(on) == {"workflow_run"}, file, f"triggers {sorted(map(str, on))}: only CI's completion (workflow_run) may start a deploy")
    report.check(run.get("workflows") == [ci_name], file, f"workflow_run.workflows is {run.get('workflows')}, not [{ci_name!r}] (ci.yml's name)")
    report.check(run.get("types") == ["completed"], file, "workflow_run.types is not [completed]")
    report.check(run.get("branches") == ["main"], file, "workflow_run.branches is not [main]")
    concurrency = workflow.get("concurrency") or {}
    report.check(isinstance(concurrency, dict) and concurrency.get("group") and "${{" not in str(concurrency.get("group"))
                 and concurrency.get("cancel-in-progress") is False, file,
                 "concurrency must be one fixed group with cancel-in-progress: false (deploys never overlap nor stop halfway)")
    jobs = workflow.get("jobs", {})

    def passes_gate(job_id, seen=()):
        job = jobs.get(job_id, {})
        if job_id in seen:
            return False
        return gated(job) or any(passes_gate(n, seen + (job_id,)) for n in needs_of(job))

    for job_id, job in jobs.items():
        condition = str(job.get("if", ""))
        report.check(not re.search(r"\b(always|failure|cancelled)\(\)", condition), f"{file}: job {job_id}",
                     f"if: {condition} would run it whatever the jobs it needs did")
        report.check(passes_gate(job_id), f"{file}: job {job_id}",
                     "can run without CI's success: neither gated on the workflow_run's conclusion/event/repository nor needing a gated job")
        for step in steps(job):
            if step.get("uses", "").startswith("actions/checkout@"):
                report.check((step.get("with") or {}).get("ref") == HEAD_SHA, f"{file}: job {job_id}", f"checks out something other than the tested commit ({HEAD_SHA})")

    builders = [j for j, job in jobs.items() if any(s.get("uses", "").startswith("docker/build-push-action@") for s in steps(job))]
    if report.check(len(builders) == 1, file, f"expected one job with docker/build-push-action, found {builders}"):
        image_id = builders[0]
        image = jobs[image_id]
        build = next(s for s in steps(image) if s.get("uses", "").startswith("docker/build-push-action@"))
        options = build.get("with") or {}
        report.check(options.get("push") is True, file, "build-push-action does not push")
        report.check("type=gha" in str(options.get("cache-from")) and "type=gha" in str(options.get("cache-to")), file,
                     "build-push-action does not use the GitHub Actions cache (cache-from/cache-to type=gha)")
        report.check(options.get("context") == ".", file, "build-push-action does not build the checked-out commit (context: .)")
        tags = re.sub(r"\$\{\{\s*env\.([A-Za-z_]+)\s*\}\}", lambda m: str((workflow.get("env") or {}).get(m[1], m[0])), str(options.get("tags")))
        report.check("ghcr.io/outgrow/outgrow:" in tags, file, "the image is not pushed to ghcr.io/outgrow/outgrow")
        report.check((image.get("permissions") or {}).get("packages") == "write", file, f"job {image_id} lacks packages: write")
        report.check(any(s.get("uses", "").startswith("docker/login-action@") and (s.get("with") or {}).get("registry") == "ghcr.io"
                         for s in steps(image)), file, "no docker/login-action to ghcr.io")

    deployers = [j for j, job in jobs.items() if (job.get("environment") or {}) == "production" or (job.get("environment") or {}).get("name") == "production"]
    if not report.check(len(deployers) == 1, file, f"expected one job in environment production, found {deployers}"):
        return
    deploy_id = deployers[0]
    deploy = jobs[deploy_id]
    where = f"{file}: job {deploy_id}"
    if builders:
        report.check(builders[0] in needs_of(deploy), where, f"does not need the image job {builders[0]}")
    report.check((deploy.get("permissions") or {}).get("packages") != "write", where, "may write packages")

    def first(predicate, after=-1):
        for index, step in enumerate(steps(deploy)):
            if index > after and predicate(step):
                return index
        return None

    texts = [script(s) for s in steps(deploy)]
    env = {**(workflow.get("env") or {}), **(deploy.get("env") or {})}
    set_image = first(lambda s: "kustomize edit set image" in script(s))
    report.check(set_image is not None, where, "no `kustomize edit set image`")
    if builders and set_image is not None:
        tag_vars = [k for k, v in env.items() if f"needs.{builders[0]}.outputs.tag" in str(v)]
        report.check(any(f"${{{v}}}" in texts[set_image] or f"${v}" in texts[set_image] for v in tag_vars)
                     or f"needs.{builders[0]}.outputs.tag" in texts[set_image], where,
                     "the image tag set in the overlay is not the one the image job pushed (needs.<image>.outputs.tag)")
    config = first(lambda s: re.search(r"kubectl apply .*component=config", script(s)))
    migrate_apply = first(lambda s: re.search(r"kubectl apply .*component=migrate", script(s)))
    wait = first(lambda s: re.search(r"kubectl (-n \S+ )?wait --for=condition=complete job/migrate --timeout=\S+", script(s)))
    rest = first(lambda s: re.search(r"kubectl apply (?!.*component=(config|migrate)\b)", script(s)))
    unconditional = lambda s: not re.search(r"\b(failure|always|cancelled)\(\)", str(s.get("if", "")))
    api = first(lambda s: unconditional(s) and re.search(r"rollout status deployment/api\b.*--timeout=", script(s)))
    worker = first(lambda s: unconditional(s) and re.search(r"rollout status deployment/worker\b.*--timeout=", script(s)))
    for name, index in [("apply of the configuration", config), ("apply of the migrate Job", migrate_apply),
                        ("kubectl wait --for=condition=complete job/migrate --timeout=…", wait),
                        ("apply of the Deployments", rest), ("rollout status deployment/api", api),
                        ("rollout status deployment/worker", worker)]:
        report.check(index is not None, where, f"no {name}")
    if None not in (set_image, config, migrate_apply, wait, rest, api, worker):
        report.check(set_image < config <= migrate_apply <= wait < rest < api and rest < worker, where,
                     f"steps out of order: set image {set_image}, config {config}, migrate {migrate_apply}, wait {wait}, apply {rest}, status {api}/{worker}")
        if migrate_apply == wait:
            text = texts[wait]
            report.check(text.index("component=migrate") < text.index("--for=condition=complete"), where, "waits for the migrate Job before applying it")
        report.check(re.search(r"exit 1", texts[wait]) or "kubectl wait" in texts[wait].strip().splitlines()[-1], where,
                     "a migrate Job that does not complete does not fail the deploy")
        report.check("delete job migrate" in "\n".join(texts[: wait + 1]), where,
                     "the previous migrate Job is not deleted first (a Job's template is immutable: the apply would fail)")
    undo = first(lambda s: "rollout undo deployment/api" in script(s) and "rollout undo deployment/worker" in script(s))
    if report.check(undo is not None, where, "no step runs `kubectl rollout undo` for deployment/api and deployment/worker"):
        step = steps(deploy)[undo]
        report.check("failure()" in str(step.get("if", "")), where, "the rollback step does not run on failure (if: failure() …)")
        report.check(api is None or undo > max(api, worker or 0), where, "the rollback step comes before the rollout status steps")
        report.check(texts[undo].strip().splitlines()[-1].strip() == "exit 1", where, "the rollback step does not end with exit 1 (the deploy must fail)")


def run(texts):
    report = Report()
    workflows = {}
    for file, text in texts.items():
        try:
            workflows[file] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            report.check(False, file, f"not YAML: {error}")
    ci = workflows.get("ci.yml")
    deploy = workflows.get("deploy.yml")
    report.check(ci is not None and deploy is not None, "workflows", "ci.yml and deploy.yml are required")
    for file, workflow in workflows.items():
        if isinstance(workflow, dict):
            check_common(report, file, workflow)
            check_pins(report, file, texts[file], workflow)
    if isinstance(ci, dict):
        check_ci(report, "ci.yml", ci)
    if isinstance(deploy, dict) and isinstance(ci, dict):
        check_deploy(report, "deploy.yml", deploy, ci.get("name"))
    fuzz = workflows.get("fuzz.yml")
    report.check(fuzz is not None, "workflows", "fuzz.yml (the nightly fuzzing run) is required")
    if isinstance(fuzz, dict):
        check_fuzz(report, "fuzz.yml", fuzz)
    return report


MUTATIONS = [
    # (description, file, old, new, expected text in a failure)
    ("deploy without `needs: image`", "deploy.yml", "    needs: image\n", "", "does not need the image job"),
    ("image job not gated on CI's conclusion", "deploy.yml", "github.event.workflow_run.conclusion == 'success' &&", "", "can run without CI's success"),
    ("deploy job runs always()", "deploy.yml", "    needs: image\n", "    needs: image\n    if: always()\n", "whatever the jobs it needs did"),
    ("also triggered by push", "deploy.yml", "on:\n  workflow_run:", "on:\n  push:\n  workflow_run:", "only CI's completion"),
    ("no rollback step", "deploy.yml", "rollout undo deployment/worker", "rollout history deployment/worker", "rollout undo"),
    ("rollback that succeeds", "deploy.yml", "--timeout=10m || true\n          exit 1\n", "--timeout=10m || true\n", "exit 1"),
    ("rollback not on failure", "deploy.yml", "if: failure() && steps.apply.outcome == 'success'", "if: steps.apply.outcome == 'success'", "does not run on failure"),
    ("migrate wait without a timeout", "deploy.yml", "--for=condition=complete job/migrate --timeout=15m &", "--for=condition=complete job/migrate &", "kubectl wait --for=condition=complete"),
    ("Deployments applied before the migration is awaited", "deploy.yml",
     lambda text: move_step(text, "Apply the rest", before="Migrate"), None, "steps out of order"),
    ("no rollout status for the workers", "deploy.yml", "rollout status deployment/worker --timeout=10m\n", "rollout status deployment/worker\n", "rollout status deployment/worker"),
    ("overlapping deploys", "deploy.yml", "cancel-in-progress: false", "cancel-in-progress: true", "concurrency"),
    ("write-all", "deploy.yml", "permissions: {}", "permissions: write-all", "permissions write-all"),
    ("contents: write on the deploy job", "deploy.yml", "    permissions:\n      contents: read\n    environment:", "    permissions:\n      contents: write\n    environment:", "contents: write"),
    ("no GHA cache", "deploy.yml", "cache-to: type=gha,mode=max", "cache-to: type=inline", "GitHub Actions cache"),
    ("an action on a branch", "deploy.yml", "docker/login-action@4907a6ddec9925e35a0a9e82d7399ccc52663121 # v4.1.0", "docker/login-action@master", "not pinned to a commit SHA"),
    ("a version comment that lies", "ci.yml", "@6323deb102c322ba6fcbdcafc7e3dddab59af2b6 # v2.9.2", "@6323deb102c322ba6fcbdcafc7e3dddab59af2b6 # v2.7.0", "the comment says"),
    ("a misspelt input", "deploy.yml", "          persist-credentials: false\n\n      - name: Image tag", "          persist-credential: false\n\n      - name: Image tag", "are not inputs of actions/checkout"),
    ("an output that does not exist", "deploy.yml", "steps.build.outputs.digest", "steps.build.outputs.sha", "is not an output"),
    ("checkout of main's tip", "deploy.yml", "          ref: ${{ github.event.workflow_run.head_sha }}\n          persist-credentials: false\n\n      - name: kubectl", "          persist-credentials: false\n\n      - name: kubectl", "tested commit"),
    ("an event value spliced into a script", "deploy.yml", 'run: echo "tag=sha-${SHA}"', 'run: echo "tag=sha-${{ github.event.workflow_run.head_sha }}"', "splices"),
    ("CI not running the test command", "ci.yml", "run: ./scripts/test", "run: cargo test", "./scripts/test"),
    ("CI on nightly", "ci.yml", "toolchain: stable", "toolchain: nightly", "Rust stable"),
    ("CI without cargo caches", "ci.yml", "uses: Swatinem/rust-cache@6323deb102c322ba6fcbdcafc7e3dddab59af2b6 # v2.9.2\n        with:\n          cache-bin: \"true\"\n          save-if: ${{ github.ref == 'refs/heads/main' }}",
     "run: echo no cache", "cargo cache"),
    ("renamed CI workflow", "ci.yml", "name: CI\n", "name: Tests\n", "ci.yml's name"),
    ("a job without a timeout", "ci.yml", "    timeout-minutes: 180\n", "", "timeout-minutes"),
    ("nightly fuzzing as the bounded run", "fuzz.yml", 'run: scripts/fuzz --seconds', 'run: scripts/fuzz --ci --seconds', "the long run"),
    ("nightly fuzzing on stable", "fuzz.yml", "toolchain: nightly", "toolchain: stable", "Rust nightly"),
    ("nightly fuzzing that times out", "fuzz.yml", "    timeout-minutes: 120\n", "    timeout-minutes: 30\n", "before 13 targets"),
    ("nightly fuzzing on every push", "fuzz.yml", "  workflow_dispatch:\n", "  push:\n  workflow_dispatch:\n", "pushes or pull requests"),
]


def move_step(text, name, before):
    """The workflow text with the step named `name…` moved to just before the step `before…`."""
    block = re.search(rf"      - name: {re.escape(name)}.*?\n(?=      - |\Z)", text, re.S)[0]
    text = text.replace(block, "", 1)
    anchor = text.index(f"      - name: {before}")
    return text[:anchor] + block + text[anchor:]


def self_test(texts):
    clean = run(texts)
    if clean.failures:
        print("self-test: the unbroken workflows fail:", *clean.failures, sep="\n  ")
        return False
    ok = True
    for description, file, old, new, expected in MUTATIONS:
        if callable(old):
            mutated = old(texts[file])
        elif old in texts[file]:
            mutated = texts[file].replace(old, new, 1)
        else:
            print(f"  self-test FAILED: {description}: {old[:50]!r} is no longer in {file} (update the self-test)")
            ok = False
            continue
        broken = dict(texts, **{file: mutated})
        report = run(broken)
        hit = [f for f in report.failures if expected in f]
        if hit:
            print(f"  self-test: {description} -> rejected: {hit[0][:140]}")
        else:
            ok = False
            print(f"  self-test FAILED: {description} was not reported as {expected!r}; failures: {report.failures[:3]}")
    return ok


def main():
    directory = pathlib.Path(sys.argv[1])
    texts = {p.name: p.read_text() for p in sorted(directory.glob("*.yml")) + sorted(directory.glob("*.yaml"))}
    if "--self-test" in sys.argv[2:]:
        if not self_test(texts):
            sys.exit(1)
        print(f"  self-test: {len(MUTATIONS)} breakages, each reported")
        return
    report = run(texts)
    for failure in report.failures:
        print(f"  FAIL {failure}")
    if report.failures:
        print(f"check_workflows: {len(report.failures)} of {report.checks} checks failed")
        sys.exit(1)
    print(f"  {report.checks} assertions hold over {', '.join(texts)}")


if __name__ == "__main__":
    main()
