//! Window functions for bhavstore feature views.
//!
//! This crate is pure: it depends on DataFusion's expression crates only, does no IO and
//! needs no runtime. [`all_window_udfs`] returns the SQL window functions, each called as
//! `f(x, n) OVER (PARTITION BY sym ORDER BY t)`:
//!
//! | SQL | result | first non-NULL row (0-based) | NULL input |
//! | --- | --- | --- | --- |
//! | `sma(x, n)` | mean of the last `n` values | `n - 1` | NULL while in the window |
//! | `rolling_sum(x, n)` | sum of the last `n` values | `n - 1` | NULL while in the window |
//! | `rolling_min(x, n)`, `rolling_max(x, n)` | extreme of the last `n` values | `n - 1` | NULL while in the window |
//! | `rolling_std(x, n)`, `n >= 2` | sample std (ddof 1) of the last `n` values | `n - 1` | NULL while in the window |
//! | `zscore(x, n)`, `n >= 2` | `(x - sma) / rolling_std`; NULL if the window is flat | `n - 1` | NULL while in the window |
//! | `ema(x, n)` | EMA, `alpha = 2/(n+1)`, seeded with the first value | `n - 1` | NULL, and the warm-up restarts |
//! | `rsi(x, n)` | Wilder's RSI | `n` | NULL, and the warm-up restarts |
//! | `wilder_mean(x, n)` | Wilder's smoothing: mean of the first `n`, then `(avg*(n-1)+x)/n` | `n - 1` | NULL, and the warm-up restarts |
//! | `pct_change(x, k)` | `x_t / x_{t-k} - 1`; NULL if `x_{t-k} = 0` | `k` | NULL if `x_t` or `x_{t-k}` is |
//! | `log_return(x, k)` | `ln(x_t / x_{t-k})`; NULL if the ratio is not positive | `k` | NULL if `x_t` or `x_{t-k}` is |
//!
//! | `cum_sum(x)`, `cum_max(x)`, `cum_min(x)` | running sum / max / min from the partition's first row | first non-NULL | skipped |
//! | `cum_first(x)` | the partition's first row's `x` | 0 | NULL if that row's is |
//!
//! Common rules:
//! * Every result is a nullable `Float64`; `x` may be any numeric type (cast to `Float64`).
//! * `n` / `k` (all but the `cum_*` functions, which take `x` only) must be an integer literal (`>= 1`, or `>= 2` for `rolling_std` and `zscore`);
//!   anything else — 0, negative, `2.5`, NULL, a column — is a planning error that names the
//!   function and the argument.
//! * Windows count rows of the partition in `ORDER BY` order: the previous value is the
//!   previous row, not the previous calendar day, and a window never crosses partitions.
//! * NaN and ±∞ inputs count as NULL, and a result that would be NaN or ±∞ is NULL.
//! * The window frame clause, if any, is ignored: each function sees the whole partition
//!   and computes it in one O(rows) pass ([`kernels`] holds those passes as plain functions).

#![warn(missing_docs)]

mod args;
pub mod cumulative;
mod functions;
pub mod kernels;
pub mod resumable;
mod udwf;

use datafusion_expr::WindowUDF;

pub use udwf::{HORIZON_WEIGHT, recursive_horizon};

/// Every window UDF this crate provides, ready to register on a DataFusion session.
#[must_use]
pub fn all_window_udfs() -> Vec<WindowUDF> {
    functions::FUNCTIONS
        .iter()
        .map(|spec| spec.udwf())
        .chain(cumulative::CUMULATIVE.iter().map(|spec| spec.udwf()))
        .collect()
}

/// Whether `name` is one of the cumulative functions (`cum_sum`, `cum_max`, `cum_min`,
/// `cum_first`): its result depends on every row from the start of the partition.
#[must_use]
pub fn is_cumulative(name: &str) -> bool {
    cumulative::CUMULATIVE.iter().any(|f| f.name == name)
}

/// Rows of one partition that a call `name(x, n)` reads back, current row included, or `None`
/// if `name` is not a function of this crate. For the recursive functions (`ema`, `rsi`,
/// `wilder_mean`) it is the horizon beyond which older rows cannot change the result (see
/// [`HORIZON_WEIGHT`]): what a run that cannot resume them from a saved state carries (the live
/// path, or a recursion another window reads; see [`resumed_lookback_rows`]).
#[must_use]
pub fn lookback_rows(name: &str, n: usize) -> Option<usize> {
    functions::FUNCTIONS.iter().find(|f| f.name == name).map(|f| f.lookback.rows(n))
}

/// Like [`lookback_rows`], for a run that resumes the recursive functions from their saved
/// states ([`resumable`]): a resumed recursion needs only the current row.
#[must_use]
pub fn resumed_lookback_rows(name: &str, n: usize) -> Option<usize> {
    if resumable::is_resumable(name) { Some(1) } else { lookback_rows(name, n) }
}

/// Whether every result of `name(x, n)` is a function of its window's values alone, bit for bit,
/// whatever row the partition starts at. True for all but the window sums (`sma`,
/// `rolling_sum`, `rolling_std`, `zscore`) longer than [`kernels::FRESH_MAX`] rows, which use
/// a running accumulator; the recursive functions qualify once past their horizon (see
/// [`lookback_rows`]).
#[must_use]
pub fn start_independent(name: &str, n: usize) -> bool {
    !(matches!(name, "sma" | "rolling_sum" | "rolling_std" | "zscore") && n > kernels::FRESH_MAX)
}

/// Version of the function `name`'s results, or `None` if it is not a function of this crate.
/// A feature view's version includes the versions of the functions it calls.
#[must_use]
pub fn function_version(name: &str) -> Option<u32> {
    functions::FUNCTIONS
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.version)
        .or_else(|| cumulative::CUMULATIVE.iter().find(|f| f.name == name).map(|f| f.version))
}

#[cfg(test)]
mod lookback_tests {
    use super::*;

    #[test]
    fn lookbacks() {
        assert_eq!(lookback_rows("sma", 20), Some(20));
        assert_eq!(lookback_rows("pct_change", 10), Some(11));
        assert_eq!(lookback_rows("nope", 3), None);
        // (1 - 2/27)^h < 2^-64 first at h = 577.
        assert_eq!(recursive_horizon(2.0 / 27.0), 577);
        assert_eq!(lookback_rows("ema", 26), Some(26 + 577));
        let h = recursive_horizon(1.0 / 14.0);
        assert!((13.0f64 / 14.0).powi(h as i32) < HORIZON_WEIGHT);
        assert!((13.0f64 / 14.0).powi(h as i32 - 1) >= HORIZON_WEIGHT);
        assert_eq!(lookback_rows("rsi", 14), Some(14 + 1 + h));
        assert_eq!(function_version("ema"), Some(1));
        assert_eq!(resumed_lookback_rows("ema", 26), Some(1));
        assert_eq!(resumed_lookback_rows("rsi", 14), Some(1));
        assert_eq!(resumed_lookback_rows("sma", 50), Some(50));
        assert_eq!(resumed_lookback_rows("nope", 3), None);
        assert!(start_independent("sma", 1024) && !start_independent("sma", 1025) && start_independent("ema", 5000));
    }
}
