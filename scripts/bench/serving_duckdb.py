"""DuckDB side of the training-set benchmark (run by serving_bench.py in its own process, so its
memory and CPU are its own): the spine Parquet ASOF-joined with a feature view's published
Parquet files, with features_asof's point-in-time rule.

  event_time = trade_date + close offset (15:30 IST = 10:00 UTC)
  match      = the entity's row with the latest event_time <= ts   (ASOF LEFT JOIN)
  NULL       = no such row, or ts - event_time > ttl               (feature_trade_date too)

Each run goes from the SQL text to a client-side Arrow table (to_arrow_table), one warm-up
then --repeat timed runs on one connection with `threads = N`. The last result is written as
Arrow IPC for the cross-check; timings, peak RSS and CPU as JSON on stdout.

usage: serving_duckdb.py --spine SPINE.parquet --files FILES.json --features a,b,c
         --ttl-us N --close-offset-us N [--threads 2] [--repeat 3] --out RESULT.arrow
"""

import argparse
import json
import resource
import sys
import time

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc


def query(spine, files, features, ttl_us, close_us):
    file_list = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    fresh = f"epoch_us(s.ts) - epoch_us(p.event_time) <= {ttl_us}"
    cols = ",\n  ".join(f'CASE WHEN {fresh} THEN p."{f}" END AS "{f}"' for f in features)
    feature_cols = ", ".join(f'"{f}"' for f in features)
    return f"""
SELECT s.i, s.scrip_code::BIGINT AS entity, s.ts,
  CASE WHEN {fresh} THEN p.trade_date END AS feature_trade_date,
  CASE WHEN {fresh} THEN p.event_time END AS feature_event_time,
  {cols}
FROM read_parquet('{spine}') AS s
ASOF LEFT JOIN (
  SELECT scrip_code, trade_date,
         make_timestamp(epoch_us(trade_date::TIMESTAMP) + {close_us}) AS event_time,
         {feature_cols}
  FROM read_parquet([{file_list}])
) AS p
ON s.scrip_code = p.scrip_code AND s.ts >= p.event_time
"""


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spine", required=True)
    ap.add_argument("--files", required=True, help="JSON list of the view's Parquet files")
    ap.add_argument("--features", required=True)
    ap.add_argument("--ttl-us", type=int, required=True)
    ap.add_argument("--close-offset-us", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.files) as f:
        files = json.load(f)
    features = a.features.split(",")
    sql = query(a.spine, files, features, a.ttl_us, a.close_offset_us)

    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    runs = []
    table = None
    for r in range(a.repeat + 1):
        c0, t0 = cpu(), time.perf_counter()
        table = con.sql(sql).to_arrow_table()
        t1, c1 = time.perf_counter(), cpu()
        runs.append({"warmup": r == 0, "seconds": t1 - t0, "cpu_seconds": c1 - c0, "rows": table.num_rows})
        print(f"  duckdb run {r}{' (warm-up)' if r == 0 else ''}: {t1 - t0:.3f} s, {table.num_rows} rows",
              file=sys.stderr, flush=True)
    with ipc.new_file(a.out, table.schema) as w:
        w.write_table(table)
    out = {
        "duckdb_version": duckdb.__version__,
        "threads": a.threads,
        "files": len(files),
        "runs": runs,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "sql": sql if len(sql) < 4000 else sql[:2000] + " ... " + sql[-1500:],
        "schema": {f.name: str(f.type) for f in table.schema},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
