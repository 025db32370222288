#!/usr/bin/env python3
"""Independent reference for bhavstore's feature views, computed straight from BSE's CSV files.

Shares no code with bhavstore: it reads the raw legacy 14-column bhavcopies with pandas, takes
the trade date from the file name, keeps SC_TYPE 'Q' rows, and computes every feature of
`price_features` and `volatility_features` with pandas/numpy (two-pass window statistics on
explicit sliding windows, pandas `ewm` for EMA, hand-written Wilder recursions). Then it compares
value by value with CSV exports of the views, NULL pattern included.

With --factors (a CSV of scrip_code, ex_session, price_factor: the split and bonus factors in
force), prices are adjusted the way a data vendor back-adjusts, recomputed as of every day: for
the row of day t, every earlier high, low and close of the security is divided (and its volume
multiplied) by the factor of each ex-session after it and on or before t, and the features of
that row are computed on that series. Nothing is shared with bhavstore's cumulative-factor
formulation but the list of factors.

    features_reference.py --bse-dir DIR --price price.csv --volatility vol.csv [--factors f.csv]

Exits 1 on any mismatch, listing the first ones; prints the number of values checked.
"""

import argparse
import glob
import math
import os
import sys

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

REL_TOL = 1e-9
ABS_TOL = 1e-9


def load(bse_dir):
    frames = []
    for path in sorted(glob.glob(os.path.join(bse_dir, "EQ*.CSV"))):
        name = os.path.basename(path)
        dd, mm, yy = name[2:4], name[4:6], name[6:8]
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df.columns = [c.strip() for c in df.columns]
        df = df[df["SC_TYPE"].str.strip() == "Q"]
        out = pd.DataFrame(
            {
                "scrip_code": df["SC_CODE"].astype(int),
                "trade_date": pd.Timestamp(f"20{yy}-{mm}-{dd}"),
                "high": df["HIGH"].astype(float),
                "low": df["LOW"].astype(float),
                "close": df["CLOSE"].astype(float),
                "volume": df["NO_OF_SHRS"].astype(float),
            }
        )
        frames.append(out)
    data = pd.concat(frames, ignore_index=True)
    return data.sort_values(["scrip_code", "trade_date"], kind="stable").reset_index(drop=True)


def windows(values, n, fn):
    """fn applied to each full window of the last n values (two-pass, exact); NaN before."""
    out = np.full(len(values), np.nan)
    if len(values) >= n:
        w = sliding_window_view(values, n)
        out[n - 1 :] = fn(w)
    return out


def sample_std(w):
    mean = w.mean(axis=1, keepdims=True)
    return np.sqrt(((w - mean) ** 2).sum(axis=1) / (w.shape[1] - 1))


def wilder(values, n, first_index):
    """Wilder smoothing: mean of values[first_index : first_index + n], then (prev*(n-1)+v)/n."""
    out = np.full(len(values), np.nan)
    start = first_index + n - 1
    if len(values) <= start:
        return out
    avg = values[first_index : first_index + n].mean()
    out[start] = avg
    for i in range(start + 1, len(values)):
        avg = (avg * (n - 1) + values[i]) / n
        out[i] = avg
    return out


def rsi(close, n=14):
    diff = np.diff(close)
    gains = np.concatenate([[np.nan], np.maximum(diff, 0.0)])
    losses = np.concatenate([[np.nan], np.maximum(-diff, 0.0)])
    avg_gain = wilder(gains, n, 1)
    avg_loss = wilder(losses, n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    r = np.where((avg_loss == 0) & ~np.isnan(avg_gain), 100.0, r)
    return r


def per_security(g):
    c = g["close"].to_numpy()
    h = g["high"].to_numpy()
    lo = g["low"].to_numpy()
    v = g["volume"].to_numpy()
    prev = np.concatenate([[np.nan], c[:-1]])
    f = {}
    f["return_1d"] = c / prev - 1.0
    f["log_return_1d"] = np.log(c / prev)
    for n in (5, 20, 50):
        f[f"sma_{n}"] = windows(c, n, lambda w: w.mean(axis=1))
    for n in (12, 26):
        f[f"ema_{n}"] = pd.Series(c).ewm(span=n, adjust=False, min_periods=n).mean().to_numpy()
    f["close_lag_1"] = prev
    f["close_lag_5"] = np.concatenate([[np.nan] * min(5, len(c)), c[:-5]]) if len(c) > 5 else np.full(len(c), np.nan)
    lag10 = np.concatenate([[np.nan] * 10, c[:-10]]) if len(c) > 10 else np.full(len(c), np.nan)
    f["momentum_10"] = c / lag10 - 1.0
    f["rsi_14"] = rsi(c, 14)
    std20 = windows(c, 20, sample_std)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (c - f["sma_20"]) / std20
    f["zscore_20"] = np.where(std20 == 0, np.nan, z)
    f["volume_sma_20"] = windows(v, 20, lambda w: w.mean(axis=1))

    ret = f["return_1d"]
    # The first return is NULL, so a window containing it is NULL: windows start at row 1.
    std_r20 = np.concatenate([[np.nan], windows(ret[1:], 20, sample_std)])
    std_r60 = np.concatenate([[np.nan], windows(ret[1:], 60, sample_std)])
    f["std_20"] = std_r20
    f["volatility_20"] = std_r20 * math.sqrt(252.0)
    f["volatility_60"] = std_r60 * math.sqrt(252.0)
    f["high_low_range"] = (h - lo) / c
    tr = np.where(np.isnan(prev), h - lo, np.maximum.reduce([h - lo, np.abs(h - prev), np.abs(lo - prev)]))
    f["true_range"] = tr
    f["atr_14"] = wilder(tr, 14, 0)
    f["atr_14_pct"] = f["atr_14"] / c
    with np.errstate(divide="ignore", invalid="ignore"):
        lhl = np.where(lo > 0, np.log(h / lo), np.nan)
    f["parkinson_vol_20"] = np.sqrt(windows(lhl * lhl, 20, lambda w: w.mean(axis=1)) / (4.0 * math.log(2.0)) * 252.0)
    f["drawdown_20"] = c / windows(c, 20, lambda w: w.max(axis=1)) - 1.0
    return pd.DataFrame(f, index=g.index)


def adjusted_as_of_each_day(g, steps):
    """Features of one security whose ex-sessions are `steps` ({trade_date: factor}): row t is
    computed on the history back-adjusted as of t (only the steps on or before t apply)."""
    g = g.reset_index()
    dates = g["trade_date"].to_list()
    rows = []
    for i in range(len(g)):
        hist = g.iloc[: i + 1].copy()
        for ex, factor in steps.items():
            if ex > dates[i]:
                continue
            before = hist["trade_date"] < ex
            for col in ("high", "low", "close"):
                hist.loc[before, col] = hist.loc[before, col] / factor
            hist.loc[before, "volume"] = hist.loc[before, "volume"] * factor
        rows.append(per_security(hist).iloc[-1])
    out = pd.DataFrame(rows)
    out.index = g["index"].to_numpy()
    return out


def compare(ref, got, columns, label, problems):
    merged = ref.merge(got, on=["scrip_code", "trade_date"], how="outer", suffixes=("_ref", "_got"), indicator=True)
    only = merged[merged["_merge"] != "both"]
    for _, row in only.head(5).iterrows():
        problems.append(f"{label}: row {row['scrip_code']} {row['trade_date']} only in {row['_merge']}")
    merged = merged[merged["_merge"] == "both"]
    checked = 0
    for col in columns:
        a = merged[f"{col}_ref"].to_numpy(dtype=float)
        b = merged[f"{col}_got"].to_numpy(dtype=float)
        a_null, b_null = np.isnan(a), np.isnan(b)
        null_diff = np.nonzero(a_null != b_null)[0]
        for i in null_diff[:5]:
            r = merged.iloc[i]
            problems.append(f"{label}.{col} {r['scrip_code']} {r['trade_date'].date()}: reference {a[i]} bhavstore {b[i]} (NULL differs)")
        both = ~a_null & ~b_null
        close = np.isclose(b[both], a[both], rtol=REL_TOL, atol=ABS_TOL)
        bad = np.nonzero(both)[0][~close]
        for i in bad[:5]:
            r = merged.iloc[i]
            problems.append(f"{label}.{col} {r['scrip_code']} {r['trade_date'].date()}: reference {a[i]!r} bhavstore {b[i]!r}")
        checked += int(both.sum()) + int((a_null & b_null).sum())
    return checked, len(merged)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bse-dir", required=True, help="folder of legacy EQDDMMYY.CSV files")
    ap.add_argument("--price", required=True, help="CSV export of price_features")
    ap.add_argument("--volatility", required=True, help="CSV export of volatility_features")
    ap.add_argument("--factors", help="CSV of scrip_code, ex_session, price_factor (adjusted views)")
    args = ap.parse_args()

    data = load(args.bse_dir)
    feats = data.groupby("scrip_code", group_keys=False, sort=False).apply(per_security, include_groups=False)
    if args.factors:
        factors = pd.read_csv(args.factors, parse_dates=["ex_session"])
        steps = {}
        for r in factors.itertuples():
            d = steps.setdefault(int(r.scrip_code), {})
            d[r.ex_session] = d.get(r.ex_session, 1.0) * float(r.price_factor)
        for scrip, st in steps.items():
            g = data[data["scrip_code"] == scrip]
            if len(g):
                feats.loc[g.index] = adjusted_as_of_each_day(g, st)[feats.columns].to_numpy()
        print(f"adjusted as of each day: {len(steps)} securities with split or bonus factors")
    ref = pd.concat([data[["scrip_code", "trade_date", "close"]], feats], axis=1)

    price_cols = ["close", "return_1d", "log_return_1d", "sma_5", "sma_20", "sma_50", "ema_12", "ema_26",
                  "close_lag_1", "close_lag_5", "momentum_10", "rsi_14", "zscore_20", "volume_sma_20"]
    vol_cols = ["std_20", "volatility_20", "volatility_60", "high_low_range", "true_range", "atr_14",
                "atr_14_pct", "parkinson_vol_20", "drawdown_20"]
    problems = []
    total = 0
    for path, cols, label in ((args.price, price_cols, "price_features"), (args.volatility, vol_cols, "volatility_features")):
        got = pd.read_csv(path, parse_dates=["trade_date"])
        missing = [c for c in cols if c not in got.columns]
        if missing:
            problems.append(f"{label}: columns missing from the export: {missing}")
            continue
        checked, rows = compare(ref[["scrip_code", "trade_date"] + cols], got[["scrip_code", "trade_date"] + cols], cols, label, problems)
        print(f"{label}: {rows} rows, {checked} values checked")
        total += checked
    if problems:
        print(f"{len(problems)} mismatches (first ones):")
        for p in problems[:40]:
            print("  " + p)
        return 1
    print(f"OK: {total} values agree with the independent reference (rtol {REL_TOL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
