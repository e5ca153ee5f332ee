#!/usr/bin/env bash
# Prometheus rules and the Grafana dashboard, checked offline:
#   1. promtool check rules deploy/prometheus/alerts.yml (any warning fails);
#   2. promtool test rules deploy/prometheus/alerts.test.yml — every alert fires on a synthetic
#      incident with its exact labels and annotations, and stays quiet below its threshold or
#      before its `for:`; self-test: with the latency threshold moved, the tests must fail;
#   3. promtool check config deploy/prometheus/prometheus.yml with its rule file (Debian's
#      promtool has no Kubernetes discovery: that block is checked by
#      monitoring/prometheus_config.py and replaced for promtool);
#   4. the dashboard's structure and provisioning (monitoring/check_dashboard.py): JSON, ids,
#      titles, ${datasource}, gridPos, exprs, thresholds equal to the alerts'; self-test: a
#      dashboard with a repeated id and a fixed data source must be rejected;
#   5. every metric an alert, a recording rule or a panel reads is one Outgrow exports, with
#      labels it has (monitoring/check_metrics.py): names from the source under crates/, plus
#      process_* from a live /metrics of $OUTGROW_BIN; self-test: a rule reading an unknown
#      metric, and one matching a label the metric lacks, must be rejected;
#   6. every alert has for, severity, summary, description and a runbook_url whose anchor is a
#      heading of docs/operations.md, and is tested firing and quiet (monitoring/check_rules.py);
#      self-test: an alert without a runbook must be rejected.
# Every step runs; the check fails if any failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${OUTGROW_DEPLOY_TOOLS:?run through scripts/check-deploy}
py=$bin/python
outgrow=${OUTGROW_BIN:-target/debug/outgrow}
helpers=tests/deploy/monitoring
prom=deploy/prometheus
dashboard=deploy/grafana/dashboards/outgrow.json
work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '[monitoring] %s\n' "$*"; }
failed=()
fail() { say "FAIL: $*"; failed+=("$1"); }

# promtool, failing on a warning as well as on an error.
promtool_strict() {
  local out status=0
  out=$(promtool "$@" 2>&1) || status=$?
  printf '%s\n' "$out" | sed 's/^/    /'
  [ "$status" -eq 0 ] && ! grep -qi 'warning' <<<"$out"
}

command -v promtool >/dev/null || { say "FAIL: promtool is not installed (scripts/deploy-tools installs it)"; exit 1; }
say "promtool: $(promtool --version 2>&1 | head -1)"

# --- 1 ----------------------------------------------------------------------------------------
say "1/6 promtool check rules $prom/alerts.yml"
promtool_strict check rules "$prom/alerts.yml" || fail "check rules"

# --- 2 ----------------------------------------------------------------------------------------
say "2/6 promtool test rules $prom/alerts.test.yml"
promtool_strict test rules "$prom/alerts.test.yml" || fail "test rules"
mkdir -p "$work/mutant"
cp "$prom/alerts.test.yml" "$work/mutant/"
sed 's/^\(        expr: job:outgrow_http_request_duration_seconds:p95_5m\) > 0.5$/\1 > 5/' \
  "$prom/alerts.yml" >"$work/mutant/alerts.yml"
if cmp -s "$prom/alerts.yml" "$work/mutant/alerts.yml"; then
  fail "self-test: the latency alert's expression was not found to mutate"
elif promtool test rules "$work/mutant/alerts.test.yml" >/dev/null 2>&1; then
  fail "self-test: the unit tests pass with the p95 threshold at 5 s instead of 500 ms"
else
  say "    the unit tests fail with the p95 threshold moved (self-test)"
fi

# --- 3 ----------------------------------------------------------------------------------------
say "3/6 promtool check config $prom/prometheus.yml"
mkdir -p "$work/prometheus"
cp -R "$prom/." "$work/prometheus/"
printf 'scrape_configs:\n  - job_name: probe\n    kubernetes_sd_configs:\n      - role: pod\n' >"$work/k8s-probe.yml"
config=$prom/prometheus.yml
if ! promtool check config "$work/k8s-probe.yml" >/dev/null 2>&1; then
  say "    this promtool has no Kubernetes service discovery"
  if "$py" "$helpers/prometheus_config.py" "$prom/prometheus.yml" "$work/prometheus/prometheus.yml" | sed 's/^/    /'; then
    config=$work/prometheus/prometheus.yml
  else
    fail "config (kubernetes_sd_configs)"
    config=
  fi
fi
if [ -n "$config" ]; then
  promtool_strict check config "$config" || fail "check config"
fi

# --- 4 ----------------------------------------------------------------------------------------
say "4/6 dashboard $dashboard and deploy/grafana/provisioning"
"$py" "$helpers/check_dashboard.py" "$dashboard" --alerts "$prom/alerts.yml" \
  --dashboards-provisioning deploy/grafana/provisioning/dashboards/outgrow.yaml \
  --datasources-provisioning deploy/grafana/provisioning/datasources/prometheus.yaml \
  | sed 's/^/    /' || fail "dashboard"
"$py" - "$dashboard" "$work/bad-dashboard.json" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
panels[1]["id"] = panels[0]["id"]
panels[2]["datasource"] = {"type": "prometheus", "uid": "prometheus"}
json.dump(dashboard, open(sys.argv[2], "w"))
PY
if out=$("$py" "$helpers/check_dashboard.py" "$work/bad-dashboard.json" 2>&1); then
  fail "self-test: the dashboard check accepted a repeated panel id and a fixed data source"
elif ! grep -q 'is also panel' <<<"$out" || ! grep -q 'not \${datasource}' <<<"$out"; then
  printf '%s\n' "$out" | sed 's/^/    /'
  fail "self-test: the dashboard check did not name both problems"
else
  say "    a repeated panel id and a fixed data source are rejected (self-test)"
fi

# --- 5 ----------------------------------------------------------------------------------------
say "5/6 metric names: the source under crates/, and a live /metrics of $outgrow"
exposition=$work/metrics.txt
if [ ! -x "$outgrow" ]; then
  fail "metrics: no binary at $outgrow (OUTGROW_BIN; build it with cargo build)"
else
  # A copy: the binary may be rebuilt while this runs.
  cp "$outgrow" "$work/outgrow"
  port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  env -i PATH="$PATH" HOME="$work" OUTGROW_DATA_DIR="$work/data" OUTGROW_LISTEN="127.0.0.1:$port" \
    OUTGROW_LOG_LEVEL=warn "$work/outgrow" serve >"$work/serve.log" 2>&1 &
  server_pid=$!
  if "$py" - "$port" "$exposition" <<'PY'
import sys, time, urllib.error, urllib.request
port, out = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
def get(path):
    try:
        with urllib.request.urlopen(base + path, timeout=5) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:  # a 404 is a request too
        return error.read().decode()
deadline = time.time() + 60
while True:
    try:
        get("/healthz")
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("serve did not answer /healthz within 60 s")
        time.sleep(0.3)
for path in ("/api/v1/products", "/api/v1/products", "/healthz", "/no-such-page", "/metrics"):
    get(path)
open(out, "w").write(get("/metrics"))
PY
  then
    say "    scraped $(grep -vc '^#' "$exposition") series lines from 127.0.0.1:$port"
  else
    sed 's/^/    serve: /' "$work/serve.log" | tail -20
    fail "metrics: could not scrape $outgrow serve"
  fi
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
fi
if [ -s "$exposition" ]; then
  "$py" "$helpers/check_metrics.py" --crates crates --exposition "$exposition" \
    --rules "$prom/alerts.yml" --dashboard "$dashboard" | sed 's/^/    /' || fail "metrics"
  # Self-test: a rule reading a metric Outgrow does not export, and one matching a label the
  # metric does not have, must both be rejected, by name.
  cat >"$work/unknown.yml" <<'YAML'
groups:
  - name: self-test
    rules:
      - alert: ReadsAnUnknownMetric
        expr: sum(rate(outgrow_no_such_metric_total{job="outgrow"}[5m])) > 0
      - alert: MatchesAMissingLabel
        expr: increase(jobs_dead_total{queue="mail"}[5m]) > 0
YAML
  if out=$("$py" "$helpers/check_metrics.py" --crates crates --exposition "$exposition" --rules "$work/unknown.yml" 2>&1); then
    fail "self-test: the metric check accepted outgrow_no_such_metric_total"
  elif ! grep -q 'FAIL: outgrow_no_such_metric_total is not a metric' <<<"$out" \
    || ! grep -q 'jobs_dead_total has no label queue' <<<"$out"; then
    printf '%s\n' "$out" | sed 's/^/    /'
    fail "self-test: the metric check did not name the unknown metric and the missing label"
  else
    say "    an unknown metric and a missing label are rejected (self-test)"
  fi
fi

# --- 6 ----------------------------------------------------------------------------------------
say "6/6 alert metadata, runbooks (docs/operations.md) and test coverage"
"$py" "$helpers/check_rules.py" "$prom/alerts.yml" "$prom/alerts.test.yml" --runbooks docs/operations.md \
  | sed 's/^/    /' || fail "alert metadata"
"$py" - "$prom/alerts.yml" "$work/no-runbook.yml" <<'PY'
import sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
alert = next(r for g in rules["groups"] for r in g["rules"] if "alert" in r)
del alert["annotations"]["runbook_url"]
yaml.safe_dump(rules, open(sys.argv[2], "w"), sort_keys=False)
PY
if out=$("$py" "$helpers/check_rules.py" "$work/no-runbook.yml" "$prom/alerts.test.yml" 2>&1); then
  fail "self-test: the metadata check accepted an alert without a runbook_url"
elif ! grep -q 'no runbook_url annotation' <<<"$out"; then
  printf '%s\n' "$out" | sed 's/^/    /'
  fail "self-test: the metadata check did not name the missing runbook_url"
else
  say "    an alert without a runbook_url is rejected (self-test)"
fi

if [ ${#failed[@]} -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
say "all 6 steps passed"
