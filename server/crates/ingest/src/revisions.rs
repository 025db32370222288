//! The stored revisions of a day and which one is current: `bhavstore revisions DATE` lists
//! them, `bhavstore revisions DATE --use REVISION` makes one current again. Raw bytes are never
//! touched; switching reloads the day's Parquet from the chosen revision's bytes and appends to
//! the change log, so materialization recomputes from that day.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::day_state::{self, DayState};
use super::{IngestError, Ingestor, LoadReport, raw};

/// Where a revision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionStatus {
    /// The day's table is loaded from it.
    Current,
    /// Held back: it has fewer rows than the current one.
    Held,
    /// Stored, not current.
    Superseded,
}

impl std::fmt::Display for RevisionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Current => "current",
            Self::Held => "held",
            Self::Superseded => "superseded",
        })
    }
}

/// One stored revision of a day.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionInfo {
    /// Revision name (`{stored_at}-{sha256[..16]}`).
    pub revision: String,
    /// sha256 of the raw bytes.
    pub sha256: String,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
    /// The file's name.
    pub file_name: String,
    /// Where it came from (URL or path).
    pub source: String,
    /// Rows it loads, when known (counted when it was current or held).
    pub rows: Option<u64>,
    /// Where it stands.
    pub status: RevisionStatus,
}

/// Errors of `bhavstore revisions`.
#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    /// Nothing is stored for the day.
    #[error("no revision of {date} is stored")]
    NoRevisions {
        /// The day.
        date: NaiveDate,
    },
    /// No revision matches.
    #[error("no revision of {date} matches {wanted:?}; stored: {available}")]
    NoMatch {
        /// The day.
        date: NaiveDate,
        /// What was asked for.
        wanted: String,
        /// The stored revisions.
        available: String,
    },
    /// More than one revision matches.
    #[error("{wanted:?} matches several revisions ({matches}); give more of the sha256 or the revision name")]
    Ambiguous {
        /// What was asked for.
        wanted: String,
        /// The matching revisions.
        matches: String,
    },
    /// Reading or loading failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Every stored revision of `date`, oldest first, with where it stands.
pub async fn list(ingestor: &Ingestor, date: NaiveDate) -> Result<Vec<RevisionInfo>, IngestError> {
    let storage = ingestor.storage();
    let metas = raw::revisions(storage, date).await?;
    let state = day_state::read(storage, date).await?;
    Ok(metas
        .into_iter()
        .map(|m| {
            let current = state.as_ref().and_then(DayState::current).filter(|c| c.1 == m.sha256);
            let note = state.as_ref().and_then(|s| s.note(&m.sha256));
            let status = match (current, note) {
                (Some(_), _) => RevisionStatus::Current,
                (None, Some(n)) if n.held.is_some() => RevisionStatus::Held,
                _ => RevisionStatus::Superseded,
            };
            RevisionInfo {
                rows: current.map(|c| c.2).or_else(|| note.map(|n| n.rows_loaded)),
                revision: m.revision,
                sha256: m.sha256,
                stored_at: m.stored_at,
                file_name: m.file_name,
                source: m.provenance.source,
                status,
            }
        })
        .collect())
}

/// What switching did.
#[derive(Debug, Clone)]
pub struct Switched {
    /// The load of the chosen revision.
    pub report: LoadReport,
    /// The revision current before, with its rows.
    pub previous: Option<(String, u64)>,
}

/// Makes the revision of `date` named `wanted` (a revision name, or a prefix of its sha256 or
/// name) current: reloads the day from its raw bytes.
pub async fn use_revision(ingestor: &Ingestor, date: NaiveDate, wanted: &str) -> Result<Switched, RevisionError> {
    let storage = ingestor.storage();
    let metas = raw::revisions(storage, date).await?;
    if metas.is_empty() {
        return Err(RevisionError::NoRevisions { date });
    }
    let w = wanted.trim();
    let exact: Vec<_> = metas.iter().filter(|m| m.revision == w || m.sha256 == w).collect();
    let matches: Vec<_> = if exact.is_empty() {
        metas
            .iter()
            .filter(|m| w.len() >= 4 && (m.sha256.starts_with(&w.to_ascii_lowercase()) || m.revision.starts_with(w)))
            .collect()
    } else {
        exact
    };
    let meta = match matches.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(RevisionError::NoMatch {
                date,
                wanted: w.to_string(),
                available: metas.iter().map(|m| m.revision.as_str()).collect::<Vec<_>>().join(", "),
            });
        }
        many => {
            return Err(RevisionError::Ambiguous {
                wanted: w.to_string(),
                matches: many.iter().map(|m| m.revision.as_str()).collect::<Vec<_>>().join(", "),
            });
        }
    };
    let bytes = storage.get(&meta.key).await.map_err(IngestError::from)?.ok_or_else(|| IngestError::Corrupt {
        key: meta.key.clone(),
        message: "the revision's record exists but its bytes are missing".into(),
    })?;
    let previous =
        day_state::read(storage, date).await?.as_ref().and_then(DayState::current).map(|(r, _, n)| (r.to_string(), n));
    let (csv_name, parsed) = ingestor.parse(&meta.file_name, &bytes, Some(date)).map_err(|(_, e)| e)?;
    let report = super::load::load_day(storage, &meta, &csv_name, parsed).await?;
    tracing::info!(%date, revision = %meta.revision, rows = report.rows_loaded, "revision made current");
    Ok(Switched { report, previous })
}
