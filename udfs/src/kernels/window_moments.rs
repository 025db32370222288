//! Shared O(1)-per-row accumulator of the first two moments of the last `n` values, used by
//! `sma`, `rolling_sum`, `rolling_std` and `zscore`.
//!
//! # Numerical scheme
//!
//! The window sums are kept on values shifted by a pivot `K` taken from the window itself:
//! `s1 = Σ(x - K)` and `s2 = Σ(x - K)²`, each as a [`CompensatedSum`]. Every `n` rows the sums
//! are rebuilt from scratch over the current window with `K` reset to the newest value, which
//! costs O(n) once per `n` rows (amortised O(1)) and guarantees that `K` is always a member of
//! any window that produces an output. Consequences:
//!
//! * `|x - K|` is bounded by the window's range, so prices around 1e5 with a spread of 0.01
//!   are summed as deviations of size 0.01, with no catastrophic cancellation in
//!   `s2 - s1² / n` (the cancellation factor is at most `2n`).
//! * Rounding residue of values that have left the window (e.g. a bad tick of 1e9 among
//!   prices of 100) is carried at `eps²` scale by the compensated sums and wiped by the next
//!   rebuild.
//! * A window whose values are all equal is detected exactly (run length of equal values),
//!   so its standard deviation is exactly 0 rather than rounding noise.

use super::compensated::CompensatedSum;

/// Moments of one full window of `n` non-NULL values, plus the current value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    n: usize,
    pivot: f64,
    s1: f64,
    s2: f64,
    all_equal: bool,
    current: f64,
}

impl Window {
    /// Sum of the window's values.
    pub(crate) fn sum(&self) -> f64 {
        self.pivot * self.n as f64 + self.s1
    }

    /// Mean of the window's values.
    pub(crate) fn mean(&self) -> f64 {
        self.pivot + self.s1 / self.n as f64
    }

    /// Sample standard deviation (ddof 1); exactly 0 for a window of equal values and `None`
    /// for a one-value window.
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

    /// Distance of the current value from the window mean.
    pub(crate) fn current_deviation(&self) -> f64 {
        (self.current - self.pivot) - self.s1 / self.n as f64
    }
}

/// Applies `f` to every full, NULL-free window of `n` values ending at each row; other rows
/// (warm-up, or a NULL among the last `n` values) are `None`. `n == 0` gives all `None`.
pub(crate) fn map_windows(values: &[Option<f64>], n: usize, f: impl Fn(&Window) -> Option<f64>) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(values.len());
    if n == 0 {
        out.resize(values.len(), None);
        return out;
    }
    let mut acc = Accumulator { pivot: first_value(values), ..Accumulator::default() };
    let mut rows_since_rebuild = 0usize;
    let mut equal_run = 0usize;
    for (t, &value) in values.iter().enumerate() {
        acc.push(value);
        if t >= n {
            acc.pop(values[t - n]);
        }
        equal_run = match (value, t.checked_sub(1).and_then(|p| values[p])) {
            (Some(x), Some(prev)) if x == prev => equal_run + 1,
            (Some(_), _) => 1,
            (None, _) => 0,
        };
        rows_since_rebuild += 1;
        // Rebuild once per n rows, at a non-NULL row so that the new pivot is the newest
        // value (it then stays in the window until the next rebuild). Windows that straddle
        // a deferred rebuild contain a NULL and produce no output.
        if rows_since_rebuild >= n
            && let Some(x) = value
        {
            acc = Accumulator::rebuild(&values[(t + 1).saturating_sub(n)..=t], x);
            rows_since_rebuild = 0;
        }
        let full = t + 1 >= n && acc.nulls == 0;
        out.push(match (full, value) {
            (true, Some(current)) => f(&Window {
                n,
                pivot: acc.pivot,
                s1: acc.s1.value(),
                s2: acc.s2.value(),
                all_equal: equal_run >= n,
                current,
            }),
            _ => None,
        });
    }
    out
}

fn first_value(values: &[Option<f64>]) -> f64 {
    values.iter().flatten().next().copied().unwrap_or(0.0)
}

/// Shifted sums and NULL count of the values currently in the window.
#[derive(Debug, Default)]
struct Accumulator {
    pivot: f64,
    s1: CompensatedSum,
    s2: CompensatedSum,
    nulls: usize,
}

impl Accumulator {
    fn rebuild(window: &[Option<f64>], pivot: f64) -> Self {
        let mut acc = Accumulator { pivot, ..Accumulator::default() };
        for &v in window {
            acc.push(v);
        }
        acc
    }

    #[inline]
    fn push(&mut self, value: Option<f64>) {
        match value {
            Some(x) => {
                let y = x - self.pivot;
                self.s1.add(y);
                self.s2.add(y * y);
            }
            None => self.nulls += 1,
        }
    }

    #[inline]
    fn pop(&mut self, value: Option<f64>) {
        match value {
            Some(x) => {
                let y = x - self.pivot;
                self.s1.add(-y);
                self.s2.add(-(y * y));
            }
            None => self.nulls -= 1,
        }
    }
}
