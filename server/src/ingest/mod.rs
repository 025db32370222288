//! Getting bhavcopies into storage: raw bytes first (the source of truth), then the canonical
//! Parquet day and its quarantine. Downloads and local imports share one path, [`Ingestor::ingest_bytes`].

pub mod backfill;
pub mod day_state;
mod extract;
pub mod import;
pub mod load;
pub mod raw;

use bytes::Bytes;
use chrono::NaiveDate;
use tracing::{debug, info, warn};

pub use backfill::{BackfillOptions, BackfillSummary, DayOutcome, DayResult};
pub use load::LoadReport;
pub use raw::Provenance;

use crate::formats::{ParseError, parse_csv};
use crate::source::{BseClient, FetchError, FetchOutcome};
use crate::storage::{Storage, StorageError};

/// Errors while ingesting.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Downloading failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The body is BSE's firewall page, not data.
    #[error(
        "{name}: BSE's firewall refused the download and sent its block page (\"This page can't be displayed\") instead of the file. BSE blocks clients it takes for bots: keep the default browser User-Agent (source.user_agent), lower source.requests_per_second, and try again later"
    )]
    FirewallPage {
        /// The file name.
        name: String,
    },
    /// The body is not a bhavcopy at all.
    #[error("{name}: not a bhavcopy: {what}")]
    NotABhavcopy {
        /// The file name.
        name: String,
        /// What it is instead.
        what: String,
    },
    /// The CSV was refused as a whole.
    #[error("{name}: {source}")]
    Parse {
        /// The file name.
        name: String,
        /// Why.
        source: ParseError,
    },
    /// BSE served a file for another day than asked for.
    #[error("{name}: asked for {asked} but the file is for {got}")]
    WrongDate {
        /// The file name.
        name: String,
        /// The date requested.
        asked: NaiveDate,
        /// The date in the file.
        got: NaiveDate,
    },
    /// A stored record does not parse.
    #[error("stored object {key} is corrupt: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
    /// Writing Parquet failed.
    #[error("writing Parquet: {0}")]
    Write(String),
    /// The body was refused and kept for inspection.
    #[error("{source} (the bytes are kept at {kept_at})")]
    Rejected {
        /// Why it was refused.
        source: Box<IngestError>,
        /// Key of the kept bytes.
        kept_at: String,
    },
}

/// What ingesting one body did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The bytes were new (or not yet loaded) and the day was (re)written.
    Loaded {
        /// The load report.
        report: LoadReport,
        /// sha256 of the revision this one replaced, when the day had other bytes before.
        superseded: Option<String>,
    },
    /// Identical bytes were stored and loaded before: nothing changed.
    Unchanged {
        /// The day.
        trade_date: NaiveDate,
        /// The revision those bytes are.
        revision: String,
        /// Whether a newer revision is in force (the bytes were an older revision).
        older_than_latest: bool,
    },
}

/// Ingests bodies into a storage root.
#[derive(Debug, Clone)]
pub struct Ingestor {
    storage: Storage,
}

impl Ingestor {
    /// An ingestor writing to `storage`.
    #[must_use]
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    /// The storage root.
    #[must_use]
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Validates, stores and loads one body. `expected` is the trade date asked of BSE, if any.
    /// A body that does not parse is kept under `rejected/` and the error says where.
    pub async fn ingest_bytes(
        &self,
        name: &str,
        bytes: Bytes,
        provenance: Provenance,
        expected: Option<NaiveDate>,
    ) -> Result<Ingested, IngestError> {
        let parsed = match Self::parse(name, &bytes, expected) {
            Ok(p) => p,
            Err((date, err)) => {
                let reason = err.to_string();
                let meta = raw::store_rejected(&self.storage, date, name, &bytes, provenance, &reason).await?;
                warn!(file = name, kept_at = %meta.key, "rejected: {reason}");
                return Err(IngestError::Rejected { source: Box::new(err), kept_at: meta.key });
            }
        };
        let (csv_name, parsed) = parsed;
        for w in &parsed.warnings {
            warn!(file = name, "{w}");
        }
        let date = parsed.trade_date;
        let stored = raw::store(&self.storage, date, name, &bytes, provenance).await?;
        if !stored.is_new {
            let is_latest = stored.is_latest;
            let state = day_state::read(&self.storage, date).await?;
            let loaded_sha = match &state {
                Some(day_state::DayState::Loaded { raw_sha256, .. }) => Some(raw_sha256.as_str()),
                _ => None,
            };
            if !is_latest || loaded_sha == Some(stored.meta.sha256.as_str()) {
                return Ok(Ingested::Unchanged {
                    trade_date: date,
                    revision: stored.meta.revision,
                    older_than_latest: !is_latest,
                });
            }
            // The bytes were stored but never loaded (e.g. a crash between the two): load now.
        }
        if let Some(old) = &stored.superseded {
            info!(
                %date,
                old_sha256 = %old.sha256,
                new_sha256 = %stored.meta.sha256,
                "BSE's file for this day changed: keeping both revisions, the newer one ({}) wins",
                stored.meta.revision
            );
        }
        let report = load::load_day(&self.storage, &stored.meta, &csv_name, parsed).await?;
        debug!(
            %date,
            format = %report.source_format,
            rows = report.rows_loaded,
            quarantined = report.rows_quarantined,
            data_lines = report.data_lines,
            "loaded"
        );
        Ok(Ingested::Loaded { report, superseded: stored.superseded.map(|m| m.sha256) })
    }

    #[allow(clippy::result_large_err)]
    fn parse(
        name: &str,
        bytes: &[u8],
        expected: Option<NaiveDate>,
    ) -> Result<(String, crate::formats::ParsedFile), (Option<NaiveDate>, IngestError)> {
        let name_date = crate::formats::file_name::date_from_file_name(name).or(expected);
        let csv = extract::csv_body(name, bytes).map_err(|e| (name_date, e))?;
        let parsed = parse_csv(&csv.bytes, csv.name_date.or(expected))
            .map_err(|source| (name_date, IngestError::Parse { name: csv.name.clone(), source }))?;
        if let Some(asked) = expected
            && parsed.trade_date != asked
        {
            return Err((Some(asked), IngestError::WrongDate { name: name.into(), asked, got: parsed.trade_date }));
        }
        Ok((csv.name, parsed))
    }

    /// Downloads one day from BSE and ingests it.
    pub async fn fetch_day(&self, client: &BseClient, date: NaiveDate) -> Result<DayOutcome, IngestError> {
        match client.fetch_day(date).await? {
            FetchOutcome::NoFile { urls } => {
                if let Some(day_state::DayState::Loaded { revision, .. }) = day_state::read(&self.storage, date).await?
                {
                    // Never let a transient "no file" answer hide data already stored.
                    warn!(%date, %revision, "BSE answered with its HTML page for a day already loaded; keeping the stored data");
                    return Ok(DayOutcome::Unchanged);
                }
                info!(%date, "no file published (BSE answered with its HTML page)");
                let state = day_state::DayState::NoFilePublished { checked_at: chrono::Utc::now(), urls };
                day_state::write(&self.storage, date, &state).await?;
                Ok(DayOutcome::NoFilePublished)
            }
            FetchOutcome::Blocked(f) => {
                let err = IngestError::FirewallPage { name: f.url.clone() };
                let prov = provenance_of(&f);
                let meta =
                    raw::store_rejected(&self.storage, Some(date), &f.file_name, &f.bytes, prov, &err.to_string())
                        .await?;
                Err(IngestError::Rejected { source: Box::new(err), kept_at: meta.key })
            }
            FetchOutcome::File(f) => {
                let prov = provenance_of(&f);
                match self.ingest_bytes(&f.file_name, f.bytes, prov, Some(date)).await? {
                    Ingested::Loaded { report, superseded } => Ok(DayOutcome::Fetched { report, superseded }),
                    Ingested::Unchanged { .. } => Ok(DayOutcome::Unchanged),
                }
            }
        }
    }
}

fn provenance_of(f: &crate::source::Fetched) -> Provenance {
    Provenance {
        kind: "http".into(),
        source: f.url.clone(),
        fetched_at: f.fetched_at,
        http_status: Some(f.status),
        content_type: f.content_type.clone(),
    }
}
