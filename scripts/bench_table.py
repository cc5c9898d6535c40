#!/usr/bin/env python3
"""Turns Google Benchmark JSON files into the markdown table of docs/benchmarks.md.

One row per benchmark run (the median when it ran with repetitions), with its
time and every user counter (requests/s, ratios to the kernel measured in the
same run, CPU per request per process, latency percentiles).
Usage: bench_table.py FILE.json... > table.md
"""
import json
import sys


def fmt(v):
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


SKIP = {"name", "run_name", "run_type", "repetitions", "repetition_index", "threads",
        "iterations", "real_time", "cpu_time", "time_unit", "family_index",
        "per_family_instance_index", "aggregate_name", "aggregate_unit", "error_occurred",
        "error_message", "label"}


def rows(path):
    with open(path) as f:
        data = json.load(f)
    runs = data.get("benchmarks", [])
    has_median = {r["run_name"] for r in runs if r.get("aggregate_name") == "median"}
    for r in runs:
        if r.get("run_type") == "aggregate" and r.get("aggregate_name") != "median":
            continue
        if r.get("run_type") == "iteration" and r["run_name"] in has_median:
            continue
        name = r["run_name"].replace("/manual_time", "").replace("/real_time", "")
        if r.get("error_occurred"):
            yield name, "error", r.get("error_message", "")
            continue
        items = [(k, v) for k, v in r.items() if k not in SKIP and isinstance(v, (int, float))]
        if r.get("items_per_second"):
            items.append(("ns_per_item", 1e9 / r["items_per_second"]))
        counters = ", ".join(f"{k}={fmt(v)}" for k, v in items)
        median = " (median)" if r.get("aggregate_name") == "median" else ""
        yield name, f"{fmt(r['real_time'])} {r['time_unit']}{median}", counters


def main():
    print("| benchmark | time | counters |")
    print("|---|---|---|")
    for path in sys.argv[1:]:
        for name, time, counters in rows(path):
            print(f"| `{name}` | {time} | {counters} |")


if __name__ == "__main__":
    main()
