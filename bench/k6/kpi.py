#!/usr/bin/env python3
"""The KPI table of a k6 run, as scripts/loadtest prints it at the end.

Per flow: p95, throughput and error rate (with requests, checks and the threshold verdict),
from the `kpi` section that bench/k6/main.js's handleSummary writes to summary.json; then
the cache hit rates as deltas of Outgrow's `cache_requests_total{cache,result}` between the
/metrics scrapes taken before and after the run, and the server's resident memory at rest and
under the load. Prints the table (Markdown, readable as is) and writes kpi.md and kpi.json
beside summary.json.

Usage: kpi.py --out DIR [--metrics-before FILE] [--metrics-after FILE] [--rss-rest KIB|n/a]
              [--rss-samples FILE] [--target TEXT]
"""

import argparse
import json
import re
import sys
from pathlib import Path

CACHES = [("products", "products"), ("users", "users"), ("catalog pages", "catalog_pages")]
SAMPLE = re.compile(r'^cache_requests_total\{([^}]*)\}\s+([0-9.eE+-]+)\s*$', re.M)


def cache_counts(path):
    """{(cache, result): count} from a Prometheus text scrape, or None when there is none."""
    if not path or not Path(path).is_file():
        return None
    counts = {}
    for labels, value in SAMPLE.findall(Path(path).read_text()):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[(pairs.get("cache"), pairs.get("result"))] = float(value)
    return counts


def hit_rate(before, after, cache):
    if before is None or after is None:
        return "n/a (no /metrics scrape)", None
    hits = after.get((cache, "hit"), 0) - before.get((cache, "hit"), 0)
    misses = after.get((cache, "miss"), 0) - before.get((cache, "miss"), 0)
    if hits + misses <= 0:
        return "n/a (no lookups during the run)", None
    rate = hits / (hits + misses)
    return f"{rate * 100:.1f} % ({hits:,.0f} hits, {misses:,.0f} misses)", rate


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def memory(rest, samples_path):
    rest_kib = None if rest in (None, "", "n/a") else float(rest)
    samples = []
    if samples_path and Path(samples_path).is_file():
        samples = [float(line) for line in Path(samples_path).read_text().split() if line.strip()]
    rest_text = mib(rest_kib) if rest_kib is not None else "n/a"
    if samples:
        mean = sum(samples) / len(samples)
        load_text = f"peak {mib(max(samples))}, mean {mib(mean)} ({len(samples)} samples, 1 s apart)"
    else:
        load_text = "n/a"
    return rest_text, load_text, {
        "rest_kib": rest_kib,
        "load_peak_kib": max(samples) if samples else None,
        "load_mean_kib": sum(samples) / len(samples) if samples else None,
    }


def fixed(value, digits, unit, scale=1.0):
    return "–" if value is None else f"{value * scale:,.{digits}f} {unit}"


def describe_load(kpi):
    parts = []
    for name, scenario in (kpi.get("scenarios") or {}).items():
        if scenario.get("executor") == "ramping-arrival-rate":
            unit = "/s" if scenario.get("timeUnit") == "1s" else "/min"
            stages = ", ".join(f"{stage['duration']} → {stage['target']}{unit}" for stage in scenario["stages"])
            parts.append(f"{name}: ramping-arrival-rate ({stages})")
        else:
            unit = "s" if scenario.get("timeUnit") == "1s" else "min"
            parts.append(f"{name}: constant-arrival-rate, {scenario['rate']} iterations/{unit} for {scenario['duration']}")
    return "; ".join(parts) or kpi.get("scenario", "?")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="results folder holding summary.json")
    parser.add_argument("--metrics-before")
    parser.add_argument("--metrics-after")
    parser.add_argument("--rss-rest")
    parser.add_argument("--rss-samples")
    parser.add_argument("--target", default="")
    args = parser.parse_args()

    out = Path(args.out)
    summary = out / "summary.json"
    if not summary.is_file():
        print(f"kpi: no {summary} (k6 stopped before its summary)", file=sys.stderr)
        return 1
    kpi = json.loads(summary.read_text())["kpi"]
    limits = kpi["limits"]

    lines = [
        f"## KPI — scenario {kpi['scenario']}{' (smoke)' if kpi.get('smoke') else ''}",
        "",
        f"Load: {describe_load(kpi)}. Target: {args.target or 'n/a'}.",
        f"Thresholds per flow: p95 < {limits['p95Ms']} ms, failed requests < {limits['failedRate'] * 100:g} %, "
        f"checks ≥ {limits['checksRate'] * 100:g} %. Throughput = requests / {kpi['load_seconds']:g} s of load.",
        "",
        "| flow | p95 | throughput | error rate | requests | checks passed | thresholds |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for flow in kpi["flows"] + [kpi["all"]]:
        label = "all flows" if flow is kpi["all"] else flow["flow"]
        lines.append(
            f"| {label} | {fixed(flow['p95_ms'], 1, 'ms')} | {fixed(flow['throughput_rps'], 1, 'req/s')} "
            f"| {fixed(flow['error_rate'], 2, '%', 100)} | {flow['requests']:,} "
            f"| {fixed(flow['checks_rate'], 2, '%', 100)} | {'ok' if flow['thresholds_ok'] else 'FAILED'} |"
        )

    before, after = cache_counts(args.metrics_before), cache_counts(args.metrics_after)
    rest_text, load_text, rss = memory(args.rss_rest, args.rss_samples)
    caches = {}
    lines += ["", "| measure | value |", "|---|---|"]
    for label, cache in CACHES:
        text, rate = hit_rate(before, after, cache)
        caches[cache] = rate
        lines.append(f"| cache hit rate, {label} (`cache_requests_total{{cache=\"{cache}\"}}`) | {text} |")
    lines.append(f"| server RSS at rest (seeded, before the load) | {rest_text} |")
    lines.append(f"| server RSS under the load | {load_text} |")
    if kpi.get("conditional_304_rate") is not None:
        lines.append(f"| conditional GETs answered 304 | {kpi['conditional_304_rate'] * 100:.1f} % |")
    if kpi.get("export_ready_p95_seconds") is not None:
        lines.append(f"| export ready after `POST /exports` (p95) | {kpi['export_ready_p95_seconds']:.2f} s |")
    lines.append(f"| iterations completed / dropped | {kpi['iterations']:,} / {kpi['dropped_iterations']:,} |")
    lines.append(f"| responses 429 / 5xx | {kpi['responses_429']:,} / {kpi['responses_5xx']:,} |")
    lines.append(f"| VUs at most | {kpi['vus_max'] or 0:,.0f} |")

    if kpi["responses_429"]:
        lines += ["", f"{kpi['responses_429']:,} responses were 429 Too Many Requests: the server's rate limits "
                  "refused part of the load. Against a server of yours (--url) its limits are yours to raise "
                  "(OUTGROW_RATE_LIMIT_DEFAULT, OUTGROW_RATE_LIMIT_AUTH, OUTGROW_RATE_LIMIT_EXPORT, OUTGROW_RATE_LIMIT_ORDER)."]
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "kpi.md").write_text(text)
    (out / "kpi.json").write_text(json.dumps({**kpi, "cache_hit_rate": caches, "rss": rss, "target": args.target}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
