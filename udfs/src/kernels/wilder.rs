//! Wilder's smoothing (the running moving average, RMA) behind ATR and RSI.

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
    if n == 0 {
        return vec![None; values.len()];
    }
    let n_f = n as f64;
    // Values seen in the current NULL-free run, and the running sum (warm-up) or average.
    let (mut seen, mut acc) = (0usize, 0.0f64);
    values
        .iter()
        .map(|&value| {
            let Some(x) = value else {
                (seen, acc) = (0, 0.0);
                return None;
            };
            seen += 1;
            if seen < n {
                acc += x;
                None
            } else if seen == n {
                acc = (acc + x) / n_f;
                Some(acc)
            } else {
                acc = (acc * (n_f - 1.0) + x) / n_f;
                Some(acc)
            }
        })
        .collect()
}
