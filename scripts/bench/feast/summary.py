#!/usr/bin/env python3
"""Prints the REST lookup benchmark's summary (markdown) from $OUT of scripts/bench/lookup.sh."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

TARGET = 0.2  # bhavstore's p99 / Feast's p99 at the same request rate


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--feast-version", default="?")
    p.add_argument("--feast-serve", default="feast serve")
    p.add_argument("--history", default="")
    a = p.parse_args()

    meta = json.loads((a.out / "feast_repo" / "meta.json").read_text())
    check = json.loads((a.out / "results" / "check.json").read_text())
    runs = []
    for f in sorted((a.out / "results").glob("*.json")):
        if f.name != "check.json":
            runs.append(json.loads(f.read_text()))

    print("# REST lookup benchmark: bhavstore vs Feast")
    print()
    if a.history:
        print(f"- history: {a.history}")
    print(
        f"- view `{meta['view']}@{meta['version']}`: {meta['rows']:,} rows, {meta['securities_total']:,} securities, "
        f"{meta['min_trade_date']}..{meta['max_trade_date']}, {len(meta['features'])} features; lookups draw from the "
        f"{meta['securities_latest']:,} securities with a row on {meta['max_trade_date']}"
    )
    print(
        f"- Feast {a.feast_version}, local provider, SQLite online store (newest row per security), "
        f"`{a.feast_serve}`; bhavstore `serve --no-schedule` (online store in memory, "
        f"lookups as of {runs[0]['timestamp'] if runs else '?'})"
    )
    print(f"- machine: {os.cpu_count()} cores; generator threads {runs[0]['generator_threads'] if runs else '?'}")
    print(
        f"- check: {check['securities_compared']} securities x {len(check['features'])} features = "
        f"{check['values_compared']} values, {check['mismatches']} mismatches "
        f"({check['null_values']} NULL on both sides)"
    )
    print()

    open_runs = [r for r in runs if r["load"]["mode"] == "open"]
    closed_runs = [r for r in runs if r["load"]["mode"] == "closed"]

    print("## Same request rate (open loop): the target")
    print()
    print(
        "| features/request | server | rate (req/s) | achieved (req/s) | p50 ms | p90 ms | p99 ms | max ms | "
        "errors | p99 from due ms |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for fpr in sorted({r["features_per_request"] for r in open_runs}):
        for rate in sorted({r["load"]["rate"] for r in open_runs if r["features_per_request"] == fpr}):
            pair = {r["target"]: r for r in open_runs if r["features_per_request"] == fpr and r["load"]["rate"] == rate}
            for t in ("feast", "bhavstore"):
                r = pair.get(t)
                if not r:
                    continue
                lat = r["latency_ms"] or {}
                due = r["latency_from_due_ms"] or {}
                print(
                    f"| {fpr} | {t} | {rate:g} | {r['throughput_rps']:.1f} | {fmt_ms(lat.get('p50'))} | "
                    f"{fmt_ms(lat.get('p90'))} | {fmt_ms(lat.get('p99'))} | {fmt_ms(lat.get('max'))} | "
                    f"{r['errors']} | {fmt_ms(due.get('p99'))} |"
                )
            if "feast" in pair and "bhavstore" in pair and pair["feast"]["latency_ms"] and pair["bhavstore"]["latency_ms"]:
                ratio = pair["bhavstore"]["latency_ms"]["p99"] / pair["feast"]["latency_ms"]["p99"]
                verdicts.append((fpr, rate, ratio))
    print()
    for fpr, rate, ratio in verdicts:
        met = "met" if ratio <= TARGET else "NOT met"
        print(f"- {fpr} feature(s)/request at {rate:g} req/s: bhavstore p99 / Feast p99 = **{ratio:.3f}** (target <= {TARGET}: {met})")
    print()

    print("## Throughput at fixed concurrency (closed loop)")
    print()
    print("| features/request | server | concurrency | throughput (req/s) | p50 ms | p90 ms | p99 ms | max ms | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted(closed_runs, key=lambda r: (r["features_per_request"], r["load"]["concurrency"], r["target"] != "feast")):
        lat = r["latency_ms"] or {}
        print(
            f"| {r['features_per_request']} | {r['target']} | {r['load']['concurrency']} | {r['throughput_rps']:.1f} | "
            f"{fmt_ms(lat.get('p50'))} | {fmt_ms(lat.get('p90'))} | {fmt_ms(lat.get('p99'))} | "
            f"{fmt_ms(lat.get('max'))} | {r['errors']} |"
        )
    errs = {f"{r['target']} {r['label']}": r["error_kinds"] for r in runs if r["errors"]}
    if errs:
        print()
        print(f"errors by kind: {errs}")
    load_log = a.out / "logs" / "loadavg.log"
    if load_log.exists():
        print()
        print("load average (1/5/15 min) before each run: " + "; ".join(load_log.read_text().split("\n")[:-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
