#!/usr/bin/env python3
"""Independent reference for bhavstore's `intraday_features` view, computed from raw 1-minute bar CSVs.

Shares no code with bhavstore: it reads the bar files with pandas, computes every column of
`intraday_features` (feature_defs/intraday_features.sql) with numpy (two-pass window statistics
on explicit sliding windows, pandas `ewm` for the EMA, a hand-written Wilder recursion for the
RSI), and compares value by value with CSV exports of the view made by the server (live and/or
batch), NULL pattern included.

Input bars
----------
Files named `{SYMBOL}_{YYYY-MM-DD}_1min.csv` in --bars-dir, header `ts,open,high,low,close,volume`,
`ts` the bar's start with its offset (e.g. `2026-07-14 09:15:00+05:30`). Other files are ignored.
The instrument is `{EXCHANGE}:{SYMBOL}`. Only regular-session bars are rows of the view: IST start
time 09:15 <= t < 15:30; other bars are dropped *before* anything is computed (as the view's
inner query filters before taking log returns). trade_date is the IST date of ts.

Windows
-------
w: per instrument, ordered by ts, across ALL sessions (not reset daily; "k bars back" counts
   rows, not minutes).
s: per instrument and trade_date, ordered by ts, from the session's first bar to the current one.

Columns (row index i is 0-based within w)
------------------------------------------
close              the bar's close.
return_1m/5m/15m   close_i / close_{i-k} - 1 for k = 1, 5, 15 (evaluated as (c_i - c_{i-k}) / c_{i-k});
                   NULL for i < k and when close_{i-k} == 0.
sma_15, sma_60     mean of the last n closes; NULL for i < n - 1.
ema_20             alpha = 2/21, EMA_0 = close_0, EMA_i = alpha*close_i + (1-alpha)*EMA_{i-1},
                   reported from i = 19: pandas ewm(span=20, adjust=False, min_periods=20).mean().
rsi_14             Wilder's RSI: d_i = c_i - c_{i-1}, gains max(d,0), losses max(-d,0); the first
                   averages are the simple means of d_1..d_14 (value at i = 14), then
                   avg = (avg*13 + x)/14; RSI = 100 - 100/(1 + avg_gain/avg_loss), and 100 when
                   avg_loss == 0 -- including a perfectly flat window (avg_gain == 0 too), as
                   udfs/src/kernels/rsi.rs does.
realized_vol_30    sample std (ddof 1) of the last 30 one-bar log returns ln(c_i / c_{i-1})
                   (evaluated as log1p((c_i - c_{i-1}) / c_{i-1})); first value at i = 30. A log
                   return whose ratio is not positive is NULL, and so is every window holding it.
volume_zscore_20   (volume_i - mean of the last 20 volumes) / their sample std (ddof 1); NULL for
                   i < 19 and when the std is 0 (flat window).
vwap_session       sum((high+low+close)/3 * volume) / sum(volume) over s up to this bar.
session_return     close / open of the session's first bar - 1 (evaluated as (c - o) / o).
session_high/low   max high / min low over s up to this bar.
Any result that is NaN or +-inf (e.g. zero volume so far in a session) is NULL in the reference.

Comparison
----------
Each --got CSV must have exactly the header
    instrument,ts,trade_date,close,return_1m,...,session_low   (see COLUMNS below, same order)
`ts` is parsed as ISO 8601 / RFC 3339 with any offset (`2026-07-14T03:45:00Z`,
`2026-07-14 03:45:00+00:00`, `2026-07-14 09:15:00+05:30`, ...) and matched as an instant; naive
timestamps are rejected unless --naive-ts says what they mean. An empty cell is NULL; a literal
`NaN`/`inf` is a value and never equals NULL. Rows are matched one-to-one on (instrument, ts):
missing, extra and duplicate rows are failures. trade_date must equal the reference's exactly.
Floats pass when |got - expected| <= atol + rtol * max(|got|, |expected|) (rtol 1e-9,
atol 1e-12); NULL must face NULL.

Exit status: 0 all --got files match, 1 a mismatch, 2 bad input (no bars, unreadable file,
bad header, ...).

Examples
--------
    intraday_reference.py --bars-dir DIR --exchange NSE --got live.csv --got batch.csv
    intraday_reference.py --bars-dir DIR --exchange NSE --write-expected expected.csv
"""

import argparse
import csv
import datetime as dt
import math
import os
import re
import sys

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

VIEW = "intraday_features"
REL_TOL = 1e-9
ABS_TOL = 1e-12
MAX_SHOWN = 20
TOL_TEXT = "rtol 1e-9"  # REL_TOL as the e2e test greps for it

IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
SESSION_OPEN_MIN = 9 * 60 + 15  # 09:15 IST, first regular bar start (inclusive)
SESSION_CLOSE_MIN = 15 * 60 + 30  # 15:30 IST, regular bars start strictly before this

BAR_FILE = re.compile(r"^(?P<symbol>.+)_(?P<date>\d{4}-\d{2}-\d{2})_1min\.csv$")
BAR_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]

KEYS = ["instrument", "ts"]
FLOAT_COLUMNS = [
    "close",
    "return_1m",
    "return_5m",
    "return_15m",
    "sma_15",
    "sma_60",
    "ema_20",
    "rsi_14",
    "realized_vol_30",
    "volume_zscore_20",
    "vwap_session",
    "session_return",
    "session_high",
    "session_low",
]
COLUMNS = KEYS + ["trade_date"] + FLOAT_COLUMNS


class InputError(Exception):
    """Bad input: reported with exit status 2."""


# --------------------------------------------------------------------------------------------
# Loading the bars
# --------------------------------------------------------------------------------------------


def load_bars(bars_dir, exchange):
    """All regular-session bars of the dir, one row per (instrument, ts), sorted."""
    if not os.path.isdir(bars_dir):
        raise InputError(f"--bars-dir {bars_dir!r} is not a directory")
    frames = []
    for name in sorted(os.listdir(bars_dir)):
        m = BAR_FILE.match(name)
        if not m:
            continue
        path = os.path.join(bars_dir, name)
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as e:  # noqa: BLE001 - any parse failure is an input error
            raise InputError(f"{path}: cannot read: {e}") from e
        df.columns = [c.strip() for c in df.columns]
        if list(df.columns) != BAR_COLUMNS:
            raise InputError(f"{path}: header {list(df.columns)}, expected {BAR_COLUMNS}")
        try:
            ts = pd.to_datetime(df["ts"].str.strip(), format="ISO8601", utc=False)
        except Exception as e:  # noqa: BLE001
            raise InputError(f"{path}: cannot parse ts: {e}") from e
        if getattr(ts.dt, "tz", None) is None:
            raise InputError(f"{path}: ts has no UTC offset (expected like 2026-07-14 09:15:00+05:30)")
        out = pd.DataFrame({"instrument": f"{exchange}:{m['symbol']}", "ts": ts.dt.tz_convert("UTC")})
        for col in BAR_COLUMNS[1:]:
            vals = pd.to_numeric(df[col].str.strip(), errors="coerce").astype(float)
            if not np.isfinite(vals).all():
                bad = int(np.nonzero(~np.isfinite(vals.to_numpy()))[0][0])
                raise InputError(f"{path}: line {bad + 2}: {col} {df[col].iloc[bad]!r} is not a finite number")
            out[col] = vals.to_numpy()
        out["file"] = name
        out["file_date"] = m["date"]
        frames.append(out)
    if not frames:
        raise InputError(f"no *_YYYY-MM-DD_1min.csv bar files in {bars_dir}")
    bars = pd.concat(frames, ignore_index=True)
    n_files = len(frames)
    n_all = len(bars)

    ist = bars["ts"].dt.tz_convert(IST)
    bars["trade_date"] = ist.dt.strftime("%Y-%m-%d")
    off_date = bars[bars["trade_date"] != bars["file_date"]]
    if len(off_date):
        print(f"warning: {len(off_date)} bars have an IST date other than their file name's "
              f"(first: {off_date['file'].iloc[0]} {ist[off_date.index[0]]})", file=sys.stderr)
    minute = ist.dt.hour * 60 + ist.dt.minute
    regular = (minute >= SESSION_OPEN_MIN) & (minute < SESSION_CLOSE_MIN)
    bars = bars[regular.to_numpy()]

    dup = bars[bars.duplicated(KEYS, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise InputError(f"{len(dup)} bars share an (instrument, ts) with another, e.g. {first['instrument']} "
                         f"{first['ts']} in {sorted(set(dup['file']))[:4]}")
    bars = bars.sort_values(KEYS, kind="stable").reset_index(drop=True)
    print(f"bars: {n_files} files, {n_all} bars, {len(bars)} in the regular session "
          f"({n_all - len(bars)} outside 09:15-15:29 IST dropped)")
    return bars.drop(columns=["file", "file_date"])


# --------------------------------------------------------------------------------------------
# The reference computation
# --------------------------------------------------------------------------------------------


def windows(values, n, fn):
    """fn applied to each full window of the last n values (row-wise, two-pass); NaN before."""
    out = np.full(len(values), np.nan)
    if len(values) >= n:
        out[n - 1 :] = fn(sliding_window_view(values, n))
    return out


def sample_std(w):
    mean = w.mean(axis=1, keepdims=True)
    return np.sqrt(((w - mean) ** 2).sum(axis=1) / (w.shape[1] - 1))


def lag(values, k):
    out = np.full(len(values), np.nan)
    if len(values) > k:
        out[k:] = values[:-k]
    return out


def pct_change(c, k):
    base = lag(c, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(base == 0, np.nan, (c - base) / base)


def log_return_1(c):
    prev = lag(c, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = (prev != 0) & (c != 0) & ((c > 0) == (prev > 0))
        return np.where(positive, np.log1p((c - prev) / prev), np.nan)


def rsi(c, n=14):
    """Wilder's RSI; first value at row n; 100 when the average loss is 0 (flat included)."""
    out = np.full(len(c), np.nan)
    if len(c) <= n:
        return out
    d = np.diff(c)  # d[j] is the diff ending at row j + 1
    gains, losses = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    avg_gain, avg_loss = gains[:n].mean(), losses[:n].mean()
    for row in range(n, len(c)):
        if row > n:
            avg_gain = (avg_gain * (n - 1) + gains[row - 1]) / n
            avg_loss = (avg_loss * (n - 1) + losses[row - 1]) / n
        out[row] = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


def per_instrument(g):
    """All w-window features of one instrument (rows sorted by ts)."""
    c = g["close"].to_numpy()
    v = g["volume"].to_numpy()
    f = {"close": c}
    for k in (1, 5, 15):
        f[f"return_{k}m"] = pct_change(c, k)
    for n in (15, 60):
        f[f"sma_{n}"] = windows(c, n, lambda w: w.mean(axis=1))
    f["ema_20"] = pd.Series(c).ewm(span=20, adjust=False, min_periods=20).mean().to_numpy()
    f["rsi_14"] = rsi(c, 14)
    lr = log_return_1(c)
    # lr[0] is NULL, so the first full window of returns ends at row 30.
    f["realized_vol_30"] = np.concatenate([[np.nan], windows(lr[1:], 30, sample_std)])[: len(c)]
    vmean = windows(v, 20, lambda w: w.mean(axis=1))
    vstd = windows(v, 20, sample_std)
    with np.errstate(divide="ignore", invalid="ignore"):
        f["volume_zscore_20"] = np.where(vstd == 0, np.nan, (v - vmean) / vstd)
    return pd.DataFrame(f, index=g.index)


def per_session(g):
    """All s-window (session) features of one instrument and trade date (rows sorted by ts)."""
    h, lo, c, v = (g[k].to_numpy() for k in ("high", "low", "close", "volume"))
    o0 = g["open"].to_numpy()[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = np.cumsum((h + lo + c) / 3.0 * v) / np.cumsum(v)
        session_return = (c - o0) / o0
    return pd.DataFrame(
        {
            "vwap_session": vwap,
            "session_return": session_return,
            "session_high": np.maximum.accumulate(h),
            "session_low": np.minimum.accumulate(lo),
        },
        index=g.index,
    )


def reference(bars):
    w = pd.concat([per_instrument(g) for _, g in bars.groupby("instrument", sort=True)])
    s = pd.concat([per_session(g) for _, g in bars.groupby(["instrument", "trade_date"], sort=True)])
    ref = pd.concat([bars[KEYS + ["trade_date"]], w, s], axis=1)[COLUMNS]
    for col in FLOAT_COLUMNS:
        x = ref[col].to_numpy(dtype=float)
        ref[col] = np.where(np.isfinite(x), x, np.nan)
    return ref.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Reading and comparing the exports
# --------------------------------------------------------------------------------------------


def fmt_float(x):
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(float(x))


def fmt_ts(ts, tz):
    t = ts.tz_convert(IST if tz == "ist" else "UTC").to_pydatetime()
    if tz == "ist":
        return t.isoformat()
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "") + "Z"


def write_expected(ref, path, tz):
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(COLUMNS)
        for row in ref.itertuples(index=False):
            out.writerow([row.instrument, fmt_ts(row.ts, tz), row.trade_date]
                         + [fmt_float(getattr(row, c)) for c in FLOAT_COLUMNS])
    print(f"wrote {len(ref)} expected rows to {path} (ts in {tz.upper()})")


def parse_cell(text):
    """Empty -> None (NULL); otherwise a float (NaN/inf kept as such); unparsable -> the string."""
    text = text.strip()
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def load_got(path, naive_ts):
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: cannot read: {e}") from e
    header = [c.strip() for c in df.columns]
    if header != COLUMNS:
        missing = [c for c in COLUMNS if c not in header]
        extra = [c for c in header if c not in COLUMNS]
        raise InputError(f"{path}: header is {header}\n  expected exactly {COLUMNS}\n"
                         f"  missing {missing}, unexpected {extra}"
                         + ("" if missing or extra else " (order differs)"))
    df.columns = header
    raw_ts = df["ts"].str.strip()
    try:
        ts = pd.to_datetime(raw_ts, format="ISO8601", utc=True)
    except Exception as e:  # noqa: BLE001 - fall back to a per-cell message below
        bad = []
        for i, t in enumerate(raw_ts):
            try:
                pd.Timestamp(t)
            except Exception:  # noqa: BLE001
                bad.append((i, t))
        where = f" (line {bad[0][0] + 2}: {bad[0][1]!r})" if bad else ""
        raise InputError(f"{path}: cannot parse ts{where}: {e}") from e
    naive = ~raw_ts.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True)
    if naive.any():
        if naive_ts == "reject":
            i = int(np.nonzero(naive.to_numpy())[0][0])
            raise InputError(f"{path}: line {i + 2}: ts {raw_ts.iloc[i]!r} has no offset; pass --naive-ts utc|ist "
                             "if that is what the export means")
        if naive_ts == "ist":
            naive_local = pd.to_datetime(raw_ts[naive], format="ISO8601").dt.tz_localize(IST).dt.tz_convert("UTC")
            ts = ts.copy()
            ts[naive] = naive_local
    got = pd.DataFrame({"instrument": df["instrument"].str.strip(), "ts": ts, "trade_date": df["trade_date"].str.strip()})
    for col in FLOAT_COLUMNS:
        # object dtype on purpose: keeps NULL (None) apart from a literal NaN.
        got[col] = pd.Series([parse_cell(x) for x in df[col]], index=df.index, dtype=object)
    got["line"] = np.arange(2, len(df) + 2)
    return got


def same_float(exp, got):
    if exp is None or got is None:
        return exp is None and got is None
    if not isinstance(got, float):
        return False
    if math.isnan(exp) or math.isnan(got):
        return False
    if math.isinf(exp) or math.isinf(got):
        return exp == got
    return abs(got - exp) <= ABS_TOL + REL_TOL * max(abs(got), abs(exp))


def show(x):
    if x is None:
        return "NULL"
    return repr(x)


def compare(ref, got):
    """Returns (problems, per-column counts of non-NULL values compared, rows matched).

    A problem is (instrument, ts, column, expected, got); column "(row)" for row-level ones.
    """
    problems = []
    exp_rows = {(r[0], r[1]): r for r in ref[COLUMNS].itertuples(index=False, name=None)}
    got_rows = {}
    for r in got[COLUMNS + ["line"]].itertuples(index=False, name=None):
        key = (r[0], r[1])
        if key in got_rows:
            problems.append((key[0], key[1], "(row)", "one row", f"duplicate row, line {r[-1]}"))
            continue
        got_rows[key] = r
    for key in exp_rows.keys() - got_rows.keys():
        problems.append((key[0], key[1], "(row)", "present", "missing"))
    for key in got_rows.keys() - exp_rows.keys():
        problems.append((key[0], key[1], "(row)", "absent", f"extra row, line {got_rows[key][-1]}"))

    counts = {c: 0 for c in COLUMNS[2:]}
    matched = exp_rows.keys() & got_rows.keys()
    for key in matched:
        e_row, g_row = exp_rows[key], got_rows[key]
        if e_row[2] != g_row[2]:
            problems.append((key[0], key[1], "trade_date", e_row[2], g_row[2] or "NULL"))
        else:
            counts["trade_date"] += 1
        for i, col in enumerate(FLOAT_COLUMNS, start=3):
            e = e_row[i]
            e = None if math.isnan(e) else float(e)
            g = g_row[i]
            if not same_float(e, g):
                problems.append((key[0], key[1], col, show(e), show(g)))
            elif e is not None:
                counts[col] += 1
    problems.sort(key=lambda p: (p[0], p[1], COLUMNS.index(p[2]) if p[2] in COLUMNS else -1))
    return problems, counts, len(matched)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Recompute the intraday_features view from raw 1-minute bar CSVs with pandas/numpy "
                    "and compare it with CSV exports from the server. The full definitions are in the "
                    "module docstring (read this file's header).",
        epilog="exit status: 0 every --got file matches; 1 a mismatch; 2 bad input or usage",
    )
    ap.add_argument("--bars-dir", required=True,
                    help="folder of {SYMBOL}_{YYYY-MM-DD}_1min.csv bar files (header ts,open,high,low,close,volume); "
                         "other files are ignored")
    ap.add_argument("--exchange", required=True, help="exchange prefix of the instrument, e.g. NSE -> 'NSE:TCS'")
    ap.add_argument("--got", action="append", default=[], metavar="CSV",
                    help="CSV export of intraday_features to check (repeatable); header must be exactly: "
                         + ",".join(COLUMNS) + "; an empty cell is NULL")
    ap.add_argument("--write-expected", metavar="PATH",
                    help="also write the reference in the same CSV layout (floats as shortest round-trip "
                         "repr, NULL as an empty cell)")
    ap.add_argument("--write-tz", choices=("utc", "ist"), default="utc",
                    help="how --write-expected writes ts: utc '2026-07-14T03:45:00Z' (default) or ist "
                         "'2026-07-14T09:15:00+05:30'")
    ap.add_argument("--naive-ts", choices=("reject", "utc", "ist"), default="reject",
                    help="what a --got ts without an offset means (default: reject it as an input error)")
    args = ap.parse_args(argv)

    try:
        bars = load_bars(args.bars_dir, args.exchange)
        ref = reference(bars)
        print(f"{VIEW}: {len(ref)} rows, {ref['instrument'].nunique()} instruments, "
              f"{ref[['instrument', 'trade_date']].drop_duplicates().shape[0]} sessions")
        if args.write_expected:
            write_expected(ref, args.write_expected, args.write_tz)
        gots = [(path, load_got(path, args.naive_ts)) for path in args.got]
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    failed = False
    for path, got in gots:
        problems, counts, matched = compare(ref, got)
        print(f"{path}: {len(got)} rows, {matched} matched on (instrument, ts); non-NULL values compared per column:")
        print("  " + ", ".join(f"{c} {n}" for c, n in counts.items()))
        if problems:
            failed = True
            by_col = {}
            for p in problems:
                by_col[p[2]] = by_col.get(p[2], 0) + 1
            print(f"MISMATCH: {path}: {len(problems)} difference(s) ("
                  + ", ".join(f"{c} {n}" for c, n in by_col.items()) + f"); first {min(MAX_SHOWN, len(problems))}:")
            print("  instrument | ts (IST) | column | expected | got")
            for inst, ts, col, e, g in problems[:MAX_SHOWN]:
                ts_text = fmt_ts(ts, "ist") if isinstance(ts, pd.Timestamp) else str(ts)
                print(f"  {inst} | {ts_text} | {col} | {e} | {g}")
        else:
            print(f"OK: {path} matches ({TOL_TEXT}, NULLs included)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
