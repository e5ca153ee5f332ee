#!/usr/bin/env bash
# The container image's recipe, exercised without a Docker engine:
#   1. hadolint on the Dockerfile (any finding fails), and a self-test: hadolint must reject a
#      deliberately sloppy Dockerfile;
#   2. the structural facts (tests/deploy/container/check_dockerfile.py): multi-stage, the
#      dependency layer before the source, the release build through deploy/container/build,
#      a minimal non-root runtime with a HEALTHCHECK that runs the binary itself; a self-test
#      feeds it a Dockerfile that runs as root;
#   3. deploy/container/build run for real (the dev profile the suite has built), then the
#      staged binary run as the image runs it: as uid 65532 with the Dockerfile's ENV, from
#      the staged data directory — `migrate`, `serve` (the HEALTHCHECK command passes), SIGTERM
#      (it exits 0 and the HEALTHCHECK then fails), `worker` (starts, stops at SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${OUTGROW_DEPLOY_TOOLS:?run through scripts/check-deploy}
py=$bin/python
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '[container] %s\n' "$*"; }

say "hadolint $("$bin/hadolint" --version | head -1) on Dockerfile"
"$bin/hadolint" --failure-threshold info Dockerfile
cat >"$work/Dockerfile.bad" <<'BAD'
FROM debian:latest
RUN apt-get update && apt-get install curl
ADD . /app
BAD
if "$bin/hadolint" "$work/Dockerfile.bad" >/dev/null 2>&1; then
  say "FAIL: hadolint accepted a Dockerfile with an unpinned base and unpinned packages"; exit 1
fi
say "hadolint rejects a sloppy Dockerfile (self-test)"

say "structure of Dockerfile"
DOCKERFILE_ENV_OUT=$work/env DOCKERFILE_HEALTHCHECK_OUT=$work/healthcheck "$py" tests/deploy/container/check_dockerfile.py Dockerfile
sed 's/^USER .*/USER root/' Dockerfile >"$work/Dockerfile.root"
if "$py" tests/deploy/container/check_dockerfile.py "$work/Dockerfile.root" >/dev/null; then
  say "FAIL: the structure check accepted a runtime running as root"; exit 1
fi
say "the structure check rejects a root runtime (self-test)"

say "deploy/container/build --profile dev (the recipe, outside a container)"
deploy/container/build --profile dev --out "$work/rootfs"
outgrow=$work/rootfs/usr/local/bin/outgrow
data=$work/rootfs/var/lib/outgrow
chmod 0755 "$work"

# As the image runs it: uid 65532 (when root can switch), the Dockerfile's ENV, cwd = data dir.
# It execs: call it in a subshell, `(as_image …)`, or in the background, where $! is then the
# binary itself.
as_image() {
  local port=$1; shift
  local -a env_args=()
  while IFS= read -r line; do env_args+=("$line"); done <"$work/env"
  env_args+=("OUTGROW_LISTEN=127.0.0.1:$port" "OUTGROW_DATA_DIR=$data" "OUTGROW_SECURE_COOKIES=false")
  cd "$data"
  if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    exec env -i PATH=/usr/bin:/bin "${env_args[@]}" setpriv --reuid 65532 --regid 65532 --clear-groups "$@"
  fi
  exec env -i PATH=/usr/bin:/bin "${env_args[@]}" "$@"
}
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
read -r -a health <"$work/healthcheck"

say "migrate as uid 65532"
(as_image 0 "$outgrow" migrate) >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log"; say "FAIL: migrate"; exit 1; }
if [ "$(id -u)" -eq 0 ]; then
  owner=$(stat -c %u "$data/outgrow.sqlite3")
  [ "$owner" = 65532 ] || { say "FAIL: the database belongs to uid $owner, not the image's user"; exit 1; }
fi

port=$(free_port)
say "serve on 127.0.0.1:$port; HEALTHCHECK: outgrow ${health[*]}"
as_image "$port" "$outgrow" serve >"$work/serve.log" 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
healthy=""
for _ in $(seq 1 100); do
  if (as_image "$port" "$outgrow" "${health[@]}") >/dev/null 2>&1; then healthy=1; break; fi
  kill -0 "$serve_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$healthy" ] || { cat "$work/serve.log"; say "FAIL: the HEALTHCHECK never passed"; exit 1; }
say "HEALTHCHECK passes while serving"
kill -TERM "$serve_pid"
rc=0; wait "$serve_pid" || rc=$?
[ "$rc" -eq 0 ] || { tail -20 "$work/serve.log"; say "FAIL: serve exited $rc at SIGTERM"; exit 1; }
if (as_image "$port" "$outgrow" "${health[@]}") >/dev/null 2>&1; then
  say "FAIL: the HEALTHCHECK passed with nothing listening"; exit 1
fi
say "serve stops cleanly at SIGTERM; the HEALTHCHECK then fails"

say "worker as uid 65532"
as_image 0 "$outgrow" worker >"$work/worker.log" 2>&1 &
worker_pid=$!
pids+=("$worker_pid")
for _ in $(seq 1 50); do grep -q "worker started" "$work/worker.log" && break; sleep 0.1; done
grep -q "worker started" "$work/worker.log" || { cat "$work/worker.log"; say "FAIL: the worker did not start"; exit 1; }
kill -TERM "$worker_pid"
rc=0; wait "$worker_pid" || rc=$?
[ "$rc" -eq 0 ] || { tail -20 "$work/worker.log"; say "FAIL: worker exited $rc at SIGTERM"; exit 1; }
say "worker starts and stops cleanly at SIGTERM"
