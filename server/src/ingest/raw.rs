//! Raw bytes, the source of truth: stored byte for byte, never overwritten. Identical bytes
//! for a day are stored once; different bytes become a new revision and the newest wins.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::IngestError;
use crate::paths;
use crate::storage::{Created, Storage};

/// Where a raw file came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Provenance {
    /// `http` for downloads, `import` for local files.
    pub kind: String,
    /// The URL, or the local path (`archive.zip!member` for a member of a user's archive).
    pub source: String,
    /// When it was fetched or read.
    pub fetched_at: DateTime<Utc>,
    /// HTTP status, for downloads.
    pub http_status: Option<u16>,
    /// `Content-Type`, for downloads.
    pub content_type: Option<String>,
}

/// The record stored beside every raw revision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RawMeta {
    /// Trade date the file is for (`None` for undated rejects).
    pub trade_date: Option<NaiveDate>,
    /// Original file name.
    pub file_name: String,
    /// Revision folder name.
    pub revision: String,
    /// Key of the bytes, relative to the storage root.
    pub key: String,
    /// Hex sha256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// When bhavstore stored it.
    pub stored_at: DateTime<Utc>,
    /// Where it came from.
    pub provenance: Provenance,
    /// For rejected bodies: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_because: Option<String>,
}

impl RawMeta {
    /// The record for bytes stored now; `key_of` builds the key from the revision name.
    fn new(
        trade_date: Option<NaiveDate>,
        file_name: &str,
        sha256: String,
        size: usize,
        provenance: Provenance,
        rejected_because: Option<&str>,
        key_of: impl FnOnce(&str) -> String,
    ) -> Self {
        let stored_at = Utc::now();
        let revision = paths::revision_name(stored_at, &sha256);
        Self {
            trade_date,
            file_name: file_name.to_string(),
            key: key_of(&revision),
            revision,
            sha256,
            size: size as u64,
            stored_at,
            provenance,
            rejected_because: rejected_because.map(str::to_string),
        }
    }
}

/// Hex sha256 of a body.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Result of storing raw bytes for a day.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The meta of the revision holding these bytes (new or pre-existing).
    pub meta: RawMeta,
    /// `false` when identical bytes were already stored.
    pub is_new: bool,
    /// Whether these bytes are the day's newest revision (always so when new).
    pub is_latest: bool,
    /// The revision that was newest before this one, if it differed.
    pub superseded: Option<RawMeta>,
}

/// Every complete revision of a day (bytes and meta both written), oldest first.
pub async fn revisions(storage: &Storage, date: NaiveDate) -> Result<Vec<RawMeta>, IngestError> {
    let keys = storage.list(&paths::raw_day_dir(date)).await?;
    let mut metas = Vec::new();
    for key in keys.iter().filter(|k| k.ends_with(&format!("/{}", paths::META_FILE))) {
        let Some(bytes) = storage.get(key).await? else { continue };
        let meta: RawMeta = serde_json::from_slice(&bytes)
            .map_err(|e| IngestError::Corrupt { key: key.clone(), message: e.to_string() })?;
        metas.push(meta);
    }
    metas.sort_by(|a, b| a.revision.cmp(&b.revision));
    Ok(metas)
}

/// Stores the bytes of a day's file unless identical bytes are already stored.
pub async fn store(
    storage: &Storage,
    date: NaiveDate,
    file_name: &str,
    bytes: &Bytes,
    provenance: Provenance,
) -> Result<Stored, IngestError> {
    let sha = sha256_hex(bytes);
    let existing = revisions(storage, date).await?;
    if let Some(same) = existing.iter().find(|m| m.sha256 == sha) {
        let is_latest = existing.last().is_some_and(|l| l.sha256 == sha);
        return Ok(Stored { meta: same.clone(), is_new: false, is_latest, superseded: None });
    }
    let meta = RawMeta::new(Some(date), file_name, sha, bytes.len(), provenance, None, |rev| {
        paths::raw_object(date, rev, file_name)
    });
    let (key, revision) = (meta.key.clone(), meta.revision.clone());
    // Bytes first, meta second: a revision without meta is invisible, so a crash in between
    // leaves an orphan, never a revision that points at missing bytes.
    if storage.put_create(&key, bytes.clone()).await? == Created::AlreadyExisted {
        return Err(IngestError::Corrupt { key, message: "raw object already exists; refusing to overwrite".into() });
    }
    storage.put_create(&paths::raw_meta(date, &revision), meta_json(&meta)?).await?;
    Ok(Stored { meta, is_new: true, is_latest: true, superseded: existing.last().cloned() })
}

/// Keeps a body that could not be used, with the reason, under `rejected/`.
pub async fn store_rejected(
    storage: &Storage,
    date: Option<NaiveDate>,
    file_name: &str,
    bytes: &Bytes,
    provenance: Provenance,
    reason: &str,
) -> Result<RawMeta, IngestError> {
    let meta = RawMeta::new(date, file_name, sha256_hex(bytes), bytes.len(), provenance, Some(reason), |rev| {
        paths::rejected_object(date, rev, file_name)
    });
    let (key, revision) = (meta.key.clone(), meta.revision.clone());
    storage.put_create(&key, bytes.clone()).await?;
    storage.put_create(&paths::rejected_meta(date, &revision), meta_json(&meta)?).await?;
    Ok(meta)
}

fn meta_json(meta: &RawMeta) -> Result<Bytes, IngestError> {
    serde_json::to_vec_pretty(meta)
        .map(Bytes::from)
        .map_err(|e| IngestError::Corrupt { key: meta.key.clone(), message: e.to_string() })
}
