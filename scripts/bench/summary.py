#!/usr/bin/env python3
"""Prints the final bhavstore-vs-DuckDB summary from the results JSON of both benchmarks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TARGET = 0.5


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--generation", default="", help="generation time line, for the record")
    args = p.parse_args()
    bh = json.loads((args.out / "bhavstore_results.json").read_text())
    dk = json.loads((args.out / "duckdb_results.json").read_text())

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b > 0 else "-"

    print("=" * 78)
    print(f"bhavstore feature benchmark: {bh['bhavcopy_rows']} bhavcopy rows in {bh['bhavcopy_files']} files")
    if args.generation:
        print(f"history: {args.generation}")
    print(
        f"engines: {bh['engine']}, target_partitions {bh['target_partitions']}; "
        f"{dk['engine']}, threads {dk['settings'].get('threads')}"
    )
    if bh.get("settings"):
        print(f"bhavstore session overrides (experiment, not the shipped catalog): {', '.join(bh['settings'])}")
    print("times: wall clock, best of the runs, Parquet written with zstd level 3 by both")
    print("-" * 78)
    print(f"{'':<34} {'bhavstore':>10} {'DuckDB':>10} {'ratio':>8}")
    bs, ds = bh["subset"], dk["subset"]
    for name in ("price_subset", "volatility_subset"):
        rows = f"{bs[name]['rows']} rows" + ("" if bs[name]["rows"] == ds[name]["rows"] else " (ROW COUNTS DIFFER)")
        print(
            f"  {name:<32} {bs[name]['best_s']:>9.3f}s {ds[name]['best_s']:>9.3f}s "
            f"{ratio(bs[name]['best_s'], ds[name]['best_s']):>8}  {rows}"
        )
    sub_b, sub_d = bs["total_best_s"], ds["total_best_s"]
    verdict = "meets" if sub_b <= TARGET * sub_d else "MISSES"
    print(f"{'comparable subset (both engines)':<34} {sub_b:>9.3f}s {sub_d:>9.3f}s {ratio(sub_b, sub_d):>8}")
    rss = {}
    for engine in ("bhavstore", "duckdb"):
        f = args.out / f"{engine}.maxrss_kib"
        if f.is_file() and f.read_text().strip().isdigit():
            rss[engine] = int(f.read_text().strip()) / 1024
    if len(rss) == 2:
        print(f"{'peak RSS of the process (MiB)':<34} {rss['bhavstore']:>10.0f} {rss['duckdb']:>10.0f}")
    views = bh.get("views", {})
    if views:
        full = sum(v["5_total_with_write"]["best_s"] for v in views.values())
        print(
            f"{'full views (bhavstore only)':<34} {full:>9.3f}s {sub_d:>9.3f}s {ratio(full, sub_d):>8}  "
            "(DuckDB: subset; it cannot do ema/rsi/atr)"
        )
    print(f"target bhavstore/DuckDB <= {TARGET}: subset ratio {ratio(sub_b, sub_d)} -> {verdict} the target")
    if views:
        print("-" * 78)
        print("bhavstore full views, where the time goes (wall clock, best run, seconds):")
        print(f"  {'view':<21} {'read':>7} {'sort':>7} {'compute':>8} {'write':>7} {'total':>7}")
        for name, v in views.items():
            if "1_read" not in v:
                continue
            read = v["1_read"]["best_s"]
            winsort = v["3_read_window_sort"]["best_s"]
            compute = v["4_compute"]["best_s"]
            total = v["5_total_with_write"]["best_s"]
            print(
                f"  {name:<21} {read:>7.3f} {winsort - read:>7.3f} {compute - winsort:>8.3f} "
                f"{total - compute:>7.3f} {total:>7.3f}"
            )
        print(
            "  read = scan+filter of the needed columns; sort = (repartition+sort under a trivial window) - read;\n"
            "  compute = view drained - that; write = COPY to Parquet - view drained."
        )
    print("=" * 78)
    return 0


if __name__ == "__main__":
    sys.exit(main())
