//! Writing one day's canonical Parquet and quarantine from a parsed file. One file per day,
//! replaced whole and atomically, so loading the same raw bytes twice changes nothing.

use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use datafusion::arrow::array::RecordBatch;
use serde::Serialize;

use super::IngestError;
use super::day_state::{self, DayState, RevisionNote};
use super::raw::RawMeta;
use bhavstore_formats::ParsedFile;
use bhavstore_formats::canonical::{quarantine_to_batch, rows_to_batch};
use bhavstore_storage::Storage;
use bhavstore_storage::paths;

/// What loading one raw file did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoadReport {
    /// The session.
    pub trade_date: NaiveDate,
    /// The CSV's name (zip member name for archives).
    pub source_name: String,
    /// The raw revision loaded.
    pub revision: String,
    /// sha256 of the raw bytes.
    pub raw_sha256: String,
    /// CSV layout.
    pub source_format: String,
    /// Non-empty lines after the header.
    pub data_lines: u64,
    /// Rows written to `bhavcopy`.
    pub rows_loaded: u64,
    /// Lines written to `bhavcopy_quarantine`.
    pub rows_quarantined: u64,
    /// Empty lines skipped.
    pub blank_lines: u64,
    /// Set when this revision has fewer rows than the one it replaced and was loaded anyway
    /// (`--accept-revision`, `ingest.on_row_loss: accept`, or within `ingest.max_row_loss_pct`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_loss: Option<RowLoss>,
}

/// Rows a new revision has fewer than the one it replaced.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RowLoss {
    /// The revision replaced.
    pub previous_revision: String,
    /// Its rows.
    pub previous_rows: u64,
    /// Rows of the new revision.
    pub rows: u64,
}

/// Writes the day's Parquet and quarantine files and records the day as loaded from `raw`. The
/// revision that was current before is remembered in the day's record with its counts.
pub async fn load_day(
    storage: &Storage,
    raw: &RawMeta,
    source_name: &str,
    mut parsed: ParsedFile,
) -> Result<LoadReport, IngestError> {
    let date = parsed.trade_date;
    parsed.rows.sort_by_key(|r| r.scrip_code);
    let format = parsed.format.as_str();
    let batch = rows_to_batch(&parsed.rows, format, &raw.sha256).map_err(|e| IngestError::Write(e.to_string()))?;
    let data = parquet_bytes(&batch, Some(0))?;
    storage.put(&paths::bhavcopy_file(date), data).await?;

    let qkey = paths::quarantine_file(date);
    if parsed.quarantined.is_empty() {
        storage.delete(&qkey).await?;
    } else {
        let qbatch = quarantine_to_batch(&parsed.quarantined, &raw.sha256, source_name)
            .map_err(|e| IngestError::Write(e.to_string()))?;
        storage.put(&qkey, parquet_bytes(&qbatch, None)?).await?;
    }

    let report = LoadReport {
        trade_date: date,
        source_name: source_name.to_string(),
        revision: raw.revision.clone(),
        raw_sha256: raw.sha256.clone(),
        source_format: format.to_string(),
        data_lines: parsed.data_lines,
        rows_loaded: parsed.rows.len() as u64,
        rows_quarantined: parsed.quarantined.len() as u64,
        blank_lines: parsed.blank_lines,
        row_loss: None,
    };
    debug_assert_eq!(report.data_lines, report.rows_loaded + report.rows_quarantined);
    let mut other_revisions = match day_state::read(storage, date).await? {
        Some(DayState::Loaded {
            raw_sha256,
            revision,
            data_lines,
            rows_loaded,
            rows_quarantined,
            mut other_revisions,
            ..
        }) => {
            if raw_sha256 != raw.sha256 {
                other_revisions.push(RevisionNote {
                    revision,
                    raw_sha256,
                    data_lines,
                    rows_loaded,
                    rows_quarantined,
                    held: None,
                });
            }
            other_revisions
        }
        _ => Vec::new(),
    };
    other_revisions.retain(|n| n.raw_sha256 != raw.sha256);
    other_revisions.sort_by(|a, b| a.revision.cmp(&b.revision));
    day_state::write(
        storage,
        date,
        &DayState::Loaded {
            raw_sha256: raw.sha256.clone(),
            revision: raw.revision.clone(),
            source_format: report.source_format.clone(),
            data_lines: report.data_lines,
            rows_loaded: report.rows_loaded,
            rows_quarantined: report.rows_quarantined,
            loaded_at: Utc::now(),
            other_revisions,
        },
    )
    .await?;
    // Materialization reads this log to find new days and revised ones; written last, so an
    // entry always refers to data that is already in place.
    record_load(storage, date, &raw.sha256).await?;
    Ok(report)
}

/// Appends a canonical load of `date` (from raw bytes with `sha256`) to the change log.
pub async fn record_load(storage: &Storage, date: NaiveDate, sha256: &str) -> Result<(), IngestError> {
    storage.put_create(&paths::load_entry(Utc::now(), date, sha256), Bytes::from_static(b"{}")).await?;
    Ok(())
}

/// Serialises a batch as zstd Parquet; `sorted_by` marks the column the rows are sorted on.
fn parquet_bytes(batch: &RecordBatch, sorted_by: Option<usize>) -> Result<Bytes, IngestError> {
    bhavstore_lake::writer::batch_bytes(batch, sorted_by).map_err(|e| IngestError::Write(e.to_string()))
}
