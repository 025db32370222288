//! The ratios splits and bonuses come in, to snap an observed price jump to when no action list
//! covers a flagged ex-date. BSE's face values are Rs 10, 5, 2 and 1 (and Re 0.5 rarely); bonus
//! issues are small `a:b` ratios. A split combined with a bonus (TECHM 2015: 10 -> 5 and 1:1,
//! factor 4) is a product of the two, which the bonus set already holds.

/// How far (in log terms) an observed jump may be from the ratio it is snapped to: 12%, wider
/// than a quiet day's move but narrower than the gap between 2 and 2.5 or between 4 and 5.
pub const SNAP_TOLERANCE: f64 = 0.12;

/// The factors a split or consolidation of face values 10, 5, 2, 1 and 0.5 gives.
fn split_factors() -> Vec<f64> {
    let faces = [10.0, 5.0, 2.0, 1.0, 0.5];
    let mut out = Vec::new();
    for from in faces {
        for to in faces {
            if from > to {
                out.push(from / to);
            }
        }
    }
    out
}

/// The factors of the bonus ratios BSE's lists hold (a new for b held: (a + b) / b); 1:5 and
/// rarer ratios are left to the action lists, since they cannot be told from an ordinary move
/// or from each other.
fn bonus_factors() -> Vec<f64> {
    [(1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (1, 4), (4, 1), (2, 3), (3, 2), (5, 1)]
        .into_iter()
        .map(|(a, b): (u32, u32)| f64::from(a + b) / f64::from(b))
        .collect()
}

/// Which family of ratios a flag allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `SS`: a split (sub-division).
    Split,
    /// `XB`: a bonus, possibly with a split on the same day.
    Bonus,
    /// `CS`: a consolidation (the price rises).
    Consolidation,
}

/// The usual ratio nearest to `observed` (previous close / ex-date open) within
/// [`SNAP_TOLERANCE`], or None.
#[must_use]
pub fn snap(observed: f64, family: Family) -> Option<f64> {
    if !observed.is_finite() || observed <= 0.0 {
        return None;
    }
    let candidates: Vec<f64> = match family {
        Family::Split => split_factors(),
        Family::Bonus => {
            let mut c = bonus_factors();
            // A bonus with a split on the same ex-date.
            for s in split_factors() {
                for b in [2.0, 1.5, 3.0] {
                    c.push(s * b);
                }
            }
            c
        }
        Family::Consolidation => split_factors().into_iter().map(|f| 1.0 / f).collect(),
    };
    let target = observed.ln();
    // A move an ordinary session can make is not evidence of an action: 1:10 or 1:5 bonuses
    // (factors 1.1, 1.2) cannot be told from noise, so they are never inferred.
    if target.abs() <= SNAP_TOLERANCE {
        return None;
    }
    candidates
        .into_iter()
        .map(|c| (c, (c.ln() - target).abs()))
        .filter(|(_, d)| *d <= SNAP_TOLERANCE)
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.total_cmp(&b.0)))
        .map(|(c, _)| c)
}

/// Whether `observed` agrees with a stated `factor` (within [`SNAP_TOLERANCE`]).
#[must_use]
pub fn agrees(observed: f64, factor: f64) -> bool {
    observed.is_finite() && observed > 0.0 && factor > 0.0 && (observed.ln() - factor.ln()).abs() <= SNAP_TOLERANCE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snaps_the_jumps_of_real_2015_actions() {
        // 511064 on 2015-03-11: 478.30 -> open near 48.6, a 10:1 split.
        assert_eq!(snap(478.30 / 48.60, Family::Split), Some(10.0));
        // TECHM 2015-03-19: 2800.15 -> 685.80, a 10 -> 5 split and a 1:1 bonus flagged XB.
        assert_eq!(snap(2800.15 / 685.80, Family::Bonus), Some(4.0));
        assert_eq!(snap(2.0 * 1.03, Family::Bonus), Some(2.0));
        assert_eq!(snap(1.0 / 10.2, Family::Consolidation), Some(0.1));
    }

    #[test]
    fn an_ordinary_move_snaps_to_nothing() {
        assert_eq!(snap(1.04, Family::Split), None);
        assert_eq!(snap(0.97, Family::Bonus), None);
        assert_eq!(snap(f64::NAN, Family::Split), None);
        assert!(agrees(9.7, 10.0));
        assert!(!agrees(1.0, 10.0));
    }
}
