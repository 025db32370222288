//! Backfilling a range of trade dates from BSE: bounded concurrency, resumable (settled days are
//! skipped), stops asking BSE as soon as it is unreachable, and reports every day's outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Datelike, NaiveDate, Weekday};
use futures::StreamExt;
use serde::Serialize;
use tracing::warn;

use super::day_state;
use super::{HeldRevision, IngestError, Ingestor, LoadReport};
use crate::source::{BseClient, FetchError};

/// What to backfill.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// First trade date, inclusive.
    pub from: NaiveDate,
    /// Last trade date, inclusive.
    pub to: NaiveDate,
    /// Days in flight at once.
    pub jobs: usize,
    /// Skip Saturdays and Sundays.
    pub skip_weekends: bool,
    /// Ask BSE again even for days already stored (a changed file becomes a new revision).
    pub refetch: bool,
}

/// The outcome of one day.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DayOutcome {
    /// Downloaded and loaded.
    Fetched {
        /// The load report.
        report: LoadReport,
        /// sha256 of the revision it replaced, if the day had other bytes before.
        superseded: Option<String>,
    },
    /// Downloaded; identical to what was stored.
    Unchanged,
    /// Downloaded and stored, but held back: it has fewer rows than the day's current revision.
    Held(HeldRevision),
    /// Already stored; not asked again.
    AlreadyStored,
    /// BSE has no file for the day (holiday, weekend, not yet published).
    NoFilePublished,
    /// Recorded earlier as having no file; not asked again.
    NoFileKnown,
    /// Failed, with the reason.
    Failed {
        /// Why.
        reason: String,
    },
    /// Not tried (BSE unreachable, or the run was interrupted).
    NotAttempted {
        /// Why.
        reason: String,
    },
}

impl DayOutcome {
    /// A short label, for tables and progress lines.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Fetched { .. } => "fetched",
            Self::Unchanged => "unchanged",
            Self::Held(_) => "held (fewer rows than the current revision)",
            Self::AlreadyStored => "already stored",
            Self::NoFilePublished => "no file published",
            Self::NoFileKnown => "no file published (known)",
            Self::Failed { .. } => "failed",
            Self::NotAttempted { .. } => "not attempted",
        }
    }

    /// The one rendering of a day's outcome, used by the CLI, REST ingest and the scheduler.
    #[must_use]
    pub fn describe(&self, date: NaiveDate) -> String {
        match self {
            Self::Fetched { report: r, .. } => format!(
                "{date}: loaded {} rows, {} quarantined, of {} data lines ({}, raw sha256 {})",
                r.rows_loaded, r.rows_quarantined, r.data_lines, r.source_format, r.raw_sha256
            ),
            Self::Held(held) => held.warning(),
            Self::Unchanged => format!("{date}: unchanged (identical bytes already stored)"),
            Self::NoFilePublished => {
                format!("{date}: no file published by BSE (holiday, weekend, or not yet published)")
            }
            Self::Failed { reason } => format!("{date}: failed: {reason}"),
            Self::NotAttempted { reason } => format!("{date}: not attempted: {reason}"),
            other => format!("{date}: {}", other.label()),
        }
    }
}

/// One day's result.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DayResult {
    /// The day.
    pub date: NaiveDate,
    /// What happened.
    #[serde(flatten)]
    pub outcome: DayOutcome,
}

/// The whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackfillSummary {
    /// Every day in the range, sorted by date.
    pub days: Vec<DayResult>,
    /// Set when BSE could not be reached at all: the message says so plainly.
    pub unreachable: Option<String>,
    /// Set when a signal stopped the run early.
    pub interrupted: bool,
}

impl BackfillSummary {
    fn count(&self, f: impl Fn(&DayOutcome) -> bool) -> usize {
        self.days.iter().filter(|d| f(&d.outcome)).count()
    }

    /// Days downloaded and loaded in this run.
    #[must_use]
    pub fn fetched(&self) -> usize {
        self.count(|o| matches!(o, DayOutcome::Fetched { .. }))
    }

    /// Days that were already stored (skipped or identical on refetch).
    #[must_use]
    pub fn already_stored(&self) -> usize {
        self.count(|o| matches!(o, DayOutcome::AlreadyStored | DayOutcome::Unchanged))
    }

    /// Days without a file, found now or earlier.
    #[must_use]
    pub fn no_file(&self) -> usize {
        self.count(|o| matches!(o, DayOutcome::NoFilePublished | DayOutcome::NoFileKnown))
    }

    /// Days whose new revision was held back (fewer rows than the current one).
    #[must_use]
    pub fn held(&self) -> usize {
        self.count(|o| matches!(o, DayOutcome::Held(_)))
    }

    /// Days that failed.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, DayOutcome::Failed { .. }))
    }

    /// Days not tried.
    #[must_use]
    pub fn not_attempted(&self) -> usize {
        self.count(|o| matches!(o, DayOutcome::NotAttempted { .. }))
    }
}

/// The calendar days a backfill covers.
#[must_use]
pub fn days_in(opts: &BackfillOptions) -> Vec<NaiveDate> {
    opts.from
        .iter_days()
        .take_while(|d| *d <= opts.to)
        .filter(|d| !(opts.skip_weekends && matches!(d.weekday(), Weekday::Sat | Weekday::Sun)))
        .collect()
}

/// Runs a backfill. `on_day` is called as each day finishes (progress bars, logs); `stop` is
/// set by a signal handler to stop starting new days (days in flight finish: every write is
/// atomic, so stopping between days leaves nothing half-written).
pub async fn run(
    ingestor: &Ingestor,
    client: &BseClient,
    opts: &BackfillOptions,
    on_day: &(dyn Fn(&DayResult) + Sync),
    stop: Arc<AtomicBool>,
) -> Result<BackfillSummary, IngestError> {
    let unreachable: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let days = days_in(opts);
    let results: Vec<DayResult> = futures::stream::iter(days)
        .map(|date| {
            let unreachable = Arc::clone(&unreachable);
            let stop = Arc::clone(&stop);
            async move {
                let outcome = one_day(ingestor, client, opts, date, &unreachable, &stop).await;
                let result = DayResult { date, outcome };
                on_day(&result);
                result
            }
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    let mut days = results;
    days.sort_by_key(|d| d.date);
    let unreachable = unreachable.lock().map(|g| g.clone()).unwrap_or(None);
    Ok(BackfillSummary { days, unreachable, interrupted: stop.load(Ordering::SeqCst) })
}

async fn one_day(
    ingestor: &Ingestor,
    client: &BseClient,
    opts: &BackfillOptions,
    date: NaiveDate,
    unreachable: &Mutex<Option<String>>,
    stop: &AtomicBool,
) -> DayOutcome {
    if stop.load(Ordering::SeqCst) {
        return DayOutcome::NotAttempted { reason: "interrupted".into() };
    }
    if let Some(msg) = unreachable.lock().ok().and_then(|g| g.clone()) {
        return DayOutcome::NotAttempted { reason: format!("BSE unreachable: {msg}") };
    }
    if !opts.refetch {
        match day_state::read(ingestor.storage(), date).await {
            Ok(Some(state)) if state.is_settled(date) => {
                return match state {
                    day_state::DayState::Loaded { .. } => DayOutcome::AlreadyStored,
                    day_state::DayState::NoFilePublished { .. } => DayOutcome::NoFileKnown,
                };
            }
            Ok(_) => {}
            Err(e) => return DayOutcome::Failed { reason: e.to_string() },
        }
    }
    match ingestor.fetch_day(client, date).await {
        Ok(o) => o,
        Err(IngestError::Fetch(FetchError::Unreachable { base, message })) => {
            let msg = format!("cannot reach {base}: {message}");
            warn!(%date, "{msg}");
            if let Ok(mut g) = unreachable.lock() {
                g.get_or_insert(msg.clone());
            }
            DayOutcome::NotAttempted { reason: format!("BSE unreachable: {msg}") }
        }
        Err(e) => {
            warn!(%date, error = %e, "day failed");
            DayOutcome::Failed { reason: e.to_string() }
        }
    }
}
