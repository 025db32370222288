//! The `materialize:` section of the configuration.

use serde::{Deserialize, Serialize};

/// How materialization runs and what it flags.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MaterializeConfig {
    /// Tails (carried state) kept per version. A revision of a day older than the oldest kept
    /// tail makes the next run a full recompute.
    pub keep_tails: usize,
    /// Input rows a full recompute evaluates at once (whole entities, grouped up to about this
    /// many): the run's memory grows with it, and below ~100,000 the per-group overhead shows.
    pub chunk_rows: usize,
    /// Daily runs each add a small segment (one file) to a version: once this many consecutive
    /// segments lie in one calendar year, they are merged into one file sorted by entity and
    /// date and published as the next manifest of the same rows. 0: never.
    pub compact_after: usize,
    /// Thresholds that mark a run as `warning`.
    pub quality: QualityThresholds,
}

impl Default for MaterializeConfig {
    fn default() -> Self {
        Self { keep_tails: 10, chunk_rows: 500_000, compact_after: 20, quality: QualityThresholds::default() }
    }
}

/// Quality thresholds; a threshold left empty (`~`) is not checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QualityThresholds {
    /// Largest NULL rate of any feature on the newest session. Off by default: warm-up makes
    /// long windows NULL for young securities.
    pub max_null_rate: Option<f64>,
    /// Largest share of the previous session's entities missing from the newest one.
    pub max_missing_rate: Option<f64>,
    /// Most moves beyond ±20% without an ex-date flag on the newest session.
    pub max_suspicious_returns: Option<u64>,
    /// Largest population stability index of any feature (0.25 is the usual "significant shift").
    pub max_psi: Option<f64>,
}

impl Default for QualityThresholds {
    fn default() -> Self {
        Self { max_null_rate: None, max_missing_rate: Some(0.1), max_suspicious_returns: Some(25), max_psi: Some(0.25) }
    }
}
