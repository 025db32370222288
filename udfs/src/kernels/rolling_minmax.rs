//! Rolling minimum and maximum with monotonic deques (O(1) amortised per row).

use std::collections::VecDeque;

/// Rolling minimum of the last `n` values of the partition, current row included.
///
/// * Warm-up: `None` for the first `n - 1` rows of the partition.
/// * NULL: `None` whenever any of the last `n` values is `None`.
/// * Gaps: the window is the last `n` rows of the partition, not calendar days.
/// * `n == 0` gives all `None`.
#[must_use]
pub fn rolling_min(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    rolling_extreme(values, n, |newer, older| newer <= older)
}

/// Rolling maximum of the last `n` values of the partition, current row included.
///
/// Warm-up, NULL and gap semantics are those of [`rolling_min`].
#[must_use]
pub fn rolling_max(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    rolling_extreme(values, n, |newer, older| newer >= older)
}

/// `dominates(newer, older)` is true when `older` can never again be the window's extreme
/// once `newer` has arrived; the deque then holds candidates with strictly "worse" values
/// from front (the current extreme) to back.
fn rolling_extreme(values: &[Option<f64>], n: usize, dominates: impl Fn(f64, f64) -> bool) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(values.len());
    if n == 0 {
        out.resize(values.len(), None);
        return out;
    }
    let mut candidates: VecDeque<(usize, f64)> = VecDeque::new();
    let mut nulls = 0usize;
    for (t, &value) in values.iter().enumerate() {
        match value {
            Some(x) => {
                while candidates.back().is_some_and(|&(_, older)| dominates(x, older)) {
                    candidates.pop_back();
                }
                candidates.push_back((t, x));
            }
            None => nulls += 1,
        }
        if t >= n {
            if values[t - n].is_none() {
                nulls -= 1;
            }
            while candidates.front().is_some_and(|&(i, _)| i + n <= t) {
                candidates.pop_front();
            }
        }
        let full = t + 1 >= n && nulls == 0;
        out.push(if full { candidates.front().map(|&(_, x)| x) } else { None });
    }
    out
}
