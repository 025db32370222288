//! Moments of the last `n` values, shared by `sma`, `rolling_sum`, `rolling_std` and `zscore`.
//!
//! # Why every window is summed afresh
//!
//! A running sum (add the new value, subtract the one leaving) is O(1) per row, but its
//! rounding depends on every value the partition has ever seen, so the same window can give
//! results one unit in the last place apart depending on where the computation started.
//! Incremental materialization starts from a carried tail, not from a partition's first row,
//! and must reproduce a full recompute bit for bit. So each output is a pure function of its
//! window: the values are summed in window order, in four fixed lanes (lane = position within
//! the window), which keeps the cost at a few nanoseconds per window value with vector
//! instructions. Cost is O(rows × n) for a literal `n`, i.e. linear in rows.
//!
//! # Numerical scheme
//!
//! Values are shifted by a pivot `K`, the window's newest value: `s1 = Σ(x - K)`,
//! `s2 = Σ(x - K)²`. `|x - K|` is bounded by the window's range, so prices around 1e5 with a
//! spread of 0.01 are summed as deviations of size 0.01, without catastrophic cancellation in
//! `s2 - s1² / n`. A window whose values are all equal has `s2 = 0` exactly, so its standard
//! deviation is exactly 0, not rounding noise.

/// Longest window summed afresh; longer ones use the running accumulator of
/// `window_running` (O(1) per row, last bit dependent on the partition's start).
pub const FRESH_MAX: usize = 1024;

/// Moments of one full window of `n` non-NULL values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) n: usize,
    pub(crate) pivot: f64,
    pub(crate) s1: f64,
    pub(crate) s2: f64,
    pub(crate) all_equal: bool,
    pub(crate) current: f64,
}

/// Which sums a kernel needs: squares cost a second accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moments {
    /// `s1` only (mean, sum).
    First,
    /// `s1` and `s2` (standard deviation).
    FirstAndSecond,
}

impl Window {
    fn of(w: &[f64], moments: Moments) -> Self {
        let pivot = w[w.len() - 1];
        let mut a = [0.0f64; 4];
        let mut b = [0.0f64; 4];
        let chunks = w.chunks_exact(4);
        let rest = chunks.remainder();
        if moments == Moments::First {
            for c in chunks {
                for i in 0..4 {
                    a[i] += c[i] - pivot;
                }
            }
        } else {
            for c in chunks {
                for i in 0..4 {
                    let y = c[i] - pivot;
                    a[i] += y;
                    b[i] += y * y;
                }
            }
        }
        for (i, x) in rest.iter().enumerate() {
            let y = x - pivot;
            a[i] += y;
            b[i] += y * y;
        }
        let s2 = (b[0] + b[1]) + (b[2] + b[3]);
        Self {
            n: w.len(),
            pivot,
            s1: (a[0] + a[1]) + (a[2] + a[3]),
            s2,
            all_equal: moments == Moments::FirstAndSecond && s2 == 0.0,
            current: pivot,
        }
    }

    /// Sum of the window's values.
    pub(crate) fn sum(&self) -> f64 {
        self.pivot * self.n as f64 + self.s1
    }

    /// Mean of the window's values.
    pub(crate) fn mean(&self) -> f64 {
        self.pivot + self.s1 / self.n as f64
    }

    /// Sample standard deviation (ddof 1); exactly 0 for a window of equal values and `None`
    /// for a one-value window. Needs [`Moments::FirstAndSecond`].
    pub(crate) fn sample_std(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        if self.all_equal {
            return Some(0.0);
        }
        let m2 = (self.s2 - self.s1 * self.s1 / self.n as f64).max(0.0);
        Some((m2 / (self.n - 1) as f64).sqrt())
    }

    /// Distance of the current (newest) value from the window mean.
    pub(crate) fn current_deviation(&self) -> f64 {
        (self.current - self.pivot) - self.s1 / self.n as f64
    }
}

/// Applies `f` to every full, NULL-free window of `n` values ending at each row; other rows
/// (warm-up, or a NULL among the last `n` values) are `None`. `n == 0` gives all `None`.
pub(crate) fn map_windows(
    values: &[Option<f64>],
    n: usize,
    moments: Moments,
    f: impl Fn(&Window) -> Option<f64>,
) -> Vec<Option<f64>> {
    if n > FRESH_MAX {
        return super::window_running::map_windows_running(values, n, f);
    }
    let mut out = Vec::with_capacity(values.len());
    if n == 0 {
        out.resize(values.len(), None);
        return out;
    }
    let dense: Vec<f64> = values.iter().map(|v| v.unwrap_or(0.0)).collect();
    let mut nulls = 0usize;
    for (t, value) in values.iter().enumerate() {
        nulls += usize::from(value.is_none());
        if t >= n {
            nulls -= usize::from(values[t - n].is_none());
        }
        out.push(if t + 1 >= n && nulls == 0 { f(&Window::of(&dense[t + 1 - n..=t], moments)) } else { None });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Moments, map_windows};

    #[test]
    fn a_window_gives_the_same_bits_wherever_the_partition_starts() {
        let xs: Vec<Option<f64>> =
            (0..500).map(|i| Some(100.0 + (f64::from(i) * 0.37).sin() * 3.3 + 1e-3 * f64::from(i))).collect();
        for n in [1, 3, 20, 50] {
            let full = map_windows(&xs, n, Moments::FirstAndSecond, |w| w.sample_std().map(|s| s + w.mean()));
            for start in [1, 7, 123] {
                let part =
                    map_windows(&xs[start..], n, Moments::FirstAndSecond, |w| w.sample_std().map(|s| s + w.mean()));
                for (t, v) in part.iter().enumerate().skip(n) {
                    assert_eq!(v.map(f64::to_bits), full[start + t].map(f64::to_bits), "n {n} start {start} row {t}");
                }
            }
        }
    }
}
