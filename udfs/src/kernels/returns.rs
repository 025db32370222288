//! Simple and logarithmic returns over a lag of `k` rows.

/// Simple return over `k` rows: `x_t / x_{t-k} - 1`, computed as `(x_t - x_{t-k}) / x_{t-k}`
/// (same value, more accurate for small moves).
///
/// * Warm-up: `None` for the first `k` rows of the partition.
/// * NULL: `None` when `x_t` or `x_{t-k}` is `None`; values in between do not matter.
/// * Zero base: `None` when `x_{t-k} == 0`.
/// * Gaps: `x_{t-k}` is the value `k` rows earlier in the partition, not `k` calendar days.
/// * `k == 0` gives all `None`.
#[must_use]
pub fn pct_change(values: &[Option<f64>], k: usize) -> Vec<Option<f64>> {
    lagged(values, k, |x, base| (base != 0.0).then(|| relative_move(x, base)))
}

/// Log return over `k` rows: `ln(x_t / x_{t-k})`, computed as `ln_1p((x_t - x_{t-k}) / x_{t-k})`
/// (same value, accurate for small moves).
///
/// * Warm-up: `None` for the first `k` rows of the partition.
/// * NULL: `None` when `x_t` or `x_{t-k}` is `None`; values in between do not matter.
/// * Domain: `None` when `x_{t-k} == 0` or the ratio `x_t / x_{t-k}` is not positive (zero or
///   sign change), where the logarithm is undefined.
/// * Gaps: `x_{t-k}` is the value `k` rows earlier in the partition, not `k` calendar days.
/// * `k == 0` gives all `None`.
#[must_use]
pub fn log_return(values: &[Option<f64>], k: usize) -> Vec<Option<f64>> {
    lagged(values, k, |x, base| {
        let ratio_is_positive = base != 0.0 && x != 0.0 && (x > 0.0) == (base > 0.0);
        ratio_is_positive.then(|| relative_move(x, base).ln_1p())
    })
}

/// `x / base - 1`, computed as `(x - base) / base` unless the difference overflows.
fn relative_move(x: f64, base: f64) -> f64 {
    let diff = x - base;
    if diff.is_finite() { diff / base } else { x / base - 1.0 }
}

fn lagged(values: &[Option<f64>], k: usize, f: impl Fn(f64, f64) -> Option<f64>) -> Vec<Option<f64>> {
    if k == 0 {
        return vec![None; values.len()];
    }
    (0..values.len())
        .map(|t| match (values[t], t.checked_sub(k).and_then(|p| values[p])) {
            (Some(x), Some(base)) => f(x, base),
            _ => None,
        })
        .collect()
}
