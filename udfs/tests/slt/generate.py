#!/usr/bin/env python3
"""Writes the .slt files of this folder, with expected values computed independently of the
Rust code: pandas for rolling windows, EMA and returns, a hand-written Wilder RSI.

    pip install pandas && python3 udfs/tests/slt/generate.py

Floats are printed as the harness prints them: 6 decimals, trailing zeros trimmed.
Edit this script (not the .slt files) to change a case, and re-run it.
"""

import math
import os

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))

# (sym, t, px, vol). t has gaps (missing days) on purpose: windows count rows, not days.
# A has a NULL price at t=8, C is a single-row partition. Prices are multiples of 0.5 so
# CAST(px AS FLOAT) is exact.
PRICES = [
    ("A", 1, 10.0, 100), ("A", 2, 11.0, 150), ("A", 3, 12.5, 120), ("A", 6, 12.0, 130),
    ("A", 8, None, 90), ("A", 9, 13.0, 110), ("A", 10, 13.5, 160), ("A", 13, 12.5, 170),
    ("A", 14, 14.0, 200),
    ("B", 1, 200.0, 10), ("B", 2, 202.0, 12), ("B", 3, 199.0, 11), ("B", 4, 205.0, 15),
    ("B", 5, 207.5, 14),
    ("C", 1, 50.0, 5),
]
# Inserted in this scrambled order so the window ORDER BY, not insertion order, matters.
INSERT_ORDER = [12, 3, 9, 0, 14, 7, 10, 5, 1, 13, 8, 4, 11, 2, 6]
assert sorted(INSERT_ORDER) == list(range(len(PRICES)))

# Prices around 1e5 with a spread of one or two ticks, and a flat series.
TICKS = [("T", i + 1, p) for i, p in enumerate([100000.01, 100000.02, 100000.03, 100000.02, 100000.01, 100000.01])]
FLAT = [("F", i + 1, 5.0) for i in range(5)]


def fmt(v):
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "NULL"
    s = f"{float(v):.6f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def sql_value(v):
    if v is None:
        return "NULL"
    if isinstance(v, str):
        return f"'{v}'"
    return repr(v)


def create_prices():
    rows = ",\n  ".join(
        "(" + ", ".join(sql_value(v) for v in PRICES[i]) + ")" for i in INSERT_ORDER
    )
    return (
        "statement ok\nCREATE TABLE prices (sym VARCHAR, t INT, px DOUBLE, vol BIGINT)\n\n"
        f"statement ok\nINSERT INTO prices VALUES\n  {rows}\n"
    )


def create_series(name, rows):
    values = ", ".join(f"('{s}', {t}, {repr(p)})" for s, t, p in rows)
    return (
        f"statement ok\nCREATE TABLE {name} (sym VARCHAR, t INT, px DOUBLE)\n\n"
        f"statement ok\nINSERT INTO {name} VALUES {values}\n"
    )


def frame(rows, column=2):
    df = pd.DataFrame([(r[0], r[1], r[column]) for r in rows], columns=["sym", "t", "x"])
    df["x"] = df["x"].astype(float)
    return df.sort_values(["sym", "t"]).reset_index(drop=True)


def per_partition(df, fn):
    """fn(series) -> series of the same index, applied to each sym separately."""
    return pd.concat([fn(g["x"]) for _, g in df.groupby("sym", sort=True)]).sort_index()


def per_segment(s, fn):
    """Applies fn to each NULL-free run of s separately (NULL rows stay NULL)."""
    out = pd.Series(np.nan, index=s.index)
    seg = s.isna().cumsum()
    for _, g in s[s.notna()].groupby(seg[s.notna()]):
        out[g.index] = fn(g)
    return out


def query(comment, expr, table, rows, fn, column=2, x="px", over="PARTITION BY sym ORDER BY t"):
    df = frame(rows, column)
    result = per_partition(df, fn)
    call = expr.format(x=x)
    lines = [f"{s} {t} {fmt(v)}" for s, t, v in zip(df["sym"], df["t"], result)]
    return (
        f"# {comment}\nquery TIR\nSELECT sym, t, {call} OVER ({over}) AS v\n"
        f"FROM {table} ORDER BY sym, t\n----\n" + "\n".join(lines) + "\n"
    )


# ------------------------------------------------------------------------------------------
# Reference computations (pandas / plain Python)

def rolling(n, how):
    return lambda s: getattr(s.rolling(n, min_periods=n), how)()


def rolling_std(n):
    def f(s):
        r = s.rolling(n, min_periods=n)
        flat = r.max() == r.min()
        return r.std(ddof=1).where(~flat, 0.0)
    return f


def zscore(n):
    def f(s):
        r = s.rolling(n, min_periods=n)
        flat = r.max() == r.min()
        return ((s - r.mean()) / r.std(ddof=1)).where(~flat, np.nan)
    return f


def ema(n):
    return lambda s: per_segment(s, lambda g: g.ewm(span=n, adjust=False, min_periods=n).mean())


def wilder_rsi(values, n):
    out = [None] * len(values)
    ag = al = 0.0
    for i in range(1, len(values)):
        d = values[i] - values[i - 1]
        g, l = max(d, 0.0), max(-d, 0.0)
        if i <= n:
            ag += g
            al += l
            if i < n:
                continue
            ag, al = ag / n, al / n
        else:
            ag = (ag * (n - 1) + g) / n
            al = (al * (n - 1) + l) / n
        out[i] = 100.0 if al == 0 else 100.0 - 100.0 / (1.0 + ag / al)
    return out


def rsi(n):
    return lambda s: per_segment(s, lambda g: pd.Series(wilder_rsi(list(g), n), index=g.index, dtype=float))


def wilder_mean(n):
    def run(g):
        vals = list(g)
        out = [np.nan] * len(vals)
        if len(vals) >= n:
            avg = sum(vals[:n]) / n
            out[n - 1] = avg
            for i in range(n, len(vals)):
                avg = (avg * (n - 1) + vals[i]) / n
                out[i] = avg
        return pd.Series(out, index=g.index, dtype=float)
    return lambda s: per_segment(s, run)


def pct_change(k):
    def f(s):
        base = s.shift(k)
        return (s / base - 1).where(base != 0, np.nan)
    return f


def log_return(k):
    def f(s):
        ratio = s / s.shift(k)
        return np.log(ratio.where(ratio > 0, np.nan))
    return f


# ------------------------------------------------------------------------------------------
# Files

HEADER = "# Generated by generate.py from independent pandas / Python references: edit that, not this.\n\n"


def bad_args(function, min_n=1):
    arg = "k" if function in ("pct_change", "log_return") else "n"
    meaning = "lag" if arg == "k" else "window length"
    req = "a positive integer literal" if min_n == 1 else f"an integer literal >= {min_n}"
    msg = f"{function}: {meaning} {arg} must be {req}, got"
    cases = [
        ("0", "0"),
        ("-3", "-3"),
        (str(min_n - 1), str(min_n - 1)) if min_n > 1 else None,
        ("2.5", "a value of type Float64"),
        ("NULL", "NULL"),
        ("vol", "the non-literal expression vol"),
        ("px", "a value of type Float64"),
    ]
    out = [f"# {function}: bad {arg}\n"]
    for case in cases:
        if case is None:
            continue
        sql_arg, got = case
        out.append(
            f"query error {msg} {got}\nSELECT {function}(px, {sql_arg}) OVER (PARTITION BY sym ORDER BY t) FROM prices\n"
        )
    return "\n".join(out)


def odd_values():
    """NaN and infinities count as NULL; results that would overflow are NULL."""
    nan_rows = [("N", 1, "1.0"), ("N", 2, "CAST('NaN' AS DOUBLE)"), ("N", 3, "2.0"),
                ("N", 4, "CAST('Infinity' AS DOUBLE)"), ("N", 5, "4.0"), ("N", 6, "8.0")]
    big_rows = [("O", 1, "1e308"), ("O", 2, "-1e308"), ("O", 3, "1e-300"), ("O", 4, "1e300")]
    values = ", ".join(f"('{s}', {t}, {v})" for s, t, v in nan_rows + big_rows)
    n_px = [1.0, None, 2.0, None, 4.0, 8.0]  # NaN / Infinity as NULL
    o_px = [1e308, -1e308, 1e-300, 1e300]

    def pct(xs, k=1):
        out = []
        for i, x in enumerate(xs):
            b = xs[i - k] if i >= k else None
            r = None if x is None or b is None or b == 0 else x / b - 1
            out.append(None if r is None or math.isinf(r) else r)
        return out

    def rsum2(xs):
        return [None if i == 0 or xs[i] is None or xs[i - 1] is None else xs[i] + xs[i - 1] for i in range(len(xs))]

    def block(comment, call, sym, out):
        lines = "\n".join(f"{sym} {t} {fmt(v)}" for t, v in zip(range(1, len(out) + 1), out))
        return (f"# {comment}\nquery TIR\nSELECT sym, t, {call} OVER (PARTITION BY sym ORDER BY t)\n"
                f"FROM odd WHERE sym = '{sym}' ORDER BY t\n----\n{lines}\n")

    return (
        "statement ok\nCREATE TABLE odd (sym VARCHAR, t INT, px DOUBLE)\n\n"
        f"statement ok\nINSERT INTO odd VALUES {values}\n\n"
        + block("NaN and infinity count as NULL", "sma(px, 1)", "N", n_px)
        + "\n"
        + block("a NaN / infinity inside the window makes the window NULL", "rolling_sum(px, 2)", "N", rsum2(n_px))
        + "\n"
        + block("pct_change: NaN / infinity inputs are NULL", "pct_change(px, 1)", "N", pct(n_px))
        + "\n"
        + block("pct_change: no spurious overflow in x - base (-2); an infinite result is NULL",
                "pct_change(px, 1)", "O", pct(o_px))
    )


def write(name, parts):
    with open(os.path.join(HERE, f"{name}.slt"), "w") as f:
        f.write(HEADER + "\n".join(parts))


def main():
    p = PRICES
    write("sma_sum", [
        create_prices(),
        query("sma: NULL for 2 warm-up rows, NULL while A's NULL (t=8) is in the window, single-row C stays NULL",
              "sma({x}, 3)", "prices", p, rolling(3, "mean")),
        query("sma with n = 1 is the value itself", "sma({x}, 1)", "prices", p, rolling(1, "mean")),
        query("sma longer than every partition: all NULL", "sma({x}, 10)", "prices", p, rolling(10, "mean")),
        query("sma of Float32 input", "sma(CAST(px AS FLOAT), 2)", "prices", p, rolling(2, "mean")),
        query("rolling_sum of Int64 input", "rolling_sum({x}, 2)", "prices", p, rolling(2, "sum"), column=3, x="vol"),
        query("rolling_sum of Float64 input", "rolling_sum({x}, 4)", "prices", p, rolling(4, "sum")),
        query("a window frame clause is ignored: the window is always the last n rows",
              "sma({x}, 2)", "prices", p, rolling(2, "mean"),
              over="PARTITION BY sym ORDER BY t ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"),
        bad_args("sma"),
        bad_args("rolling_sum"),
    ])
    write("rolling_std", [
        create_prices(),
        create_series("ticks", TICKS),
        create_series("flat", FLAT),
        query("sample std (ddof 1): warm-up, NULL inside the window, single-row partition",
              "rolling_std({x}, 3)", "prices", p, rolling_std(3)),
        query("n = 2", "rolling_std({x}, 2)", "prices", p, rolling_std(2)),
        query("Int64 input", "rolling_std({x}, 3)", "prices", p, rolling_std(3), column=3, x="vol"),
        query("Float32 input", "rolling_std(CAST(px AS FLOAT), 4)", "prices", p, rolling_std(4)),
        query("prices around 1e5 with a spread of 0.01: no cancellation", "rolling_std({x}, 3)", "ticks", TICKS, rolling_std(3)),
        query("a flat window has std exactly 0", "rolling_std({x}, 3)", "flat", FLAT, rolling_std(3)),
        bad_args("rolling_std", min_n=2),
    ])
    write("rolling_minmax", [
        create_prices(),
        query("rolling_min: warm-up, NULL inside the window, single-row partition",
              "rolling_min({x}, 3)", "prices", p, rolling(3, "min")),
        query("rolling_max", "rolling_max({x}, 3)", "prices", p, rolling(3, "max")),
        query("rolling_max of Int64 input", "rolling_max({x}, 2)", "prices", p, rolling(2, "max"), column=3, x="vol"),
        query("rolling_min of Float32 input", "rolling_min(CAST(px AS FLOAT), 2)", "prices", p, rolling(2, "min")),
        query("rolling_min with n = 1", "rolling_min({x}, 1)", "prices", p, rolling(1, "min")),
        bad_args("rolling_min"),
        bad_args("rolling_max"),
    ])
    write("zscore", [
        create_prices(),
        create_series("ticks", TICKS),
        create_series("flat", FLAT),
        query("zscore = (x - sma) / rolling_std: warm-up, NULL inside the window, single-row partition",
              "zscore({x}, 3)", "prices", p, zscore(3)),
        query("Int64 input", "zscore({x}, 4)", "prices", p, zscore(4), column=3, x="vol"),
        query("Float32 input", "zscore(CAST(px AS FLOAT), 2)", "prices", p, zscore(2)),
        query("prices around 1e5 with a spread of 0.01; NULL when the window is flat",
              "zscore({x}, 2)", "ticks", TICKS, zscore(2)),
        query("a flat window (std 0) gives NULL", "zscore({x}, 3)", "flat", FLAT, zscore(3)),
        bad_args("zscore", min_n=2),
    ])
    write("ema", [
        create_prices(),
        query("ema(span 3) = pandas ewm(span=3, adjust=False, min_periods=3); A's NULL at t=8 gives NULL "
              "and restarts the warm-up (3 new values needed); single-row C stays NULL",
              "ema({x}, 3)", "prices", p, ema(3)),
        query("ema with n = 1 is the value itself", "ema({x}, 1)", "prices", p, ema(1)),
        query("Int64 input", "ema({x}, 2)", "prices", p, ema(2), column=3, x="vol"),
        query("Float32 input", "ema(CAST(px AS FLOAT), 2)", "prices", p, ema(2)),
        bad_args("ema"),
    ])
    write("rsi", [
        create_prices(),
        create_series("flat", FLAT),
        query("Wilder RSI(2): first value at row n; A's NULL at t=8 gives NULL and restarts the warm-up "
              "(first value again n rows after it); single-row C stays NULL",
              "rsi({x}, 2)", "prices", p, rsi(2)),
        query("RSI(3)", "rsi({x}, 3)", "prices", p, rsi(3)),
        query("Int64 input", "rsi({x}, 2)", "prices", p, rsi(2), column=3, x="vol"),
        query("Float32 input", "rsi(CAST(px AS FLOAT), 1)", "prices", p, rsi(1)),
        query("no losses (flat series): 100", "rsi({x}, 2)", "flat", FLAT, rsi(2)),
        bad_args("rsi"),
    ])
    zero = [("Z", 1, 0.0), ("Z", 2, 5.0), ("Z", 3, -5.0), ("Z", 4, 10.0), ("Z", 5, 0.0), ("Z", 6, 2.0)]
    write("returns", [
        create_prices(),
        create_series("zeros", zero),
        query("pct_change over 1 row: NULL on the first row, around A's NULL, single-row C",
              "pct_change({x}, 1)", "prices", p, pct_change(1)),
        query("pct_change over 2 rows: only x_t and x_(t-2) matter", "pct_change({x}, 2)", "prices", p, pct_change(2)),
        query("log_return over 1 row", "log_return({x}, 1)", "prices", p, log_return(1)),
        query("log_return over 3 rows", "log_return({x}, 3)", "prices", p, log_return(3)),
        query("Int64 input", "pct_change({x}, 1)", "prices", p, pct_change(1), column=3, x="vol"),
        query("Float32 input", "log_return(CAST(px AS FLOAT), 1)", "prices", p, log_return(1)),
        query("pct_change: NULL when the base is 0", "pct_change({x}, 1)", "zeros", zero, pct_change(1)),
        query("log_return: NULL when the base is 0 or the ratio is not positive",
              "log_return({x}, 1)", "zeros", zero, log_return(1)),
        bad_args("pct_change"),
        bad_args("log_return"),
    ])
    write("wilder_mean", [
        create_prices(),
        query("Wilder smoothing over 3 rows: mean of the first 3, then (avg*2 + x)/3; A's NULL at t=8 gives "
              "NULL and restarts the warm-up; single-row C stays NULL",
              "wilder_mean({x}, 3)", "prices", p, wilder_mean(3)),
        query("n = 1 is the value itself", "wilder_mean({x}, 1)", "prices", p, wilder_mean(1)),
        query("Int64 input", "wilder_mean({x}, 2)", "prices", p, wilder_mean(2), column=3, x="vol"),
        query("Float32 input", "wilder_mean(CAST(px AS FLOAT), 2)", "prices", p, wilder_mean(2)),
        bad_args("wilder_mean"),
    ])
    write("arguments", [
        create_prices(),
        "# Every function is registered, returns a nullable Float64 and accepts integer n of any width\n"
        "query RRRRRRRRRRR\n"
        "SELECT sma(px, CAST(2 AS TINYINT)) OVER w, ema(px, CAST(2 AS SMALLINT)) OVER w,\n"
        "  rolling_std(px, CAST(2 AS INT)) OVER w, rolling_min(px, CAST(2 AS BIGINT)) OVER w,\n"
        "  rolling_max(px, CAST(2 AS INT UNSIGNED)) OVER w, rolling_sum(px, 2) OVER w, zscore(px, 2) OVER w,\n"
        "  pct_change(px, 1) OVER w, log_return(px, 1) OVER w, rsi(px, 1) OVER w, wilder_mean(px, 2) OVER w\n"
        "FROM prices WHERE sym = 'C' WINDOW w AS (PARTITION BY sym ORDER BY t)\n"
        "----\n"
        "NULL NULL NULL NULL NULL NULL NULL NULL NULL NULL NULL\n",
        "# x must be numeric\n"
        "query error sma: x must be numeric, got a value of type\n"
        "SELECT sma(sym, 2) OVER (PARTITION BY sym ORDER BY t) FROM prices\n",
        "# exactly two arguments\n"
        "query error sma takes 2 arguments \\(x, n\\), got 1\n"
        "SELECT sma(px) OVER (PARTITION BY sym ORDER BY t) FROM prices\n\n"
        "query error pct_change takes 2 arguments \\(x, k\\), got 3\n"
        "SELECT pct_change(px, 1, 2) OVER (PARTITION BY sym ORDER BY t) FROM prices\n",
        "# the integer argument must be a literal even when it is a constant expression over a column\n"
        "query error rsi: window length n must be a positive integer literal, got the non-literal expression\n"
        "SELECT rsi(px, vol - vol + 2) OVER (PARTITION BY sym ORDER BY t) FROM prices\n",
        odd_values(),
        "# a constant expression folds to a literal and is accepted\n"
        "query TIR\n"
        "SELECT sym, t, sma(px, 1 + 1) OVER (PARTITION BY sym ORDER BY t) FROM prices WHERE sym = 'B' ORDER BY t\n"
        "----\n"
        + "\n".join(f"B {t} {fmt(v)}" for t, v in zip(range(1, 6), rolling(2, "mean")(pd.Series([200.0, 202.0, 199.0, 205.0, 207.5]))))
        + "\n",
    ])


if __name__ == "__main__":
    main()
