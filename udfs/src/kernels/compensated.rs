//! Compensated (error-tracking) summation used by the rolling accumulators.

/// A running sum that also tracks the rounding error of every addition (Knuth's branch-free
/// TwoSum), so adding and later removing the same values leaves (almost) no residue.
///
/// The represented value is `sum + err`; its error after `m` updates is about
/// `eps * |value| + m * eps² * Σ|terms|`, against `m * eps * Σ|terms|` for a plain running sum.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CompensatedSum {
    sum: f64,
    err: f64,
}

impl CompensatedSum {
    /// Adds `x` (use a negated value to remove a term).
    #[inline]
    pub(crate) fn add(&mut self, x: f64) {
        let s = self.sum + x;
        let x_part = s - self.sum;
        let sum_part = s - x_part;
        self.err += (self.sum - sum_part) + (x - x_part);
        self.sum = s;
    }

    /// The current sum, rounded once to `f64`.
    #[inline]
    pub(crate) fn value(&self) -> f64 {
        self.sum + self.err
    }
}

#[cfg(test)]
mod tests {
    use super::CompensatedSum;

    #[test]
    fn adding_and_removing_a_huge_term_leaves_the_small_ones_intact() {
        let mut s = CompensatedSum::default();
        s.add(0.1);
        s.add(1e20);
        s.add(0.2);
        s.add(-1e20);
        assert!((s.value() - 0.3).abs() < 1e-16, "{}", s.value());
    }
}
