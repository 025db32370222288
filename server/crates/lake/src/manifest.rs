//! Manifests: the only way to feature data. Each is a complete, immutable description of one
//! published state of a version (every file, its rows, the dates it covers, the inputs it was
//! computed from), stored at `manifests/{seq}` with a create-only put. Two runs racing for the
//! same `seq` cannot both win: the object store answers the loser with "already exists" (412 on
//! S3), and its files stay unreferenced. A version's manifests form an append-only log; the
//! newest is the current state, older ones are time travel.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::LakeError;
use bhavstore_storage::paths;
use bhavstore_storage::{Created, Storage};

/// One published state of a feature view version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Layout version of this record.
    pub format: u32,
    /// The view.
    pub view: String,
    /// Its version id.
    pub version: String,
    /// Full hash of the definition.
    pub definition_hash: String,
    /// Position in the version's log, from 1.
    pub seq: u64,
    /// The run that published it.
    pub run_id: String,
    /// `full`, `incremental` or `recompute`.
    pub kind: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When the manifest was written.
    pub published_at: DateTime<Utc>,
    /// Earliest trade date in the data (None when empty).
    pub min_trade_date: Option<NaiveDate>,
    /// Latest trade date in the data.
    pub max_trade_date: Option<NaiveDate>,
    /// Rows over all segments.
    pub rows: u64,
    /// The data, oldest segment first; segments cover disjoint, increasing date ranges.
    pub segments: Vec<Segment>,
    /// Carried rows for the next incremental run (None for views that cannot run incrementally).
    pub tail: Option<TailRef>,
    /// sha256 of the raw file behind every trade date the data was computed from.
    pub inputs: BTreeMap<NaiveDate, String>,
    /// Last change-log key this state has taken into account.
    pub loads_watermark: Option<String>,
    /// Every run whose files any manifest of this version has referenced (for orphan cleanup).
    pub referenced_runs: Vec<String>,
    /// For a view over intraday bars: the intraday log position its input was read at (see
    /// [`crate::bars::stored::log_position`]); a later position means new bars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intraday_seq: Option<u64>,
    /// For a view on adjusted prices: the reconciliation digest per ex-session it was computed
    /// with (see [`crate::adjust::AdjustmentsManifest::digest`]); a date whose digest differs
    /// now is a revision from that date.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub adjustments: BTreeMap<NaiveDate, String>,
}

/// The files one run wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// The run that wrote them.
    pub run_id: String,
    /// First trade date.
    pub min_trade_date: NaiveDate,
    /// Last trade date.
    pub max_trade_date: NaiveDate,
    /// Rows over the files.
    pub rows: u64,
    /// The files.
    pub files: Vec<FileRef>,
}

/// One Parquet file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Key under the storage root.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// Rows.
    pub rows: u64,
}

/// The tail a run left: the last `lookback_rows` input rows of every entity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TailRef {
    /// The file.
    pub file: FileRef,
    /// Rows kept per entity.
    pub lookback_rows: u64,
    /// The states of the view's resumed recursive calls after each entity's last row, when it
    /// has any (the next run continues them instead of recomputing from carried rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursions: Option<FileRef>,
}

/// Current layout version.
pub const MANIFEST_FORMAT: u32 = 1;

impl Manifest {
    /// Every data file, oldest first.
    pub fn files(&self) -> impl Iterator<Item = &FileRef> {
        self.segments.iter().flat_map(|s| s.files.iter())
    }
}

/// Sequence numbers of a version's manifests, ascending. Listing the manifest folder is safe:
/// each manifest is a single object that appears whole or not at all.
pub async fn list_seqs(storage: &Storage, view: &str, version: &str) -> Result<Vec<u64>, LakeError> {
    seqs_in(storage, &paths::manifests_dir(view, version)).await
}

/// Sequence numbers of the `{seq}.json` manifests in `dir`, ascending.
pub(crate) async fn seqs_in(storage: &Storage, dir: &str) -> Result<Vec<u64>, LakeError> {
    let mut seqs: Vec<u64> = storage.list(dir).await?.iter().filter_map(|k| paths::seq_of_manifest(k)).collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Reads manifest `seq`.
pub async fn read(storage: &Storage, view: &str, version: &str, seq: u64) -> Result<Manifest, LakeError> {
    let key = paths::manifest(view, version, seq);
    let bytes = storage.get(&key).await?.ok_or_else(|| LakeError::Corrupt(format!("{key} disappeared")))?;
    serde_json::from_slice(&bytes).map_err(|e| LakeError::Corrupt(format!("{key}: {e}")))
}

/// The newest manifest of a version, if it has been published.
pub async fn latest(storage: &Storage, view: &str, version: &str) -> Result<Option<Manifest>, LakeError> {
    match list_seqs(storage, view, version).await?.last() {
        Some(&seq) => read(storage, view, version, seq).await.map(Some),
        None => Ok(None),
    }
}

/// Publishes `m` as the next state of its version. Fails with [`LakeError::Conflict`] if
/// another run published `m.seq` first.
pub async fn publish(storage: &Storage, m: &Manifest) -> Result<(), LakeError> {
    let key = paths::manifest(&m.view, &m.version, m.seq);
    let body = serde_json::to_vec_pretty(m).map_err(|e| LakeError::Corrupt(e.to_string()))?;
    match storage.put_create(&key, Bytes::from(body)).await? {
        Created::New => Ok(()),
        Created::AlreadyExisted => Err(LakeError::Conflict(format!(
            "manifest {} of {}@{} was published by another run first",
            m.seq, m.view, m.version
        ))),
    }
}
