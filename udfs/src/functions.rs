//! The SQL functions this crate registers: name, integer-argument rule, kernel and the
//! description shown by DataFusion's documentation.

use crate::args::IntArg;
use crate::kernels;
use crate::udwf::{FunctionSpec, Lookback};

fn ema_alpha(n: usize) -> f64 {
    2.0 / (n as f64 + 1.0)
}

fn wilder_alpha(n: usize) -> f64 {
    1.0 / n as f64
}

/// Every function, in documentation order.
pub(crate) static FUNCTIONS: [FunctionSpec; 11] = [
    FunctionSpec {
        name: "sma",
        // 2: each window summed afresh in a fixed order (bit-identical whatever the start).
        version: 2,
        lookback: Lookback::Window,
        arg: IntArg::WINDOW,
        kernel: kernels::sma,
        resume: None,
        description: "Simple moving average of the last n rows of the partition (current row included). \
            NULL for the first n-1 rows and while any of the last n values is NULL.",
    },
    FunctionSpec {
        name: "ema",
        version: 1,
        lookback: Lookback::Recursive { alpha: ema_alpha, warm_up: 0 },
        arg: IntArg::WINDOW,
        kernel: kernels::ema,
        resume: Some(kernels::ema_from),
        description: "Exponential moving average, alpha = 2/(n+1), seeded with the first value \
            (pandas ewm(span=n, adjust=False, min_periods=n)). NULL for the first n-1 rows; a NULL \
            input gives NULL and restarts the warm-up.",
    },
    FunctionSpec {
        name: "rolling_std",
        // 2: each window summed afresh in a fixed order (bit-identical whatever the start).
        version: 2,
        lookback: Lookback::Window,
        arg: IntArg::SAMPLE_WINDOW,
        kernel: kernels::rolling_std,
        resume: None,
        description: "Sample standard deviation (ddof 1) of the last n rows (n >= 2). NULL for the \
            first n-1 rows and while any of the last n values is NULL; 0 for a flat window.",
    },
    FunctionSpec {
        name: "rolling_min",
        version: 1,
        lookback: Lookback::Window,
        arg: IntArg::WINDOW,
        kernel: kernels::rolling_min,
        resume: None,
        description: "Minimum of the last n rows. NULL for the first n-1 rows and while any of the \
            last n values is NULL.",
    },
    FunctionSpec {
        name: "rolling_max",
        version: 1,
        lookback: Lookback::Window,
        arg: IntArg::WINDOW,
        kernel: kernels::rolling_max,
        resume: None,
        description: "Maximum of the last n rows. NULL for the first n-1 rows and while any of the \
            last n values is NULL.",
    },
    FunctionSpec {
        name: "rolling_sum",
        // 2: each window summed afresh in a fixed order (bit-identical whatever the start).
        version: 2,
        lookback: Lookback::Window,
        arg: IntArg::WINDOW,
        kernel: kernels::rolling_sum,
        resume: None,
        description: "Sum of the last n rows. NULL for the first n-1 rows and while any of the last \
            n values is NULL.",
    },
    FunctionSpec {
        name: "zscore",
        // 2: each window summed afresh in a fixed order (bit-identical whatever the start).
        version: 2,
        lookback: Lookback::Window,
        arg: IntArg::SAMPLE_WINDOW,
        kernel: kernels::zscore,
        resume: None,
        description: "(x - sma(x, n)) / rolling_std(x, n) (n >= 2). NULL for the first n-1 rows, \
            while any of the last n values is NULL, and when the last n values are all equal.",
    },
    FunctionSpec {
        name: "pct_change",
        version: 1,
        lookback: Lookback::Lag,
        arg: IntArg::LAG,
        kernel: kernels::pct_change,
        resume: None,
        description: "x / (x k rows earlier) - 1. NULL for the first k rows, when either value is \
            NULL, and when the earlier value is 0.",
    },
    FunctionSpec {
        name: "log_return",
        version: 1,
        lookback: Lookback::Lag,
        arg: IntArg::LAG,
        kernel: kernels::log_return,
        resume: None,
        description: "ln(x / (x k rows earlier)). NULL for the first k rows, when either value is \
            NULL, and when the ratio is not positive (earlier value 0, x 0, or a sign change).",
    },
    FunctionSpec {
        name: "rsi",
        version: 1,
        lookback: Lookback::Recursive { alpha: wilder_alpha, warm_up: 1 },
        arg: IntArg::WINDOW,
        kernel: kernels::rsi,
        resume: Some(kernels::rsi_from),
        description: "Wilder's RSI over n periods: first averages are the means of the first n \
            diffs, then avg = (avg*(n-1) + new)/n; 100 when the average loss is 0. First value at \
            row n (0-based); a NULL input gives NULL and restarts the warm-up.",
    },
    FunctionSpec {
        name: "wilder_mean",
        version: 1,
        lookback: Lookback::Recursive { alpha: wilder_alpha, warm_up: 0 },
        arg: IntArg::WINDOW,
        kernel: kernels::wilder_mean,
        resume: Some(kernels::wilder_mean_from),
        description: "Wilder's moving average (RMA, the smoothing of ATR): the mean of the first n \
            values, then avg = (avg*(n-1) + x)/n. NULL for the first n-1 rows; a NULL input gives \
            NULL and restarts the warm-up.",
    },
];
