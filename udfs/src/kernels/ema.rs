//! Exponential moving average.

use super::recursion::Recursion;

/// Exponential moving average with span `n`: `alpha = 2 / (n + 1)`, `EMA_0 = x_0`,
/// `EMA_t = alpha * x_t + (1 - alpha) * EMA_{t-1}` — pandas
/// `ewm(span=n, adjust=False, min_periods=n).mean()` on a NULL-free series.
///
/// * Warm-up: the recursion is seeded with the first value and reported from the `n`-th
///   value on (0-based row `n - 1`); earlier rows are `None`.
/// * NULL: a `None` input gives `None` at that row **and restarts the warm-up**: the next
///   value seeds a fresh recursion and is again reported only after `n` consecutive
///   non-NULL values. A gap in the data never silently blends stale state into new values.
/// * Gaps: "previous value" is the previous row of the partition, not the previous calendar
///   day.
/// * `n == 0` gives all `None`.
#[must_use]
pub fn ema(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    ema_from(values, n, &mut Recursion::default())
}

/// [`ema`] continued from `state` (the state after the rows before `values`), which it leaves
/// at the state after the last value.
pub fn ema_from(values: &[Option<f64>], n: usize, state: &mut Recursion) -> Vec<Option<f64>> {
    if n == 0 {
        return vec![None; values.len()];
    }
    let alpha = 2.0 / (n as f64 + 1.0);
    values
        .iter()
        .map(|&value| {
            let Some(x) = value else {
                *state = Recursion::default();
                return None;
            };
            state.value = if state.count == 0 { x } else { alpha * x + (1.0 - alpha) * state.value };
            state.count += 1;
            (state.count >= n as u64).then_some(state.value)
        })
        .collect()
}
