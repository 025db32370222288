//! Rolling sample standard deviation.

use super::window_moments::{Moments, map_windows};

/// Rolling sample standard deviation (ddof = 1) of the last `n` values, current row included.
///
/// * Warm-up: `None` for the first `n - 1` rows of the partition.
/// * NULL: `None` whenever any of the last `n` values is `None`.
/// * Gaps: the window is the last `n` rows of the partition, not calendar days.
/// * A window of equal values gives exactly `0.0`.
/// * `n < 2` gives all `None` (a one-value sample has no sample deviation; the SQL layer
///   rejects `n < 2` as a planning error).
///
/// Numerically stable for prices around 1e5 with tiny spreads: see the pivot-shifted,
/// fixed-order window sums in the crate's `window_moments` module.
#[must_use]
pub fn rolling_std(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    if n < 2 {
        return vec![None; values.len()];
    }
    map_windows(values, n, Moments::FirstAndSecond, |w| w.sample_std())
}
