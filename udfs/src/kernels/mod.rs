//! The pure computations behind the window functions: one pass over one partition.
//!
//! Every kernel takes the partition's values in window order as `&[Option<f64>]` (`None` is
//! SQL NULL; values are expected to be finite, the SQL layer maps NaN and ±∞ to `None`) plus
//! the integer argument, and returns one output per input row, in one pass: recursions,
//! monotonic deques, or (for sums over the last `n` values) a fixed-order sum of each window,
//! O(len × n) for the literal `n`, so that a value never depends on where the partition
//! started (see `window_moments`). None panics on any input, including `n == 0` (all `None`)
//! or `n` larger than the partition.
//!
//! Shared conventions (each function's docs give the details):
//! * "The last `n` values" and "`k` rows earlier" count rows of the partition in window
//!   order: a missing trading day is not a gap, the previous row is the previous value.
//! * Warm-up rows are `None`.
//! * Window functions (`sma`, `rolling_*`, `zscore`) give `None` while any of the last `n`
//!   values is `None`; recursive ones (`ema`, `rsi`, `wilder_mean`) restart their warm-up after a `None`, and
//!   each has a `*_from` form that continues from a saved [`Recursion`] state.

mod compensated;
mod ema;
mod recursion;
mod returns;
mod rolling_minmax;
mod rolling_std;
mod rsi;
mod sma_sum;
mod wilder;
mod window_moments;
mod window_running;
mod zscore;

pub use ema::{ema, ema_from};
pub use recursion::{Recursion, Resume};
pub use returns::{log_return, pct_change};
pub use rolling_minmax::{rolling_max, rolling_min};
pub use rolling_std::rolling_std;
pub use rsi::{rsi, rsi_from};
pub use sma_sum::{rolling_sum, sma};
pub use wilder::{wilder_mean, wilder_mean_from};
pub use window_moments::FRESH_MAX;
pub use zscore::zscore;
