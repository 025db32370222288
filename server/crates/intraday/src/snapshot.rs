//! Folding the log into Parquet: each trade date changed since the last snapshot is rewritten
//! whole (every bar of the day, newest revisions), new refusals go to a file of their own, and a
//! create-only manifest names the files and the log segment they hold. The segments it covers
//! are removed after it exists; a crash before that leaves them to be replayed, which changes
//! nothing (a segment applied twice is a repeat).

use std::collections::BTreeSet;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

use bhavstore_lake::bars::stored::SnapshotManifest;
use bhavstore_lake::bars::to_quarantine_batch;
use bhavstore_lake::{from_days, writer::writer_properties};
use bhavstore_storage::{Created, paths};

use crate::{Inner, IntradayError};

fn parquet(batch: &RecordBatch) -> Result<Bytes, IntradayError> {
    let mut out = Vec::new();
    let err = |e: datafusion::parquet::errors::ParquetError| {
        IntradayError::Lake(bhavstore_lake::LakeError::Write(e.to_string()))
    };
    // Rows are sorted by instrument (column 0), then ts.
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(writer_properties(Some(0), None))).map_err(err)?;
    w.write(batch).map_err(err)?;
    w.close().map_err(err)?;
    Ok(Bytes::from(out))
}

/// Writes a snapshot of everything applied so far; `None` when nothing changed.
pub(crate) async fn run(inner: &Inner) -> Result<Option<u64>, IntradayError> {
    let _one = inner.snapshot_lock.lock().await;
    let (seq, dirty, previous) = {
        let mut st = inner.state.write().map_err(|_| IntradayError::Poisoned)?;
        (st.seq, st.store.take_dirty_dates(), st.snapshot.clone())
    };
    match write(inner, seq, &dirty, &previous).await {
        Ok(Some((manifest, held))) => {
            let written = manifest.wal_seq;
            {
                let mut st = inner.state.write().map_err(|_| IntradayError::Poisoned)?;
                st.store.quarantine_snapshotted(held);
                st.snapshot = manifest.clone();
            }
            cleanup(inner, &previous, &manifest).await;
            Ok(Some(written))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            if let Ok(mut st) = inner.state.write() {
                st.store.mark_dirty(dirty);
            }
            Err(e)
        }
    }
}

/// Writes the day files and the manifest; returns it and how many refusals it holds.
async fn write(
    inner: &Inner,
    seq: u64,
    dirty: &BTreeSet<i32>,
    previous: &SnapshotManifest,
) -> Result<Option<(SnapshotManifest, usize)>, IntradayError> {
    // Bars of a later segment may be in these files too: replaying that segment is a repeat.
    let (days, quarantine, held) = {
        let st = inner.state.read().map_err(|_| IntradayError::Poisoned)?;
        let days = dirty.iter().map(|d| st.store.date_batch(*d).map(|b| (*d, b))).collect::<Result<Vec<_>, _>>()?;
        let (from, rows) = st.store.unsnapshotted_quarantine();
        let q = if rows.is_empty() { None } else { Some(to_quarantine_batch(rows)?) };
        (days, q, from + rows.len())
    };
    if seq == previous.wal_seq && days.is_empty() && quarantine.is_none() {
        return Ok(None);
    }
    let mut manifest = previous.clone();
    for (d, batch) in &days {
        let date = from_days(*d);
        let key = paths::intraday_bars_file(date, seq);
        inner.storage.put(&key, parquet(batch)?).await?;
        manifest.dates.insert(date.format("%Y-%m-%d").to_string(), key);
    }
    if let Some(q) = quarantine {
        let key = paths::intraday_quarantine_file(seq);
        inner.storage.put(&key, parquet(&q)?).await?;
        manifest.quarantine.push(key);
    }
    manifest.wal_seq = seq;
    manifest.bars = inner.state.read().map(|s| s.store.len() as u64).unwrap_or(0);
    manifest.written_at = Some(chrono::Utc::now());
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| IntradayError::LogWrite(e.to_string()))?;
    // A snapshot is only written past the previous one's log position (new segments are what
    // dirty a date), so a manifest already at this key was written by another process.
    if inner.storage.put_create(&paths::intraday_snapshot(seq), Bytes::from(body)).await? == Created::AlreadyExisted {
        return Err(IntradayError::Fenced { seq });
    }
    tracing::info!(seq, days = days.len(), bars = manifest.bars, "intraday snapshot written");
    Ok(Some((manifest, held)))
}

/// Removes what the new snapshot makes unnecessary: the log segments it holds, day files it
/// replaced, older manifests. Failures only leave garbage behind.
async fn cleanup(inner: &Inner, previous: &SnapshotManifest, now: &SnapshotManifest) {
    let storage = &inner.storage;
    if let Ok(seqs) = bhavstore_lake::bars::stored::segment_seqs(storage).await {
        for s in seqs.into_iter().filter(|s| *s <= now.wal_seq) {
            let _ = storage.delete(&paths::intraday_wal_segment(s)).await;
        }
    }
    for (date, key) in &previous.dates {
        if now.dates.get(date) != Some(key) {
            let _ = storage.delete(key).await;
        }
    }
    if let Ok(keys) = storage.list(paths::INTRADAY_SNAPSHOTS).await {
        for k in keys {
            if paths::seq_of_intraday_key(&k).is_some_and(|s| s < now.wal_seq) {
                let _ = storage.delete(&k).await;
            }
        }
    }
}
