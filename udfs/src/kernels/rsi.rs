//! Wilder's relative strength index.

use super::recursion::Recursion;

/// Wilder's RSI over `n` periods.
///
/// With diffs `d_t = x_t - x_{t-1}`, gains `g_t = max(d_t, 0)` and losses
/// `l_t = max(-d_t, 0)`: the first average gain/loss is the simple mean of the first `n`
/// diffs (rows `1..=n`), then `avg_t = (avg_{t-1} * (n - 1) + g_t) / n` (same for losses),
/// and `RSI = 100 - 100 / (1 + avg_gain / avg_loss)`, or `100` when `avg_loss == 0`
/// (including a perfectly flat window).
///
/// * Warm-up: the first value is at row `n` (0-based) of the partition; earlier rows are
///   `None`.
/// * NULL: a `None` input gives `None` at that row **and restarts the warm-up**: the next
///   value starts a fresh series, whose first RSI comes `n` rows later (after `n` new diffs).
///   No diff is ever taken across a NULL.
/// * Gaps: "previous value" is the previous row of the partition, not the previous calendar
///   day.
/// * `n == 0` gives all `None`.
#[must_use]
pub fn rsi(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    rsi_from(values, n, &mut Recursion::default())
}

/// [`rsi`] continued from `state`, which it leaves at the state after the last value: the
/// previous value, the number of diffs and the average gain and loss (plain sums during the
/// warm-up).
pub fn rsi_from(values: &[Option<f64>], n: usize, state: &mut Recursion) -> Vec<Option<f64>> {
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
            let previous = state.previous.replace(x)?;
            let diff = x - previous;
            let (gain, loss) = (diff.max(0.0), (-diff).max(0.0));
            state.count += 1;
            if state.count <= n_u {
                state.value += gain;
                state.second += loss;
                if state.count < n_u {
                    return None;
                }
                state.value /= n_f;
                state.second /= n_f;
            } else {
                state.value = (state.value * (n_f - 1.0) + gain) / n_f;
                state.second = (state.second * (n_f - 1.0) + loss) / n_f;
            }
            Some(rsi_from_averages(state.value, state.second))
        })
        .collect()
}

fn rsi_from_averages(avg_gain: f64, avg_loss: f64) -> f64 {
    if avg_loss == 0.0 { 100.0 } else { 100.0 - 100.0 / (1.0 + avg_gain / avg_loss) }
}
