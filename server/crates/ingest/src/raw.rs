//! Raw bytes, the source of truth: stored byte for byte, never overwritten. Identical bytes
//! for a day are stored once; different bytes become a new revision and the newest wins.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use tracing::warn;

use super::IngestError;
use bhavstore_storage::paths;
use bhavstore_storage::{Created, Storage};

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
    /// The record for bytes stored at `stored_at` in folder `revision`; `key_of` builds the key
    /// from the revision name.
    #[allow(clippy::too_many_arguments)]
    fn new(
        trade_date: Option<NaiveDate>,
        file_name: &str,
        sha256: String,
        size: usize,
        provenance: Provenance,
        rejected_because: Option<&str>,
        stored_at: DateTime<Utc>,
        revision: String,
        key_of: impl FnOnce(&str) -> String,
    ) -> Self {
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

pub use bhavstore_storage::sha256_hex;

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

/// Where a kind of raw file is kept: a trade date's bhavcopies, or one kind of reference file
/// (corporate-action exports, holiday lists). Each revision is a folder of the bytes and their
/// `_meta.json`.
#[derive(Debug, Clone, Copy)]
pub enum RawFolder<'a> {
    /// The bhavcopies of a trade date.
    Day(NaiveDate),
    /// Reference files of one kind (`corporate_actions`, `holidays`).
    Reference(&'a str),
}

impl RawFolder<'_> {
    fn dir(self) -> String {
        match self {
            Self::Day(d) => paths::raw_day_dir(d),
            Self::Reference(kind) => paths::raw_reference_dir(kind),
        }
    }

    fn object(self, revision: &str, file_name: &str) -> String {
        match self {
            Self::Day(d) => paths::raw_object(d, revision, file_name),
            Self::Reference(kind) => paths::raw_reference_object(kind, revision, file_name),
        }
    }

    fn meta(self, revision: &str) -> String {
        match self {
            Self::Day(d) => paths::raw_meta(d, revision),
            Self::Reference(kind) => paths::raw_reference_meta(kind, revision),
        }
    }

    fn trade_date(self) -> Option<NaiveDate> {
        match self {
            Self::Day(d) => Some(d),
            Self::Reference(_) => None,
        }
    }
}

/// Every complete revision of a day (bytes and meta both written), oldest first.
pub async fn revisions(storage: &Storage, date: NaiveDate) -> Result<Vec<RawMeta>, IngestError> {
    revisions_in(storage, RawFolder::Day(date)).await
}

/// Every complete revision in `folder`, oldest first.
///
/// A meta key holding something that is not a meta record is skipped with a warning instead of
/// failing every later import of the day: stores written before file names were kept off
/// record keys may hold a user's file named `_meta.json` there. Such a revision never had a
/// record, so it was never complete, and its bytes stay where they are.
pub async fn revisions_in(storage: &Storage, folder: RawFolder<'_>) -> Result<Vec<RawMeta>, IngestError> {
    let keys = storage.list(&folder.dir()).await?;
    let mut metas = Vec::new();
    for key in keys.iter().filter(|k| k.ends_with(&format!("/{}", paths::META_FILE))) {
        let Some(bytes) = storage.get(key).await? else { continue };
        match serde_json::from_slice::<RawMeta>(&bytes) {
            Ok(meta) => metas.push(meta),
            Err(e) => {
                warn!(%key, error = %e, "not a revision record (a file stored under the record's name?); that revision is skipped")
            }
        }
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
    store_in(storage, RawFolder::Day(date), file_name, bytes, provenance).await
}

/// Stores bytes in `folder` unless identical bytes are already stored there.
pub async fn store_in(
    storage: &Storage,
    folder: RawFolder<'_>,
    file_name: &str,
    bytes: &Bytes,
    provenance: Provenance,
) -> Result<Stored, IngestError> {
    let sha = sha256_hex(bytes);
    let existing = revisions_in(storage, folder).await?;
    if let Some(same) = existing.iter().find(|m| m.sha256 == sha) {
        let is_latest = existing.last().is_some_and(|l| l.sha256 == sha);
        return Ok(Stored { meta: same.clone(), is_new: false, is_latest, superseded: None });
    }
    let stored_at = Utc::now();
    let revision = paths::revision_name(stored_at, &sha);
    let meta =
        RawMeta::new(folder.trade_date(), file_name, sha, bytes.len(), provenance, None, stored_at, revision, |rev| {
            folder.object(rev, file_name)
        });
    let (key, revision) = (meta.key.clone(), meta.revision.clone());
    // Bytes first, meta second: a revision without meta is invisible, so a crash in between
    // leaves an orphan, never a revision that points at missing bytes. Both must be created
    // here: an existing object at either key means another writer stored the same bytes in the
    // same millisecond, and its record is the one to use.
    let bytes_new = storage.put_create(&key, bytes.clone()).await? == Created::New;
    let meta_new = bytes_new && storage.put_create(&folder.meta(&revision), meta_json(&meta)?).await? == Created::New;
    if !meta_new {
        let now = revisions_in(storage, folder).await?;
        if let Some(same) = now.iter().find(|m| m.sha256 == meta.sha256) {
            let is_latest = now.last().is_some_and(|l| l.sha256 == meta.sha256);
            return Ok(Stored { meta: same.clone(), is_new: false, is_latest, superseded: None });
        }
        return Err(IngestError::Corrupt { key, message: "raw object already exists; refusing to overwrite".into() });
    }
    Ok(Stored { meta, is_new: true, is_latest: true, superseded: existing.last().cloned() })
}

/// Keeps a body that could not be used, with the reason, under `rejected/`. Every call stores
/// its own copy and record, in a folder of its own: two identical bodies refused in the same
/// millisecond keep both provenance records.
pub async fn store_rejected(
    storage: &Storage,
    date: Option<NaiveDate>,
    file_name: &str,
    bytes: &Bytes,
    provenance: Provenance,
    reason: &str,
) -> Result<RawMeta, IngestError> {
    store_rejected_at(storage, date, file_name, bytes, provenance, reason, Utc::now()).await
}

/// How many folder names are tried before giving up; each try draws a fresh 32-bit nonce, so a
/// second try is already a one-in-four-billion event.
const REJECT_ATTEMPTS: usize = 8;

async fn store_rejected_at(
    storage: &Storage,
    date: Option<NaiveDate>,
    file_name: &str,
    bytes: &Bytes,
    provenance: Provenance,
    reason: &str,
    stored_at: DateTime<Utc>,
) -> Result<RawMeta, IngestError> {
    let sha = sha256_hex(bytes);
    for _ in 0..REJECT_ATTEMPTS {
        let revision = paths::rejected_revision_name(stored_at, &sha, rand::random());
        let meta = RawMeta::new(
            date,
            file_name,
            sha.clone(),
            bytes.len(),
            provenance.clone(),
            Some(reason),
            stored_at,
            revision,
            |rev| paths::rejected_object(date, rev, file_name),
        );
        // The folder belongs to whoever creates both objects in it; anything already there
        // means the name is taken, so draw another.
        if storage.put_create(&meta.key, bytes.clone()).await? == Created::AlreadyExisted {
            continue;
        }
        if storage.put_create(&paths::rejected_meta(date, &meta.revision), meta_json(&meta)?).await?
            == Created::AlreadyExisted
        {
            continue;
        }
        return Ok(meta);
    }
    Err(IngestError::Corrupt {
        key: paths::rejected_object(date, "*", file_name),
        message: format!("no free folder for a rejected body after {REJECT_ATTEMPTS} attempts"),
    })
}

fn meta_json(meta: &RawMeta) -> Result<Bytes, IngestError> {
    serde_json::to_vec_pretty(meta)
        .map(Bytes::from)
        .map_err(|e| IngestError::Corrupt { key: meta.key.clone(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bhavstore_storage::StorageConfig;

    fn prov(source: &str) -> Provenance {
        Provenance {
            kind: "http".into(),
            source: source.into(),
            fetched_at: Utc::now(),
            http_status: Some(200),
            content_type: None,
        }
    }

    #[tokio::test]
    async fn identical_rejects_in_one_millisecond_keep_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Storage::open(&StorageConfig { url: dir.path().display().to_string(), ..StorageConfig::default() })
                .unwrap();
        let at = Utc::now();
        let body = Bytes::from_static(b"<html>blocked</html>");
        let a = store_rejected_at(&storage, None, "EQ.ZIP", &body, prov("first"), "x", at).await.unwrap();
        let b = store_rejected_at(&storage, None, "EQ.ZIP", &body, prov("second"), "x", at).await.unwrap();
        assert_ne!(a.revision, b.revision);
        assert_ne!(a.key, b.key);
        let metas: Vec<String> = storage.list(paths::REJECTED_EQUITY).await.unwrap();
        let records: Vec<&String> = metas.iter().filter(|k| k.ends_with("/_meta.json")).collect();
        assert_eq!(records.len(), 2, "{metas:?}");
        for (key, source) in [(&a, "first"), (&b, "second")] {
            let m: RawMeta = serde_json::from_slice(
                &storage.get(&paths::rejected_meta(None, &key.revision)).await.unwrap().unwrap(),
            )
            .unwrap();
            assert_eq!(m.provenance.source, source);
        }
    }
}
