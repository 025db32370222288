//! Simple moving average and rolling sum.

use super::window_moments::{Moments, map_windows};

/// Simple moving average: mean of the last `n` values of the partition, current row included.
///
/// * Warm-up: `None` for the first `n - 1` rows of the partition.
/// * NULL: `None` whenever any of the last `n` values is `None`; the output comes back once
///   the NULL has left the window.
/// * Gaps: the window is the last `n` *rows* of the partition (in window order), whatever
///   calendar days they fall on.
/// * `n == 0` gives all `None` (the SQL layer rejects it before this point).
#[must_use]
pub fn sma(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    map_windows(values, n, Moments::First, |w| Some(w.mean()))
}

/// Rolling sum of the last `n` values of the partition, current row included.
///
/// Warm-up, NULL and gap semantics are those of [`sma`]: `None` until `n` rows have been seen
/// and while any of the last `n` values is `None`; the window counts rows, not days.
#[must_use]
pub fn rolling_sum(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    map_windows(values, n, Moments::First, |w| Some(w.sum()))
}
