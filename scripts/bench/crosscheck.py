#!/usr/bin/env python3
"""Checks that bhavstore and DuckDB computed the same numbers before their times are compared.

Joins, on (scrip_code, trade_date), DuckDB's subset outputs with (a) bhavstore's subset outputs
and (b) bhavstore's full views (the subset's columns), and requires for every feature column:
the same rows, NULL in the same places, and values within a relative 1e-9 (absolute 1e-12 for
values near zero). Exits 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

REL_TOL = 1e-9
ABS_TOL = 1e-12

COLUMNS = {
    "price_subset": [
        "close", "return_1d", "log_return_1d", "sma_5", "sma_20", "sma_50", "close_lag_1",
        "close_lag_5", "momentum_10", "zscore_20", "volume_sma_20",
    ],
    "volatility_subset": [
        "std_20", "volatility_20", "volatility_60", "high_low_range", "true_range",
        "parkinson_vol_20", "drawdown_20",
    ],
}
FULL_VIEW = {"price_subset": "price_features", "volatility_subset": "volatility_features"}


def quote(path: Path) -> str:
    return str(path).replace("'", "''")


def compare(con: duckdb.DuckDBPyConnection, left: Path, right: Path, columns: list[str]) -> tuple[bool, list[str]]:
    """Compares parquet glob `left` (bhavstore) with `right` (DuckDB); returns (ok, report lines)."""
    parts = [
        "count(*) FILTER (WHERE b.scrip_code IS NULL) AS only_duckdb",
        "count(*) FILTER (WHERE d.scrip_code IS NULL) AS only_bhavstore",
        "count(*) FILTER (WHERE b.scrip_code IS NOT NULL AND d.scrip_code IS NOT NULL) AS matched",
    ]
    for c in columns:
        diff = f"abs(b.{c} - d.{c})"
        scale = f"greatest(abs(b.{c}), abs(d.{c}))"
        parts += [
            f"count(*) FILTER (WHERE (b.{c} IS NULL) <> (d.{c} IS NULL)) AS {c}__nulls",
            f"count(b.{c}) AS {c}__values",
            f"max({diff}) AS {c}__abs",
            f"max(CASE WHEN {scale} > 0 THEN {diff} / {scale} ELSE 0 END) AS {c}__rel",
            f"count(*) FILTER (WHERE {diff} > greatest({REL_TOL} * {scale}, {ABS_TOL})) AS {c}__bad",
        ]
    sql = f"""
        SELECT {', '.join(parts)}
        FROM read_parquet('{quote(left)}') b
        FULL OUTER JOIN read_parquet('{quote(right)}') d
          ON b.scrip_code = d.scrip_code AND b.trade_date = d.trade_date
    """
    row = con.execute(sql).fetchone()
    names = [d[0] for d in con.description]
    r = dict(zip(names, row))
    ok = r["only_duckdb"] == 0 and r["only_bhavstore"] == 0
    lines = [f"    rows matched {r['matched']}, only in DuckDB {r['only_duckdb']}, only in bhavstore {r['only_bhavstore']}"]
    for c in columns:
        bad, nulls = r[f"{c}__bad"], r[f"{c}__nulls"]
        ok = ok and bad == 0 and nulls == 0
        lines.append(
            f"    {c:<17} values {r[c + '__values']:>10}  NULL mismatches {nulls:>3}  "
            f"max abs diff {r[c + '__abs'] or 0:.3e}  max rel diff {r[c + '__rel'] or 0:.3e}  "
            f"out of tolerance {bad}"
        )
    return ok, lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output directory of bench-features and duckdb_features.py")
    args = p.parse_args()
    out = args.out.resolve()
    con = duckdb.connect()
    all_ok = True
    for name, columns in COLUMNS.items():
        duck = out / "duckdb" / f"{name}.parquet"
        pairs = [(f"bhavstore {name} vs DuckDB {name}", out / "bhavstore" / name / "*.parquet")]
        full = out / "bhavstore" / FULL_VIEW[name]
        if full.is_dir():
            pairs.append((f"bhavstore {FULL_VIEW[name]} vs DuckDB {name}", full / "*.parquet"))
        for label, left in pairs:
            ok, lines = compare(con, left, duck, columns)
            all_ok = all_ok and ok
            print(f"  {label}: {'AGREE' if ok else 'DISAGREE'} (tolerance rel {REL_TOL:g}, abs {ABS_TOL:g})")
            print("\n".join(lines))
    print(f"crosscheck: {'bhavstore and DuckDB agree' if all_ok else 'bhavstore and DuckDB DISAGREE'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
