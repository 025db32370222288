//! Rolling z-score.

use super::window_moments::{Moments, map_windows};

/// Rolling z-score: `(x_t - mean) / std` over the last `n` values (current row included),
/// where `mean` is [`sma`](super::sma) and `std` is [`rolling_std`](super::rolling_std).
///
/// * Warm-up: `None` for the first `n - 1` rows of the partition.
/// * NULL: `None` whenever any of the last `n` values is `None`.
/// * Flat window: `None` when the standard deviation is 0, i.e. all `n` values are equal.
/// * Gaps: the window is the last `n` rows of the partition, not calendar days.
/// * `n < 2` gives all `None` (the SQL layer rejects `n < 2` as a planning error).
#[must_use]
pub fn zscore(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    if n < 2 {
        return vec![None; values.len()];
    }
    map_windows(values, n, Moments::FirstAndSecond, |w| match w.sample_std() {
        Some(std) if std > 0.0 => Some(w.current_deviation() / std),
        _ => None,
    })
}
