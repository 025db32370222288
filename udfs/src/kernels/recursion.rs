//! The state a recursive kernel (`ema`, `rsi`, `wilder_mean`) holds after a row, so a later run
//! can continue from it instead of recomputing the partition from its first row.
//!
//! Continuing from a saved state performs the same floating-point operations, in the same
//! order, on the same values as one pass from the first row, so the results are identical bit
//! for bit: `f(a ++ b) == f(a, fresh) ++ f(b, state after a)`.

/// One recursion's state after a row; [`Recursion::default`] is the state before any row (and
/// after a NULL, which restarts every recursion).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Recursion {
    /// Values (or, for `rsi`, differences) in the current NULL-free run; 0: nothing yet.
    pub count: u64,
    /// The running value: the EMA, Wilder's sum (warm-up) or average, RSI's average gain.
    pub value: f64,
    /// RSI's average loss (0 for the others).
    pub second: f64,
    /// RSI's previous value (`None` for the others).
    pub previous: Option<f64>,
}

/// A kernel resumed from a state: the values of rows after the state in, one output per row
/// out, and the state left after the last row.
pub type Resume = fn(&[Option<f64>], usize, &mut Recursion) -> Vec<Option<f64>>;
