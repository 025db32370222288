#!/usr/bin/env python3
"""DuckDB side of the bhavstore feature benchmark.

Reads the same canonical Parquet files bhavstore reads
(`{root}/parquet/bse/equity/trade_date=*/bhavcopy.parquet`, hive partitioning) and computes
the "comparable subset" of the two feature views with DuckDB's own window SQL, writing each
as zstd (level 3) Parquet, like `bench-features` does with bhavstore's UDFs.

The subset is every feature of `price_features` and `volatility_features` except the
recursive ones (ema_12, ema_26, rsi_14, and atr_14 / atr_14_pct, Wilder-smoothed), which
window SQL cannot express exactly. Semantics follow the bhavstore UDFs:

* sma(x, n), rolling std, rolling max: the last n rows (ROWS n-1 PRECEDING), NULL unless the
  frame holds n non-NULL values (COUNT(x) over the same frame = n);
* zscore(x, n): (x - mean) / sample std over that frame, NULL when the std is 0;
* pct_change(x, k): (x - lag(x, k)) / lag(x, k), NULL when lag(x, k) is 0;
* log_return(x, k): ln(x / lag(x, k)), NULL when that ratio is not positive.

The column names and order match `SUBSET` in `src/bin/bench_features.rs`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import duckdb

PART = "PARTITION BY scrip_code ORDER BY trade_date"


def frame(n: int) -> str:
    return f"({PART} ROWS BETWEEN {n - 1} PRECEDING AND CURRENT ROW)"


def full(x: str, n: int) -> str:
    """True when the last n rows of x are all present (the UDFs' warm-up and NULL rule)."""
    return f"COUNT({x}) OVER {frame(n)} = {n}"


def sma(x: str, n: int) -> str:
    return f"CASE WHEN {full(x, n)} THEN AVG({x}) OVER {frame(n)} END"


def rolling_std(x: str, n: int) -> str:
    return f"CASE WHEN {full(x, n)} THEN STDDEV_SAMP({x}) OVER {frame(n)} END"


def rolling_max(x: str, n: int) -> str:
    return f"CASE WHEN {full(x, n)} THEN MAX({x}) OVER {frame(n)} END"


def zscore(x: str, n: int) -> str:
    sd = f"STDDEV_SAMP({x}) OVER {frame(n)}"
    return f"CASE WHEN {full(x, n)} AND {sd} > 0 THEN ({x} - AVG({x}) OVER {frame(n)}) / {sd} END"


def lag(x: str, k: int) -> str:
    return f"lag({x}, {k}) OVER ({PART})"


def pct_change(x: str, k: int) -> str:
    base = lag(x, k)
    return f"CASE WHEN {base} <> 0 THEN ({x} - {base}) / {base} END"


def log_return(x: str, k: int) -> str:
    base = lag(x, k)
    return f"CASE WHEN {base} <> 0 AND {x} / {base} > 0 THEN ln({x} / {base}) END"


def source(root: Path) -> str:
    glob = str(root / "parquet" / "bse" / "equity" / "*" / "*.parquet").replace("'", "''")
    return f"read_parquet('{glob}', hive_partitioning = true, hive_types = {{'trade_date': DATE}})"


def subset_queries(root: Path) -> dict[str, str]:
    src = source(root)
    price = f"""
        SELECT
            scrip_code,
            trade_date,
            close,
            {pct_change('close', 1)} AS return_1d,
            {log_return('close', 1)} AS log_return_1d,
            {sma('close', 5)} AS sma_5,
            {sma('close', 20)} AS sma_20,
            {sma('close', 50)} AS sma_50,
            {lag('close', 1)} AS close_lag_1,
            {lag('close', 5)} AS close_lag_5,
            {pct_change('close', 10)} AS momentum_10,
            {zscore('close', 20)} AS zscore_20,
            {sma('volume', 20)} AS volume_sma_20
        FROM {src}
        WHERE is_equity
    """
    volatility = f"""
        WITH daily AS (
            SELECT
                scrip_code,
                trade_date,
                high,
                low,
                close,
                {pct_change('close', 1)} AS return_1d,
                {lag('close', 1)} AS prev_close_row,
                CASE WHEN low > 0 THEN ln(high / low) END AS log_high_low
            FROM {src}
            WHERE is_equity
        ),
        ranged AS (
            SELECT
                *,
                CASE
                    WHEN prev_close_row IS NULL THEN high - low
                    ELSE greatest(high - low, abs(high - prev_close_row), abs(low - prev_close_row))
                END AS true_range,
                log_high_low * log_high_low AS log_high_low_sq
            FROM daily
        )
        SELECT
            scrip_code,
            trade_date,
            {rolling_std('return_1d', 20)} AS std_20,
            {rolling_std('return_1d', 20)} * sqrt(252.0) AS volatility_20,
            {rolling_std('return_1d', 60)} * sqrt(252.0) AS volatility_60,
            (high - low) / close AS high_low_range,
            true_range,
            sqrt({sma('log_high_low_sq', 20)} / (4.0 * ln(2.0)) * 252.0) AS parkinson_vol_20,
            close / {rolling_max('close', 20)} - 1.0 AS drawdown_20
        FROM ranged
    """
    return {"price_subset": price, "volatility_subset": volatility}


def top_operators(profile_path: Path, limit: int = 6) -> list[tuple[str, float]]:
    """The slowest operators of a DuckDB JSON profile (summed CPU time by operator type)."""
    try:
        tree = json.loads(profile_path.read_text())
    except (OSError, ValueError):
        return []
    totals: dict[str, float] = {}

    def walk(node: dict) -> None:
        name = node.get("type") or node.get("operator_type") or node.get("name")
        timing = node.get("timing", node.get("operator_timing"))
        if name and isinstance(timing, (int, float)):
            totals[name] = totals.get(name, 0.0) + float(timing)
        for child in node.get("children", []):
            walk(child)

    # DuckDB 1.4+/2.x: {"operator": [root, ...], ...}; older: the root node itself.
    for node in tree.get("operator", [tree]) if isinstance(tree, dict) else []:
        walk(node)
    return sorted(totals.items(), key=lambda kv: -kv[1])[:limit]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, type=Path, help="bhavstore storage root")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--repeat", type=int, default=1, help="runs per query; the best is reported")
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2: the machine's cores)")
    args = p.parse_args()

    root = args.root.resolve()
    out = (args.out / "duckdb").resolve()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "tmp"
    tmp.mkdir(exist_ok=True)

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute(f"SET temp_directory = '{str(tmp).replace(chr(39), chr(39) * 2)}'")
    # Row order of the output does not matter (bhavstore's does not keep one either); this lets
    # DuckDB write without re-establishing the input order.
    con.execute("SET preserve_insertion_order = false")
    settings = dict(
        con.execute(
            "SELECT name, value FROM duckdb_settings() "
            "WHERE name IN ('threads', 'memory_limit', 'preserve_insertion_order')"
        ).fetchall()
    )
    rows_in = con.execute(f"SELECT count(*) FROM {source(root)}").fetchone()[0]
    print(f"duckdb {duckdb.__version__}: root {root}, settings {settings}, {rows_in} bhavcopy rows")

    results: dict = {"engine": f"DuckDB {duckdb.__version__}", "settings": settings, "bhavcopy_rows": rows_in}
    subset: dict = {}
    total = 0.0
    for name, sql in subset_queries(root).items():
        target = out / f"{name}.parquet"
        copy = (
            f"COPY ({sql}) TO '{str(target).replace(chr(39), chr(39) * 2)}' "
            "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3)"
        )
        runs = []
        rows = 0
        for i in range(max(1, args.repeat)):
            if target.exists():
                target.unlink() if target.is_file() else shutil.rmtree(target)
            last = i + 1 == max(1, args.repeat)
            profile = out / f"profile_{name}.json"
            if last:
                con.execute("SET enable_profiling = 'json'")
                con.execute(f"SET profiling_output = '{str(profile).replace(chr(39), chr(39) * 2)}'")
            t0 = time.perf_counter()
            rows = con.execute(copy).fetchone()[0]
            t = time.perf_counter() - t0
            if last:
                con.execute("SET enable_profiling = 'no_output'")
                con.execute("RESET profiling_output")
            runs.append(t)
            print(f"  {name}: write run {i + 1}: {rows} rows, {t:.3f} s", file=sys.stderr)
        best = min(runs)
        total += best
        ops = top_operators(out / f"profile_{name}.json")
        subset[name] = {"rows": rows, "best_s": best, "runs_s": runs, "operators_cpu_s": dict(ops)}
        print(f"  {name:<22} {rows:>10} rows {best:>9.3f} s")
        if ops:
            print("    operator CPU (profile): " + ", ".join(f"{k} {v:.3f}" for k, v in ops))
    subset["total_best_s"] = total
    results["subset"] = subset
    print(f"  {'total':<22} {'':>15} {total:>9.3f} s")
    (out.parent / "duckdb_results.json").write_text(json.dumps(results, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
