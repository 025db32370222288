#!/usr/bin/env python3
"""Intraday bar ingestion benchmark (scripts/bench/intraday.sh): bhavstore's real-time bars
(Flight SQL bulk ingest, REST push, features over Server-Sent Events) next to Feast's push API,
on loopback. One subcommand per measurement; each writes one JSON into --out, and `summary`
turns the JSONs of a run into summary.md.

  gen             the synthetic session (Parquet, cached by intraday.sh)
  features        the intraday_features values of those bars, computed with pandas (what
                  Feast is pushed; not timed)
  replay          bhavstore: every bar through Flight SQL `adbc_ingest("intraday_bars")` in
                  chunks, until /health says the features are computed and durable -> bars/s
  burst           bhavstore: per simulated minute, every instrument's bar pushed at once over
                  REST; the time from the last acknowledgement until every instrument's
                  feature event for that minute arrived on the SSE stream -> p50/p99/max
  push-latency    bhavstore: one bar per REST push, open loop at a fixed rate -> ack latency
  feast-throughput  Feast: the same rows, the same chunks, `POST /push` -> rows/s
  feast-latency   Feast: one row per `POST /push`, open loop at the same rate (and closed loop,
                  and open loop at the rate it sustains)
  sse-reader      (internal) the SSE subscriber of `burst`, in its own process
  summary         summary.md from the JSONs

Clock: every timestamp is CLOCK_MONOTONIC (time.monotonic_ns), so the SSE reader's arrival
times and the pusher's acknowledgement times, taken in two processes, are comparable.

The HTTP load generator is a small callback-driven HTTP/1.1 client on asyncio (keep-alive
connections, requests pre-encoded before the clock starts): cheaper per request than aiohttp,
which matters on a 2-core machine where the generator shares the cores with the server.
"""

import argparse
import asyncio
import collections
import datetime as dt
import json
import math
import os
import re
import signal
import socket
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", message="Cannot disable autocommit")

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
VIEW = "intraday_features"
SOURCE = "intraday_bars"
PUSH_SOURCE = "intraday_push"
FEATURES = [
    "close", "return_1m", "return_5m", "return_15m", "sma_15", "sma_60", "ema_20", "rsi_14",
    "realized_vol_30", "volume_zscore_20", "vwap_session", "session_return", "session_high",
    "session_low",
]
now_ns = time.monotonic_ns


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def instrument_name(i):
    return f"NSE:SYN{i:04d}"


# ---------------------------------------------------------------------------------------------
# Synthetic bars and their features.


def session_starts(date, minutes):
    """Bar starts (UTC epoch seconds) of the regular session from 09:15 IST, one per minute."""
    d = dt.date.fromisoformat(date)
    first = dt.datetime(d.year, d.month, d.day, 9, 15, tzinfo=IST)
    return [int(first.timestamp()) + 60 * m for m in range(minutes)]


def generate(instruments, minutes, seed, date):
    """Minute-major arrays (row = minute * instruments + instrument) of a seeded geometric random
    walk per instrument: start price log-uniform 10..3000, per-minute log-return N(0, s) with s
    uniform 0.05%..0.3% per instrument, open = previous close x exp(N(0, s/4)), high/low extend
    max/min(open, close) by exp(|N(0, s/2)|); prices rounded to 0.05 (at least 0.05), then
    low = min(low, open, close), high = max(high, open, close) so 0 < low <= open, close <= high.
    Volume: log-normal around a per-instrument level (10^2..10^5 shares) with the intraday U
    shape (busier at the open and the close), at least 1."""
    rng = np.random.default_rng(seed)
    n, m = instruments, minutes
    start = np.exp(rng.uniform(np.log(10.0), np.log(3000.0), n))
    sigma = rng.uniform(0.0005, 0.003, n)
    level = 10 ** rng.uniform(2.0, 5.0, n)
    r = rng.standard_normal((m, n)) * sigma
    close_raw = start * np.exp(np.cumsum(r, axis=0))
    prev = np.vstack([start[None, :], close_raw[:-1]])
    open_raw = prev * np.exp(rng.standard_normal((m, n)) * sigma / 4)
    up = np.exp(np.abs(rng.standard_normal((m, n))) * sigma / 2)
    down = np.exp(-np.abs(rng.standard_normal((m, n))) * sigma / 2)
    high_raw = np.maximum(open_raw, close_raw) * up
    low_raw = np.minimum(open_raw, close_raw) * down

    def tick(x):
        return np.maximum(np.round(x * 20.0), 1.0) / 20.0

    o, c, h, lo = tick(open_raw), tick(close_raw), tick(high_raw), tick(low_raw)
    h = np.maximum(h, np.maximum(o, c))
    lo = np.minimum(lo, np.minimum(o, c))
    t = np.linspace(-1.0, 1.0, m)[:, None]
    shape = 0.5 + 1.5 * t * t
    vol = np.maximum(1, np.round(level * shape * np.exp(rng.standard_normal((m, n)) * 0.5))).astype(np.int64)
    assert (lo > 0).all() and (lo <= o).all() and (lo <= c).all() and (o <= h).all() and (c <= h).all()
    starts = np.array(session_starts(date, m), dtype=np.int64)
    return {
        "instrument_idx": np.tile(np.arange(n), m),
        "ts_s": np.repeat(starts, n),
        "open": o.ravel(), "high": h.ravel(), "low": lo.ravel(), "close": c.ravel(), "volume": vol.ravel(),
    }


def cmd_gen(a):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    g = generate(a.instruments, a.minutes, a.seed, a.date)
    names = np.array([instrument_name(i) for i in range(a.instruments)], dtype=object)
    table = pa.table({
        "instrument": pa.array(names[g["instrument_idx"]], pa.string()),
        "ts": pa.array(g["ts_s"] * 1_000_000, pa.timestamp("us", tz="UTC")),
        "open": g["open"], "high": g["high"], "low": g["low"], "close": g["close"],
        "volume": pa.array(g["volume"], pa.int64()),
    })
    tmp = a.out + ".tmp"
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, a.out)
    print(f"gen: {a.instruments} instruments x {a.minutes} minutes = {table.num_rows} bars, "
          f"{a.date} from 09:15 IST, seed {a.seed}, {time.perf_counter() - t0:.1f} s -> {a.out}")


def load_bars(path):
    import pyarrow.parquet as pq

    t = pq.read_table(path).combine_chunks()
    ts = t["ts"].cast("int64").to_numpy() // 1_000_000
    instruments = t["instrument"].to_pylist()
    uniq = sorted(set(instruments))
    minutes = len(np.unique(ts))
    if len(uniq) * minutes != t.num_rows:
        sys.exit(f"{path}: {t.num_rows} rows is not {len(uniq)} instruments x {minutes} minutes")
    return t, {"instruments": uniq, "n": len(uniq), "minutes": minutes, "ts_s": ts,
               "instrument": instruments}


def wide(values, n, m):
    return values.reshape(m, n)


def compute_features(table, n, m):
    """intraday_features of minute-major bars, per instrument in time order, windows within the
    session (one session here): the issue's column list with these definitions:
    return_k = close / close k bars back - 1; sma_n = mean of the last n closes; ema_20 = pandas
    ewm(span=20, adjust=False, min_periods=20); rsi_14 = Wilder (first value on the 15th bar);
    realized_vol_30 = sample std of the last 30 one-minute log returns; volume_zscore_20 =
    (volume - mean20) / sample std20 (NULL when 0); vwap_session = cumulative typical price
    (h+l+c)/3 x volume / cumulative volume; session_return = close / first open - 1;
    session_high/low = running max(high)/min(low). NULL (NaN) until a window is full.
    Returns {column: 1-D minute-major array}."""
    import pandas as pd

    c = pd.DataFrame(wide(table["close"].to_numpy(), n, m))
    o = wide(table["open"].to_numpy(), n, m)
    h = pd.DataFrame(wide(table["high"].to_numpy(), n, m))
    lo = pd.DataFrame(wide(table["low"].to_numpy(), n, m))
    v = pd.DataFrame(wide(table["volume"].to_numpy().astype(np.float64), n, m))
    out = {"close": c}
    for k in (1, 5, 15):
        out[f"return_{k}m"] = c / c.shift(k) - 1
    out["sma_15"] = c.rolling(15, min_periods=15).mean()
    out["sma_60"] = c.rolling(60, min_periods=60).mean()
    out["ema_20"] = c.ewm(span=20, adjust=False, min_periods=20).mean()
    cv = c.to_numpy()
    d = np.diff(cv, axis=0)
    gain, loss = np.clip(d, 0, None), np.clip(-d, 0, None)
    rsi = np.full_like(cv, np.nan)
    if m > 14:
        ag, al = gain[:14].mean(axis=0), loss[:14].mean(axis=0)
        for i in range(14, m):
            if i > 14:
                ag = (ag * 13 + gain[i - 1]) / 14
                al = (al * 13 + loss[i - 1]) / 14
            with np.errstate(divide="ignore", invalid="ignore"):
                rsi[i] = np.where(al == 0, np.where(ag == 0, 50.0, 100.0), 100 - 100 / (1 + ag / al))
    out["rsi_14"] = pd.DataFrame(rsi)
    lr = np.log(c / c.shift(1))
    out["realized_vol_30"] = lr.rolling(30, min_periods=30).std()
    vm, vs = v.rolling(20, min_periods=20).mean(), v.rolling(20, min_periods=20).std()
    out["volume_zscore_20"] = (v - vm) / vs.where(vs != 0)
    tp = (h + lo + c) / 3
    out["vwap_session"] = (tp * v).cumsum() / v.cumsum()
    out["session_return"] = c / o[0][None, :] - 1
    out["session_high"] = h.cummax()
    out["session_low"] = lo.cummin()
    return {k: np.asarray(out[k], dtype=np.float64).ravel() for k in FEATURES}


def cmd_features(a):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    table, info = load_bars(a.bars)
    f = compute_features(table, info["n"], info["minutes"])
    dates = [dt.datetime.fromtimestamp(int(s), IST).date().isoformat() for s in info["ts_s"][:: info["n"]]]
    trade_date = np.repeat(np.array(dates, dtype=object), info["n"])
    cols = {"instrument": table["instrument"], "ts": table["ts"], "trade_date": pa.array(trade_date, pa.string())}
    for k in FEATURES:
        cols[k] = pa.array(f[k], pa.float64(), from_pandas=True)  # NaN -> NULL
    out = pa.table(cols)
    tmp = a.out + ".tmp"
    pq.write_table(out, tmp, compression="zstd")
    os.replace(tmp, a.out)
    print(f"features: {out.num_rows} rows x {len(FEATURES)} features in {time.perf_counter() - t0:.1f} s -> {a.out}")


# ---------------------------------------------------------------------------------------------
# Processes: CPU and memory from /proc.


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def proc_tree(pid):
    """pid and its descendants."""
    children = collections.defaultdict(list)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children[ppid].append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class Procs:
    """The server (and, for Feast, its gunicorn workers): CPU seconds, RSS, peak RSS."""

    def __init__(self, pid, tree=False):
        self.pid, self.tree = pid, tree
        self.tick = os.sysconf("SC_CLK_TCK")
        self.max_rss_sampled = 0

    def pids(self):
        return proc_tree(self.pid) if self.tree else [self.pid]

    def cpu(self):
        total = 0.0
        for p in self.pids():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / self.tick
            except OSError:
                pass
        return total

    def rss(self):
        r = sum(proc_status(p, "VmRSS") or 0 for p in self.pids())
        self.max_rss_sampled = max(self.max_rss_sampled, r)
        return r

    def hwm(self):
        return sum(proc_status(p, "VmHWM") or 0 for p in self.pids())

    def figures(self):
        return {"rss_bytes": self.rss(), "peak_rss_bytes": self.hwm(), "max_rss_sampled_bytes": self.max_rss_sampled,
                "cpu_seconds": self.cpu(), "pids": self.pids()}


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---------------------------------------------------------------------------------------------
# A small HTTP/1.1 client: keep-alive connections, callback per response, no per-request task.


def parse_response(buf):
    """(status, body, keep_alive) once buf holds a whole response, else None."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    lines = bytes(buf[:i]).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, close = None, False, lines[0].startswith("HTTP/1.0")
    for line in lines[1:]:
        k, _, val = line.partition(":")
        k, val = k.strip().lower(), val.strip().lower()
        if k == "content-length":
            length = int(val)
        elif k == "transfer-encoding" and "chunked" in val:
            chunked = True
        elif k == "connection":
            close = val == "close" or (close and val != "keep-alive")
    start = i + 4
    if chunked:
        body, p = bytearray(), start
        while True:
            j = buf.find(b"\r\n", p)
            if j < 0:
                return None
            size = int(bytes(buf[p:j]).split(b";")[0], 16)
            if size == 0:
                if buf.find(b"\r\n", j + 2) < 0:
                    return None
                return status, bytes(body), not close
            if len(buf) < j + 2 + size + 2:
                return None
            body += buf[j + 2:j + 2 + size]
            p = j + 2 + size + 2
    if length is None:
        if status in (204, 304) or 100 <= status < 200:
            length = 0
        else:
            return None  # close-delimited: completed in connection_lost
    if len(buf) < start + length:
        return None
    return status, bytes(buf[start:start + length]), not close


class _Conn(asyncio.Protocol):
    def __init__(self, client):
        self.client = client
        self.transport = None
        self.buf = bytearray()
        self.cb = None
        self.timer = None
        self.sent = 0
        self.dead = False

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, req, cb):
        self.cb = cb
        self.buf.clear()
        self.sent = now_ns()
        self.transport.write(req)
        self.timer = self.client.loop.call_later(self.client.timeout, self._timeout)

    def data_received(self, data):
        t = now_ns()
        self.buf += data
        if self.cb is None:
            return
        r = parse_response(self.buf)
        if r is None:
            return
        status, body, keep = r
        cb, self.cb = self.cb, None
        sent = self.sent  # before _release: it may send the next request on this connection
        self.timer.cancel()
        if keep:
            self.client._release(self)
        else:
            self.dead = True
            self.client._drop(self)
            self.transport.close()
        cb(status, body, sent, t, None)

    def connection_lost(self, exc):
        self.dead = True
        self.client._drop(self)
        if self.cb is not None:
            cb, self.cb = self.cb, None
            self.timer.cancel()
            cb(None, None, self.sent, now_ns(), "closed")

    def _timeout(self):
        if self.cb is None:
            return
        cb, self.cb = self.cb, None
        self.dead = True
        self.client._drop(self)
        self.transport.abort()
        cb(None, None, self.sent, now_ns(), "timeout")


class Client:
    def __init__(self, url, max_conns, timeout=10.0):
        m = re.match(r"^http://([^:/]+):(\d+)", url)
        if not m:
            raise ValueError(f"not an http://host:port URL: {url}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.max_conns, self.timeout = max_conns, timeout
        self.loop = asyncio.get_running_loop()
        self.idle, self.conns, self.pending = [], set(), collections.deque()
        self.connecting = 0
        self.connect_errors = 0

    def request(self, method, path, body=b"", content_type="application/json"):
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body or method in ("POST", "PUT"):
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    async def open(self, n):
        await asyncio.gather(*(self._connect() for _ in range(min(n, self.max_conns))))

    async def _connect(self):
        self.connecting += 1
        try:
            _, conn = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except OSError:
            self.connect_errors += 1
            if self.pending:
                _, cb = self.pending.popleft()
                cb(None, None, now_ns(), now_ns(), "connect")
            return
        finally:
            self.connecting -= 1
        self.conns.add(conn)
        self._release(conn)

    def submit(self, req, cb):
        while self.idle:
            conn = self.idle.pop()
            if not conn.dead:
                conn.send(req, cb)
                return
        self.pending.append((req, cb))
        if len(self.conns) + self.connecting < self.max_conns:
            self.loop.create_task(self._connect())

    def _release(self, conn):
        if conn.dead:
            return
        if self.pending:
            req, cb = self.pending.popleft()
            conn.send(req, cb)
        else:
            self.idle.append(conn)

    def _drop(self, conn):
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if self.pending and len(self.conns) + self.connecting < self.max_conns:
            self.loop.create_task(self._connect())

    def close(self):
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.close()

    async def call(self, req):
        """One request, awaited: (status, body, sent_ns, done_ns, error)."""
        fut = self.loop.create_future()
        self.submit(req, lambda *r: fut.done() or fut.set_result(r))
        return await fut


def pct(values, q):
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q, method="linear"))


def dist_ms(ns_values):
    """Percentiles (ms) of nanosecond durations; inf stays inf (a minute never seen)."""
    v = np.asarray(ns_values, dtype=np.float64) / 1e6
    if v.size == 0:
        return {"n": 0}
    finite = v[np.isfinite(v)]
    return {
        "n": int(v.size), "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99), "p999": pct(v, 99.9),
        "max": float(v.max()), "min": float(v.min()), "mean": float(finite.mean()) if finite.size else None,
        "infinite": int(v.size - finite.size),
    }


async def open_loop(client, reqs, rate, warmup_s, ok_fn, procs=None):
    """Sends reqs[k] at start + k / rate whatever is in flight (at most the client's max_conns
    on the wire, the rest queued and still timed from when they were due). Returns figures for
    the requests due after the warm-up."""
    n = len(reqs)
    interval = 1e9 / rate
    due = np.zeros(n, np.int64)
    sent = np.zeros(n, np.int64)
    done = np.zeros(n, np.int64)
    status = np.zeros(n, np.int32)
    errors = collections.Counter()
    samples = {}
    finished = 0
    all_done = asyncio.Event()

    def on_done(k, st, body, s, t, err):
        nonlocal finished
        sent[k], done[k] = s, t
        if err is not None:
            status[k] = -1
            errors[err] += 1
        else:
            status[k] = st
            if not ok_fn(st, body):
                status[k] = -2 if st == 200 else st
                errors[f"http {st}" if st != 200 else "not ok"] += 1
                samples.setdefault(str(st), body[:300].decode("utf-8", "replace"))
        finished += 1
        if finished == n:
            all_done.set()

    t0 = now_ns() + 20_000_000
    k = 0
    next_rss = t0
    while k < n:
        t = now_ns()
        while k < n and t0 + int(k * interval) <= t:
            due[k] = t0 + int(k * interval)
            client.submit(reqs[k], lambda st, body, s, tt, err, k=k: on_done(k, st, body, s, tt, err))
            k += 1
        if procs is not None and t >= next_rss:
            procs.rss()
            next_rss = t + 1_000_000_000
        if k < n:
            wait = t0 + int(k * interval) - now_ns()
            await asyncio.sleep(max(0, wait) / 1e9)
    try:
        await asyncio.wait_for(all_done.wait(), client.timeout + 30)
    except asyncio.TimeoutError:
        errors["unfinished"] += n - finished
        client.pending.clear()  # still queued client-side: never sent
    w0 = t0 + int(warmup_s * 1e9)
    sel = (due >= w0) & (done > 0)
    ok = sel & (status == 200)
    lat_due = (done - due)[ok]
    lat_sent = (done - sent)[ok]
    lag = (sent - due)[sel]
    span = (done[sel].max() - w0) / 1e9 if sel.any() else float("nan")
    measured = int((due >= w0).sum())
    all_ok = (status == 200) & (done > 0)
    all_span = (done[all_ok].max() - t0) / 1e9 if all_ok.any() else float("nan")
    return {
        "answered_all": int(all_ok.sum()),
        "answered_all_per_s": float(all_ok.sum() / all_span) if all_ok.any() and all_span > 0 else 0.0,
        "latency_from_due_all_ms": dist_ms((done - due)[all_ok]),
        "rate": rate, "requests": n, "warmup_s": warmup_s, "measured_requests": measured,
        "ok": int(ok.sum()), "errors": dict(errors), "error_samples": samples,
        "errors_measured": int(measured - ok.sum()),
        "achieved_per_s": float(ok.sum() / span) if span and span > 0 else None,
        "latency_from_due_ms": dist_ms(lat_due), "latency_sent_to_done_ms": dist_ms(lat_sent),
        "send_lag_ms": dist_ms(lag), "max_connections": client.max_conns, "timeout_s": client.timeout,
    }


async def closed_loop(client, reqs, concurrency, duration_s, warmup_s, ok_fn):
    """concurrency outstanding requests, each sent when the previous answer is read."""
    n = len(reqs)
    t0 = now_ns()
    w0 = t0 + int(warmup_s * 1e9)
    end = w0 + int(duration_s * 1e9)
    lat, errors, count = [], collections.Counter(), [0]
    stopped = asyncio.Event()
    active = [concurrency]

    def fire():
        k = count[0] % n
        count[0] += 1
        client.submit(reqs[k], on_done)

    def on_done(st, body, s, t, err):
        if err is not None or not ok_fn(st, body):
            if s >= w0 and t <= end:
                errors[err or f"http {st}"] += 1
        elif s >= w0 and t <= end:
            lat.append(t - s)
        if t < end:
            fire()
        else:
            active[0] -= 1
            if active[0] == 0:
                stopped.set()

    for _ in range(concurrency):
        fire()
    await stopped.wait()
    return {"concurrency": concurrency, "duration_s": duration_s, "warmup_s": warmup_s, "ok": len(lat),
            "throughput_per_s": len(lat) / duration_s, "errors": dict(errors), "latency_ms": dist_ms(lat)}


# ---------------------------------------------------------------------------------------------
# bhavstore's side.


def iso_ist(epoch_s):
    return dt.datetime.fromtimestamp(int(epoch_s), IST).isoformat()


def iso_utc(epoch_s):
    return dt.datetime.fromtimestamp(int(epoch_s), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def bar_columns(table):
    """The bars as Python lists (built once: the REST bodies are made from them)."""
    cols = {k: table[k].to_numpy().tolist() for k in ("open", "high", "low", "close", "volume")}
    cols["instrument"] = table["instrument"].to_pylist()
    return cols


def push_rows(cols, lo, hi, ts_iso):
    """REST rows of bars [lo, hi) (minute-major); ts_iso[i] is row lo + i's bar start."""
    return [{"instrument": cols["instrument"][r], "ts": ts_iso[r - lo], "open": cols["open"][r],
             "high": cols["high"][r], "low": cols["low"][r], "close": cols["close"][r], "volume": cols["volume"][r]}
            for r in range(lo, hi)]


def push_body(rows):
    import orjson

    return orjson.dumps({"source": SOURCE, "rows": rows})


def push_ok(st, body):
    return st == 200 and b'"status":"ok"' in body.replace(b" ", b"")


def http_get_json(url, timeout=5.0):
    import requests

    r = requests.get(url, timeout=timeout)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, {"raw": r.text[:500]}


def lookup_url(http, instrument, feature, at_epoch_s):
    from urllib.parse import urlencode

    q = urlencode({"entity_id": instrument, "feature_name": feature, "feature_view": VIEW,
                   "timestamp": iso_utc(at_epoch_s)})
    return f"{http}/feature-store/lookup?{q}"


def parse_time(s):
    try:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None


def time_convention(resp, bar_start, interval):
    """How lookups stamp a bar, from the answer for a session's first bar (no earlier bar to
    confuse it with): "ts" (a `ts` field, the bar start), "start" or "end" (`timestamp` = the
    bar's start or end); None if the answer says neither."""
    if not isinstance(resp, dict):
        return None
    if "ts" in resp:
        return "ts" if parse_time(resp["ts"]) == bar_start else None
    t = parse_time(resp.get("timestamp"))
    return "start" if t == bar_start else "end" if t == bar_start + interval else None


def lookup_is_bar(resp, bar_start, interval, expected_close, convention):
    """Whether a lookup of `close` at the bar's end answered with that bar: its close, stamped
    as `convention` (from time_convention) stamps that bar. Without a convention, only an
    answer that cannot be the previous bar counts (a `ts` field, or a `timestamp` at the end)."""
    if not isinstance(resp, dict) or resp.get("value") != expected_close:
        return False
    if "ts" in resp:
        return parse_time(resp["ts"]) == bar_start
    t = parse_time(resp.get("timestamp"))
    if convention == "start":
        return t == bar_start
    return t == bar_start + interval


def lookup(http, instrument, at_epoch_s, session=None):
    url = lookup_url(http, instrument, "close", at_epoch_s)
    try:
        if session is not None:
            r = session.get(url, timeout=5)
            try:
                return r.status_code, r.json()
            except ValueError:
                return r.status_code, {"raw": r.text[:500]}
        return http_get_json(url)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return None, {"error": str(e)}


def spot_checks(http, table, info, minutes_idx, inst_idx):
    """Lookups of `close` at the end of some bars: the value must be the bar's close. The
    session's first bar of each instrument is asked first, to learn how answers are stamped."""
    n = info["n"]
    close = table["close"].to_numpy()
    ts = info["ts_s"]
    out = []
    conventions = set()
    for i in inst_idx:
        st, body = lookup(http, info["instruments"][i], ts[i] + 60)
        if st == 200 and isinstance(body, dict) and body.get("value") == float(close[i]):
            conventions.add(time_convention(body, int(ts[i]), 60))
    convention = conventions.pop() if len(conventions) == 1 else None
    for m in minutes_idx:
        for i in inst_idx:
            row = m * n + i
            st, body = lookup(http, info["instruments"][i], ts[row] + 60)
            ok = st == 200 and lookup_is_bar(body, int(ts[row]), 60, float(close[row]), convention)
            out.append({"instrument": info["instruments"][i], "bar_start": iso_ist(ts[row]), "status": st,
                        "expected_close": float(close[row]), "answer": body, "ok": bool(ok)})
    return {"checked": len(out), "ok": sum(c["ok"] for c in out), "stamping": convention, "checks": out}


def health_intraday(http):
    st, body = http_get_json(f"{http}/health")
    if st != 200 or not isinstance(body, dict):
        return None
    return body.get("intraday")


def cmd_replay(a):
    import adbc_driver_flightsql.dbapi as flightsql
    import requests

    table, info = load_bars(a.bars)
    n, minutes = info["n"], info["minutes"]
    rows_per_chunk = a.chunk_minutes * n
    chunks = [table.slice(lo, rows_per_chunk).combine_chunks() for lo in range(0, table.num_rows, rows_per_chunk)]
    procs = Procs(a.server_pid)
    http = a.http.rstrip("/")
    last = table.num_rows - 1
    last_bar = (info["instrument"][last], int(info["ts_s"][last]), float(table["close"][last].as_py()))
    first_bar = (int(info["ts_s"][n - 1]), float(table["close"][n - 1].as_py()))  # the same instrument's first
    h = health_intraday(http)
    mode = a.done_check
    if mode == "auto":
        mode = "health" if isinstance(h, dict) and "features_through_seq" in h and "durable_seq" in h else "lookup"
    log(f"replay: {table.num_rows} bars in {len(chunks)} chunks of {rows_per_chunk} rows "
        f"({a.chunk_minutes} min), done check: {mode} (health before: {h})")

    sess = requests.Session()
    convention = []

    def done():
        if mode == "health":
            body = sess.get(f"{http}/health", timeout=5).json().get("intraday") or {}
            fts, ds = body.get("features_through_seq"), body.get("durable_seq")
            # A fresh root: once every bar is held, `bars` (when reported) counts all of them.
            held = body.get("bars", table.num_rows)
            return fts is not None and ds is not None and fts >= ds and ds > 0 and held >= table.num_rows, body
        if not convention:  # how answers are stamped, from the instrument's first bar
            st, body = lookup(http, last_bar[0], first_bar[0] + 60, sess)
            if st != 200 or not isinstance(body, dict) or body.get("value") != first_bar[1]:
                return False, body
            convention.append(time_convention(body, first_bar[0], 60))
        st, body = lookup(http, last_bar[0], last_bar[1] + 60, sess)
        return st == 200 and lookup_is_bar(body, last_bar[1], 60, last_bar[2], convention[0]), body

    conn = flightsql.connect(a.flight if "://" in a.flight else f"grpc://{a.flight}")
    cur = conn.cursor()
    cpu0, load0 = procs.cpu(), loadavg()
    call_ms, ingested = [], []
    t0 = now_ns()
    for ch in chunks:
        c0 = now_ns()
        r = cur.adbc_ingest(SOURCE, ch, mode="append")
        call_ms.append((now_ns() - c0) / 1e6)
        ingested.append(r)
    t_ingested = now_ns()
    polls, last_body, ok = 0, None, False
    deadline = t_ingested + int(a.timeout * 1e9)
    while now_ns() < deadline:
        polls += 1
        ok, last_body = done()
        if ok:
            break
        time.sleep(a.poll_ms / 1000)
    t_done = now_ns()
    cpu1 = procs.cpu()
    cur.close()
    conn.close()
    total_s = (t_done - t0) / 1e9
    ingest_s = (t_ingested - t0) / 1e9
    res = {
        "kind": "replay", "bars": table.num_rows, "instruments": n, "minutes": minutes,
        "chunk_minutes": a.chunk_minutes, "chunk_rows": rows_per_chunk, "chunks": len(chunks),
        "done_check": mode, "completed": bool(ok), "polls": polls, "poll_ms": a.poll_ms,
        "health_at_end": last_body if mode == "health" else None, "lookup_at_end": last_body if mode == "lookup" else None,
        "ingest_seconds": ingest_s, "seconds_to_features": total_s,
        "bars_per_s": table.num_rows / total_s if ok else None,
        "ingest_bars_per_s": table.num_rows / ingest_s,
        "ingest_call_ms": dist_ms(np.asarray(call_ms) * 1e6), "adbc_ingest_returned": ingested[:3] + ["..."],
        "server_cpu_seconds": cpu1 - cpu0, "loadavg_before": load0, "loadavg_after": loadavg(),
    }
    res["spot_checks"] = spot_checks(http, table, info, [0, minutes // 2, minutes - 1], [0, 1, n // 2, n - 1])
    res["server"] = procs.figures()
    Path(a.out).write_text(json.dumps(res, indent=2))
    log(f"replay: ingest {ingest_s:.2f} s ({res['ingest_bars_per_s']:,.0f} bars/s), features "
        f"{'done' if ok else 'NOT done'} at {total_s:.2f} s"
        + (f" -> {res['bars_per_s']:,.0f} bars/s" if ok else "")
        + f"; spot checks {res['spot_checks']['ok']}/{res['spot_checks']['checked']}; "
          f"server RSS {res['server']['rss_bytes'] / 2**20:.0f} MiB (peak {res['server']['peak_rss_bytes'] / 2**20:.0f})")


# --- burst and its SSE reader


SSE_ENTITY = re.compile(rb'"entity_id"\s*:\s*"([^"]+)"')
SSE_TS = re.compile(rb'"ts"\s*:\s*"([^"]+)"')


async def sse_reader_main(a):
    import aiohttp

    expected = a.instruments
    spot = set(a.spot.split(",")) if a.spot else set()
    seen = {}  # ts epoch -> set of entity ids
    first, complete = {}, {}
    ts_cache = {}
    stats = collections.Counter()
    spot_values = collections.defaultdict(dict)

    def handle(event, t):
        etype, data = b"message", []
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" ") if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                etype = line[6:].strip()
        if etype == b"dropped":  # the server dropped this subscriber: it fell too far behind
            stats["dropped"] += 1
            sys.stdout.write(f"error dropped {b' '.join(data).decode(errors='replace')}\n")
            sys.stdout.flush()
            return
        if etype not in (b"features", b"message") or not data:  # "message": an event without a name
            stats["other_events"] += 1
            return
        payload = b"\n".join(data)
        me, mt = SSE_ENTITY.search(payload), SSE_TS.search(payload)
        if me is None or mt is None:
            stats["unparsed"] += 1
            return
        ent, tsraw = me.group(1), mt.group(1)
        ts = ts_cache.get(tsraw)
        if ts is None:
            p = parse_time(tsraw.decode())
            ts = ts_cache[tsraw] = int(round(p)) if p is not None else None
        if ts is None:
            stats["bad_ts"] += 1
            return
        stats["events"] += 1
        s = seen.get(ts)
        if s is None:
            s = seen[ts] = set()
            first[ts] = t
        if ent in s:
            stats["repeats"] += 1
            return
        s.add(ent)
        if spot and ent.decode() in spot:
            try:
                spot_values[ent.decode()][ts] = json.loads(payload).get("values")
            except ValueError:
                pass
        if len(s) == expected:
            complete[ts] = t
            sys.stdout.write(f"done {ts} {t} {first[ts]}\n")
            sys.stdout.flush()

    async def run():
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            async with s.get(a.url, headers={"Accept": "text/event-stream"}) as r:
                sys.stdout.write(f"ready {r.status}\n")
                sys.stdout.flush()
                if r.status != 200:
                    sys.stdout.write(f"error {(await r.text())[:300]!r}\n")
                    sys.stdout.flush()
                    return
                buf = b""
                while True:
                    data = await r.content.readany()
                    t = now_ns()
                    if not data:
                        stats["eof"] += 1
                        break
                    stats["reads"] += 1
                    buf += data
                    if b"\r" in buf:
                        buf = buf.replace(b"\r\n", b"\n")
                    *events, buf = buf.split(b"\n\n")
                    for ev in events:
                        handle(ev, t)

    task = asyncio.ensure_future(run())
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as e:  # noqa: BLE001 - written out for the caller
        stats["error"] += 1
        sys.stdout.write(f"error {e!r}\n")
        sys.stdout.flush()
    finally:
        Path(a.out).write_text(json.dumps({
            "stats": dict(stats),
            "per_ts": {str(ts): {"count": len(seen[ts]), "first_ns": first[ts], "complete_ns": complete.get(ts)}
                       for ts in seen},
            "spot_values": {e: {str(k): v for k, v in d.items()} for e, d in spot_values.items()},
        }))


def cmd_sse_reader(a):
    asyncio.run(sse_reader_main(a))


async def burst_main(a):
    table, info = load_bars(a.bars)
    n = info["n"]
    minutes = min(a.minutes, info["minutes"])
    http = a.http.rstrip("/")
    procs = Procs(a.server_pid)
    out_dir = Path(a.out).parent
    ts_all = info["ts_s"]
    starts = [int(ts_all[m * n]) for m in range(minutes)]
    spot_inst = [info["instruments"][i] for i in sorted({0, 1, n // 2, n - 1})]

    log(f"burst: building {minutes} x {a.pushes} push bodies ({n} bars per minute)")
    ts_iso_min = [iso_ist(s) for s in starts]
    bodies = []
    parts = np.array_split(np.arange(n), a.pushes)
    client_req = Client(http, max_conns=max(a.pushes, 1), timeout=a.timeout)
    cols = bar_columns(table)
    for m in range(minutes):
        rows = push_rows(cols, m * n, (m + 1) * n, [ts_iso_min[m]] * n)
        bodies.append([client_req.request("POST", "/feature-store/push", push_body([rows[i] for i in p]))
                       for p in parts if len(p)])
    await client_req.open(a.pushes)

    sse_out = out_dir / (Path(a.out).stem + ".sse.json")
    url = f"{http}{a.sse_path}"
    reader = await asyncio.create_subprocess_exec(
        sys.executable, os.path.abspath(__file__), "sse-reader", "--url", url, "--instruments", str(n),
        "--spot", ",".join(spot_inst), "--out", str(sse_out), stdout=asyncio.subprocess.PIPE)
    complete, first = {}, {}
    events = collections.defaultdict(asyncio.Event)
    ready = asyncio.get_running_loop().create_future()

    async def read_lines():
        while True:
            line = await reader.stdout.readline()
            if not line:
                if not ready.done():
                    ready.set_result("reader exited")
                return
            parts_ = line.decode().split()
            if parts_[0] == "ready":
                ready.set_result(parts_[1])
            elif parts_[0] == "done":
                ts, t, f = int(parts_[1]), int(parts_[2]), int(parts_[3])
                complete[ts], first[ts] = t, f
                events[ts].set()
            elif parts_[0] == "error":
                log("sse-reader:", line.decode().strip())
                if not ready.done():
                    ready.set_result(line.decode().strip())

    reader_task = asyncio.ensure_future(read_lines())
    st = await asyncio.wait_for(ready, 30)
    if st != "200":
        reader.terminate()
        sys.exit(f"burst: SSE subscription {url} failed: {st}")
    await asyncio.sleep(0.2)  # the subscription registered before the first bar

    per_minute = []
    rejected = 0
    errors = collections.Counter()
    samples = {}
    cpu0, load0 = procs.cpu(), loadavg()
    t_begin = now_ns()
    for m in range(minutes):
        t_start = now_ns()
        futs = [client_req.call(req) for req in bodies[m]]
        answers = await asyncio.gather(*futs)
        acks = []
        for stt, body, s, t, err in answers:
            acks.append(t)
            if err is not None or stt != 200:
                errors[err or f"http {stt}"] += 1
                samples.setdefault(err or str(stt), (body or b"")[:300].decode("utf-8", "replace"))
                continue
            try:
                j = json.loads(body)
                rejected += len(j.get("rejected") or [])
                if j.get("status") != "ok":
                    errors[f"status {j.get('status')}"] += 1
                    samples.setdefault(f"status {j.get('status')}", body[:300].decode("utf-8", "replace"))
            except ValueError:
                errors["bad json"] += 1
        last_ack = max(acks)
        try:
            await asyncio.wait_for(events[starts[m]].wait(), a.visible_timeout)
        except asyncio.TimeoutError:
            pass
        per_minute.append({"minute": m, "ts": ts_iso_min[m], "first_send_ns": t_start, "last_ack_ns": last_ack,
                           "first_ack_ns": min(acks)})
        if m % 50 == 0 or m == minutes - 1:
            log(f"  minute {m}: acks {(last_ack - t_start) / 1e6:.1f} ms, visible "
                + (f"{(complete[starts[m]] - last_ack) / 1e6:.1f} ms after the last ack" if starts[m] in complete
                   else f"not within {a.visible_timeout} s"))
        next_start = t_start + int(a.interval_ms * 1e6)
        wait = next_start - now_ns()
        if wait > 0:
            await asyncio.sleep(wait / 1e9)
    t_end = now_ns()
    # Minutes that were late are still counted with their real time: wait for stragglers.
    deadline = now_ns() + int(a.visible_timeout * 1e9)
    while now_ns() < deadline and any(s not in complete for s in starts):
        await asyncio.sleep(0.05)
    cpu1 = procs.cpu()
    server_fig = procs.figures()
    reader.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(reader.wait(), 10)
    except asyncio.TimeoutError:
        reader.kill()
    reader_task.cancel()
    client_req.close()

    after_ack, after_send, ack_span = [], [], []
    for pm, s in zip(per_minute, starts):
        c = complete.get(s)
        pm["visible_ns"] = c
        pm["first_event_ns"] = first.get(s)
        after_ack.append(c - pm["last_ack_ns"] if c is not None else math.inf)
        after_send.append(c - pm["first_send_ns"] if c is not None else math.inf)
        ack_span.append(pm["last_ack_ns"] - pm["first_send_ns"])
    sse = json.loads(sse_out.read_text()) if sse_out.exists() else {}
    res = {
        "kind": "burst", "instruments": n, "minutes": minutes, "pushes_per_minute": a.pushes,
        "interval_ms": a.interval_ms, "visible_timeout_s": a.visible_timeout,
        "visible_after_last_ack_ms": dist_ms(after_ack), "visible_after_first_send_ms": dist_ms(after_send),
        "ack_of_whole_minute_ms": dist_ms(ack_span),
        "minutes_not_visible": sum(1 for x in after_ack if not math.isfinite(x)),
        "minutes_visible_before_last_ack": sum(1 for x in after_ack if x < 0),
        "errors": dict(errors), "error_samples": samples, "rejected_rows": rejected,
        "sse_stats": sse.get("stats"), "seconds": (t_end - t_begin) / 1e9,
        "server_cpu_seconds": cpu1 - cpu0, "loadavg_before": load0, "loadavg_after": loadavg(),
        "server": server_fig, "per_minute": per_minute,
    }
    res["spot_checks"] = spot_checks(http, table, info, sorted({0, minutes // 2, minutes - 1}),
                                     sorted({0, 1, n // 2, n - 1}))
    # Informational: the SSE values of the spot instruments next to the pandas definitions.
    res["sse_vs_pandas"] = compare_spot(table, info, sse.get("spot_values") or {}, minutes)
    Path(a.out).write_text(json.dumps(res, indent=2))
    d = res["visible_after_last_ack_ms"]
    log(f"burst ({a.pushes} push(es) per minute): visible after last ack p50 {fmt(d.get('p50'))} ms, "
        f"p99 {fmt(d.get('p99'))} ms, max {fmt(d.get('max'))} ms; {res['minutes_not_visible']} minutes not visible; "
        f"errors {dict(errors)}; spot checks {res['spot_checks']['ok']}/{res['spot_checks']['checked']}")


def compare_spot(table, info, spot_values, minutes):
    if not spot_values:
        return None
    f = compute_features(table, info["n"], info["minutes"])
    n = info["n"]
    idx = {name: i for i, name in enumerate(info["instruments"])}
    starts = {int(info["ts_s"][m * n]): m for m in range(minutes)}
    worst = {}
    compared = 0
    for ent, per_ts in spot_values.items():
        i = idx.get(ent)
        for ts, values in per_ts.items():
            m = starts.get(int(ts))
            if i is None or m is None or not isinstance(values, dict):
                continue
            compared += 1
            for k in FEATURES:
                if k not in values:
                    worst.setdefault(k, {"missing": 0})
                    worst[k]["missing"] = worst[k].get("missing", 0) + 1
                    continue
                mine, theirs = f[k][m * n + i], values[k]
                w = worst.setdefault(k, {"max_abs_diff": 0.0, "null_mismatch": 0})
                if theirs is None or (isinstance(mine, float) and math.isnan(mine)):
                    if (theirs is None) != bool(math.isnan(mine)):
                        w["null_mismatch"] = w.get("null_mismatch", 0) + 1
                    continue
                w["max_abs_diff"] = max(w.get("max_abs_diff", 0.0), abs(float(theirs) - mine))
    return {"events_compared": compared, "per_feature": worst,
            "note": "informational: the values Feast is pushed (pandas) next to bhavstore's SSE values"}


def cmd_burst(a):
    asyncio.run(burst_main(a))


async def push_latency_main(a):
    table, info = load_bars(a.bars)
    n, minutes = info["n"], info["minutes"]
    total = int(a.rate * (a.duration + a.warmup))
    http = a.http.rstrip("/")
    procs = Procs(a.server_pid)
    client = Client(http, max_conns=a.max_conns, timeout=a.timeout)
    day = 86400
    per_day = n * minutes
    log(f"push-latency: building {total} single-bar pushes")
    close, open_, high, low = (table[k].to_numpy() for k in ("close", "open", "high", "low"))
    vol = table["volume"].to_numpy()
    names = info["instrument"]
    ts = info["ts_s"]
    import orjson

    reqs = []
    for k in range(total):
        r = k % per_day
        shift = (k // per_day) * day  # past the session: the same bars a day later (new keys)
        body = orjson.dumps({"source": SOURCE, "rows": [{
            "instrument": names[r], "ts": iso_ist(ts[r] + shift), "open": float(open_[r]), "high": float(high[r]),
            "low": float(low[r]), "close": float(close[r]), "volume": int(vol[r])}]})
        reqs.append(client.request("POST", "/feature-store/push", body))
    await client.open(a.preopen)
    cpu0, load0 = procs.cpu(), loadavg()
    procs.rss()
    res = await open_loop(client, reqs, a.rate, a.warmup, push_ok, procs)
    res.update({"kind": "push_latency", "server_cpu_seconds": procs.cpu() - cpu0, "loadavg_before": load0,
                "loadavg_after": loadavg(), "bars_pushed": total,
                "instruments_live": min(total, n)})
    client.close()
    res["server"] = procs.figures()
    Path(a.out).write_text(json.dumps(res, indent=2))
    d = res["latency_from_due_ms"]
    log(f"push-latency at {a.rate}/s: achieved {fmt(res['achieved_per_s'])}/s, p50 {fmt(d.get('p50'))} ms, "
        f"p99 {fmt(d.get('p99'))} ms, max {fmt(d.get('max'))} ms, errors {res['errors']}; "
        f"server RSS {res['server']['rss_bytes'] / 2**20:.0f} MiB (peak {res['server']['peak_rss_bytes'] / 2**20:.0f})")


def cmd_push_latency(a):
    asyncio.run(push_latency_main(a))


# ---------------------------------------------------------------------------------------------
# Feast's side.


def feast_bodies(features_path, rows_per_body, limit=None):
    """`POST /push` bodies: {"push_source_name", "df": {column: [values]}, "to": "online"},
    rows_per_body consecutive rows (minute-major) each; NULL features as JSON null."""
    import orjson
    import pyarrow.parquet as pq

    t = pq.read_table(features_path).combine_chunks()
    n = t.num_rows if limit is None else min(limit, t.num_rows)
    inst = t["instrument"].to_pylist()[:n]
    ts = t["ts"].cast("int64").to_numpy()[:n] // 1_000_000
    cache = {}
    ts_iso = []
    for s in ts:
        v = cache.get(s)
        if v is None:
            v = cache[s] = iso_ist(s)
        ts_iso.append(v)
    td = t["trade_date"].to_pylist()[:n]
    feats = {k: t[k].to_pylist()[:n] for k in FEATURES}
    bodies = []
    for lo in range(0, n, rows_per_body):
        hi = min(n, lo + rows_per_body)
        df = {"instrument": inst[lo:hi], "ts": ts_iso[lo:hi], "trade_date": td[lo:hi]}
        for k in FEATURES:
            df[k] = feats[k][lo:hi]
        bodies.append((hi - lo, orjson.dumps({"push_source_name": PUSH_SOURCE, "df": df, "to": "online"})))
    return bodies, t.num_rows


def feast_ok(st, body):
    return st == 200


async def feast_throughput_main(a):
    procs = Procs(a.server_pid, tree=True)
    url = a.url.rstrip("/")
    client = Client(url, max_conns=a.concurrency, timeout=a.timeout)
    bodies, total_rows = feast_bodies(a.features, a.chunk_rows)
    reqs = [(rows, client.request("POST", "/push", b)) for rows, b in bodies]
    await client.open(a.concurrency)
    # Warm-up (not timed): one small push, so the first timed request does not pay for imports.
    warm, _ = feast_bodies(a.features, 10, limit=10)
    st = await client.call(client.request("POST", "/push", warm[0][1]))
    if st[0] != 200:
        sys.exit(f"feast-throughput: warm-up push failed: {st[0]} {st[1][:500] if st[1] else st[4]}")
    log(f"feast-throughput: {total_rows} rows in {len(reqs)} pushes of {a.chunk_rows} rows, "
        f"{a.concurrency} at a time")
    cpu0, load0 = procs.cpu(), loadavg()
    lat, errors, samples = [], collections.Counter(), {}
    next_k, done_rows, outstanding = [0], [0], [0]
    finished = asyncio.Event()
    t0 = now_ns()
    last_log = [t0]

    def fire():
        k = next_k[0]
        if k >= len(reqs):
            return False
        next_k[0] += 1
        outstanding[0] += 1
        rows, req = reqs[k]
        client.submit(req, lambda st, body, s, t, err: on_done(rows, st, body, s, t, err))
        return True

    def on_done(rows, st, body, s, t, err):
        outstanding[0] -= 1
        if err is None and st == 200:
            done_rows[0] += rows
            lat.append(t - s)
        else:
            errors[err or f"http {st}"] += 1
            samples.setdefault(err or str(st), (body or b"")[:300].decode("utf-8", "replace"))
        if t - last_log[0] > 15e9:
            last_log[0] = t
            log(f"  {done_rows[0]} rows in {(t - t0) / 1e9:.0f} s ({done_rows[0] / ((t - t0) / 1e9):,.0f} rows/s)")
        if not fire() and outstanding[0] == 0:
            finished.set()

    for _ in range(a.concurrency):
        fire()
    await finished.wait()
    t1 = now_ns()
    secs = (t1 - t0) / 1e9
    client.close()
    res = {
        "kind": "feast_throughput", "rows": total_rows, "rows_ok": done_rows[0], "chunk_rows": a.chunk_rows,
        "pushes": len(reqs), "concurrency": a.concurrency, "seconds": secs,
        "rows_per_s": done_rows[0] / secs, "push_latency_ms": dist_ms(lat), "errors": dict(errors),
        "error_samples": samples, "server_cpu_seconds": procs.cpu() - cpu0, "loadavg_before": load0,
        "loadavg_after": loadavg(), "server": procs.figures(),
    }
    Path(a.out).write_text(json.dumps(res, indent=2))
    log(f"feast-throughput: {done_rows[0]} rows in {secs:.1f} s = {res['rows_per_s']:,.0f} rows/s "
        f"(push p50 {fmt(res['push_latency_ms'].get('p50'))} ms), errors {dict(errors)}")


def cmd_feast_throughput(a):
    asyncio.run(feast_throughput_main(a))


async def feast_latency_main(a):
    """Closed loop first (Feast's capacity on a fresh server), then open loop at the rate it
    sustains, then open loop at the target rate last: Feast falls behind at that rate and what
    it still has queued when the client gives up would spoil any run after it."""
    procs = Procs(a.server_pid, tree=True)
    url = a.url.rstrip("/")
    need = int(a.rate * (a.duration + a.warmup))
    bodies, total_rows = feast_bodies(a.features, 1, limit=need)
    payloads = [b for _, b in bodies]
    while len(payloads) < need:  # more than the session's rows: send them again (Feast overwrites)
        payloads.extend(payloads[: need - len(payloads)])
    results = {"kind": "feast_latency", "runs": []}

    async def client_for(max_conns, preopen):
        c = Client(url, max_conns=max_conns, timeout=a.timeout)
        await c.open(preopen)
        return c, [c.request("POST", "/push", b) for b in payloads]

    async def run_open(rate, label):
        k = int(rate * (a.duration + a.warmup))
        client, reqs = await client_for(a.max_conns, min(a.preopen, a.max_conns))
        cpu0, load0 = procs.cpu(), loadavg()
        log(f"feast-latency: open loop {rate}/s ({label}), {a.warmup} s warm-up + {a.duration} s")
        r = await open_loop(client, reqs[:k], rate, a.warmup, feast_ok, procs)
        client.pending.clear()
        client.close()
        r.update({"mode": "open", "label": label, "server_cpu_seconds": procs.cpu() - cpu0,
                  "loadavg_before": load0, "loadavg_after": loadavg()})
        d = r["latency_from_due_ms"]
        log(f"  achieved {fmt(r['achieved_per_s'])}/s, p50 {fmt(d.get('p50'))} ms, p99 {fmt(d.get('p99'))} ms, "
            f"errors {r['errors']}")
        results["runs"].append(r)
        Path(a.out).write_text(json.dumps(results, indent=2))
        await asyncio.sleep(2)
        return r

    best = None
    for conc in [int(x) for x in re.split(r"[ ,]+", a.concurrency.strip()) if x]:
        log(f"feast-latency: closed loop, {conc} connection(s), {a.warmup} s + {a.duration} s")
        client, reqs = await client_for(conc, conc)
        cpu0 = procs.cpu()
        c = await closed_loop(client, reqs, conc, a.duration, a.warmup, feast_ok)
        client.close()
        c.update({"mode": "closed", "label": f"closed loop, {conc} connection(s)",
                  "server_cpu_seconds": procs.cpu() - cpu0})
        log(f"  {c['throughput_per_s']:,.0f} pushes/s, p50 {fmt(c['latency_ms'].get('p50'))} ms, "
            f"p99 {fmt(c['latency_ms'].get('p99'))} ms, errors {c['errors']}")
        results["runs"].append(c)
        if best is None or c["throughput_per_s"] > best["throughput_per_s"]:
            best = c
        await asyncio.sleep(2)
    sustain = a.sustain_rate
    if sustain == "auto":
        sustain = max(10, int(best["throughput_per_s"] * a.sustain_fraction // 10 * 10))
        label = f"{a.sustain_fraction:.0%} of the best closed-loop rate"
    else:
        sustain = int(sustain)
        label = "FEAST_SUSTAIN_RATE"
    if sustain and sustain < a.rate:
        await run_open(sustain, label)
    await run_open(a.rate, "target rate")
    results["server"] = procs.figures()
    Path(a.out).write_text(json.dumps(results, indent=2))


def cmd_feast_latency(a):
    asyncio.run(feast_latency_main(a))


# ---------------------------------------------------------------------------------------------
# Summary.


def fmt(x, nd=1):
    if x is None:
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    if isinstance(x, (int, float)) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def gib(b):
    return "—" if not b else f"{b / 2**30:.2f} GiB"


def cmd_summary(a):
    out = Path(a.out)
    res = {}
    for p in sorted((out / "results").glob("*.json")):
        if p.name.endswith(".sse.json"):
            continue
        try:
            res[p.stem] = json.loads(p.read_text())
        except ValueError:
            pass
    replays = {k: v for k, v in res.items() if v.get("kind") == "replay"}
    bursts = {k: v for k, v in res.items() if v.get("kind") == "burst"}
    pushl = next((v for v in res.values() if v.get("kind") == "push_latency"), None)
    fthrs = sorted((v for v in res.values() if v.get("kind") == "feast_throughput"), key=lambda v: v["chunk_rows"])
    flat = next((v for v in res.values() if v.get("kind") == "feast_latency"), None)
    L = ["## Intraday bars: bhavstore vs Feast push", ""]
    if a.meta:
        L += [a.meta, ""]
    L += ["| target | measured | target value | notes |", "|---|---:|---:|---|"]
    best_replay = None
    for k, v in sorted(replays.items(), key=lambda kv: kv[1]["chunk_minutes"]):
        ok = v.get("bars_per_s")
        L.append(f"| replay, Flight SQL bulk ingest, {v['chunk_minutes']}-minute chunks ({v['chunk_rows']:,} rows) | "
                 f"**{fmt(ok)} bars/s** | ≥ 200,000 | {v['bars']:,} bars in {v['seconds_to_features']:.2f} s to features "
                 f"({v['done_check']}); ingest calls alone {v['ingest_seconds']:.2f} s = {fmt(v['ingest_bars_per_s'])} bars/s"
                 + ("" if v["completed"] else "; **features not done within the timeout**") + " |")
        if ok and (best_replay is None or ok > best_replay[1]):
            best_replay = (v["chunk_minutes"], ok)
    for k, v in sorted(bursts.items(), key=lambda kv: kv[1]["pushes_per_minute"]):
        d = v["visible_after_last_ack_ms"]
        how = (f"one push of {v['instruments']:,} bars" if v["pushes_per_minute"] == 1 else
               f"{v['pushes_per_minute']} concurrent pushes of ~{v['instruments'] // v['pushes_per_minute']:,} bars")
        L.append(f"| minute burst, {how}: "
                 f"last ack → all {v['instruments']:,} visible on SSE, p99 | **{fmt(d.get('p99'))} ms** | ≤ 50 ms | "
                 f"p50 {fmt(d.get('p50'))}, max {fmt(d.get('max'))} ms over {v['minutes']} minutes; "
                 f"{v['minutes_not_visible']} never visible; errors {v['errors'] or 0} |")
    if pushl:
        d = pushl["latency_from_due_ms"]
        L.append(f"| single-bar REST push at {pushl['rate']:,}/s (open loop), scheduled send → response, p99 | "
                 f"**{fmt(d.get('p99'), 2)} ms** | ≤ 10 ms | p50 {fmt(d.get('p50'), 2)} ms, max {fmt(d.get('max'))} ms; "
                 f"achieved {fmt(pushl['achieved_per_s'])}/s; errors {pushl['errors_measured']} |")
    bh_servers = [v["server"] for v in list(replays.values()) + list(bursts.values()) + ([pushl] if pushl else [])
                  if v.get("server")]
    if bh_servers:
        peak = max(s["peak_rss_bytes"] or 0 for s in bh_servers)
        L.append(f"| bhavstore server peak RSS (VmHWM), {max(v.get('instruments', 0) for v in list(replays.values()) + list(bursts.values())) or 2000:,} live instruments | "
                 f"**{gib(peak)}** | ≤ 1 GiB | max over the runs; RSS at the end of each: "
                 + ", ".join(f"{gib(s['rss_bytes'])}" for s in bh_servers) + " |")
    for fthr in fthrs:
        L.append(f"| Feast push throughput, {fthr['chunk_rows']:,}-row pushes, {fthr['concurrency']} at a time | "
                 f"**{fmt(fthr['rows_per_s'])} rows/s** | — | {fthr['rows_ok']:,} rows in {fthr['seconds']:.1f} s; "
                 f"errors {fthr['errors'] or 0} |")
    for fthr in fthrs:
        same = next((v for v in replays.values() if v["chunk_rows"] == fthr["chunk_rows"] and v.get("bars_per_s")), None)
        if same and fthr["rows_per_s"]:
            L.append(f"| throughput ratio bhavstore / Feast, {fthr['chunk_rows']:,}-row chunks | "
                     f"**{same['bars_per_s'] / fthr['rows_per_s']:.1f}×** | ≥ 20× | "
                     f"{fmt(same['bars_per_s'])} / {fmt(fthr['rows_per_s'])} rows/s |")
    if flat:
        for r in flat["runs"]:
            if r["mode"] == "open":
                d = r["latency_from_due_ms"]
                if r["ok"] < 0.5 * r["measured_requests"]:
                    L.append(f"| Feast single-row push at {r['rate']:,}/s ({r['label']}) | does not keep up: "
                             f"{fmt(r.get('answered_all_per_s'))} pushes/s answered | — | "
                             f"{r.get('answered_all', 0):,} of {r['requests']:,} due answered (warm-up included), "
                             f"from due p50 {fmt(r.get('latency_from_due_all_ms', {}).get('p50'))} ms; {r['errors']} (timeout {r.get('timeout_s', '?')} s, "
                             f"{r['max_connections']} connections) |")
                    continue
                L.append(f"| Feast single-row push at {r['rate']:,}/s ({r['label']}), p99 | {fmt(d.get('p99'))} ms | — | "
                         f"p50 {fmt(d.get('p50'))} ms, max {fmt(d.get('max'))} ms; achieved {fmt(r['achieved_per_s'])}/s; "
                         f"{r['errors_measured']} of {r['measured_requests']:,} failed |")
            else:
                L.append(f"| Feast single-row push, {r['label']} | {fmt(r['throughput_per_s'])} pushes/s | — | "
                         f"p50 {fmt(r['latency_ms'].get('p50'))} ms, p99 {fmt(r['latency_ms'].get('p99'))} ms; "
                         f"errors {r['errors'] or 0} |")
        if flat.get("server"):
            L.append(f"| Feast server peak RSS (master + workers) | {gib(flat['server']['peak_rss_bytes'])} | — | |")
    L.append("")
    details = []
    for k, v in sorted(bursts.items()):
        s = v["visible_after_first_send_ms"]
        acks = v["ack_of_whole_minute_ms"]
        details.append(f"* burst, {v['pushes_per_minute']} push(es) per minute: whole-minute ack p50 {fmt(acks.get('p50'))} / "
                       f"p99 {fmt(acks.get('p99'))} ms; first send → visible p50 {fmt(s.get('p50'))} / p99 {fmt(s.get('p99'))} ms; "
                       f"{v['minutes_visible_before_last_ack']} minutes visible before their last ack; "
                       f"SSE {v.get('sse_stats')}; spot lookups {v['spot_checks']['ok']}/{v['spot_checks']['checked']}; "
                       f"server CPU {v['server_cpu_seconds']:.1f} s")
    for k, v in sorted(replays.items()):
        c = v["ingest_call_ms"]
        details.append(f"* replay {v['chunk_minutes']} min: adbc_ingest call p50 {fmt(c.get('p50'))} / max {fmt(c.get('max'))} ms; "
                       f"server CPU {v['server_cpu_seconds']:.1f} s; spot lookups {v['spot_checks']['ok']}/{v['spot_checks']['checked']}; "
                       f"load {v['loadavg_before'][0]:.1f} → {v['loadavg_after'][0]:.1f}")
    if pushl:
        details.append(f"* push latency: sent → response p99 {fmt(pushl['latency_sent_to_done_ms'].get('p99'), 2)} ms; "
                       f"send lag p99 {fmt(pushl['send_lag_ms'].get('p99'), 2)} ms; server CPU {pushl['server_cpu_seconds']:.1f} s; "
                       f"load {pushl['loadavg_before'][0]:.1f} → {pushl['loadavg_after'][0]:.1f}")
    for fthr in fthrs:
        details.append(f"* Feast throughput: push p50 {fmt(fthr['push_latency_ms'].get('p50'))} / p99 "
                       f"{fmt(fthr['push_latency_ms'].get('p99'))} ms per {fthr['chunk_rows']:,}-row push; server CPU "
                       f"{fthr['server_cpu_seconds']:.1f} s (all workers); load {fthr['loadavg_before'][0]:.1f} → {fthr['loadavg_after'][0]:.1f}")
    if flat:
        for r in flat["runs"]:
            if r["mode"] == "open":
                details.append(f"* Feast open loop {r['rate']}/s: sent → response p99 {fmt(r['latency_sent_to_done_ms'].get('p99'))} ms, "
                               f"send lag p99 {fmt(r['send_lag_ms'].get('p99'))} ms, errors {r['errors']}")
    if details:
        L += ["Details:", ""] + details + [""]
    text = "\n".join(L)
    print(text)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("gen")
    p.add_argument("--out", required=True)
    p.add_argument("--instruments", type=int, default=2000)
    p.add_argument("--minutes", type=int, default=375)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--date", default="2026-07-14")
    p.set_defaults(fn=cmd_gen)

    p = sub.add_parser("features")
    p.add_argument("--bars", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_features)

    p = sub.add_parser("replay")
    p.add_argument("--bars", required=True)
    p.add_argument("--flight", required=True, help="host:port or grpc://host:port")
    p.add_argument("--http", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--chunk-minutes", type=int, default=1)
    p.add_argument("--done-check", choices=["auto", "health", "lookup"], default="auto")
    p.add_argument("--poll-ms", type=float, default=5)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_replay)

    p = sub.add_parser("burst")
    p.add_argument("--bars", required=True)
    p.add_argument("--http", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--minutes", type=int, default=375)
    p.add_argument("--pushes", type=int, default=1, help="concurrent pushes per minute")
    p.add_argument("--interval-ms", type=float, default=200, help="from one minute's first send to the next's")
    p.add_argument("--visible-timeout", type=float, default=5)
    p.add_argument("--timeout", type=float, default=30, help="HTTP timeout")
    p.add_argument("--sse-path", default=f"/feature-store/stream?view={VIEW}")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_burst)

    p = sub.add_parser("sse-reader")
    p.add_argument("--url", required=True)
    p.add_argument("--instruments", type=int, required=True)
    p.add_argument("--spot", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_sse_reader)

    p = sub.add_parser("push-latency")
    p.add_argument("--bars", required=True)
    p.add_argument("--http", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--rate", type=int, default=2000)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument("--max-conns", type=int, default=1024)
    p.add_argument("--preopen", type=int, default=32)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_push_latency)

    p = sub.add_parser("feast-throughput")
    p.add_argument("--features", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--chunk-rows", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_feast_throughput)

    p = sub.add_parser("feast-latency")
    p.add_argument("--features", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--rate", type=int, default=2000)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument("--concurrency", default="1,2", help="closed-loop connections, one run per value")
    p.add_argument("--sustain-rate", default="auto", help="second open-loop rate; auto: a fraction of closed-loop throughput")
    p.add_argument("--sustain-fraction", type=float, default=0.8)
    p.add_argument("--max-conns", type=int, default=1024)
    p.add_argument("--preopen", type=int, default=32)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_feast_latency)

    p = sub.add_parser("summary")
    p.add_argument("--out", required=True)
    p.add_argument("--meta", default="")
    p.set_defaults(fn=cmd_summary)

    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
