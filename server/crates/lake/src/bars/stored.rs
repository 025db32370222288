//! Reading stored bars: the newest snapshot, then the log segments after it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use bhavstore_storage::{Storage, paths};

use super::wal::{bars_from_batch, decode, rejected_from_batch};
use super::{BarStore, bars_schema, quarantine_schema, to_quarantine_batch};
use crate::LakeError;
use crate::table::ScanTimeTable;

/// A snapshot: the files holding every bar and refusal through WAL segment `wal_seq`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotManifest {
    /// The last log segment folded in.
    pub wal_seq: u64,
    /// Each trade date (`YYYY-MM-DD`) and the file holding all its bars.
    pub dates: BTreeMap<String, String>,
    /// Files of refused bars, oldest first.
    pub quarantine: Vec<String>,
    /// Bars in all the day files.
    pub bars: u64,
    /// When it was written.
    pub written_at: Option<DateTime<Utc>>,
}

/// What storage holds, folded.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every bar and refusal.
    pub store: BarStore,
    /// The snapshot it started from.
    pub snapshot: Option<SnapshotManifest>,
    /// The last log segment read (the snapshot's when none follows it).
    pub last_seq: u64,
    /// Log segments read after the snapshot.
    pub segments: usize,
}

fn parquet_batches(key: &str, bytes: bytes::Bytes) -> Result<Vec<datafusion::arrow::array::RecordBatch>, LakeError> {
    let corrupt = |e: &dyn std::fmt::Display| LakeError::Corrupt(format!("{key}: {e}"));
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| corrupt(&e))?.build().map_err(|e| corrupt(&e))?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| corrupt(&e))
}

async fn must_get(storage: &Storage, key: &str) -> Result<bytes::Bytes, LakeError> {
    storage.get(key).await?.ok_or_else(|| LakeError::Corrupt(format!("{key} {MISSING}")))
}

/// The newest snapshot manifest, if any.
pub async fn newest_snapshot(storage: &Storage) -> Result<Option<SnapshotManifest>, LakeError> {
    let keys = storage.list(paths::INTRADAY_SNAPSHOTS).await?;
    let Some(key) =
        keys.iter().filter(|k| paths::seq_of_intraday_key(k).is_some()).max_by_key(|k| paths::seq_of_intraday_key(k))
    else {
        return Ok(None);
    };
    let bytes = must_get(storage, key).await?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| LakeError::Corrupt(format!("{key}: {e}")))
}

/// Sequence numbers of the log segments stored, ascending.
pub async fn segment_seqs(storage: &Storage) -> Result<Vec<u64>, LakeError> {
    let mut seqs: Vec<u64> =
        storage.list(paths::INTRADAY_WAL).await?.iter().filter_map(|k| paths::seq_of_intraday_key(k)).collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The newest intraday log position storage holds: the last segment written, or the newest
/// snapshot's when the log is empty. It only grows; a materialization that read the bars at one
/// position is up to date until it moves.
pub async fn log_position(storage: &Storage) -> Result<u64, LakeError> {
    let last = segment_seqs(storage).await?.last().copied().unwrap_or(0);
    let snap = newest_snapshot(storage).await?.map_or(0, |s| s.wal_seq);
    Ok(last.max(snap))
}

/// Reads every stored bar and refusal: the newest snapshot's files, then each log segment after
/// it in order. A writer may publish a newer snapshot and remove the files of the one being read
/// meanwhile: then the read starts over from the newer one (a few times at most).
pub async fn load(storage: &Storage) -> Result<Loaded, LakeError> {
    let mut attempt = 0;
    loop {
        match load_once(storage).await {
            Err(LakeError::Corrupt(why)) if why.ends_with(MISSING) && attempt < 3 => {
                attempt += 1;
                tracing::debug!(why, attempt, "a snapshot changed while it was read; reading again");
            }
            other => return other,
        }
    }
}

const MISSING: &str = "is named by a snapshot but missing";

async fn load_once(storage: &Storage) -> Result<Loaded, LakeError> {
    let mut out = Loaded::default();
    let mut names = HashMap::new();
    if let Some(snap) = newest_snapshot(storage).await? {
        for key in snap.dates.values() {
            for batch in parquet_batches(key, must_get(storage, key).await?)? {
                for bar in bars_from_batch(&batch, &mut names)? {
                    out.store.apply(bar);
                }
            }
        }
        for key in &snap.quarantine {
            for batch in parquet_batches(key, must_get(storage, key).await?)? {
                for r in rejected_from_batch(&batch)? {
                    out.store.push_rejected(r);
                }
            }
        }
        out.store.take_dirty_dates();
        out.store.quarantine_snapshotted(out.store.quarantine().len());
        out.last_seq = snap.wal_seq;
        out.snapshot = Some(snap);
    }
    let after = out.last_seq;
    for seq in segment_seqs(storage).await?.into_iter().filter(|s| *s > after) {
        let key = paths::intraday_wal_segment(seq);
        // A segment removed after a newer snapshot was written is already in that snapshot.
        let Some(bytes) = storage.get(&key).await? else { continue };
        let (bars, rejected) = decode(&bytes, &mut names).map_err(|e| LakeError::Corrupt(format!("{key}: {e}")))?;
        for bar in bars {
            out.store.apply(bar);
        }
        for r in rejected {
            out.store.push_rejected(r);
        }
        out.last_seq = seq;
        out.segments += 1;
    }
    Ok(out)
}

/// Which stored table [`stored_table`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredKind {
    /// `intraday_bars`.
    Bars,
    /// `intraday_quarantine`.
    Quarantine,
}

/// `intraday_bars` or `intraday_quarantine` for readers without a live server store
/// (`bhavstore query`, the materializer): read from storage at each scan.
#[must_use]
pub fn stored_table(storage: Storage, kind: StoredKind) -> ScanTimeTable {
    let (name, schema) = match kind {
        StoredKind::Bars => (super::INTRADAY_BARS, bars_schema()),
        StoredKind::Quarantine => (super::INTRADAY_QUARANTINE, quarantine_schema()),
    };
    ScanTimeTable::new(
        name,
        schema,
        Arc::new(move || {
            let storage = storage.clone();
            Box::pin(async move {
                let loaded = load(&storage).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
                Ok(match kind {
                    StoredKind::Bars => loaded.store.batches(64 * 1024)?,
                    StoredKind::Quarantine => vec![to_quarantine_batch(loaded.store.quarantine())?],
                })
            })
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_snapshot_naming_a_missing_file_is_an_error_after_a_few_reads_not_a_loop() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = bhavstore_storage::StorageConfig { url: dir.path().display().to_string(), ..Default::default() };
        let storage = Storage::open(&cfg).expect("storage");
        let manifest = SnapshotManifest {
            wal_seq: 1,
            dates: [("2026-07-14".to_string(), "intraday/bars/trade_date=2026-07-14/gone.parquet".to_string())].into(),
            ..SnapshotManifest::default()
        };
        let body = serde_json::to_vec(&manifest).expect("json");
        storage.put(&paths::intraday_snapshot(1), body.into()).await.expect("put");
        let e = load(&storage).await.expect_err("missing file");
        assert!(e.to_string().contains("gone.parquet is named by a snapshot but missing"), "{e}");
        // An empty store loads as nothing.
        let empty = tempfile::tempdir().expect("tmp");
        let cfg = bhavstore_storage::StorageConfig { url: empty.path().display().to_string(), ..Default::default() };
        let loaded = load(&Storage::open(&cfg).expect("storage")).await.expect("load");
        assert!(loaded.store.is_empty() && loaded.snapshot.is_none() && loaded.last_seq == 0);
    }
}
