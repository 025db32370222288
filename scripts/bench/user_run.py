#!/usr/bin/env python3
"""Helper of user_run.sh: "what a user runs", bhavstore `materialize --full` vs one DuckDB query.

Subcommands (user_run.sh calls them; each can be run by hand):

  csv      --parquet-root ROOT --out DIR --info FILE
           Converts gen-history's canonical Parquet (one file per session under
           ROOT/parquet/bse/equity/trade_date=YYYY-MM-DD/) into legacy 14-column BSE equity
           bhavcopies DIR/EQ{DDMMYY}.CSV, written as BSE wrote them (see LEGACY_HEADER).
  sql      --store STORE --out FILE
           Prints the DuckDB statement (COPY of the 15 features to FILE).
  duckdb   --store STORE --out FILE --json FILE
           Runs that statement in a fresh DuckDB connection with default settings (a new user's
           `import duckdb; duckdb.sql(...)`); writes rows, in-process seconds and version to --json.
  record   --runs FILE --side S --round N --time-file F [--load L] [--extra KEY=VALUE]...
           Appends one measured process (GNU `time -v` output parsed) to the runs file (JSON lines).
  crosscheck --store STORE --duckdb-out FILE
           Compares DuckDB's output with bhavstore's published views, column by column.
  summary  --out DIR
           Writes DIR/results.json and DIR/summary.md (markdown table, ratios vs the targets).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Cross-check tolerances (those of crosscheck.py).
REL_TOL = 1e-9
ABS_TOL = 1e-12

# Targets of the benchmark row of issue 14.
TARGET_TIME = 0.5
TARGET_RSS = 1.2

# ---------------------------------------------------------------------------------------------
# Legacy CSV generation
# ---------------------------------------------------------------------------------------------

# The header of BSE's 14-column legacy equity bhavcopy exactly as the real files print it
# (/work/shared/data/bse-real/legacy-eq-14col/: `TDCLOINDI`, LF line ends in 69 of the 73 files,
# no quoting, SC_NAME cut/padded to 12 characters, SC_GROUP padded to 2, prices and turnover with
# two decimals, PREVCLOSE 0.00 for a new listing, an empty TDCLOINDI ending every row).
LEGACY_HEADER = (
    "SC_CODE,SC_NAME,SC_GROUP,SC_TYPE,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,NO_TRADES,NO_OF_SHRS,NET_TURNOV,TDCLOINDI"
)
LEGACY_COLUMNS = [
    "scrip_code", "name", "sc_group", "sc_type", "open", "high", "low", "close", "last",
    "prev_close", "trades", "volume", "turnover", "ex_flag",
]


def _money(v: float | None) -> str:
    return "0.00" if v is None else f"{v:.2f}"


def _count(v: int | None) -> str:
    return "0" if v is None else str(v)


def legacy_lines(table) -> list[str]:
    """The data lines of one legacy file from a canonical Parquet table (rows in its order)."""
    cols = table.select(LEGACY_COLUMNS).to_pydict()
    lines = []
    for code, name, group, sc_type, o, h, lo, c, last, prev, trades, vol, turn, flag in zip(
        *(cols[k] for k in LEGACY_COLUMNS)
    ):
        lines.append(
            f"{code},{name[:12]:<12},{(group or ''):<2},{sc_type or ''},"
            f"{_money(o)},{_money(h)},{_money(lo)},{_money(c)},{_money(last)},{_money(prev)},"
            f"{_count(trades)},{_count(vol)},{_money(turn)},{flag or ''}"
        )
    return lines


def cmd_csv(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    src = args.parquet_root / "parquet" / "bse" / "equity"
    days = sorted(src.glob("trade_date=*/*.parquet"))
    if not days:
        print(f"no Parquet files under {src}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = equity = 0
    names = set()
    for f in days:
        day = f.parent.name.split("=", 1)[1]  # YYYY-MM-DD
        yyyy, mm, dd = day.split("-")
        name = f"EQ{dd}{mm}{yyyy[2:]}.CSV"
        if name in names:
            print(f"two sessions map to {name} (the legacy name has a 2-digit year)", file=sys.stderr)
            return 1
        names.add(name)
        table = pq.read_table(f)
        lines = legacy_lines(table)
        rows += len(lines)
        equity += sum(1 for t in table.column("sc_type").to_pylist() if t == "Q")
        tmp = args.out / (name + ".tmp")
        tmp.write_text(LEGACY_HEADER + "\n" + "\n".join(lines) + "\n", encoding="ascii", newline="\n")
        tmp.rename(args.out / name)
    info = {
        "files": len(days),
        "rows": rows,
        "equity_rows": equity,
        "first": days[0].parent.name.split("=", 1)[1],
        "last": days[-1].parent.name.split("=", 1)[1],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    # Beside the folder, not in it: `bhavstore import DIR` reads every .csv, .zip and .json.
    args.info.write_text(json.dumps(info, indent=2) + "\n")
    print(f"{info['files']} legacy CSV files, {rows} rows ({equity} equity), "
          f"{info['first']}..{info['last']}, in {info['seconds']} s -> {args.out}")
    return 0


# ---------------------------------------------------------------------------------------------
# DuckDB side: one query, 15 features
# ---------------------------------------------------------------------------------------------

# The formulas of duckdb_features.py (the ones cross-checked against bhavstore's UDFs: a rolling
# aggregate is NULL unless its frame holds n non-NULL values, COUNT(x) OVER frame = n; pct_change
# NULL when the base is 0; log_return NULL when the ratio is not positive), written with named
# windows as a user would type them. One statement; the CTE is there because DuckDB cannot nest
# window functions (the rolling std of the 1-day return).

WINDOWS = {n: f"w{n}" for n in (5, 20, 50, 60)}


def _full(x: str, n: int) -> str:
    return f"COUNT({x}) OVER w{n} = {n}"


def _sma(x: str, n: int) -> str:
    return f"CASE WHEN {_full(x, n)} THEN AVG({x}) OVER w{n} END"


def _std(x: str, n: int) -> str:
    return f"CASE WHEN {_full(x, n)} THEN STDDEV_SAMP({x}) OVER w{n} END"


def _max(x: str, n: int) -> str:
    return f"CASE WHEN {_full(x, n)} THEN MAX({x}) OVER w{n} END"


def _zscore(x: str, n: int) -> str:
    sd = f"STDDEV_SAMP({x}) OVER w{n}"
    return f"CASE WHEN {_full(x, n)} AND {sd} > 0 THEN ({x} - AVG({x}) OVER w{n}) / {sd} END"


def _pct_change(x: str, k: int) -> str:
    base = f"lag({x}, {k}) OVER w"
    return f"CASE WHEN {base} <> 0 THEN ({x} - {base}) / {base} END"


FEATURES = [
    "return_1d", "log_return_1d", "sma_5", "sma_20", "sma_50", "close_lag_1", "momentum_10",
    "zscore_20", "volume_sma_20", "volatility_20", "volatility_60", "high_low_range", "true_range",
    "parkinson_vol_20", "drawdown_20",
]
# The view each feature comes from (for the cross-check).
FEATURE_VIEW = {f: "price_features" for f in FEATURES[:9]} | {f: "volatility_features" for f in FEATURES[9:]}


def bhavcopy_source(store: Path) -> str:
    glob = str(store / "parquet" / "bse" / "equity" / "**" / "*.parquet").replace("'", "''")
    return f"read_parquet('{glob}', hive_partitioning = true)"


def duckdb_sql(store: Path, out: Path) -> str:
    lhl2 = "CASE WHEN low > 0 THEN ln(high / low) * ln(high / low) END"
    frames = ",\n    ".join(
        f"{w} AS (PARTITION BY scrip_code ORDER BY trade_date ROWS BETWEEN {n - 1} PRECEDING AND CURRENT ROW)"
        for n, w in WINDOWS.items()
    )
    select = f"""WITH daily AS (
    SELECT
        scrip_code, trade_date, high, low, close, volume,
        lag(close, 1) OVER w AS prev_close_row,
        {_pct_change('close', 1)} AS return_1d
    FROM {bhavcopy_source(store)}
    WHERE is_equity
    WINDOW w AS (PARTITION BY scrip_code ORDER BY trade_date)
)
SELECT
    scrip_code,
    trade_date,
    return_1d,
    CASE WHEN prev_close_row <> 0 AND close / prev_close_row > 0 THEN ln(close / prev_close_row) END AS log_return_1d,
    {_sma('close', 5)} AS sma_5,
    {_sma('close', 20)} AS sma_20,
    {_sma('close', 50)} AS sma_50,
    prev_close_row AS close_lag_1,
    {_pct_change('close', 10)} AS momentum_10,
    {_zscore('close', 20)} AS zscore_20,
    {_sma('volume', 20)} AS volume_sma_20,
    {_std('return_1d', 20)} * sqrt(252.0) AS volatility_20,
    {_std('return_1d', 60)} * sqrt(252.0) AS volatility_60,
    (high - low) / close AS high_low_range,
    CASE
        WHEN prev_close_row IS NULL THEN high - low
        ELSE greatest(high - low, abs(high - prev_close_row), abs(low - prev_close_row))
    END AS true_range,
    sqrt({_sma(lhl2, 20)} / (4.0 * ln(2.0)) * 252.0) AS parkinson_vol_20,
    close / {_max('close', 20)} - 1.0 AS drawdown_20
FROM daily
WINDOW
    w AS (PARTITION BY scrip_code ORDER BY trade_date),
    {frames}"""
    target = str(out).replace("'", "''")
    return f"COPY (\n{select}\n) TO '{target}' (FORMAT parquet)"


def cmd_sql(args: argparse.Namespace) -> int:
    print(duckdb_sql(args.store.resolve(), args.out.resolve()))
    return 0


def cmd_duckdb(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    import duckdb

    out = args.out.resolve()
    if out.exists():
        out.unlink()
    sql = duckdb_sql(args.store.resolve(), out)
    # Default settings (in-memory, threads = cores, 80% of RAM). Its default temp_directory is
    # `.tmp` under the working directory: run from the output's folder so a spill lands there.
    os.chdir(out.parent)
    con = duckdb.connect()
    t0 = time.perf_counter()
    rows = con.execute(sql).fetchone()[0]
    query_s = time.perf_counter() - t0
    settings = dict(
        con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('threads', 'memory_limit', 'preserve_insertion_order', 'temp_directory')"
        ).fetchall()
    )
    con.close()
    info = {
        "duckdb_version": duckdb.__version__,
        "rows": rows,
        "query_s": round(query_s, 3),
        "in_process_s": round(time.perf_counter() - t_start, 3),
        "output_bytes": out.stat().st_size,
        "settings": settings,
    }
    args.json.write_text(json.dumps(info, indent=2) + "\n")
    print(f"duckdb {duckdb.__version__}: {rows} rows in {query_s:.3f} s (query), settings {settings}")
    return 0


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def parse_time_v(text: str) -> dict:
    """The fields of GNU `time -v` output that the summary uses."""
    out: dict = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Elapsed (wall clock) time"):
            value = line.rsplit(": ", 1)[1]
            secs = 0.0
            for part in value.split(":"):
                secs = secs * 60 + float(part)
            out["wall_s"] = secs
        elif line.startswith("Maximum resident set size (kbytes)"):
            out["max_rss_kib"] = int(line.rsplit(":", 1)[1])
        elif line.startswith("User time (seconds)"):
            out["user_s"] = float(line.rsplit(":", 1)[1])
        elif line.startswith("System time (seconds)"):
            out["sys_s"] = float(line.rsplit(":", 1)[1])
        elif line.startswith("Exit status"):
            out["exit_status"] = int(line.rsplit(":", 1)[1])
        elif line.startswith("Command being timed"):
            out["command"] = line.split(":", 1)[1].strip().strip('"')
    return out


def cmd_record(args: argparse.Namespace) -> int:
    rec = {"side": args.side, "round": args.round, "load_before": args.load}
    rec.update(parse_time_v(args.time_file.read_text()))
    # A precise wall clock from the shell (date +%s.%N around the process), when given.
    for kv in args.extra:
        k, v = kv.split("=", 1)
        try:
            rec[k] = json.loads(v)
        except ValueError:
            rec[k] = v
    if "wall_ns" in rec:
        rec["wall_s"] = rec.pop("wall_ns") / 1e9
    with args.runs.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    return 0


def published_files(store: Path, view: str) -> list[Path]:
    """The data files of a view's newest manifest (highest seq over its versions)."""
    manifests = [json.loads(m.read_text()) for m in (store / "features" / view).glob("*/manifests/*.json")]
    if not manifests:
        return []
    newest = max(manifests, key=lambda m: (m.get("published_at", ""), m.get("seq", 0)))
    return [store / f["key"] for seg in newest.get("segments", []) for f in seg.get("files", [])]


def cmd_crosscheck(args: argparse.Namespace) -> int:
    """DuckDB's output vs the files of bhavstore's published views (the newest manifests), with
    crosscheck.py's tolerances: same rows, NULLs in the same places, values within tolerance."""
    import duckdb

    con = duckdb.connect()
    all_ok = True
    for view in ("price_features", "volatility_features"):
        files = published_files(args.store, view)
        if not files:
            print(f"  {view}: no published manifest under {args.store}")
            all_ok = False
            continue
        columns = [f for f in FEATURES if FEATURE_VIEW[f] == view]
        listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        ok, lines = _compare(con, listing, args.duckdb_out, columns, REL_TOL, ABS_TOL)
        all_ok = all_ok and ok
        print(f"  bhavstore {view} ({len(files)} files) vs DuckDB: {'AGREE' if ok else 'DISAGREE'} "
              f"(rel {REL_TOL:g}, abs {ABS_TOL:g})")
        print("\n".join(lines))
    print(f"crosscheck: {'agree' if all_ok else 'DISAGREE'}")
    return 0 if all_ok else 1


def _compare(con, listing: str, duck: Path, columns: list[str], rel: float, abs_: float) -> tuple[bool, list[str]]:
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
            f"max({diff}) AS {c}__abs",
            f"count(*) FILTER (WHERE {diff} > greatest({rel} * {scale}, {abs_})) AS {c}__bad",
        ]
    duck_q = str(duck).replace("'", "''")
    row = con.execute(
        f"SELECT {', '.join(parts)} FROM read_parquet([{listing}]) b "
        f"FULL OUTER JOIN read_parquet('{duck_q}') d "
        "ON b.scrip_code = d.scrip_code AND b.trade_date = d.trade_date"
    ).fetchone()
    r = dict(zip([d[0] for d in con.description], row))
    ok = r["only_duckdb"] == 0 and r["only_bhavstore"] == 0
    lines = [f"    rows matched {r['matched']}, only in DuckDB {r['only_duckdb']}, only in bhavstore {r['only_bhavstore']}"]
    for c in columns:
        ok = ok and r[f"{c}__bad"] == 0 and r[f"{c}__nulls"] == 0
        lines.append(f"    {c:<17} NULL mismatches {r[c + '__nulls']:>3}  max abs diff {r[c + '__abs'] or 0:.3e}  "
                     f"out of tolerance {r[c + '__bad']}")
    return ok, lines


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def _stats(values: list[float]) -> tuple[float, float]:
    return (min(values), statistics.median(values)) if values else (float("nan"), float("nan"))


def cmd_summary(args: argparse.Namespace) -> int:
    out = args.out
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]
    meta = json.loads((out / "meta.json").read_text())
    sides = {s: [r for r in runs if r["side"] == s] for s in ("import", "bhavstore", "duckdb")}
    stat = {}
    for s, rs in sides.items():
        wall = _stats([r["wall_s"] for r in rs])
        rss = _stats([r["max_rss_kib"] / 1024 for r in rs])
        cpu = _stats([r.get("user_s", 0) + r.get("sys_s", 0) for r in rs])
        stat[s] = {"wall_best_s": wall[0], "wall_median_s": wall[1], "rss_best_mib": rss[0],
                   "rss_median_mib": rss[1], "cpu_median_s": cpu[1], "runs": len(rs)}
    b, d = stat["bhavstore"], stat["duckdb"]

    def ratio(x: float, y: float) -> float:
        return x / y if y else float("nan")

    ratios = {
        "time_best": ratio(b["wall_best_s"], d["wall_best_s"]),
        "time_median": ratio(b["wall_median_s"], d["wall_median_s"]),
        "rss_best": ratio(b["rss_best_mib"], d["rss_best_mib"]),
        "rss_median": ratio(b["rss_median_mib"], d["rss_median_mib"]),
    }
    met_time = ratios["time_median"] <= TARGET_TIME
    met_rss = ratios["rss_median"] <= TARGET_RSS
    results = {"meta": meta, "stats": stat, "ratios": ratios,
               "targets": {"time": TARGET_TIME, "rss": TARGET_RSS, "time_met": met_time, "rss_met": met_rss},
               "runs": runs}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    def rows_of(side: str, key: str) -> str:
        vals = sorted({r.get(key) for r in sides[side] if r.get(key) is not None})
        return " / ".join(f"{v:,}" for v in vals) if vals else "?"

    def loads(side: str) -> str:
        return ", ".join(str(r.get("load_before", "?")).split()[0] for r in sides[side])

    def view_ms() -> str:
        names = sorted({v for r in sides["bhavstore"] for v in r.get("views", {})})
        parts = [f"{v} {statistics.median([r['views'][v]['ms'] for r in sides['bhavstore'] if v in r.get('views', {})]):.0f}"
                 for v in names]
        return ", ".join(parts) or "?"

    h = meta["history"]
    md = [
        f"# bhavstore `materialize --full` vs one DuckDB query ({meta['started']})",
        "",
        f"History: {h['securities']:,} securities × {h['sessions']:,} sessions, seed {h['seed']}: "
        f"{h.get('rows', 0):,} rows ({h.get('equity_rows', 0):,} equity) in {h.get('files', 0):,} legacy "
        f"`EQ{{DDMMYY}}.CSV` files, imported with `bhavstore import` into a fresh store every round.",
        f"Machine: {meta['nproc']} cores, {meta['mem_gib']} GiB RAM; {meta['duckdb']}; bhavstore binary "
        f"`{meta['bin']}` ({meta['bin_mtime']}). {meta['repeat']} round(s), bhavstore and DuckDB alternating "
        "(odd rounds bhavstore first). Wall and peak RSS of the whole process (GNU time).",
        "",
        "| | bhavstore `materialize --full` | DuckDB (1 query, 15 features) | bhavstore / DuckDB | target |",
        "|---|---:|---:|---:|---:|",
        f"| wall best (s) | {b['wall_best_s']:.2f} | {d['wall_best_s']:.2f} | {ratios['time_best']:.2f}× | ≤ {TARGET_TIME}× |",
        f"| wall median (s) | {b['wall_median_s']:.2f} | {d['wall_median_s']:.2f} | **{ratios['time_median']:.2f}×** "
        f"| ≤ {TARGET_TIME}× {'met' if met_time else '**missed**'} |",
        f"| peak RSS best (MiB) | {b['rss_best_mib']:.0f} | {d['rss_best_mib']:.0f} | {ratios['rss_best']:.2f}× | ≤ {TARGET_RSS}× |",
        f"| peak RSS median (MiB) | {b['rss_median_mib']:.0f} | {d['rss_median_mib']:.0f} | **{ratios['rss_median']:.2f}×** "
        f"| ≤ {TARGET_RSS}× {'met' if met_rss else '**missed**'} |",
        f"| CPU median (user+sys s) | {b['cpu_median_s']:.2f} | {d['cpu_median_s']:.2f} | {ratio(b['cpu_median_s'], d['cpu_median_s']):.2f}× | |",
        f"| rows written | {rows_of('bhavstore', 'price_rows')} price + {rows_of('bhavstore', 'volatility_rows')} volatility "
        f"| {rows_of('duckdb', 'rows')} | | |",
        f"| features | 23 (both views, incl. ema/rsi/atr) | 15 | | |",
        f"| load average before each run | {loads('bhavstore')} | {loads('duckdb')} | | |",
        "",
        f"Import (not in the ratio): `bhavstore import` of the CSV folder, wall best / median "
        f"{stat['import']['wall_best_s']:.2f} / {stat['import']['wall_median_s']:.2f} s, peak RSS "
        f"{stat['import']['rss_median_mib']:.0f} MiB (median); DuckDB in-process query time median "
        f"{statistics.median([r.get('query_s', 0) for r in sides['duckdb']] or [0]):.2f} s; bhavstore's own "
        f"run records (median ms, from taking the view's lock to its quality figures): {view_ms()}.",
        "",
        "Per run:",
        "",
        "| round | side | wall (s) | CPU (s) | peak RSS (MiB) | load before |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for r in runs:
        md.append(f"| {r['round']} | {r['side']} | {r['wall_s']:.2f} | {r.get('user_s', 0) + r.get('sys_s', 0):.2f} "
                  f"| {r['max_rss_kib'] / 1024:.0f} | {r.get('load_before', '?')} |")
    if meta.get("crosscheck"):
        md += ["", f"Cross-check of DuckDB's 15 columns against bhavstore's views (last round): {meta['crosscheck']}."]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("csv")
    c.add_argument("--parquet-root", required=True, type=Path)
    c.add_argument("--out", required=True, type=Path)
    c.add_argument("--info", required=True, type=Path, help="JSON written with the counts")
    c = sub.add_parser("sql")
    c.add_argument("--store", required=True, type=Path)
    c.add_argument("--out", required=True, type=Path)
    c = sub.add_parser("duckdb")
    c.add_argument("--store", required=True, type=Path)
    c.add_argument("--out", required=True, type=Path)
    c.add_argument("--json", required=True, type=Path)
    c = sub.add_parser("record")
    c.add_argument("--runs", required=True, type=Path)
    c.add_argument("--side", required=True)
    c.add_argument("--round", required=True, type=int)
    c.add_argument("--time-file", required=True, type=Path)
    c.add_argument("--load", default="")
    c.add_argument("--extra", action="append", default=[])
    c = sub.add_parser("crosscheck")
    c.add_argument("--store", required=True, type=Path)
    c.add_argument("--duckdb-out", required=True, type=Path)
    c = sub.add_parser("summary")
    c.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    return {
        "csv": cmd_csv, "sql": cmd_sql, "duckdb": cmd_duckdb, "record": cmd_record,
        "crosscheck": cmd_crosscheck, "summary": cmd_summary,
    }[args.cmd](args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
