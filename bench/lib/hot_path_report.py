#!/usr/bin/env python3
"""Turns a bench/hot-path results folder into a markdown report: the median of the rounds per
target, Outgrow / baseline ratios against the targets, Redis commands per request, memory.

    hot_path_report.py RESULTS_DIR
"""

import json
import statistics
import sys
from pathlib import Path

TARGET_RATIO = 0.80
TARGET_P99_MS = 10.0


def load(path):
    file = Path(path)
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def main():
    folder = Path(sys.argv[1])
    runs = [run for run in load(folder / "runs.jsonl") if "(profiled)" not in run["label"]]
    by_label = {}
    for run in runs:
        by_label.setdefault(run["label"], []).append(run)

    def median(label, field):
        values = [run[field] for run in by_label.get(label, [])]
        return statistics.median(values) if values else None

    meta = (folder / "meta.txt").read_text().strip() if (folder / "meta.txt").exists() else ""
    print("# Hot path: Outgrow vs a bare axum baseline\n")
    for line in meta.splitlines():
        print(f"- {line}")
    print()
    print("Median of the rounds; latency in milliseconds as wrk reports it.\n")
    print("| mode | target | server | throughput | p50 | p90 | p99 | errors | rounds | CPU steal (max of the rounds) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    modes = []
    for run in runs:
        mode = run["label"].split()[0]
        if mode not in modes:
            modes.append(mode)
    for mode in modes:
        for target, pair in (("users", ("baseline users", "outgrow users")), ("health", ("baseline health", "outgrow healthz"))):
            for server in pair:
                label = f"{mode} {server}"
                if label not in by_label:
                    continue
                errors = sum(run["errors"] for run in by_label[label])
                steals = [run["steal_pct"] for run in by_label[label] if "steal_pct" in run]
                steal = f"{max(steals):.1f} %" if steals else "n/a"
                print(
                    f"| {mode} | {target} | {server.split()[0]} | {median(label, 'rps'):,.0f} req/s "
                    f"| {median(label, 'p50_ms'):.2f} ms | {median(label, 'p90_ms'):.2f} ms "
                    f"| {median(label, 'p99_ms'):.2f} ms | {errors} | {len(by_label[label])} | {steal} |"
                )
    print()
    print("| mode | ratio | Outgrow / baseline | target | met |")
    print("|---|---|---:|---:|---|")
    failures = 0
    for mode in modes:
        for what, outgrow, baseline in (
            ("authenticated cached read", "outgrow users", "baseline users"),
            ("/healthz vs bare /health", "outgrow healthz", "baseline health"),
        ):
            o, b = median(f"{mode} {outgrow}", "rps"), median(f"{mode} {baseline}", "rps")
            if o is None or b is None:
                continue
            ratio = o / b
            met = ratio >= TARGET_RATIO
            failures += not met
            print(f"| {mode} | {what} | {ratio:.2f} ({o:,.0f} / {b:,.0f} req/s) | ≥ {TARGET_RATIO:.2f} | {'yes' if met else 'NO'} |")
        p99 = median(f"{mode} outgrow users", "p99_ms")
        if p99 is not None:
            met = p99 <= TARGET_P99_MS
            failures += not met
            print(f"| {mode} | p99 of the authenticated read | {p99:.2f} ms | ≤ {TARGET_P99_MS:.0f} ms | {'yes' if met else 'NO'} |")
    redis = load(folder / "redis.jsonl")
    if redis:
        print()
        print("Redis commands per authenticated read during Outgrow's runs (Redis's own `INFO")
        print("commandstats`, divided by the requests of the run; median of the rounds). Commands a")
        print("script runs (`TIME`, `GET`, `SET` inside the rate limiter's `EVALSHA`) are counted too:")
        print("the round trips are the top-level commands.\n")
        print("| mode | commands per request |")
        print("|---|---|")
        for mode in modes:
            rows = [row["per_request"] for row in redis if row["mode"] == mode]
            names = sorted({name for row in rows for name in row})
            cells = [f"`{name}` {statistics.median(row.get(name, 0.0) for row in rows):.3f}" for name in names]
            print(f"| {mode} | {', '.join(cells) or 'none'} |")
    memory = load(folder / "memory.jsonl")
    if memory:
        print()
        print("| mode | Outgrow RSS at rest | RSS after the load |")
        print("|---|---:|---:|")
        for row in memory:
            print(f"| {row['mode']} | {row['rss_rest_kib'] / 1024:.1f} MiB | {row['rss_after_load_kib'] / 1024:.1f} MiB |")
    print()
    print("All targets met." if failures == 0 else f"{failures} target(s) not met.")


if __name__ == "__main__":
    main()
