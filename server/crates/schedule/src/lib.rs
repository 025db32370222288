//! The scheduler: runs the daily bhavcopy ingest and the feature materialization at cron times.
//!
//! - `config.rs`: the `schedule:` YAML section and its validation into a [`ValidatedSchedule`].
//! - `cron_tz.rs`: cron fire times and retry cut-offs in the configured time zone.
//! - `runner.rs`: [`run`], one task per enabled job; retries, overlap, shutdown.
//!
//! The scheduler does no IO itself. It asks a [`JobRunner`], implemented by the server, to ingest
//! a day and to materialize views, which keeps this module testable with a fake runner.
//!
//! A fire's trade date is the local calendar date of the fire time in the schedule's time zone:
//! a fire at 20:10 IST on a Friday ingests that Friday's bhavcopy. Fires missed while the process
//! was down are not replayed; `bhavstore backfill` is the tool for catching up.

mod config;
mod cron_tz;
mod runner;

#[cfg(test)]
mod tests;

use chrono::NaiveDate;
use futures::future::BoxFuture;

pub use config::{JobConfig, JobSettingError, ScheduleConfig, ValidatedJob, ValidatedSchedule};
pub use runner::run;

/// Errors of the scheduler: a `schedule:` setting at fault (each names the setting), or a step a
/// [`JobRunner`] could not do.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// `schedule.timezone` is not a known IANA zone.
    #[error("schedule.timezone {value:?}: not an IANA time zone name like Asia/Kolkata ({source})")]
    Timezone {
        /// The configured value.
        value: String,
        /// chrono-tz's error.
        source: chrono_tz::ParseError,
    },
    /// A setting of one job is invalid.
    #[error("schedule job {job:?}: {field} {value:?}: {source}")]
    Job {
        /// The job's name.
        job: String,
        /// The setting, e.g. `cron` or `retry_every`.
        field: &'static str,
        /// The configured value.
        value: String,
        /// What is wrong.
        source: JobSettingError,
    },
    /// The runner could not ingest the day (the scheduler logs it and retries until the cut-off).
    #[error(transparent)]
    Ingest(Box<dyn std::error::Error + Send + Sync>),
    /// The runner could not materialize the views (the scheduler logs it).
    #[error(transparent)]
    Materialize(Box<dyn std::error::Error + Send + Sync>),
}

/// The outcome of one ingest attempt for a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestAttempt {
    /// The day's bhavcopy was downloaded and loaded now.
    Loaded,
    /// The day was loaded before; nothing to do.
    AlreadyLoaded,
    /// BSE has no file for the day (yet): not published so far, or a holiday no list names.
    NotPublished,
    /// The trading calendar says the day is an exchange holiday: no file will come, so the
    /// scheduler stops retrying and materializes nothing.
    Holiday,
}

/// What the scheduler asks the rest of bhavstore to do; implemented by the server.
///
/// Failures are [`ScheduleError::Ingest`] and [`ScheduleError::Materialize`], wrapping whatever
/// error the implementation has: the scheduler only logs them and retries.
pub trait JobRunner: Send + Sync + 'static {
    /// Download and load `date`'s bhavcopy.
    fn ingest(&self, date: NaiveDate) -> BoxFuture<'_, Result<IngestAttempt, ScheduleError>>;
    /// Materialize these views (empty = all).
    fn materialize(&self, views: Vec<String>) -> BoxFuture<'_, Result<(), ScheduleError>>;
}
