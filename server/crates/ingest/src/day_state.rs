//! What is known about each trade date: loaded from which raw revision, or checked and found
//! without a file. Backfills resume from these records.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::IngestError;
use bhavstore_storage::Storage;
use bhavstore_storage::paths;

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
        /// The day's other revisions whose rows were counted: revisions that were current
        /// before, and revisions held back because they would lose rows. (Absent in records
        /// written before revisions could be held.)
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        other_revisions: Vec<RevisionNote>,
    },
    /// BSE answered with its HTML page: no file for that day when checked.
    NoFilePublished {
        /// When it was checked.
        checked_at: DateTime<Utc>,
        /// URLs tried.
        urls: Vec<String>,
    },
}

/// What is known about a revision of a day that is not its current one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevisionNote {
    /// The raw revision.
    pub revision: String,
    /// sha256 of its raw bytes.
    pub raw_sha256: String,
    /// Data lines in the file.
    pub data_lines: u64,
    /// Rows it loads (or would load).
    pub rows_loaded: u64,
    /// Lines it quarantines (or would).
    pub rows_quarantined: u64,
    /// Set while the revision is held back instead of loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Hold>,
}

/// Why a revision is held back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hold {
    /// Why, in words.
    pub reason: String,
    /// The revision that stayed current.
    pub current_revision: String,
    /// Rows of the revision that stayed current.
    pub current_rows: u64,
    /// When it was held.
    pub held_at: DateTime<Utc>,
}

impl DayState {
    /// The revision loaded for the day, if any: (revision, sha256, rows loaded).
    #[must_use]
    pub fn current(&self) -> Option<(&str, &str, u64)> {
        match self {
            Self::Loaded { revision, raw_sha256, rows_loaded, .. } => {
                Some((revision.as_str(), raw_sha256.as_str(), *rows_loaded))
            }
            Self::NoFilePublished { .. } => None,
        }
    }

    /// What is known about another revision of the day.
    #[must_use]
    pub fn note(&self, sha256: &str) -> Option<&RevisionNote> {
        match self {
            Self::Loaded { other_revisions, .. } => other_revisions.iter().find(|n| n.raw_sha256 == sha256),
            Self::NoFilePublished { .. } => None,
        }
    }

    /// Records a note about another revision (replacing an older note of the same bytes).
    pub fn set_note(&mut self, note: RevisionNote) {
        if let Self::Loaded { other_revisions, .. } = self {
            other_revisions.retain(|n| n.raw_sha256 != note.raw_sha256);
            other_revisions.push(note);
            other_revisions.sort_by(|a, b| a.revision.cmp(&b.revision));
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_held_revisions_still_parse() {
        let old = r#"{"status":"loaded","raw_sha256":"ab","revision":"r1","source_format":"bse_eq_legacy14","data_lines":3,"rows_loaded":3,"rows_quarantined":0,"loaded_at":"2026-01-01T00:00:00Z"}"#;
        let s: DayState = serde_json::from_str(old).unwrap();
        assert_eq!(s.current(), Some(("r1", "ab", 3)));
        assert_eq!(s.note("cd"), None);
        // And a record without notes is written as before.
        assert!(!serde_json::to_string(&s).unwrap().contains("other_revisions"));
    }
}
