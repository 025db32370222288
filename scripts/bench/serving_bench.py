"""Serving benchmarks against a running `bhavstore serve` (started by serving.sh), on loopback:

1. pull: `SELECT * FROM <view>` fully consumed by Flight SQL clients (ADBC record batches,
   ADBC whole table, pyarrow.flight do_get) and by Postgres-wire clients (psql and psycopg COPY
   TO STDOUT, psycopg binary streaming, psycopg named cursor); headline = best pgwire time /
   best Flight time.
2. training: `features_asof(<view>, <spine>)` for a seeded spine of (scrip_code, ts) rows, to a
   client-side Arrow table over Flight, next to DuckDB's ASOF JOIN of the same spine (Parquet)
   with the view's published Parquet files (serving_duckdb.py, its own process); the two
   results are compared row by row and the run fails if they differ.

Every timing: one warm-up, then --repeat runs; best and median reported. Per run: the server's
CPU seconds and peak RSS (VmHWM, reset before each run through /proc/<pid>/clear_refs) from
/proc/<server pid>, the client's CPU seconds, and the bytes over the loopback interface
(/proc/net/dev, machine-wide).

Writes OUT/results.json and OUT/summary.md (also printed).
"""

import argparse
import datetime as dt
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import warnings

import adbc_driver_flightsql.dbapi as flightsql
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as fl
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
# ADBC warns that Flight SQL cannot turn autocommit off; irrelevant for reads.
warnings.filterwarnings("ignore", message="Cannot disable autocommit")
P31 = 2147483647  # 2^31 - 1, prime: the spine's hash arithmetic stays below 2^62


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The server process, from /proc.


class Server:
    def __init__(self, pid):
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def _status(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return None

    def rss(self):
        return self._status("VmRSS")

    def reset_peak(self):
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def snapshot(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / self.tick
        return {"cpu": cpu, "lo_bytes": loopback_bytes()}


def loopback_bytes():
    """Bytes sent over the loopback interface (machine-wide: the benchmark's traffic dominates;
    TCP/IP headers included, ~0.1% at loopback's 64 KiB MTU)."""
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[8])
    return None


def client_cpu():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def measure(server, fn):
    """Runs fn() -> dict, adds wall/CPU/server figures."""
    peak_ok = server.reset_peak()
    before, c0 = server.snapshot(), client_cpu()
    t0 = time.perf_counter()
    out = fn()
    t1 = time.perf_counter()
    after, c1 = server.snapshot(), client_cpu()
    out = dict(out)
    out["seconds"] = t1 - t0
    out["client_cpu_seconds"] = c1 - c0
    out["server_cpu_seconds"] = after["cpu"] - before["cpu"]
    if before["lo_bytes"] is not None and after["lo_bytes"] is not None:
        out["loopback_bytes"] = after["lo_bytes"] - before["lo_bytes"]
    out["server_peak_rss_bytes"] = server._status("VmHWM") if peak_ok else None
    out["server_rss_after_bytes"] = server.rss()
    out["loadavg_1min_after"] = float(open("/proc/loadavg").read().split()[0])
    return out


def repeat(name, server, fn, n, warmup=True, warmup_fn=None):
    runs = []
    if warmup:
        r = measure(server, warmup_fn or fn)
        r["warmup"] = True
        runs.append(r)
        log(f"  {name} warm-up: {r['seconds']:.3f} s, {r.get('rows')} rows")
    for i in range(n):
        r = measure(server, fn)
        r["warmup"] = False
        runs.append(r)
        log(f"  {name} run {i + 1}: {r['seconds']:.3f} s, {r.get('rows')} rows, "
            f"server CPU {r['server_cpu_seconds']:.1f} s")
    return runs


def timed(runs):
    return [r for r in runs if not r.get("warmup")]


def best(runs):
    return min(r["seconds"] for r in timed(runs))


def median(runs):
    return statistics.median(r["seconds"] for r in timed(runs))


# ---------------------------------------------------------------------------------------------
# Clients.


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def command_statement_query(sql):
    """google.protobuf.Any{CommandStatementQuery{query}}, encoded by hand (no protobuf module)."""
    return pb_field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") + pb_field(
        2, pb_field(1, sql.encode())
    )


class Clients:
    def __init__(self, flight_addr, pg_host, pg_port):
        self.flight_uri = f"grpc://{flight_addr}"
        self.pg_dsn = f"host={pg_host} port={pg_port} user=bench dbname=bhavstore sslmode=disable"
        self.pg_host, self.pg_port = pg_host, pg_port
        self.adbc = flightsql.connect(self.flight_uri)

    def close(self):
        self.adbc.close()

    # -- Flight --------------------------------------------------------------------------------

    def arrow_table(self, sql):
        with self.adbc.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table()

    def flight_adbc_batches(self, sql):
        rows = nbytes = batches = 0
        with self.adbc.cursor() as cur:
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            for b in reader:
                rows += b.num_rows
                nbytes += b.nbytes
                batches += 1
        return {"rows": rows, "payload_bytes": nbytes, "batches": batches}

    def flight_adbc_table(self, sql):
        t = self.arrow_table(sql)
        return {"rows": t.num_rows, "payload_bytes": t.nbytes}

    def flight_do_get(self, sql):
        client = fl.FlightClient(self.flight_uri)
        try:
            info = client.get_flight_info(fl.FlightDescriptor.for_command(command_statement_query(sql)))
            rows = nbytes = batches = 0
            for ep in info.endpoints:
                reader = client.do_get(ep.ticket)
                while True:
                    try:
                        chunk = reader.read_chunk()
                    except StopIteration:
                        break
                    rows += chunk.data.num_rows
                    nbytes += chunk.data.nbytes
                    batches += 1
        finally:
            client.close()
        return {"rows": rows, "payload_bytes": nbytes, "batches": batches}

    # -- Postgres wire -------------------------------------------------------------------------

    def pg_psql_copy(self, sql):
        """psql (libpq, C): `\\copy (query) to '/dev/null'` (COPY ... TO STDOUT in text format under
        the hood); psql prints the row count."""
        p = subprocess.run(
            ["psql", self.pg_dsn, "-X", "-v", "ON_ERROR_STOP=1", "-c", f"\\copy ({sql}) to '/dev/null'"],
            capture_output=True, check=False,
        )
        if p.returncode != 0:
            raise RuntimeError(f"psql failed: {p.stderr.decode(errors='replace')}")
        m = re.search(rb"COPY (\d+)", p.stdout)
        return {"rows": int(m.group(1))} if m else {}

    def pg_copy(self, sql):
        """psycopg: COPY (query) TO STDOUT (text), raw chunks, not parsed."""
        rows = nbytes = 0
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            with conn.cursor() as cur:
                with cur.copy(f"COPY ({sql}) TO STDOUT") as cp:
                    for data in cp:
                        rows += 1  # the server sends one CopyData message per row
                        nbytes += len(data)
        return {"rows": rows, "payload_bytes": nbytes}

    def pg_stream_binary(self, sql, size=10000):
        """psycopg: cursor.stream(binary=True, size=N): extended protocol, binary results,
        libpq chunked-rows mode; rows become Python tuples."""
        rows = 0
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            with conn.cursor(binary=True) as cur:
                for _ in cur.stream(sql, binary=True, size=size):
                    rows += 1
        return {"rows": rows}

    def pg_stream_text(self, sql, size=10000):
        rows = 0
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            with conn.cursor() as cur:
                for _ in cur.stream(sql, size=size):
                    rows += 1
        return {"rows": rows}

    def pg_named_cursor(self, sql, itersize=100_000):
        """psycopg: a named (server-side) cursor, FETCH FORWARD itersize, Python tuples."""
        rows = 0
        with psycopg.connect(self.pg_dsn) as conn:
            with conn.transaction():
                with conn.cursor(name="bench_pull") as cur:
                    cur.itersize = itersize
                    cur.execute(sql)
                    while True:
                        got = cur.fetchmany(itersize)
                        if not got:
                            break
                        rows += len(got)
        return {"rows": rows}


FLIGHT_CLIENTS = {
    "flight_adbc_batches": ("Flight SQL, ADBC fetch_record_batch() iterated", "flight_adbc_batches"),
    "flight_do_get": ("Flight SQL, pyarrow.flight do_get, batches iterated", "flight_do_get"),
    "flight_adbc_table": ("Flight SQL, ADBC fetch_arrow_table() (whole table in memory)", "flight_adbc_table"),
}
# pg_stream_binary last: its Execute without a row limit makes the server buffer the whole result
# (pgwire's Portal::fetch(0)), and the allocator keeps that memory, which would inflate the peak
# RSS figures of whatever runs after it in the same server.
PG_CLIENTS = {
    "pg_psql_copy": ("pgwire, psql \\copy (...) to /dev/null (text)", "pg_psql_copy"),
    "pg_copy": ("pgwire, psycopg COPY (...) TO STDOUT (text), raw chunks", "pg_copy"),
    "pg_named_cursor": ("pgwire, psycopg named cursor, itersize 100000 (text), tuples", "pg_named_cursor"),
    "pg_stream_binary": ("pgwire, psycopg stream(binary=True, size=10000), tuples", "pg_stream_binary"),
}


# ---------------------------------------------------------------------------------------------
# Pull benchmark.


def pull_benchmark(cl, server, view, total_rows, args, results):
    flight = [c for c in args.flight_clients.split(",") if c]
    pg = [c for c in args.pg_clients.split(",") if c]
    full_sql = f"SELECT * FROM {view}"
    log(f"== pull: {full_sql} ({total_rows} rows)")
    res = {"view": view, "table_rows": total_rows, "clients": {}, "probe": {}}

    # How long would each pgwire client take on the whole table? Probe on PROBE rows; clients
    # whose estimate exceeds --pg-max-seconds run on a subset of --subset-rows (Flight too).
    probe_sql = f"SELECT * FROM {view} LIMIT {args.probe_rows}"
    subset_needed = False
    for c in pg:
        fn = getattr(cl, PG_CLIENTS[c][1])
        r = measure(server, lambda: fn(probe_sql))
        est = r["seconds"] * total_rows / args.probe_rows
        res["probe"][c] = {"rows": args.probe_rows, "seconds": r["seconds"], "estimate_full_seconds": est}
        log(f"  probe {c}: {args.probe_rows} rows in {r['seconds']:.2f} s -> full table ~{est:.0f} s")
        if est > args.pg_max_seconds:
            subset_needed = True

    def run_set(sql, rows_expected, clients, label):
        out = {}
        for c in clients:
            table = FLIGHT_CLIENTS if c in FLIGHT_CLIENTS else PG_CLIENTS
            desc, method = table[c]
            fn = getattr(cl, method)
            # pgwire clients were warmed up by the probe above.
            runs = repeat(f"{label} {c}", server, lambda: fn(sql), args.repeat, warmup=c in FLIGHT_CLIENTS)
            for r in runs:
                if r.get("rows") != rows_expected:
                    raise SystemExit(f"FAIL: {c} got {r.get('rows')} rows, expected {rows_expected}")
            out[c] = {"description": desc, "sql": sql, "rows": rows_expected, "runs": runs}
        return out

    full_clients = flight + ([] if subset_needed else pg)
    res["clients"]["full"] = run_set(full_sql, total_rows, full_clients, "full")
    if subset_needed:
        n = min(args.subset_rows, total_rows)
        sub_sql = f"SELECT * FROM {view} LIMIT {n}"
        res["subset_rows"] = n
        log(f"== pull subset: {sub_sql} (a pgwire client is estimated above {args.pg_max_seconds} s in full)")
        res["clients"]["subset"] = run_set(sub_sql, n, flight + pg, "subset")
    results["pull"] = res


# ---------------------------------------------------------------------------------------------
# Training-set benchmark.


def spine_sql(codes, first_day, span_days, n, seed):
    """A seeded spine of n (scrip_code, ts, i) rows, computed by the server: a hash of the row
    number i (squaring and affine steps modulo 2^31-1, every product < 2^62) draws an equity
    security and an instant, uniform over [first_day 00:00 UTC, first_day + span_days); 2% of the
    instants are moved to exactly 10:00:00 UTC of their day (the close: event time == ts) and 1%
    to 09:59:59 UTC. Ordered by i, so features_asof's output (in spine order) lines up with it.
    """
    start = int(dt.datetime.combine(first_day, dt.time(), dt.timezone.utc).timestamp())
    span = span_days * 86400
    values = ", ".join(f"({k}, {c})" for k, c in enumerate(codes))
    m = P31
    s = (seed * 2654435761 + 12345) % m
    return (
        f"WITH g AS (SELECT value AS i FROM generate_series(0, {n - 1})), "
        f"h0 AS (SELECT i, (i * 1103515245 + {s}) % {m} AS x FROM g), "
        f"h1 AS (SELECT i, (x * x + 12345) % {m} AS x FROM h0), "
        f"h2 AS (SELECT i, (x * 48271 + i + 1) % {m} AS x FROM h1), "
        f"h3 AS (SELECT i, (x * x + 67891) % {m} AS e FROM h2), "
        f"h4 AS (SELECT i, e, (e * 69621 + 17) % {m} AS y FROM h3), "
        f"h5 AS (SELECT i, e, (y * y + 424242) % {m} AS y FROM h4), "
        f"h6 AS (SELECT i, e, y, (y * 16807 + 29) % {m} AS z FROM h5), "
        f"h7 AS (SELECT i, e, y, z, (z * z + 99991) % {m} AS w FROM h6), "
        f"d AS (SELECT i, e % {len(codes)} AS k, {start} + (y * {m} + z) % {span} AS sec, w % 100 AS kind FROM h7), "
        f"t AS (SELECT i, k, CASE WHEN kind < 2 THEN sec - sec % 86400 + 36000 "
        f"WHEN kind < 3 THEN sec - sec % 86400 + 35999 ELSE sec END AS sec FROM d) "
        f"SELECT c.code AS scrip_code, to_timestamp_micros(t.sec * 1000000) AS ts, t.i AS i "
        f"FROM t JOIN (VALUES {values}) AS c(k, code) ON t.k = c.k ORDER BY t.i"
    )


def parse_ttl(text):
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not m:
        raise SystemExit(f"cannot read ttl {text!r}")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]


def view_yaml(feature_defs, view):
    text = (Path(feature_defs) / f"{view}.yaml").read_text()
    ttl = re.search(r"^ttl:\s*(\S+)", text, re.M).group(1)
    return {"ttl": ttl, "ttl_seconds": parse_ttl(ttl)}


def published_files(cl, root, view):
    t = cl.arrow_table(
        f"SELECT version, latest_seq, rows FROM bhavstore_versions WHERE view = '{view}' AND is_current"
    ).to_pylist()
    if len(t) != 1 or t[0]["latest_seq"] is None:
        raise SystemExit(f"no published state of {view}: {t}")
    version, seq = t[0]["version"], t[0]["latest_seq"]
    path = Path(root) / "features" / view / version / "manifests" / f"{seq:010d}.json"
    m = json.loads(path.read_text())
    files = [str(Path(root) / f["key"]) for s in m["segments"] for f in s["files"]]
    rows = sum(f["rows"] for s in m["segments"] for f in s["files"])
    return {"version": version, "seq": seq, "manifest": str(path), "files": files, "rows": rows,
            "bytes": sum(os.path.getsize(f) for f in files)}


def compare(bh, dk, features, spine):
    """Row by row. DuckDB's rows are put in spine order (by i); bhavstore's should already be in
    spine order (features_asof's contract). If they are not, both are sorted by (entity, ts) and
    compared that way (rows with equal keys have equal answers), and the order is reported."""
    n = spine.num_rows
    if bh.num_rows != n or dk.num_rows != n:
        raise SystemExit(f"FAIL: row counts bhavstore {bh.num_rows}, duckdb {dk.num_rows}, spine {n}")
    dk = dk.sort_by("i")
    same = lambda a, b: pc.all(pc.equal(a, b)).as_py()  # noqa: E731
    problems = {}
    if not same(dk["i"], pa.array(np.arange(n, dtype=np.int64))):
        raise SystemExit("FAIL: duckdb result does not cover every spine row once")
    ent = spine["scrip_code"].cast(pa.int64())
    if not (same(dk["entity"], ent) and same(dk["ts"], spine["ts"])):
        problems["duckdb keys vs spine"] = "differ"
    bh = bh.set_column(bh.schema.get_field_index("ts"), "ts", bh["ts"].cast(pa.timestamp("us")))
    in_order = same(bh["entity"], ent) and same(bh["ts"], spine["ts"])
    if not in_order:
        keys = [("entity", "ascending"), ("ts", "ascending")]
        bh, dk = bh.sort_by(keys), dk.sort_by(keys)
        if not (same(bh["entity"], dk["entity"]) and same(bh["ts"], dk["ts"])):
            problems["bhavstore keys vs spine"] = "not the spine's (entity, ts) rows"
    cols = ["feature_trade_date", "feature_event_time"] + features
    mismatches = {}
    for c in cols:
        a, b = bh[c], dk[c]
        if c == "feature_event_time":
            a = a.cast(pa.timestamp("us"))
            b = b.cast(pa.timestamp("us"))
        elif a.type != b.type:
            b = b.cast(a.type)
        a_null, b_null = pc.is_null(a), pc.is_null(b)
        null_diff = pc.xor(a_null, b_null)
        eq = pc.equal(a, b)
        if pa.types.is_floating(a.type):
            eq = pc.or_kleene(eq, pc.and_(pc.is_nan(a), pc.is_nan(b)))
        value_diff = pc.and_(pc.invert(pc.or_(a_null, b_null)), pc.invert(pc.fill_null(eq, False)))
        bad = pc.or_(null_diff, value_diff)
        count = pc.sum(bad).as_py() or 0
        if count:
            idx = pc.indices_nonzero(bad).to_pylist()[:5]
            mismatches[c] = {
                "rows": count,
                "examples": [{"bhavstore": a[i].as_py(), "duckdb": b[i].as_py(),
                              "entity": bh["entity"][i].as_py(), "ts": str(bh["ts"][i].as_py())} for i in idx],
            }
    matched = n - bh["feature_trade_date"].null_count
    return {
        "rows_compared": n,
        "columns_compared": len(cols),
        "rows_with_features": matched,
        "rows_null": n - matched,
        "bhavstore_in_spine_order": in_order,
        "key_problems": problems,
        "mismatches": mismatches,
        "ok": not problems and not mismatches,
    }


def training_benchmark(cl, server, view, args, results, out):
    log(f"== training set: {args.spine_rows} spine rows, features_asof('{view}', ...) vs DuckDB ASOF JOIN")
    yaml = view_yaml(args.feature_defs, view)
    pub = published_files(cl, args.root, view)
    log(f"  {view}: version {pub['version']} seq {pub['seq']}, {pub['rows']} rows in {len(pub['files'])} files "
        f"({pub['bytes'] / 2**20:.0f} MiB), ttl {yaml['ttl']}")
    meta = cl.arrow_table(
        f"SELECT min(trade_date) AS lo, max(trade_date) AS hi, count(DISTINCT scrip_code) AS n FROM {view}"
    ).to_pylist()[0]
    codes = cl.arrow_table(f"SELECT DISTINCT scrip_code FROM {view} ORDER BY 1")["scrip_code"].to_pylist()
    span_days = (meta["hi"] - meta["lo"]).days + 1 + args.spine_days_after
    spine_q = spine_sql(codes, meta["lo"], span_days, args.spine_rows, args.seed)

    # The spine, once, through Flight: written to Parquet for DuckDB and the upload.
    t0 = time.perf_counter()
    spine = cl.arrow_table(f"SELECT i, scrip_code, ts FROM ({spine_q}) ORDER BY i")
    spine_secs = time.perf_counter() - t0
    # (An ORDER BY inside a subquery does not order the outer query: sorting again is not
    # optional.)
    spine = spine.sort_by("i")
    spine = spine.cast(pa.schema([("i", pa.int64()), ("scrip_code", pa.int64()), ("ts", pa.timestamp("us"))]))
    spine_path = out / "spine.parquet"
    pq.write_table(spine, spine_path, compression="zstd")
    ts = spine["ts"].cast(pa.int64()).to_numpy()
    tod = ts % (86400 * 10**6)
    close_us = 10 * 3600 * 10**6
    spine_stats = {
        "rows": spine.num_rows,
        "securities_drawn_from": len(codes),
        "distinct_securities": pc.count_distinct(spine["scrip_code"]).as_py(),
        "from": str(meta["lo"]),
        "to_exclusive": str(meta["lo"] + dt.timedelta(days=span_days)),
        "before_10_utc": int((tod < close_us).sum()),
        "at_10_utc_exactly": int((tod == close_us).sum()),
        "after_10_utc": int((tod > close_us).sum()),
        "after_last_session": int((ts >= int(dt.datetime.combine(meta["hi"] + dt.timedelta(days=1), dt.time(),
                                                                  dt.timezone.utc).timestamp()) * 10**6).sum()),
        "spine_sql_chars": len(spine_q),
        "spine_query_seconds_via_flight": spine_secs,
        "parquet": str(spine_path),
        "parquet_bytes": spine_path.stat().st_size,
        "seed": args.seed,
    }
    log(f"  spine: {spine_stats}")

    features = [f.name for f in cl.arrow_table(f"SELECT * FROM {view} LIMIT 0").schema
                if f.name not in ("scrip_code", "trade_date")]
    res = {"view": view, "published": {k: v for k, v in pub.items() if k != "files"}, "ttl": yaml["ttl"],
           "features": features, "spine": spine_stats, "bhavstore": {}}
    esc = spine_q.replace("'", "''")
    # Rule 'close' (a day is known from its close, 10:00 UTC) is what the DuckDB ASOF JOIN on
    # event_time computes; the default rule 'available' waits for the bhavcopy's publication.
    asof_sql = f"SELECT * FROM features_asof('{view}', '{esc}', 'close')"

    holder = {}

    def asof(sql, key):
        def run():
            t = cl.arrow_table(sql)
            holder[key] = t
            return {"rows": t.num_rows, "payload_bytes": t.nbytes}
        return run

    # (a) the spine as a query the server computes.
    res["bhavstore"]["spine_query"] = {
        "description": "features_asof(view, '<spine query: generate_series + hash + VALUES of equity codes, "
                       "ORDER BY i>') -> ADBC fetch_arrow_table",
        "runs": repeat("bhavstore features_asof(spine query)", server, asof(asof_sql, "a"), args.repeat),
    }
    # The spine query alone (what (a) spends on the spine), for reference.
    res["bhavstore"]["spine_alone"] = {
        "description": "the spine query alone -> ADBC fetch_arrow_table",
        "runs": repeat("spine query alone", server, lambda: {"rows": cl.arrow_table(spine_q).num_rows}, args.repeat),
    }

    # (b) the spine uploaded (Flight SQL bulk ingestion into the session's temp catalog), if the
    # server accepts it.
    upload = {"available": False}
    # Uploaded as a client would build it: several record batches (65,536 rows each).
    up_table = pa.Table.from_batches(spine.select(["scrip_code", "ts"]).to_batches(max_chunksize=65536))
    try:
        with cl.adbc.cursor() as cur:
            cur.adbc_ingest("bench_spine", up_table, mode="replace", temporary=True)
        cl.arrow_table("SELECT count(*) AS n FROM temp.public.bench_spine")
        upload["available"] = True
    except Exception as e:  # noqa: BLE001 - any refusal means "not available"
        upload["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        log(f"  spine upload not available: {upload['error']}")
    if upload["available"]:
        up_sql = f"SELECT * FROM features_asof('{view}', 'SELECT scrip_code, ts FROM temp.public.bench_spine', 'close')"

        def up_and_query():
            with cl.adbc.cursor() as cur:
                cur.adbc_ingest("bench_spine", up_table, mode="replace", temporary=True)
            t = cl.arrow_table(up_sql)
            holder["b"] = t
            return {"rows": t.num_rows, "payload_bytes": t.nbytes}

        def upload_only():
            with cl.adbc.cursor() as cur:
                n = cur.adbc_ingest("bench_spine", up_table, mode="replace", temporary=True)
            return {"rows": n}

        upload["upload_and_query"] = {
            "description": "adbc_ingest(spine, temporary=True) + features_asof(view, 'SELECT ... FROM "
                           "temp.public.bench_spine') -> ADBC fetch_arrow_table",
            "runs": repeat("bhavstore upload + features_asof", server, up_and_query, args.repeat),
        }
        upload["upload_only"] = {
            "description": "adbc_ingest(spine, temporary=True) alone",
            "runs": repeat("spine upload alone", server, upload_only, args.repeat),
        }
        upload["query_only"] = {
            "description": "features_asof over the uploaded spine (already uploaded)",
            "runs": repeat("bhavstore features_asof(uploaded)", server, asof(up_sql, "b"), args.repeat),
        }
    res["bhavstore"]["upload"] = upload

    # DuckDB, in its own process.
    files_path = out / "price_features_files.json"
    files_path.write_text(json.dumps(pub["files"]))
    dk_path = Path(args.scratch) / f"serving_duckdb_result_{os.getpid()}.arrow"
    log("  duckdb ASOF JOIN (own process)")
    p = subprocess.run(
        [sys.executable, str(HERE / "serving_duckdb.py"), "--spine", str(spine_path), "--files", str(files_path),
         "--features", ",".join(features), "--ttl-us", str(yaml["ttl_seconds"] * 10**6),
         "--close-offset-us", str(close_us), "--threads", str(args.duckdb_threads),
         "--repeat", str(args.repeat), "--out", str(dk_path)],
        stdout=subprocess.PIPE, check=True,
    )
    res["duckdb"] = json.loads(p.stdout)

    # Cross-check.
    try:
        with ipc.open_file(dk_path) as f:
            dk = f.read_all()
    finally:
        dk_path.unlink(missing_ok=True)
    checks = {"spine_query_vs_duckdb": compare(holder["a"], dk, features, spine)}
    if "b" in holder:
        checks["upload_vs_duckdb"] = compare(holder["b"], dk, features, spine)
    res["crosscheck"] = checks
    results["training"] = res
    for name, c in checks.items():
        log(f"  cross-check {name}: {'OK' if c['ok'] else 'FAILED'} ({c['rows_compared']} rows, "
            f"{c['rows_with_features']} with features, {c['rows_null']} NULL)")
    return all(c["ok"] for c in checks.values())


# ---------------------------------------------------------------------------------------------
# Summary.


def fmt_s(x):
    return f"{x:.2f} s" if x >= 1 else f"{x * 1000:.0f} ms"


def summary(results):
    lines = []
    meta = results["meta"]
    phases = [p for p in ("pull", "training") if p in results]
    lines.append(f"# Serving benchmarks: {' and '.join(phases)} ({meta['started']})\n")
    lines.append(f"Machine: {meta['cpus']} CPUs, load average before {meta['loadavg_before']}, "
                 f"after {meta.get('loadavg_after')}. Server RSS at start {meta['server_rss_start_bytes'] / 2**20:.0f} MiB.\n")
    pull = results.get("pull")
    if pull:
        lines.append(f"## Pull: `SELECT * FROM {pull['view']}` ({pull['table_rows']:,} rows)\n")
        for which, clients in pull["clients"].items():
            rows = pull["table_rows"] if which == "full" else pull["subset_rows"]
            lines.append(f"### {'whole table' if which == 'full' else f'subset: LIMIT {rows:,}'}\n")
            lines.append("| client | best | median | rows/s (best) | loopback MB/s (best) | Arrow/text MB | "
                         "server CPU | server peak RSS | best / best Flight |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            bests = {c: best(d["runs"]) for c, d in clients.items()}
            fl_min = min(v for k, v in bests.items() if k.startswith("flight"))
            for c, d in clients.items():
                b, m = best(d["runs"]), median(d["runs"])
                br = min(timed(d["runs"]), key=lambda r: r["seconds"])
                sent = br.get("loopback_bytes")
                payload = br.get("payload_bytes") or next(
                    (r.get("payload_bytes") for r in d["runs"] if r.get("payload_bytes")), None)
                rss = br.get("server_peak_rss_bytes")
                lines.append(
                    f"| {d['description']} | {fmt_s(b)} | {fmt_s(m)} | {rows / b / 1e6:.2f} M | "
                    f"{(sent / b / 1e6) if sent else float('nan'):.0f} | "
                    f"{(payload / 1e6) if payload else float('nan'):.0f} | {br['server_cpu_seconds']:.1f} s | "
                    f"{(rss / 2**20) if rss else float('nan'):.0f} MiB | {b / fl_min:.1f}× |")
            fl_best = min((v, k) for k, v in bests.items() if k.startswith("flight"))
            pg = [(v, k) for k, v in bests.items() if k.startswith("pg")]
            if pg:
                pg_best = min(pg)
                lines.append("")
                lines.append(f"**best pgwire / best Flight = {pg_best[0]:.2f} s / {fl_best[0]:.2f} s = "
                             f"{pg_best[0] / fl_best[0]:.1f}×** ({pg_best[1]} vs {fl_best[1]}; target ≥ 20×)\n")
            else:
                lines.append("")
        if pull.get("probe"):
            lines.append("Probe (first " + f"{next(iter(pull['probe'].values()))['rows']:,}" + " rows, "
                         "estimate for the whole table): " + ", ".join(
                             f"{k} {v['seconds']:.2f} s → ~{v['estimate_full_seconds']:.0f} s"
                             for k, v in pull["probe"].items()) + "\n")
    tr = results.get("training")
    if tr:
        s = tr["spine"]
        lines.append(f"## Training set: {s['rows']:,} spine rows × `{tr['view']}` "
                     f"({tr['published']['rows']:,} rows, {tr['published']['bytes'] / 2**20:.0f} MiB Parquet, "
                     f"ttl {tr['ttl']})\n")
        lines.append(f"Spine: {s['distinct_securities']} securities, {s['from']} .. {s['to_exclusive']}; "
                     f"{s['before_10_utc']:,} before 10:00 UTC, {s['at_10_utc_exactly']:,} exactly at it, "
                     f"{s['after_10_utc']:,} after; {s['after_last_session']:,} after the last session.\n")
        lines.append("| | best | median | CPU (best run) | peak RSS |")
        lines.append("|---|---:|---:|---:|---:|")
        rows = []
        a = tr["bhavstore"]["spine_query"]["runs"]
        rows.append(("bhavstore: features_asof(spine query) → Arrow over Flight", a, "server"))
        up = tr["bhavstore"]["upload"]
        if up.get("available"):
            rows.append(("bhavstore: upload spine (adbc_ingest temporary) + features_asof → Arrow", 
                         up["upload_and_query"]["runs"], "server"))
            rows.append(("  of which: features_asof over the uploaded spine", up["query_only"]["runs"], "server"))
            rows.append(("  of which: the upload", up["upload_only"]["runs"], "server"))
        rows.append(("  reference: the spine query alone", tr["bhavstore"]["spine_alone"]["runs"], "server"))
        for name, runs, _ in rows:
            br = min(timed(runs), key=lambda r: r["seconds"])
            rss = br.get("server_peak_rss_bytes")
            lines.append(f"| {name} | {fmt_s(best(runs))} | {fmt_s(median(runs))} | "
                         f"{br['server_cpu_seconds'] + br['client_cpu_seconds']:.1f} s (server {br['server_cpu_seconds']:.1f}) | "
                         f"{(rss / 2**20) if rss else float('nan'):.0f} MiB (server) |")
        d = tr["duckdb"]
        druns = d["runs"]
        dbest = min(r["seconds"] for r in druns if not r["warmup"])
        dmed = statistics.median(r["seconds"] for r in druns if not r["warmup"])
        dcpu = min((r for r in druns if not r["warmup"]), key=lambda r: r["seconds"])["cpu_seconds"]
        lines.append(f"| DuckDB {d['duckdb_version']} ASOF JOIN (threads {d['threads']}) → Arrow | {fmt_s(dbest)} | "
                     f"{fmt_s(dmed)} | {dcpu:.1f} s | {d['peak_rss_bytes'] / 2**20:.0f} MiB (process) |")
        lines.append("")
        bh_best = best(a)
        verdict = (f"**bhavstore (spine query) / DuckDB = {bh_best:.2f} s / {dbest:.2f} s = {bh_best / dbest:.2f}×**"
                   " (target ≤ 1×)")
        if up.get("available"):
            ub = best(up["upload_and_query"]["runs"])
            verdict += f"; **upload + features_asof / DuckDB = {ub:.2f} s / {dbest:.2f} s = {ub / dbest:.2f}×**"
        lines.append(verdict + "\n")
        for name, c in tr["crosscheck"].items():
            verdict = "agree" if c["ok"] else "DISAGREE"
            order = ("in spine order" if c["bhavstore_in_spine_order"]
                     else "NOT in spine order: rows matched by (entity, ts)")
            lines.append(f"Cross-check {name}: {c['rows_compared']:,} rows × {c['columns_compared']} columns {verdict} "
                         f"({c['rows_with_features']:,} rows with features, {c['rows_null']:,} NULL: no row or "
                         f"older than the ttl); bhavstore's rows {order}." + ("" if c["ok"] else f" {json.dumps(c['mismatches'], default=str)[:2000]} "
                                                    f"{c['key_problems']}"))
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flight", required=True, help="HOST:PORT")
    ap.add_argument("--pg", required=True, help="HOST:PORT")
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--feature-defs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--view", default="price_features")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--flight-clients", default=",".join(FLIGHT_CLIENTS))
    ap.add_argument("--pg-clients", default=",".join(PG_CLIENTS))
    ap.add_argument("--probe-rows", type=int, default=500_000)
    ap.add_argument("--pg-max-seconds", type=float, default=600)
    ap.add_argument("--subset-rows", type=int, default=5_000_000)
    ap.add_argument("--spine-rows", type=int, default=1_000_000)
    ap.add_argument("--spine-days-after", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--duckdb-threads", type=int, default=2)
    ap.add_argument("--skip", default="", help="pull,training")
    ap.add_argument("--scratch", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where DuckDB's result goes for the cross-check (deleted after) [/dev/shm, else --out]")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.scratch = args.scratch or str(out)
    server = Server(args.server_pid)
    pg_host, pg_port = args.pg.rsplit(":", 1)
    cl = Clients(args.flight, pg_host, pg_port)
    results = {"meta": {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "loadavg_before": open("/proc/loadavg").read().split()[:3],
        "server_rss_start_bytes": server.rss(),
        "versions": {"pyarrow": pa.__version__, "psycopg": psycopg.__version__,
                     "libpq": psycopg.pq.version(), "adbc_driver_flightsql": flightsql.__name__},
        "args": vars(args),
    }}
    try:
        import adbc_driver_flightsql
        results["meta"]["versions"]["adbc_driver_flightsql"] = adbc_driver_flightsql.__version__
    except Exception:  # noqa: BLE001
        pass
    ok = True
    skip = set(args.skip.split(","))
    total = cl.arrow_table(f"SELECT count(*) AS n FROM {args.view}")["n"][0].as_py()
    try:
        if "pull" not in skip:
            pull_benchmark(cl, server, args.view, total, args, results)
        if "training" not in skip:
            ok = training_benchmark(cl, server, args.view, args, results, out)
    finally:
        results["meta"]["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
        results["meta"]["server_rss_end_bytes"] = server.rss()
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        cl.close()
    text = summary(results)
    (out / "summary.md").write_text(text)
    print(text)
    if not ok:
        raise SystemExit("FAIL: bhavstore and DuckDB training sets differ (see summary)")


if __name__ == "__main__":
    main()
