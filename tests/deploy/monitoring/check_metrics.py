"""Every metric an alert, a recording rule or a dashboard reads is one Outgrow exports.

Usage: check_metrics.py --crates crates --exposition metrics.txt
                        [--rules alerts.yml]… [--dashboard dashboard.json]…

Known names:
  - the metrics Outgrow's source registers (promql.exported_metrics: describe_*! and
    counter!/gauge!/histogram!/telemetry::count literals under --crates; histograms give
    _bucket, _sum and _count);
  - process_* from a live exposition of the binary (--exposition: the metrics-process crate
    names them at run time, not in Outgrow's source);
  - the recording rules the rule files define;
  - EXTERNAL: series of other exporters the rules rely on, listed here on purpose.
For an Outgrow metric, the labels its selectors match on must be labels the source gives it
(or target labels that the scrape adds). Exits 1 with every unknown name and where it is used.
"""

import argparse
import json
import sys

import yaml

import promql

# Series that are not Outgrow's, each with the exporter that provides it.
EXTERNAL = {
    "up": "Prometheus (one per scrape target)",
    "container_cpu_usage_seconds_total": "cAdvisor (kubelet)",
    "container_memory_working_set_bytes": "cAdvisor (kubelet)",
    "kube_pod_container_resource_limits": "kube-state-metrics",
    "kube_deployment_status_condition": "kube-state-metrics",
}
# Labels the scrape configuration adds to every series (deploy/prometheus/prometheus.yml).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "node"}


def rule_expressions(path):
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    recorded = set()
    expressions = []
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                recorded.add(rule["record"])
            name = rule.get("record") or rule.get("alert")
            expressions.append((f"{path}: {name}", str(rule.get("expr", ""))))
    return recorded, expressions


def dashboard_expressions(path):
    with open(path, encoding="utf-8") as handle:
        dashboard = json.load(handle)
    expressions = []

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expressions.append((f"{path}: panel {panel.get('title')!r} {target.get('refId')}",
                                str(target.get("expr", ""))))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            expressions.append((f"{path}: variable {variable.get('name')}",
                                promql.grafana_query(variable.get("query", ""))))
    return expressions


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--crates", required=True)
    parser.add_argument("--exposition", required=True)
    parser.add_argument("--rules", action="append", default=[])
    parser.add_argument("--dashboard", action="append", default=[])
    args = parser.parse_args()

    source = promql.series_names(promql.exported_metrics(args.crates))
    with open(args.exposition, encoding="utf-8") as handle:
        exposed = promql.exposition_names(handle.read())
    process = {name: labels for name, labels in exposed.items() if name.startswith("process_")}
    if not process:
        print(f"FAIL: no process_* series in {args.exposition}: is it Outgrow's /metrics?")
        return 1
    stale = sorted(name for name in exposed if name not in source and name not in process)
    if stale:
        # The binary and the source disagree (a binary built before the source changed).
        print("note: exported by the binary but not found in the source: " + ", ".join(stale))

    known = dict(source)
    for name, labels in process.items():
        known.setdefault(name, set()).update(labels)
    print(f"{len(source)} series names from the source, {len(process)} process_* from the exposition, "
          f"{len(EXTERNAL)} external")

    recorded = set()
    expressions = []
    for path in args.rules:
        names, exprs = rule_expressions(path)
        recorded |= names
        expressions += exprs
    for path in args.dashboard:
        expressions += dashboard_expressions(path)

    unknown = {}
    bad_labels = []
    used = set()
    for where, expr in expressions:
        if not expr.strip():
            continue
        for name, labels in promql.metric_selectors(expr):
            used.add(name)
            if name in recorded or name in EXTERNAL:
                continue
            if name not in known:
                unknown.setdefault(name, []).append(where)
                continue
            extra = labels - known[name] - TARGET_LABELS
            if extra:
                bad_labels.append(f"{where}: {name} has no label {', '.join(sorted(extra))} "
                                  f"(it has: {', '.join(sorted(known[name])) or 'none'})")
    print(f"{len(expressions)} expressions read {len(used)} distinct series names")
    failed = False
    for name in sorted(unknown):
        failed = True
        print(f"FAIL: {name} is not a metric Outgrow exports; used by:")
        for where in unknown[name]:
            print(f"        {where}")
    for line in bad_labels:
        failed = True
        print(f"FAIL: {line}")
    if failed:
        return 1
    print("every metric and label used is one Outgrow exports (or an allowed external series)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
