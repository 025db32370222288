//! Getting bhavcopies into storage: raw bytes first (the source of truth), then the canonical
//! Parquet day and its quarantine. Downloads and local imports share one path, [`Ingestor::ingest_bytes`].
//!
//! A day's *current* revision is the one its day record names, not simply the newest stored: a
//! new revision that would lose rows is stored but held back until a user accepts it, and a user
//! can make any stored revision current again (`revisions.rs`).

pub mod backfill;
pub mod config;
pub mod day_state;
mod extract;
pub mod import;
pub mod load;
pub mod local_files;
pub mod location;
pub mod raw;
pub mod reference;
pub mod revisions;
pub mod source;

use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use serde::Serialize;
use tracing::{debug, info, warn};

pub use backfill::{BackfillOptions, BackfillSummary, DayOutcome, DayResult};
pub use load::{LoadReport, RowLoss};
pub use raw::Provenance;

use crate::config::{IngestConfig, RowLossPolicy};
use crate::source::{BseClient, FetchError, FetchOutcome};
use bhavstore_formats::{ParseError, ZipError, parse_csv};
use bhavstore_storage::{Storage, StorageError};
use day_state::{DayState, Hold, RevisionNote};

/// Why a body cannot be used as a whole (before any line is parsed).
#[derive(Debug)]
pub enum Unusable {
    /// BSE's ordinary HTML page.
    HtmlPage,
    /// Nothing in it.
    Empty,
    /// A zip without a CSV member.
    NoCsvMember,
    /// A zip with several CSV members where one was expected.
    ManyMembers {
        /// The members' names.
        names: Vec<String>,
    },
    /// A zip refused by its limits or unreadable.
    Archive(ZipError),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::HtmlPage => f.write_str("an HTML page (BSE's answer for a day without a file), not a bhavcopy"),
            Self::Empty => f.write_str("an empty body"),
            Self::NoCsvMember => f.write_str("a zip without a CSV member"),
            Self::ManyMembers { names } => write!(
                f,
                "a zip with {} CSV members ({}), expected one bhavcopy; `bhavstore import` splits archives of many days",
                names.len(),
                names.join(", ")
            ),
            Self::Archive(e) => write!(f, "{e}"),
        }
    }
}

impl Unusable {
    /// The kind of problem, without names or content from inside the body.
    #[must_use]
    pub fn category(&self) -> String {
        match self {
            Self::ManyMembers { names } => format!("a zip with {} CSV members, expected one", names.len()),
            Self::Archive(e) => e.category(),
            other => other.to_string(),
        }
    }
}

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
        what: Unusable,
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
    /// A reference file (corporate actions, holidays) was recognised but cannot be read.
    #[error("{name}: {message}")]
    Reference {
        /// The file name.
        name: String,
        /// Why.
        message: String,
    },
    /// The body was refused and kept for inspection.
    #[error("{source} (the bytes are kept at {kept_at})")]
    Rejected {
        /// Why it was refused.
        source: Box<IngestError>,
        /// Key of the kept bytes.
        kept_at: String,
    },
}

impl IngestError {
    /// The error for someone who does not own the file (a REST client): the kind of problem, the
    /// file's name and where its bytes are kept, never anything read from inside the file, nor
    /// storage internals (which are logged).
    #[must_use]
    pub fn client_message(&self) -> String {
        match self {
            Self::Storage(_) => "a storage operation failed; see the server log".into(),
            Self::Fetch(e) => e.to_string(),
            Self::FirewallPage { name } => format!("{name}: BSE's firewall block page, not a bhavcopy"),
            Self::NotABhavcopy { name, what } => format!("{name}: not a bhavcopy ({})", what.category()),
            Self::Parse { name, source } => format!("{name}: {}", source.category()),
            Self::WrongDate { name, asked, .. } => format!("{name}: not the file for {asked}"),
            Self::Corrupt { key, .. } => format!("stored object {key} is corrupt; see the server log"),
            Self::Write(_) => "writing Parquet failed; see the server log".into(),
            Self::Reference { name, .. } => format!("{name}: a reference file that could not be read"),
            Self::Rejected { source, kept_at } => {
                format!("{}; the bytes are kept at {kept_at}", source.client_message())
            }
        }
    }

    /// Whether the error is the store's (not the file's): an import stops on these.
    #[must_use]
    pub fn is_storage(&self) -> bool {
        matches!(self, Self::Storage(_) | Self::Write(_))
    }
}

/// A new revision of a loaded day stored but not loaded, because it has fewer rows than the
/// current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldRevision {
    /// The day.
    pub trade_date: NaiveDate,
    /// The revision held.
    pub revision: String,
    /// Its sha256.
    pub raw_sha256: String,
    /// Rows it would load.
    pub rows: u64,
    /// Its data lines.
    pub data_lines: u64,
    /// The revision that stays current.
    pub current_revision: String,
    /// Rows of the current revision.
    pub current_rows: u64,
    /// Whether these bytes were held before (supplied again).
    pub again: bool,
}

impl HeldRevision {
    /// The warning to show: both counts and how to load it anyway.
    #[must_use]
    pub fn warning(&self) -> String {
        format!(
            "{}: revision {} has {} rows, {} fewer than the {} rows of the current revision {}; it is stored but held, not loaded. If the new file is right, load it with --accept-revision or `bhavstore revisions {} --use {}`",
            self.trade_date,
            self.revision,
            self.rows,
            self.current_rows.saturating_sub(self.rows),
            self.current_rows,
            self.current_revision,
            self.trade_date,
            self.revision
        )
    }
}

/// What ingesting one body did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The bytes were new (or not yet loaded) and the day was (re)written.
    Loaded {
        /// The load report.
        report: LoadReport,
        /// sha256 of the revision this one replaced, when the day had another current revision.
        superseded: Option<String>,
    },
    /// The bytes were stored before and nothing changed.
    Unchanged {
        /// The day.
        trade_date: NaiveDate,
        /// The revision those bytes are.
        revision: String,
        /// Whether these bytes are not the day's current revision (an older or superseded
        /// one): the current one stays in force.
        older_than_latest: bool,
        /// The day's current revision.
        current_revision: Option<String>,
    },
    /// The bytes were stored but not loaded: they would lose rows.
    Held(HeldRevision),
    /// A corporate-action export or holiday list, stored and loaded.
    Reference(reference::ReferenceLoaded),
}

impl Ingested {
    /// A line for people about bytes already stored that are not current: which revision they
    /// are, which one is current and how to switch.
    #[must_use]
    pub fn unchanged_note(&self) -> Option<String> {
        match self {
            Self::Unchanged { trade_date, revision, older_than_latest: true, current_revision } => Some(format!(
                "identical bytes are already stored as revision {revision}; the current revision is {}; to make {revision} current: bhavstore revisions {trade_date} --use {revision}",
                current_revision.as_deref().unwrap_or("another one")
            )),
            _ => None,
        }
    }
}

/// Ingests bodies into a storage root.
#[derive(Debug, Clone)]
pub struct Ingestor {
    storage: Storage,
    config: Arc<IngestConfig>,
    accept_revisions: bool,
}

impl Ingestor {
    /// An ingestor writing to `storage`, with the default `ingest:` settings.
    #[must_use]
    pub fn new(storage: Storage) -> Self {
        Self { storage, config: Arc::new(IngestConfig::default()), accept_revisions: false }
    }

    /// The same ingestor with these `ingest:` settings.
    #[must_use]
    pub fn with_config(mut self, config: &IngestConfig) -> Self {
        self.config = Arc::new(config.clone());
        self
    }

    /// The same ingestor loading revisions that lose rows instead of holding them
    /// (`--accept-revision`).
    #[must_use]
    pub fn accepting_revisions(mut self, accept: bool) -> Self {
        self.accept_revisions = accept;
        self
    }

    /// The storage root.
    #[must_use]
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The `ingest:` settings.
    #[must_use]
    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Keeps a body that cannot be used under `rejected/` and returns the error to report, which
    /// names where the bytes are kept.
    pub async fn reject(
        &self,
        date: Option<NaiveDate>,
        name: &str,
        bytes: &Bytes,
        provenance: Provenance,
        err: IngestError,
    ) -> IngestError {
        let reason = err.to_string();
        match raw::store_rejected(&self.storage, date, name, bytes, provenance, &reason).await {
            Ok(meta) => {
                warn!(file = name, kept_at = %meta.key, "rejected: {reason}");
                IngestError::Rejected { source: Box::new(err), kept_at: meta.key }
            }
            Err(e) => {
                warn!(file = name, error = %e, "rejected ({reason}) and the bytes could not be kept");
                e
            }
        }
    }

    /// Validates, stores and loads one body. `expected` is the trade date asked of BSE, if any.
    /// A body that does not parse is kept under `rejected/` and the error says where. A body
    /// with fewer rows than the day's current revision is stored and held (see [`Ingested::Held`]).
    pub async fn ingest_bytes(
        &self,
        name: &str,
        bytes: Bytes,
        provenance: Provenance,
        expected: Option<NaiveDate>,
    ) -> Result<Ingested, IngestError> {
        let (csv_name, parsed) = match self.parse(name, &bytes, expected) {
            Ok(p) => p,
            Err((date, err)) => return Err(self.reject(date, name, &bytes, provenance, err).await),
        };
        for w in &parsed.warnings {
            warn!(file = name, "{w}");
        }
        let date = parsed.trade_date;
        let stored = raw::store(&self.storage, date, name, &bytes, provenance).await?;
        let state = day_state::read(&self.storage, date).await?;
        let sha = stored.meta.sha256.clone();
        let current = state.as_ref().and_then(DayState::current).map(|(r, s, n)| (r.to_string(), s.to_string(), n));
        let unchanged = |older: bool| Ingested::Unchanged {
            trade_date: date,
            revision: stored.meta.revision.clone(),
            older_than_latest: older,
            current_revision: current.as_ref().map(|c| c.0.clone()),
        };
        if current.as_ref().is_some_and(|c| c.1 == sha) {
            return Ok(unchanged(false));
        }
        let note = state.as_ref().and_then(|s| s.note(&sha)).cloned();
        let held_before = note.as_ref().is_some_and(|n| n.held.is_some());
        if !stored.is_new
            && !held_before
            && let Some((current_revision, ..)) = &current
            && (note.is_some() || stored.meta.revision < *current_revision)
        {
            // A revision that was current before, or older than the current one: supplying it
            // again never switches the day back silently.
            return Ok(unchanged(true));
        }
        // New bytes, held bytes supplied again, or bytes stored but never loaded (a crash
        // between the two): the row count decides.
        let rows = parsed.rows.len() as u64;
        let mut row_loss = None;
        if let Some((current_revision, _, current_rows)) = &current
            && rows < *current_rows
        {
            let lost = current_rows - rows;
            let within = (lost as f64) <= (*current_rows as f64) * self.config.max_row_loss_pct / 100.0;
            let accept = self.accept_revisions || self.config.on_row_loss == RowLossPolicy::Accept || within;
            if !accept {
                let held = HeldRevision {
                    trade_date: date,
                    revision: stored.meta.revision.clone(),
                    raw_sha256: sha.clone(),
                    rows,
                    data_lines: parsed.data_lines,
                    current_revision: current_revision.clone(),
                    current_rows: *current_rows,
                    again: held_before,
                };
                if let Some(mut state) = state
                    && !held_before
                {
                    state.set_note(RevisionNote {
                        revision: held.revision.clone(),
                        raw_sha256: sha.clone(),
                        data_lines: parsed.data_lines,
                        rows_loaded: rows,
                        rows_quarantined: parsed.quarantined.len() as u64,
                        held: Some(Hold {
                            reason: format!("{rows} rows where the current revision has {current_rows}"),
                            current_revision: current_revision.clone(),
                            current_rows: *current_rows,
                            held_at: chrono::Utc::now(),
                        }),
                    });
                    day_state::write(&self.storage, date, &state).await?;
                }
                warn!(%date, revision = %held.revision, rows, current_rows, current = %current_revision, "{}", held.warning());
                return Ok(Ingested::Held(held));
            }
            warn!(%date, revision = %stored.meta.revision, rows, current_rows, "loading a revision with fewer rows than the current one (accepted)");
            row_loss =
                Some(RowLoss { previous_revision: current_revision.clone(), previous_rows: *current_rows, rows });
        }
        if let Some((_, old_sha, _)) = &current {
            info!(
                %date,
                old_sha256 = %old_sha,
                new_sha256 = %sha,
                "the file for this day changed: keeping both revisions, the new one ({}) is current",
                stored.meta.revision
            );
        }
        let mut report = load::load_day(&self.storage, &stored.meta, &csv_name, parsed).await?;
        report.row_loss = row_loss;
        debug!(
            %date,
            format = %report.source_format,
            rows = report.rows_loaded,
            quarantined = report.rows_quarantined,
            data_lines = report.data_lines,
            "loaded"
        );
        Ok(Ingested::Loaded { report, superseded: current.map(|c| c.1) })
    }

    #[allow(clippy::result_large_err)]
    fn parse(
        &self,
        name: &str,
        bytes: &[u8],
        expected: Option<NaiveDate>,
    ) -> Result<(String, bhavstore_formats::ParsedFile), (Option<NaiveDate>, IngestError)> {
        let name_date = bhavstore_formats::file_name::date_from_file_name(name).or(expected);
        let csv = extract::csv_body(name, bytes, &self.config.zip_limits()).map_err(|e| (name_date, e))?;
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
                if let Some(DayState::Loaded { revision, .. }) = day_state::read(&self.storage, date).await? {
                    // Never let a transient "no file" answer hide data already stored.
                    warn!(%date, %revision, "BSE answered with its HTML page for a day already loaded; keeping the stored data");
                    return Ok(DayOutcome::Unchanged);
                }
                info!(%date, "no file published (BSE answered with its HTML page)");
                let state = DayState::NoFilePublished { checked_at: chrono::Utc::now(), urls };
                day_state::write(&self.storage, date, &state).await?;
                Ok(DayOutcome::NoFilePublished)
            }
            FetchOutcome::Blocked(f) => {
                let err = IngestError::FirewallPage { name: f.url.clone() };
                Err(self.reject(Some(date), &f.file_name, &f.bytes, provenance_of(&f), err).await)
            }
            FetchOutcome::File(f) => {
                let prov = provenance_of(&f);
                match self.ingest_bytes(&f.file_name, f.bytes, prov, Some(date)).await? {
                    Ingested::Loaded { report, superseded } => Ok(DayOutcome::Fetched { report, superseded }),
                    Ingested::Unchanged { .. } => Ok(DayOutcome::Unchanged),
                    Ingested::Held(held) => Ok(DayOutcome::Held(held)),
                    // `ingest_bytes` parses bhavcopies only; reference files come through
                    // `reference::store`.
                    Ingested::Reference(r) => Err(IngestError::Reference {
                        name: r.revision,
                        message: "a reference file where a bhavcopy was expected".into(),
                    }),
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
