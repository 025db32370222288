#!/usr/bin/env python3
"""Bounded load and abuse test of `bhavstore serve` (run by scripts/test).

Starts a server with small, explicit limits on a store of the real 2015 bhavcopies, then for a
fixed time runs, all at once:

* runaway queries over Postgres (cross joins sorted on a column), each stopped by its timeout;
* statements nested thousands deep (must be refused with SQLSTATE 54001);
* floods of silent TCP connections to the Postgres, Flight and REST ports, past each cap (a
  client that arrives while a flood holds its protocol's slots is refused at once, and that
  refusal is counted as the cap working, not as a failure);
* Flight uploads bigger than the session cap (must be refused while they arrive);
* REST lookups, which must keep answering throughout.

It samples the server's resident memory every 100 ms and fails if it ever exceeds the cap the
configuration implies (baseline + query memory + uploads + headroom), if the server dies, or if
a REST lookup fails. Exit status 0 = held; the summary is printed either way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MIB = 1 << 20
LIMITS = {
    "query_memory_total": 512 * MIB,
    "query_memory": 256 * MIB,
    "upload_bytes_total": 128 * MIB,
    "upload_bytes_per_session": 64 * MIB,
}
HEADROOM = 400 * MIB


def files_2015(folder: str) -> list[str]:
    names = [n for n in os.listdir(folder) if n.upper().endswith(".CSV")]
    names.sort(key=lambda n: (n[6:8], n[4:6], n[2:4]))
    return [os.path.join(folder, n) for n in names]


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Server:
    def __init__(self, binary: str, store: str, config: str, defs: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith("BHAVSTORE_")}
        env["RUST_LOG"] = "info"
        self.proc = subprocess.Popen(
            [binary, "--config", config, "--storage", store, "--feature-defs", defs, "serve", "--no-schedule",
             "--http-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
        self.addrs: dict[str, str] = {}
        self.log_lines = 0
        deadline = time.time() + 180
        while len(self.addrs) < 3:
            line = self.proc.stderr.readline()
            if not line:
                raise SystemExit("server exited before listening")
            m = re.search(r'protocol="(\w+)" addr=(\S+)', line)
            if m and "listening" in line:
                self.addrs[m.group(1)] = m.group(2)
            if time.time() > deadline:
                raise SystemExit("server did not start")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for _ in self.proc.stderr:
            self.log_lines += 1

    def hostport(self, proto: str) -> tuple[str, int]:
        h, p = self.addrs[proto].rsplit(":", 1)
        return h, int(p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the bhavstore binary")
    ap.add_argument("--data", required=True, help="../shared/data/bse-real")
    ap.add_argument("--seconds", type=int, default=40, help="how long the load runs")
    args = ap.parse_args()
    folder = os.path.join(args.data, "legacy-eq-14col", "2015")
    if not os.path.isdir(folder):
        print(f"SKIPPED: {folder} not found")
        return 0
    import psycopg  # noqa: PLC0415 (installed by scripts/install-deps)
    import adbc_driver_flightsql.dbapi as flightsql  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    work = tempfile.mkdtemp(prefix="bhavstore-abuse-")
    store = os.path.join(work, "store")
    defs = os.path.join(repo, "feature_defs")
    subprocess.run([args.bin, "--storage", store, "import", *files_2015(folder)], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([args.bin, "--storage", store, "--feature-defs", defs, "materialize"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = os.path.join(work, "bhavstore.yaml")
    with open(config, "w") as f:
        f.write("server:\n  limits:\n")
        for k, v in LIMITS.items():
            f.write(f"    {k}: {v}\n")
        f.write("    statement_timeout_secs: 8\n    max_pg_connections: 32\n    max_flight_connections: 32\n"
                "    max_http_connections: 64\n    login_timeout_secs: 3\n    spill_disk: 1GiB\n")
    server = Server(args.bin, store, config, defs)
    pid = server.proc.pid
    time.sleep(1)
    baseline = rss(pid)
    cap = baseline + sum(LIMITS[k] for k in ("query_memory_total", "upload_bytes_total")) + HEADROOM
    stop = threading.Event()
    stats: dict[str, int] = {k: 0 for k in (
        "runaway_stopped", "runaway_other", "deep_refused", "deep_other", "flood_rounds", "uploads_refused",
        "uploads_other", "lookups_ok", "lookups_failed", "refused_at_cap")}
    lock = threading.Lock()
    failures: list[str] = []

    def bump(key: str, note: str | None = None):
        with lock:
            stats[key] += 1
            if note and len(failures) < 20:
                failures.append(note)

    pg_host, pg_port = server.hostport("postgres")
    # No SSL negotiation, so a refusal at the connection cap reaches the client as its message.
    conninfo = f"host={pg_host} port={pg_port} user=abuser dbname=bhavstore connect_timeout=10 sslmode=disable"

    def at_cap(e: BaseException) -> bool:
        text = str(e)
        return ("max_pg_connections" in text or "max_flight_connections" in text
                or "max_http_connections" in text or "error reading server preface" in text)

    def runaway():
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as c:
                    c.execute("SET statement_timeout = 4000")
                    c.execute("select * from bhavcopy a, bhavcopy b order by a.close").fetchone()
                bump("runaway_other", "a runaway query finished")
            except psycopg.Error as e:
                code = getattr(e, "sqlstate", None)
                if at_cap(e):
                    bump("refused_at_cap")
                    continue
                bump("runaway_stopped" if code in ("57014", "53200", "53100", "53300") else "runaway_other",
                     None if code in ("57014", "53200", "53100", "53300") else f"runaway: {code} {e}")

    def deep():
        sql = "select " + "+".join(["scrip_code"] * 3000) + " from bhavcopy"
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as c:
                    c.execute(sql)
                bump("deep_other", "a deep statement ran")
            except psycopg.Error as e:
                if at_cap(e):
                    bump("refused_at_cap")
                    continue
                ok = getattr(e, "sqlstate", None) in ("54001", "53300")
                bump("deep_refused" if ok else "deep_other", None if ok else f"deep: {e}")
            time.sleep(0.2)

    def flood():
        while not stop.is_set():
            socks = []
            # Past the Postgres and Flight caps (32); REST (cap 64) is flooded below its cap so
            # the lookups show a flood elsewhere does not starve it.
            for proto, count in (("postgres", 48), ("flight", 48), ("http", 32)):
                h, p = server.hostport(proto)
                for _ in range(count):
                    try:
                        socks.append(socket.create_connection((h, p), timeout=2))
                    except OSError:
                        pass
            time.sleep(2)
            for s in socks:
                s.close()
            bump("flood_rounds")
            time.sleep(1)

    def uploads():
        whole = pa.table({"entity": pa.array(range(3_000_000), pa.int64()),
                          "note": pa.array([f"row {i:>20}" for i in range(3_000_000)])})
        # In batches of 100k rows, as a client sends a big table (gRPC messages stay small).
        table = pa.Table.from_batches(whole.to_batches(max_chunksize=100_000))
        while not stop.is_set():
            try:
                with flightsql.connect(f"grpc://{server.addrs['flight']}") as conn, conn.cursor() as cur:
                    cur.adbc_ingest("big", table, mode="create", temporary=True)
                bump("uploads_other", "an upload over the session cap was stored")
            except Exception as e:  # noqa: BLE001 (driver errors have no common base)
                if at_cap(e):
                    bump("refused_at_cap")
                    continue
                # The server answers while the client still sends; the client then sees the
                # status, or (racing it) the stream it was writing closed under it, which the
                # OS reports as a broken pipe or as a reset, depending on timing.
                ok = any(m in str(e) for m in ("upload_bytes", "broken pipe", "connection reset by peer"))
                bump("uploads_refused" if ok else "uploads_other", None if ok else f"upload: {e}")
            time.sleep(0.5)

    def lookups():
        url = (f"http://{server.addrs['http']}/feature-store/lookup?entity_id=500325&feature_name=close"
               "&timestamp=2015-03-31T20:00:00%2B05:30")
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    body = json.loads(r.read())
                    bump("lookups_ok" if body.get("value") else "lookups_failed")
            except Exception as e:  # noqa: BLE001
                bump("lookups_failed", f"lookup: {e}")
            time.sleep(0.05)

    threads = [threading.Thread(target=t, daemon=True)
               for t in (runaway, runaway, runaway, deep, flood, uploads, lookups)]
    for t in threads:
        t.start()
    peak = baseline
    until = time.time() + args.seconds
    while time.time() < until and server.proc.poll() is None:
        peak = max(peak, rss(pid))
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    alive = server.proc.poll() is None
    if alive:
        peak = max(peak, rss(pid))
    server.proc.terminate()
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
    shutil.rmtree(work, ignore_errors=True)

    summary = {"baseline_mib": baseline // MIB, "peak_rss_mib": peak // MIB, "cap_mib": cap // MIB,
               "server_alive": alive, "log_lines": server.log_lines, **stats}
    print(json.dumps(summary, indent=2))
    problems = []
    if not alive:
        problems.append("the server died")
    if peak > cap:
        problems.append(f"RSS {peak // MIB} MiB over the cap {cap // MIB} MiB")
    if stats["lookups_failed"] or not stats["lookups_ok"]:
        problems.append("REST lookups failed under load")
    for key in ("runaway_other", "deep_other", "uploads_other"):
        if stats[key]:
            problems.append(f"{key}: {stats[key]}")
    if not stats["runaway_stopped"] or not stats["deep_refused"] or not stats["uploads_refused"]:
        problems.append("an attack never ran to its refusal")
    if server.log_lines > 20_000:
        problems.append(f"log flood: {server.log_lines} lines")
    for f in failures:
        print("  ", f)
    if problems:
        print("FAILED:", "; ".join(problems))
        return 1
    print("abuse test: the server held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
