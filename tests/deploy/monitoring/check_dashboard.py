"""The Grafana dashboard's structure, its provisioning, and its thresholds against the alerts.

Usage: check_dashboard.py DASHBOARD.json [--alerts alerts.yml]
                          [--dashboards-provisioning F.yaml] [--datasources-provisioning F.yaml]

Dashboard: valid JSON; a fixed uid, a title and a recent schemaVersion; the data source is the
variable ${datasource} (a `datasource` variable of type prometheus), used by every panel, every
target and every query variable; job and instance variables; unique panel ids; every panel has
a title; every target a non-empty expr; gridPos inside the 24 columns and no two panels
overlapping. A panel whose description says "Alert: <name>" shows that alert's threshold: its
red step equals the first `> N` of the alert's expression.
Provisioning: a file provider pointing at a path, a Prometheus data source.
Exits 1 listing every problem.
"""

import argparse
import json
import re
import sys

import yaml

DATASOURCE = "${datasource}"
MIN_SCHEMA_VERSION = 36  # Grafana 9.x and later


def walk(panels):
    for panel in panels:
        yield panel
        yield from walk(panel.get("panels", []))


def datasource_uid(datasource):
    if isinstance(datasource, dict):
        return datasource.get("uid")
    return datasource


def check_dashboard(path, alerts):
    problems = []
    try:
        with open(path, encoding="utf-8") as handle:
            dashboard = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        return [f"{path}: not valid JSON: {error}"]

    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid or ""):
        problems.append(f"uid must be a fixed string of at most 40 characters, got {uid!r}")
    if not dashboard.get("title"):
        problems.append("the dashboard has no title")
    if not isinstance(dashboard.get("schemaVersion"), int) or dashboard["schemaVersion"] < MIN_SCHEMA_VERSION:
        problems.append(f"schemaVersion {dashboard.get('schemaVersion')!r} < {MIN_SCHEMA_VERSION}")
    if dashboard.get("id") not in (None,):
        problems.append("the dashboard has a numeric id: provisioned dashboards must not (use uid)")

    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    source = variables.get("datasource")
    if not source or source.get("type") != "datasource" or source.get("query") != "prometheus":
        problems.append("no variable `datasource` of type datasource (query: prometheus)")
    for name in ("job", "instance"):
        variable = variables.get(name)
        if not variable or variable.get("type") != "query":
            problems.append(f"no query variable `{name}`")
    for name, variable in variables.items():
        if variable.get("type") == "query":
            if datasource_uid(variable.get("datasource")) != DATASOURCE:
                problems.append(f"variable {name}: datasource is not {DATASOURCE}")
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            if not (query or "").strip():
                problems.append(f"variable {name}: empty query")

    panels = list(walk(dashboard.get("panels", [])))
    if not panels:
        problems.append("the dashboard has no panels")
    seen = {}
    boxes = []
    for panel in panels:
        pid = panel.get("id")
        title = panel.get("title")
        label = f"panel {pid} {title!r}"
        if not isinstance(pid, int):
            problems.append(f"{label}: id is not an integer")
        elif pid in seen:
            problems.append(f"{label}: id {pid} is also panel {seen[pid]!r}")
        else:
            seen[pid] = title
        if not (title or "").strip():
            problems.append(f"panel {pid}: no title")
        grid = panel.get("gridPos") or {}
        try:
            x, y, w, h = (int(grid[k]) for k in ("x", "y", "w", "h"))
        except (KeyError, TypeError, ValueError):
            problems.append(f"{label}: gridPos needs integer x, y, w, h")
            continue
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > 24:
            problems.append(f"{label}: gridPos {grid} is outside the 24-column grid")
        for other, (ox, oy, ow, oh) in boxes:
            if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                problems.append(f"{label}: gridPos {grid} overlaps {other}")
        boxes.append((label, (x, y, w, h)))
        if panel.get("type") == "row":
            continue
        if datasource_uid(panel.get("datasource")) != DATASOURCE:
            problems.append(f"{label}: datasource is {panel.get('datasource')!r}, not {DATASOURCE}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{label}: no targets")
        ref_ids = set()
        for target in targets:
            ref = target.get("refId")
            if not ref or ref in ref_ids:
                problems.append(f"{label}: missing or repeated refId {ref!r}")
            ref_ids.add(ref)
            if not str(target.get("expr", "")).strip():
                problems.append(f"{label} {ref}: empty expr")
            if "datasource" in target and datasource_uid(target["datasource"]) != DATASOURCE:
                problems.append(f"{label} {ref}: datasource is not {DATASOURCE}")
        match = re.search(r"\bAlert: (\w+)", panel.get("description") or "")
        if match and alerts is not None:
            problems += check_threshold(label, panel, match.group(1), alerts)
    return problems


def check_threshold(label, panel, alert, alerts):
    if alert not in alerts:
        return [f"{label}: names alert {alert}, which alerts.yml does not define"]
    match = re.search(r">\s*(-?[0-9.]+(?:e-?[0-9]+)?)", alerts[alert])
    if not match:
        return [f"{label}: alert {alert} has no `> N` threshold to show"]
    threshold = float(match.group(1))
    steps = (((panel.get("fieldConfig") or {}).get("defaults") or {}).get("thresholds") or {}).get("steps") or []
    reds = [s.get("value") for s in steps if s.get("color") == "red" and s.get("value") is not None]
    if not reds:
        return [f"{label}: shows alert {alert} but has no red threshold step (expected {threshold})"]
    if abs(min(reds) - threshold) > 1e-6:
        return [f"{label}: red threshold {min(reds)} differs from alert {alert}'s {threshold}"]
    return []


def check_provisioning(dashboards, datasources):
    problems = []
    if dashboards:
        with open(dashboards, encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
        providers = document.get("providers") or []
        if document.get("apiVersion") != 1 or not providers:
            problems.append(f"{dashboards}: needs apiVersion 1 and providers")
        for provider in providers:
            if provider.get("type") != "file" or not (provider.get("options") or {}).get("path"):
                problems.append(f"{dashboards}: provider {provider.get('name')!r} is not type file with options.path")
    if datasources:
        with open(datasources, encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
        sources = document.get("datasources") or []
        if document.get("apiVersion") != 1 or not any(s.get("type") == "prometheus" and s.get("url") for s in sources):
            problems.append(f"{datasources}: needs apiVersion 1 and a prometheus data source with a url")
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dashboard")
    parser.add_argument("--alerts")
    parser.add_argument("--dashboards-provisioning")
    parser.add_argument("--datasources-provisioning")
    args = parser.parse_args()
    alerts = None
    if args.alerts:
        with open(args.alerts, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
        alerts = {r["alert"]: str(r.get("expr", "")) for g in document["groups"] for r in g["rules"] if "alert" in r}
    problems = check_dashboard(args.dashboard, alerts)
    problems += check_provisioning(args.dashboards_provisioning, args.datasources_provisioning)
    for problem in problems:
        print(f"FAIL: {problem}")
    if problems:
        return 1
    with open(args.dashboard, encoding="utf-8") as handle:
        dashboard = json.load(handle)
    panels = [p for p in walk(dashboard["panels"]) if p.get("type") != "row"]
    rows = [p["title"] for p in walk(dashboard["panels"]) if p.get("type") == "row"]
    tied = sum(1 for p in panels if re.search(r"\bAlert: \w+", p.get("description") or ""))
    print(f"{args.dashboard}: {len(panels)} panels in rows {', '.join(rows)}; "
          f"{tied} show their alert's threshold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
