//! The O(1)-per-row running accumulator for windows longer than
//! [`super::window_moments::FRESH_MAX`]: compensated sums on pivot-shifted values, rebuilt from
//! scratch every `n` rows. Accurate, but the last bit of a result can depend on where the
//! partition started (the rebuild points are counted from it), so views using such windows
//! are materialized by full recompute only.

use super::compensated::CompensatedSum;
use super::window_moments::Window;

/// Applies `f` to every full, NULL-free window of `n` values ending at each row; other rows
/// (warm-up, or a NULL among the last `n` values) are `None`. `n == 0` gives all `None`.
pub(crate) fn map_windows_running(
    values: &[Option<f64>],
    n: usize,
    f: impl Fn(&Window) -> Option<f64>,
) -> Vec<Option<f64>> {
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
