"""What every alert must carry, and that every alert is unit-tested both ways.

Usage: check_rules.py alerts.yml alerts.test.yml [--runbooks docs/operations.md]

Every alert: a `for:`; a severity label (critical or warning); summary, description and
runbook_url annotations; an alert comparing a value (`>`) shows it ($value) in its summary or
description; runbook_url is docs/operations.md#<anchor> and, with --runbooks, the anchor is a
heading of that file. Every alert appears in alerts.test.yml in a case where it fires (a
non-empty exp_alerts) and one where it must not (an empty exp_alerts). Recording rule names
follow level:metric:operations. Exits 1 listing every problem.
"""

import argparse
import re
import sys

import yaml

SEVERITIES = {"critical", "warning"}
RUNBOOK = re.compile(r"docs/operations\.md#([a-z0-9-]+)")


def github_anchors(markdown):
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            text = re.sub(r"[`*_\[\]]|\(.*?\)", "", match.group(1)).strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text)))
    return anchors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("alerts")
    parser.add_argument("tests")
    parser.add_argument("--runbooks")
    args = parser.parse_args()
    with open(args.alerts, encoding="utf-8") as handle:
        rules = yaml.safe_load(handle)
    with open(args.tests, encoding="utf-8") as handle:
        tests = yaml.safe_load(handle)
    anchors = None
    if args.runbooks:
        with open(args.runbooks, encoding="utf-8") as handle:
            anchors = github_anchors(handle.read())

    fires, quiet = set(), set()
    for test in tests.get("tests", []):
        for case in test.get("alert_rule_test", []) or []:
            (fires if case.get("exp_alerts") else quiet).add(case.get("alertname"))

    problems = []
    alerts = []
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                if not re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]):
                    problems.append(f"recording rule {rule['record']}: not level:metric:operations")
                continue
            name = rule.get("alert")
            alerts.append(name)
            labels = rule.get("labels") or {}
            annotations = rule.get("annotations") or {}
            if not rule.get("for"):
                problems.append(f"{name}: no `for:`")
            if labels.get("severity") not in SEVERITIES:
                problems.append(f"{name}: severity {labels.get('severity')!r} not one of {sorted(SEVERITIES)}")
            for key in ("summary", "description", "runbook_url"):
                if not str(annotations.get(key, "")).strip():
                    problems.append(f"{name}: no {key} annotation")
            if ">" in str(rule.get("expr", "")) and "$value" not in (
                str(annotations.get("summary", "")) + str(annotations.get("description", ""))
            ):
                problems.append(f"{name}: compares a value but shows no $value in summary or description")
            runbook = str(annotations.get("runbook_url", ""))
            match = RUNBOOK.fullmatch(runbook) or RUNBOOK.search(runbook)
            if not match:
                problems.append(f"{name}: runbook_url {runbook!r} is not docs/operations.md#<anchor>")
            elif anchors is not None and match.group(1) not in anchors:
                problems.append(f"{name}: runbook anchor #{match.group(1)} is not a heading of {args.runbooks}")
            if name not in fires:
                problems.append(f"{name}: no test in {args.tests} where it fires")
            if name not in quiet:
                problems.append(f"{name}: no test in {args.tests} where it must not fire")
    if len(set(alerts)) != len(alerts):
        problems.append("alert names repeat: " + ", ".join(sorted({a for a in alerts if alerts.count(a) > 1})))
    for name in sorted((fires | quiet) - set(alerts)):
        problems.append(f"{args.tests} tests {name}, which {args.alerts} does not define")
    for problem in problems:
        print(f"FAIL: {problem}")
    if problems:
        return 1
    print(f"{len(alerts)} alerts: each with for, severity, summary, description and a runbook"
          f"{' that exists' if anchors is not None else ''}, tested firing and quiet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
