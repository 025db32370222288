//! Run and quality records: one small JSON object per run under `system/`, read back as the
//! `bhavstore_runs` and `bhavstore_quality` tables. A run writes its record as `running` first
//! and overwrites it when it ends, so a killed run shows up (as `abandoned` once its process is
//! gone) instead of vanishing.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::LakeError;
use crate::host::{host_name, process_alive};
use bhavstore_storage::Storage;
use bhavstore_storage::paths;

/// One run of materialization (or ingest) as `bhavstore_runs` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// Unique, time-ordered id.
    pub run_id: String,
    /// `materialize`.
    pub kind: String,
    /// The view.
    pub view: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// `full`, `incremental`, `recompute` or `none` (nothing new).
    pub mode: Option<String>,
    /// `running`, `succeeded`, `warning`, `failed` (`abandoned` is derived when read).
    pub status: String,
    /// Rows written.
    pub rows: u64,
    /// First trade date written.
    pub min_trade_date: Option<NaiveDate>,
    /// Last trade date written.
    pub max_trade_date: Option<NaiveDate>,
    /// The manifest published, if any.
    pub manifest_seq: Option<u64>,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Milliseconds computing and writing feature rows.
    pub compute_ms: Option<u64>,
    /// Milliseconds writing the tail.
    pub tail_ms: Option<u64>,
    /// Milliseconds in total.
    pub duration_ms: Option<u64>,
    /// Why the run failed.
    pub error: Option<String>,
    /// Quality thresholds crossed.
    pub warnings: Vec<String>,
    /// Process that ran it.
    pub pid: u32,
    /// Host that ran it.
    pub host: String,
}

impl RunRecord {
    /// A record for a run starting now.
    #[must_use]
    pub fn start(run_id: &str, kind: &str, view: Option<&str>, version: Option<&str>) -> Self {
        Self {
            run_id: run_id.into(),
            kind: kind.into(),
            view: view.map(Into::into),
            version: version.map(Into::into),
            mode: None,
            status: "running".into(),
            rows: 0,
            min_trade_date: None,
            max_trade_date: None,
            manifest_seq: None,
            started_at: Utc::now(),
            finished_at: None,
            compute_ms: None,
            tail_ms: None,
            duration_ms: None,
            error: None,
            warnings: Vec::new(),
            pid: std::process::id(),
            host: host_name(),
        }
    }

    /// Writes (or overwrites) the record.
    pub async fn save(&self, storage: &Storage) -> Result<(), LakeError> {
        let body = serde_json::to_vec(self).map_err(|e| LakeError::Corrupt(e.to_string()))?;
        storage.put(&paths::run_record(&self.run_id), Bytes::from(body)).await?;
        Ok(())
    }

    /// `running` records of dead processes on this host read as `abandoned`.
    fn settle(mut self) -> Self {
        if self.status == "running" && self.host == host_name() && !process_alive(self.pid) {
            self.status = "abandoned".into();
        }
        self
    }
}

/// Every run record, oldest first. A run that died after publishing its manifest but before
/// finishing its record is reported from the manifest, which is the truth about what it did.
pub async fn load_runs(storage: &Storage) -> Result<Vec<RunRecord>, LakeError> {
    let mut out = Vec::new();
    for key in storage.list(paths::RUNS).await? {
        if let Some(bytes) = storage.get(&key).await? {
            match serde_json::from_slice::<RunRecord>(&bytes) {
                Ok(r) => out.push(reconcile(storage, r.settle()).await?),
                Err(e) => tracing::warn!(key, error = %e, "skipping an unreadable run record"),
            }
        }
    }
    out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok(out)
}

async fn reconcile(storage: &Storage, mut r: RunRecord) -> Result<RunRecord, LakeError> {
    let (Some(view), Some(version)) = (r.view.clone(), r.version.clone()) else { return Ok(r) };
    if r.status != "abandoned" || r.kind != "materialize" {
        return Ok(r);
    }
    // Only manifests published after the run started can be its own.
    for seq in super::manifest::list_seqs(storage, &view, &version).await?.into_iter().rev() {
        let m = super::manifest::read(storage, &view, &version, seq).await?;
        if m.run_id == r.run_id {
            r.status = "succeeded".into();
            r.mode = Some(m.kind.clone());
            r.manifest_seq = Some(m.seq);
            r.finished_at = Some(m.published_at);
            if let Some(seg) = m.segments.iter().find(|s| s.run_id == r.run_id) {
                r.rows = seg.rows;
                r.min_trade_date = Some(seg.min_trade_date);
                r.max_trade_date = Some(seg.max_trade_date);
            }
            r.warnings.push("the run stopped after publishing; this record was completed from its manifest".into());
            break;
        }
        if m.published_at < r.started_at {
            break;
        }
    }
    Ok(r)
}

/// Quality figures of one feature (or of the whole run when `feature` is None) in one run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QualityRecord {
    /// The run.
    pub run_id: String,
    /// The view.
    pub view: String,
    /// Its version.
    pub version: String,
    /// The session the figures describe (the newest the run wrote).
    pub trade_date: NaiveDate,
    /// The feature; None for figures about the whole view.
    pub feature: Option<String>,
    /// Rows of that session.
    pub row_count: u64,
    /// NULLs of the feature that session.
    pub null_count: Option<u64>,
    /// `null_count / row_count`.
    pub null_rate: Option<f64>,
    /// Entities present the session before but not this one (view-level).
    pub missing_entities: Option<u64>,
    /// Moves beyond ±20% close to close with no ex-date flag (view-level, from bhavcopy).
    pub suspicious_returns: Option<u64>,
    /// Population stability index of this session's values against the trailing sessions.
    pub psi: Option<f64>,
    /// Sessions in the PSI reference.
    pub psi_reference_sessions: Option<u64>,
}

/// Writes the quality records of a run.
pub async fn save_quality(storage: &Storage, run_id: &str, rows: &[QualityRecord]) -> Result<(), LakeError> {
    let body = serde_json::to_vec(rows).map_err(|e| LakeError::Corrupt(e.to_string()))?;
    storage.put(&paths::quality_record(run_id), Bytes::from(body)).await?;
    Ok(())
}

/// Every quality record, in run order.
pub async fn load_quality(storage: &Storage) -> Result<Vec<QualityRecord>, LakeError> {
    let mut out = Vec::new();
    for key in storage.list(paths::QUALITY).await? {
        if let Some(bytes) = storage.get(&key).await? {
            match serde_json::from_slice::<Vec<QualityRecord>>(&bytes) {
                Ok(r) => out.extend(r),
                Err(e) => tracing::warn!(key, error = %e, "skipping an unreadable quality record"),
            }
        }
    }
    Ok(out)
}

/// A new run id: UTC start time to the millisecond and random hex, so ids sort by start.
#[must_use]
pub fn new_run_id() -> String {
    format!("r{}-{:06x}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"), rand::random::<u32>() & 0xff_ffff)
}
