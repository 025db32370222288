//! What is known about each trade date: loaded from which raw revision, or checked and found
//! without a file. Backfills resume from these records.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::IngestError;
use crate::paths;
use crate::storage::Storage;

/// The state of one trade date.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DayState {
    /// The day's Parquet was written from this raw revision.
    Loaded {
        /// sha256 of the raw bytes loaded.
        raw_sha256: String,
        /// The raw revision.
        revision: String,
        /// Format of the CSV.
        source_format: String,
        /// Data lines in the file.
        data_lines: u64,
        /// Rows written to `bhavcopy`.
        rows_loaded: u64,
        /// Lines written to `bhavcopy_quarantine`.
        rows_quarantined: u64,
        /// When.
        loaded_at: DateTime<Utc>,
    },
    /// BSE answered with its HTML page: no file for that day when checked.
    NoFilePublished {
        /// When it was checked.
        checked_at: DateTime<Utc>,
        /// URLs tried.
        urls: Vec<String>,
    },
}

impl DayState {
    /// Whether a backfill may skip this day. A "no file" answer is final once BSE has had time
    /// to publish (two days after the session); before that it might still appear.
    #[must_use]
    pub fn is_settled(&self, date: NaiveDate) -> bool {
        match self {
            Self::Loaded { .. } => true,
            Self::NoFilePublished { checked_at, .. } => {
                let settle = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc() + chrono::Duration::days(2));
                settle.is_some_and(|s| *checked_at >= s)
            }
        }
    }
}

/// Reads the state of a day.
pub async fn read(storage: &Storage, date: NaiveDate) -> Result<Option<DayState>, IngestError> {
    let key = paths::day_state(date);
    match storage.get(&key).await? {
        None => Ok(None),
        Some(b) => {
            serde_json::from_slice(&b).map(Some).map_err(|e| IngestError::Corrupt { key, message: e.to_string() })
        }
    }
}

/// Writes the state of a day (replacing the previous record).
pub async fn write(storage: &Storage, date: NaiveDate, state: &DayState) -> Result<(), IngestError> {
    let key = paths::day_state(date);
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| IngestError::Corrupt { key: key.clone(), message: e.to_string() })?;
    storage.put(&key, json.into()).await?;
    Ok(())
}

/// Every day with a state record, sorted.
pub async fn all_days(storage: &Storage) -> Result<Vec<NaiveDate>, IngestError> {
    Ok(storage.list(paths::DAY_STATE).await?.iter().filter_map(|k| paths::date_of_day_state(k)).collect())
}
