//! Wilder's smoothing (the running moving average, RMA) behind ATR and RSI.

use super::recursion::Recursion;

/// Wilder's moving average over `n` periods: the first value is the simple mean of the first
/// `n` values, then `avg_t = (avg_{t-1} * (n - 1) + x_t) / n` (an EMA with `alpha = 1/n`
/// seeded by an SMA). This is the smoothing of Wilder's ATR (`wilder_mean(true_range, 14)`).
///
/// * Warm-up: the first value is at row `n - 1` (0-based); earlier rows are `None`.
/// * NULL: a `None` input gives `None` at that row **and restarts the warm-up**, as for `ema`
///   and `rsi`: the smoothing never bridges a missing value.
/// * Gaps: rows of the partition in window order, not calendar days.
/// * `n == 0` gives all `None`.
#[must_use]
pub fn wilder_mean(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    wilder_mean_from(values, n, &mut Recursion::default())
}

/// [`wilder_mean`] continued from `state`, which it leaves at the state after the last value.
/// During the warm-up `state.value` holds the running sum, then the average.
pub fn wilder_mean_from(values: &[Option<f64>], n: usize, state: &mut Recursion) -> Vec<Option<f64>> {
    if n == 0 {
        return vec![None; values.len()];
    }
    let (n_u, n_f) = (n as u64, n as f64);
    values
        .iter()
        .map(|&value| {
            let Some(x) = value else {
                *state = Recursion::default();
                return None;
            };
            state.count += 1;
            if state.count < n_u {
                state.value += x;
                None
            } else if state.count == n_u {
                state.value = (state.value + x) / n_f;
                Some(state.value)
            } else {
                state.value = (state.value * (n_f - 1.0) + x) / n_f;
                Some(state.value)
            }
        })
        .collect()
}
