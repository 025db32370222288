//! The record of one reconciliation of corporate actions with the prices: which files hold its
//! tables, which raw action files it read, and a digest per ex-session that materialized views
//! compare with the one they were computed with (a change is a revision from that date).
//! Published with a create-only put, like a view's manifest, so a reader never sees half of one.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::LakeError;
use crate::manifest::FileRef;
use bhavstore_storage::{Created, Storage, paths};

/// One published reconciliation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentsManifest {
    /// Layout version.
    pub format: u32,
    /// Position in the log, from 1.
    pub seq: u64,
    /// When it was computed.
    pub computed_at: DateTime<Utc>,
    /// Hash of everything below but the time: equal hashes mean nothing changed.
    pub content_hash: String,
    /// `corporate_actions`: reported (resolved to scrip codes) and inferred actions.
    pub actions: FileRef,
    /// `corporate_action_checks`: every disagreement between actions, flags and prices.
    pub checks: FileRef,
    /// `adjustment_epochs`: per scrip, the cumulative factors from each ex-session on.
    pub epochs: FileRef,
    /// The raw action files read (sha256 of each).
    pub sources: Vec<String>,
    /// Per ex-session: a hash of the factor steps of every scrip on that date.
    pub digest: BTreeMap<NaiveDate, String>,
    /// Figures for people (`reported`, `inferred`, `applied`, `unresolved`, checks by kind ...).
    pub counts: BTreeMap<String, u64>,
    /// The newest change-log key of the bhavcopy loads when it was computed.
    #[serde(default)]
    pub loads_watermark: Option<String>,
    /// Every stored action-list object (rows and downloaded ranges) it read.
    #[serde(default)]
    pub reference_keys: Vec<String>,
    /// What the next reconciliation continues from instead of reading the whole history;
    /// manifests of older versions lack it, and the next one reads everything.
    #[serde(default)]
    pub carried: Option<Carried>,
}

/// The sessions a reconciliation kept (see `adjust::sessions`) and what they cover.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Carried {
    /// Kept sessions of every scrip, by scrip and date.
    pub sessions: FileRef,
    /// The bhavcopies' ISINs and symbols; `None` when no action needed them.
    pub identifiers: Option<FileRef>,
    /// The newest trade date read; a load of this date or an earlier one means reading
    /// everything again.
    pub through: Option<NaiveDate>,
}

/// Current layout version.
pub const FORMAT: u32 = 1;

/// The newest reconciliation, if any.
pub async fn latest(storage: &Storage) -> Result<Option<AdjustmentsManifest>, LakeError> {
    let seqs = crate::manifest::seqs_in(storage, &paths::adjustments_manifests()).await?;
    let Some(seq) = seqs.last() else { return Ok(None) };
    let key = paths::adjustments_manifest(*seq);
    let bytes = storage.get(&key).await?.ok_or_else(|| LakeError::Corrupt(format!("{key} disappeared")))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| LakeError::Corrupt(format!("{key}: {e}")))
}

/// Publishes `m`; [`LakeError::Conflict`] if another reconciliation took its seq first.
pub async fn publish(storage: &Storage, m: &AdjustmentsManifest) -> Result<(), LakeError> {
    let body = serde_json::to_vec_pretty(m).map_err(|e| LakeError::Corrupt(e.to_string()))?;
    match storage.put_create(&paths::adjustments_manifest(m.seq), Bytes::from(body)).await? {
        Created::New => Ok(()),
        Created::AlreadyExisted => {
            Err(LakeError::Conflict(format!("adjustments {} were published by another process first", m.seq)))
        }
    }
}
