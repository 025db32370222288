//! The YAML half of a feature view: what the view is, who owns it, and what each feature means.

use std::time::Duration;

use serde::Deserialize;

/// One `feature_defs/{name}.yaml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ViewSpec {
    /// View name; must equal the file stem and be a SQL identifier.
    pub name: String,
    /// What the view holds.
    pub description: String,
    /// Entity key column (`scrip_code`).
    pub entity: String,
    /// Event-time column (`trade_date`).
    pub event_time: String,
    /// How long a value stays valid for point-in-time lookups, e.g. `5d`, `36h`.
    pub ttl: String,
    /// Owning team or person.
    pub owner: String,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Longest look-back of any feature, in rows of one entity (incremental runs read this far
    /// back). Optional; checked against the windows in the SQL when given.
    #[serde(default)]
    pub lookback_rows: Option<u32>,
    /// How long after its event time a row becomes known, e.g. `1m` for one-minute bars stamped
    /// with their start: the 09:15 bar is complete, and visible to lookups and training sets, at
    /// 09:16. Only for views over `intraday_bars` (daily rows become known at the market close).
    #[serde(default)]
    pub available_after: Option<String>,
    /// Which daily prices the view is computed on: `raw` (as BSE printed them, `bhavcopy`),
    /// `adjusted` (splits, consolidations and bonuses, point in time: `bhavcopy_adjusted`) or
    /// `total_return` (dividends too: `bhavcopy_total_return`). The SQL must read that table.
    /// Optional: a view that leaves it out is on the basis of the table it reads.
    #[serde(default)]
    pub prices: Option<bhavstore_lake::adjust::PriceBasis>,
    /// What "the last n" of the view's windows counts: `rows` (the security's traded sessions,
    /// the default) or `session` (exchange sessions: the SQL reads a `*_sessions` table, where a
    /// session the security did not trade is a row of NULL prices). Optional, checked like
    /// `prices`.
    #[serde(default)]
    pub window_unit: Option<bhavstore_lake::adjust::WindowUnit>,
    /// The features, each a column of the SQL's output.
    pub features: Vec<FeatureSpec>,
}

/// One feature of a view.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Column name in the SQL output.
    pub name: String,
    /// Meaning, unit, warm-up.
    pub description: String,
}

/// Why a view's `ttl` is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtlError {
    /// The value does not start with a number.
    #[error("ttl {value:?}: expected a number and a unit (s, m, h, d, w), e.g. 5d")]
    Malformed {
        /// The value, trimmed.
        value: String,
    },
    /// The unit is not one of s, m, h, d, w.
    #[error("ttl {value:?}: unknown unit {unit:?} (use s, m, h, d or w)")]
    UnknownUnit {
        /// The value, trimmed.
        value: String,
        /// The unit seen.
        unit: String,
    },
    /// The number is zero.
    #[error("ttl {value:?} must be positive")]
    Zero {
        /// The value, trimmed.
        value: String,
    },
    /// Longer than any history (and than the time arithmetic of lookups) can use.
    #[error("ttl {value:?} is longer than the 100 years bhavstore accepts")]
    TooLarge {
        /// The value, trimmed.
        value: String,
    },
}

/// The longest ttl accepted: 100 years of 365.25 days.
const MAX_TTL_SECS: u64 = 100 * 36_525 * 864;

/// Parses `5d`, `36h`, `90m`, `2w`, `45s`.
pub fn parse_ttl(s: &str) -> Result<Duration, TtlError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        if num.is_empty() {
            TtlError::Malformed { value: s.to_string() }
        } else {
            TtlError::TooLarge { value: s.to_string() }
        }
    })?;
    let secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => return Err(TtlError::UnknownUnit { value: s.to_string(), unit: other.to_string() }),
    };
    if n == 0 {
        return Err(TtlError::Zero { value: s.to_string() });
    }
    match n.checked_mul(secs) {
        Some(total) if total <= MAX_TTL_SECS => Ok(Duration::from_secs(total)),
        _ => Err(TtlError::TooLarge { value: s.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("5d"), Ok(Duration::from_secs(5 * 86_400)));
        assert_eq!(parse_ttl("36h"), Ok(Duration::from_secs(36 * 3600)));
        assert!(parse_ttl("5 days").is_err());
        assert!(parse_ttl("0d").is_err());
        assert!(parse_ttl("d").is_err());
        // Overflowing or absurd values are refused, not wrapped or panicking.
        for v in ["99999999999999999d", "99999999999999999999999s", "36526d"] {
            assert_eq!(parse_ttl(v), Err(TtlError::TooLarge { value: v.to_string() }), "{v}");
        }
        assert_eq!(parse_ttl("36525d"), Ok(Duration::from_secs(36_525 * 86_400)));
    }

    #[test]
    fn ttl_errors_keep_their_wording() {
        let msg = |s: &str| parse_ttl(s).unwrap_err().to_string();
        assert_eq!(msg(" d "), "ttl \"d\": expected a number and a unit (s, m, h, d, w), e.g. 5d");
        assert_eq!(msg("5 days"), "ttl \"5 days\": unknown unit \"days\" (use s, m, h, d or w)");
        assert_eq!(msg("0d"), "ttl \"0d\" must be positive");
    }
}
