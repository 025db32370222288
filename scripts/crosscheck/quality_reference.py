#!/usr/bin/env python3
"""Independent reference for bhavstore's quality figures of price_features (bhavstore_quality).

Computes, from BSE's raw CSV files with pandas/numpy (features from features_reference.py),
the figures bhavstore reports for the newest session of a run, and compares them with a CSV
export of `bhavstore_quality` for that run:

* per feature: rows of the newest session, NULL count and rate;
* per feature: population stability index of the newest session's non-NULL values against the
  60 sessions before it, computed here with numpy on the values of the `price_features` export
  (the values themselves are checked by features_reference.py; recomputing them here would make
  the index hinge on last-bit differences at bin edges, where many values tie) (bins at the reference's deciles: edges sorted[i*len//10], i = 1..9,
  duplicates dropped, a value goes to the bin counting the edges <= it; proportions floored at
  1e-4; PSI = sum (p - q) ln(p / q));
* for the view: securities present the session before but missing on the newest one, and moves
  with |close / prev_close - 1| > 0.2001 without an ex-date flag (TDCLOINDI empty).

    quality_reference.py --bse-dir DIR --quality quality.csv --features price_features.csv

Exits 1 on any mismatch.
"""

import argparse
import glob
import math
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from features_reference import load, per_security  # noqa: E402

PRICE = ["close", "return_1d", "log_return_1d", "sma_5", "sma_20", "sma_50", "ema_12", "ema_26",
         "close_lag_1", "close_lag_5", "momentum_10", "rsi_14", "zscore_20", "volume_sma_20"]


def psi(reference, current):
    if len(reference) < 20 or len(current) < 10:
        return None
    s = np.sort(reference)
    edges = np.unique(np.array([s[i * len(s) // 10] for i in range(1, 10)]))
    def hist(xs):
        counts = np.bincount(np.searchsorted(edges, xs, side="right"), minlength=len(edges) + 1)
        return np.maximum(counts / len(xs), 1e-4)
    q, p = hist(reference), hist(current)
    return float(((p - q) * np.log(p / q)).sum())


def suspicious(bse_dir, day):
    path = os.path.join(bse_dir, f"EQ{day:%d%m%y}.CSV")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]
    df = df[df["SC_TYPE"].str.strip() == "Q"]
    close, prev = df["CLOSE"].astype(float), df["PREVCLOSE"].astype(float)
    flag = df["TDCLOINDI"].str.strip() if "TDCLOINDI" in df.columns else pd.Series("", index=df.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        move = (close / prev - 1.0).abs()
    return int(((prev > 0) & (move > 0.2001) & (flag == "")).sum())


def close_enough(a, b):
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return b is not None and not math.isnan(b) and abs(a - b) <= 1e-9 * max(1.0, abs(a))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bse-dir", required=True)
    ap.add_argument("--quality", required=True, help="CSV export of bhavstore_quality for one run")
    ap.add_argument("--features", required=True, help="CSV export of price_features")
    args = ap.parse_args()
    data = load(args.bse_dir)
    feats = data.groupby("scrip_code", group_keys=False, sort=False).apply(per_security, include_groups=False)
    ref = pd.concat([data[["scrip_code", "trade_date", "close"]], feats], axis=1)
    dates = sorted(ref["trade_date"].unique())
    last, prev = dates[-1], dates[-2]
    window = dates[-61:-1]
    got = pd.read_csv(args.quality, keep_default_na=True)
    exported = pd.read_csv(args.features, parse_dates=["trade_date"])
    problems, checked = [], 0
    today = ref[ref["trade_date"] == last]
    for f in PRICE:
        row = got[got["feature"] == f]
        if len(row) != 1:
            problems.append(f"{f}: {len(row)} rows in the export")
            continue
        row = row.iloc[0]
        values = today[f].to_numpy(dtype=float)
        nulls = int(np.isnan(values).sum())
        e_ref = exported[exported["trade_date"].isin(window)][f].dropna().to_numpy(dtype=float)
        e_now = exported[exported["trade_date"] == last][f].dropna().to_numpy(dtype=float)
        exp_psi = psi(e_ref, e_now)
        got_psi = None if pd.isna(row["psi"]) else float(row["psi"])
        for name, e, g in (("row_count", len(values), int(row["row_count"])), ("null_count", nulls, int(row["null_count"]))):
            checked += 1
            if e != g:
                problems.append(f"{f}.{name}: reference {e}, bhavstore {g}")
        checked += 1
        if not close_enough(exp_psi, got_psi):
            problems.append(f"{f}.psi: reference {exp_psi}, bhavstore {got_psi}")
    view = got[got["feature"].isna()]
    if len(view) != 1:
        problems.append(f"view-level rows: {len(view)}")
    else:
        view = view.iloc[0]
        before = set(ref[ref["trade_date"] == prev]["scrip_code"])
        now = set(today["scrip_code"])
        exp_missing = len(before - now)
        exp_susp = suspicious(args.bse_dir, pd.Timestamp(last))
        for name, e, g in (("missing_entities", exp_missing, int(view["missing_entities"])),
                           ("suspicious_returns", exp_susp, int(view["suspicious_returns"]))):
            checked += 1
            if e != g:
                problems.append(f"{name}: reference {e}, bhavstore {g}")
    if problems:
        print("\n".join(problems))
        return 1
    print(f"OK: {checked} quality figures agree with the independent reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
