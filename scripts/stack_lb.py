#!/usr/bin/env python3
"""The load balancer of `scripts/stack`: renders nginx's configuration and keeps it in step
with the instances' readiness.

    stack_lb.py render STATE        write STATE/nginx/nginx.conf and STATE/nginx/outgrow.conf
                                    from deploy/nginx/outgrow.conf.template and STATE/stack.json
    stack_lb.py check STATE         render, then `nginx -t` the result
    stack_lb.py watch STATE         poll every instance's /readyz (every 250 ms, each on its own
                                    thread) and mark the ones that are not ready `down` in the
                                    upstream (re-render + `nginx -s reload`), until SIGTERM

Why the watcher: open-source nginx has no active health checks. An instance that drains after
SIGTERM answers /readyz with 503 for `shutdown_delay` (3 s in the stack) before its listener
closes; the watcher takes it out of the upstream within ~0.5 s, so new requests stop going to
it before it stops accepting them (what a Kubernetes Service does with readiness, or nginx
Plus with `health_check`). A killed instance is caught by nginx itself first (a refused
connection is retried on the next instance, `max_fails`), and by the watcher within 250 ms.
A 503 or a refused connection takes an instance out at once; a probe that goes unanswered for
2.5 s (above the instance's own 2 s wait for the database) only when the next one does too —
on a busy machine one lost probe must not take a healthy instance out, least of all the
backup when the others are down. Each change is logged with its reasons (nginx/watch.log).
When no instance is ready, every instance stays in the upstream: nginx then answers what it
can rather than 502 at once.

STATE/stack.json (written by scripts/stack): {"listen": "127.0.0.1:18080", "balance":
"round_robin", "instances": [{"name": "api-1", "port": 18101, "backup": false}, ...]}.
STATE/nginx/down.json: the instance names the watcher has taken out.
"""

import json
import os
import signal
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx" / "outgrow.conf.template"
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
POLL_SECONDS = 0.25
# Above the instance's own wait for the database in /readyz (2 s): a slow answer is an answer.
PROBE_TIMEOUT_SECONDS = 2.5
UNANSWERED = "unanswered"
UNANSWERED_LIMIT = 2
BALANCE = {
    "round_robin": "# round robin (nginx's default)",
    "least_conn": "least_conn;",
    "ip_hash": "ip_hash;",
    "hash_user": "hash $outgrow_affinity consistent;",
}

MAIN_CONF = """# nginx's main configuration for scripts/stack (generated; the deployable part is
# deploy/nginx/outgrow.conf.template, rendered next to this file as outgrow.conf).
{user}worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    default_type application/octet-stream;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    # nginx connects to the instances from 127.0.0.2, the one address they trust as a proxy
    # (OUTGROW_TRUSTED_PROXIES): clients on 127.0.0.1 (or any other loopback address) are then
    # clients, as they would be on a real network, and X-Forwarded-For cannot be spoofed.
    proxy_bind 127.0.0.2;
    include {dir}/outgrow.conf;
    log_format outgrow '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent '
                       'rid=$outgrow_request_id up=$upstream_addr up_status=$upstream_status '
                       'rt=$request_time urt=$upstream_response_time';
    access_log {dir}/access.log outgrow buffer=64k flush=1s;
}}
"""


def load(state: Path) -> dict:
    return json.loads((state / "stack.json").read_text())


def down_set(state: Path) -> set:
    path = state / "nginx" / "down.json"
    try:
        return set(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return set()


def render_site(stack: dict, down: set, cache_dir: str) -> str:
    balance = stack.get("balance", "round_robin")
    if balance not in BALANCE:
        sys.exit(f"stack_lb: unknown balance {balance!r} (one of {', '.join(BALANCE)})")
    lines = []
    for instance in stack["instances"]:
        params = ["max_fails=1", "fail_timeout=2s"]
        if instance.get("backup"):
            params.append("backup")
        if instance["name"] in down:
            params.append("down")
        lines.append(f"    server 127.0.0.1:{instance['port']} {' '.join(params)};  # {instance['name']}")
    values = {
        "OUTGROW_NGINX_LISTEN": stack["listen"],
        "OUTGROW_NGINX_BALANCE": BALANCE[balance],
        "OUTGROW_NGINX_SERVERS": "\n".join(lines),
        "OUTGROW_NGINX_CACHE_DIR": cache_dir,
    }
    template = string.Template(TEMPLATE.read_text())
    # Only ${OUTGROW_NGINX_*} are ours; nginx's own $variables are left alone.
    wanted = {name for _, name, braced, _ in template.pattern.findall(template.template) if name or braced}
    unknown = {n for n in wanted if n.startswith("OUTGROW_NGINX_")} - values.keys()
    if unknown:
        sys.exit(f"stack_lb: the template uses unknown placeholders: {sorted(unknown)}")
    return template.safe_substitute(values)


def render(state: Path, down: set | None = None) -> Path:
    stack = load(state)
    if down is None:
        down = down_set(state)
    directory = state / "nginx"
    for sub in ("tmp", "cache"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    site = render_site(stack, down, str(directory / "cache"))
    as_root = os.geteuid() == 0
    main = MAIN_CONF.format(
        # As root, nginx's workers run as nobody: they must be able to write the temp and cache
        # directories (chowned by scripts/stack).
        user="user nobody nogroup;\n" if as_root else "",
        workers=stack.get("nginx_workers", "auto"),
        dir=directory,
    )
    write_atomically(directory / "outgrow.conf", site)
    write_atomically(directory / "nginx.conf", main)
    return directory / "nginx.conf"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def nginx(state: Path, *args: str) -> subprocess.CompletedProcess:
    directory = state / "nginx"
    return subprocess.run(
        [NGINX, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(directory / "nginx.conf"), *args],
        capture_output=True,
        text=True,
    )


def check(state: Path) -> int:
    render(state)
    result = nginx(state, "-t", "-q")
    sys.stderr.write(result.stderr)
    return result.returncode


def probe(port: int) -> str | None:
    """None when the instance's /readyz answers 200; otherwise why not."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=PROBE_TIMEOUT_SECONDS) as response:
            return None if response.status == 200 else f"readiness {response.status}"
    except urllib.error.HTTPError as error:
        return f"readiness {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return UNANSWERED
        return f"no connection ({reason})"


class Prober(threading.Thread):
    """Probes one instance's /readyz every POLL_SECONDS, on its own thread: a slow instance
    never delays what the watcher learns about the others. It counts as not ready at once on a
    definite answer (a 503 while draining, a refused connection when it is gone), and only after
    UNANSWERED_LIMIT unanswered probes in a row otherwise: one probe lost to a busy machine must
    not take a healthy instance out (Kubernetes' failureThreshold, here 2)."""

    def __init__(self, name: str, port: int):
        super().__init__(name=f"probe-{name}", daemon=True)
        self.port = port
        self.stopped = threading.Event()
        self.reason = ""  # why the instance is not ready; empty while it is (and until probed)
        self.unanswered = 0

    def run(self):
        while not self.stopped.is_set():
            reason = probe(self.port)
            if reason == UNANSWERED:
                self.unanswered += 1
                if self.unanswered >= UNANSWERED_LIMIT:
                    self.reason = f"{self.unanswered} probes unanswered in {PROBE_TIMEOUT_SECONDS} s"
            else:
                self.unanswered = 0
                self.reason = reason or ""
            self.stopped.wait(POLL_SECONDS)


def watch(state: Path) -> int:
    # A plain flag: an Event set from a signal handler can deadlock on its own lock if the signal
    # lands while the main thread is inside that Event.
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    current = down_set(state)
    probers: dict[tuple[str, int], Prober] = {}
    log = open(state / "nginx" / "watch.log", "a", buffering=1)
    while not stopping:
        try:
            instances = load(state)["instances"]
        except (FileNotFoundError, ValueError):
            time.sleep(POLL_SECONDS)
            continue
        keys = {(i["name"], i["port"]) for i in instances}
        for key in set(probers) - keys:
            probers.pop(key).stopped.set()
        for key in keys - set(probers):
            probers[key] = Prober(*key)
            probers[key].start()
        not_ready = {name: reason for (name, _), p in probers.items() if (reason := p.reason)}
        # Never take every instance out: with none in the upstream nginx could only say 502.
        wanted = set(not_ready) if len(not_ready) < len(instances) else set()
        if wanted != current:
            write_atomically(state / "nginx" / "down.json", json.dumps(sorted(wanted)))
            render(state, wanted)
            result = nginx(state, "-s", "reload")
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            why = "; ".join(f"{name}: {reason}" for name, reason in sorted(not_ready.items()))
            log.write(
                f"{stamp} down={sorted(wanted)} reload={'ok' if result.returncode == 0 else result.stderr.strip()}"
                f"{' (' + why + ')' if why else ''}\n"
            )
            current = wanted
        time.sleep(POLL_SECONDS)
    for prober in probers.values():
        prober.stopped.set()
    return 0


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("render", "check", "watch"):
        sys.stderr.write(__doc__)
        return 2
    state = Path(sys.argv[2]).resolve()
    if sys.argv[1] == "render":
        print(render(state))
        return 0
    if sys.argv[1] == "check":
        return check(state)
    return watch(state)


if __name__ == "__main__":
    sys.exit(main())
