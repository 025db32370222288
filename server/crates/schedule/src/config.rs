//! The `schedule:` YAML section and its validation.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::ScheduleError;
use super::cron_tz;

/// How the cron syntax reads, repeated in errors because it differs from Unix crontab.
const CRON_SYNTAX: &str =
    "expected \"sec min hour day-of-month month day-of-week [year]\", e.g. \"0 10 20 * * Mon-Sat\"";

/// How `retry_every` reads, repeated in its errors.
const DURATION_SYNTAX: &str = "expected a whole number followed by s, m or h, like 15m";

/// What is wrong with one setting of a job (the job, setting and value are in
/// [`ScheduleError::Job`]).
#[derive(Debug, thiserror::Error)]
pub enum JobSettingError {
    /// `name` is blank.
    #[error("must not be empty")]
    EmptyName,
    /// Another job has the same `name`.
    #[error("two jobs have this name")]
    DuplicateName,
    /// `cron` has five fields: a Unix crontab line, without the leading seconds.
    #[error("has 5 fields but the seconds field comes first; {}", CRON_SYNTAX)]
    CrontabFields,
    /// `cron` does not parse.
    #[error("{source}; {}", CRON_SYNTAX)]
    Cron {
        /// The cron crate's error.
        source: cron::error::Error,
    },
    /// `retry_every` has no unit.
    #[error("no unit; {}", DURATION_SYNTAX)]
    DurationNoUnit,
    /// `retry_every` does not start with a whole number.
    #[error("{}", DURATION_SYNTAX)]
    DurationNumber,
    /// `retry_every` has a unit other than s, m, h.
    #[error("unknown unit {unit:?}; {}", DURATION_SYNTAX)]
    DurationUnit {
        /// The unit seen.
        unit: String,
    },
    /// `retry_every` is zero.
    #[error("must be greater than zero")]
    DurationZero,
    /// `retry_every` overflows a number of seconds.
    #[error("too large")]
    DurationTooLarge,
    /// `retry_until` is not a wall-clock `HH:MM`.
    #[error("expected HH:MM between 00:00 and 23:59 ({source})")]
    Time {
        /// chrono's error.
        source: chrono::ParseError,
    },
    /// A `materialize` entry is blank.
    #[error("view names must not be empty")]
    EmptyViewName,
}

/// `schedule:` section of the YAML config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// IANA time zone the cron expressions and `retry_until` are read in. Default `Asia/Kolkata`.
    pub timezone: String,
    /// The jobs. Default: one job, `daily-bhavcopy` (see [`JobConfig::default`]).
    pub jobs: Vec<JobConfig>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self { timezone: "Asia/Kolkata".into(), jobs: vec![JobConfig::default()] }
    }
}

/// One scheduled job: ingest the fire date's bhavcopy, then materialize views.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobConfig {
    /// Unique name, used in logs.
    pub name: String,
    /// When to fire, in the `cron` crate's syntax with seconds first:
    /// `sec min hour day-of-month month day-of-week [year]`. Days of the week count from
    /// 1 = Sunday, so prefer names (`Mon-Sat`). Default `0 10 20 * * Mon-Sat`: BSE publishes around
    /// 20:00 IST, and Saturdays are included because BSE holds rare special sessions (on a normal
    /// Saturday the day is just recorded as having no file).
    pub cron: String,
    /// Whether the job runs at all. Default `true`.
    pub enabled: bool,
    /// Download the fire date's bhavcopy before materializing. Default `true`.
    pub ingest: bool,
    /// Wait between ingest attempts while the file is not published or the download fails:
    /// a whole number with unit `s`, `m` or `h`. Default `15m`.
    pub retry_every: String,
    /// Local wall-clock `HH:MM` on the fire date after which retrying stops. Default `23:45`.
    pub retry_until: String,
    /// Views to materialize after the ingest; empty means all views.
    pub materialize: Vec<String>,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            name: "daily-bhavcopy".into(),
            cron: "0 10 20 * * Mon-Sat".into(),
            enabled: true,
            ingest: true,
            retry_every: "15m".into(),
            retry_until: "23:45".into(),
            materialize: Vec::new(),
        }
    }
}

/// A checked schedule, ready for [`run`](super::run).
#[derive(Debug, Clone)]
pub struct ValidatedSchedule {
    timezone: Tz,
    jobs: Vec<ValidatedJob>,
}

/// A checked job.
#[derive(Debug, Clone)]
pub struct ValidatedJob {
    pub(super) name: String,
    pub(super) enabled: bool,
    pub(super) cron: cron::Schedule,
    pub(super) timezone: Tz,
    pub(super) ingest: bool,
    pub(super) retry_every: Duration,
    pub(super) retry_until: NaiveTime,
    pub(super) materialize: Vec<String>,
}

impl ScheduleConfig {
    /// Parses the time zone, cron expressions, durations and times; errors name the job and field.
    pub fn validate(&self) -> Result<ValidatedSchedule, ScheduleError> {
        let timezone = Tz::from_str(&self.timezone)
            .map_err(|source| ScheduleError::Timezone { value: self.timezone.clone(), source })?;
        let mut names = HashSet::new();
        let mut jobs = Vec::with_capacity(self.jobs.len());
        for job in &self.jobs {
            let validated = job.validate(timezone)?;
            if !names.insert(job.name.clone()) {
                return Err(job_error(job, "name", &job.name, JobSettingError::DuplicateName));
            }
            jobs.push(validated);
        }
        Ok(ValidatedSchedule { timezone, jobs })
    }
}

impl JobConfig {
    fn validate(&self, timezone: Tz) -> Result<ValidatedJob, ScheduleError> {
        if self.name.trim().is_empty() {
            return Err(job_error(self, "name", &self.name, JobSettingError::EmptyName));
        }
        let cron = parse_cron(&self.cron).map_err(|m| job_error(self, "cron", &self.cron, m))?;
        let retry_every =
            parse_duration(&self.retry_every).map_err(|m| job_error(self, "retry_every", &self.retry_every, m))?;
        let retry_until =
            parse_hh_mm(&self.retry_until).map_err(|m| job_error(self, "retry_until", &self.retry_until, m))?;
        if let Some(blank) = self.materialize.iter().find(|v| v.trim().is_empty()) {
            return Err(job_error(self, "materialize", blank, JobSettingError::EmptyViewName));
        }
        Ok(ValidatedJob {
            name: self.name.clone(),
            enabled: self.enabled,
            cron,
            timezone,
            ingest: self.ingest,
            retry_every,
            retry_until,
            materialize: self.materialize.clone(),
        })
    }
}

impl ValidatedSchedule {
    /// The time zone fire times and cut-offs are read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// All jobs, enabled or not, in configuration order.
    pub fn jobs(&self) -> &[ValidatedJob] {
        &self.jobs
    }

    /// Each enabled job's next fire time strictly after `after`, in configuration order. A job whose
    /// cron has no future time (e.g. a past year) is left out.
    pub fn next_fires(&self, after: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
        self.jobs.iter().filter(|j| j.enabled).filter_map(|j| j.next_fire(after).map(|t| (j.name.clone(), t))).collect()
    }
}

impl ValidatedJob {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the job runs.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The next fire time strictly after `after`, or `None` when the cron never fires again.
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        cron_tz::next_fire(&self.cron, self.timezone, after)
    }
}

fn job_error(job: &JobConfig, field: &'static str, value: &str, source: JobSettingError) -> ScheduleError {
    ScheduleError::Job { job: job.name.clone(), field, value: value.to_owned(), source }
}

fn parse_cron(expr: &str) -> Result<cron::Schedule, JobSettingError> {
    let fields = expr.split_whitespace().count();
    if fields == 5 {
        // The commonest mistake: a Unix crontab line, which the cron crate would misread or reject.
        return Err(JobSettingError::CrontabFields);
    }
    cron::Schedule::from_str(expr).map_err(|source| JobSettingError::Cron { source })
}

/// Parses `90s`, `15m`, `2h`: one whole number and one unit, never zero (a zero wait would spin).
pub(super) fn parse_duration(s: &str) -> Result<Duration, JobSettingError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or(JobSettingError::DurationNoUnit)?;
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| JobSettingError::DurationNumber)?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(JobSettingError::DurationUnit { unit: unit.to_owned() }),
    };
    if number == 0 {
        return Err(JobSettingError::DurationZero);
    }
    number.checked_mul(seconds_per_unit).map(Duration::from_secs).ok_or(JobSettingError::DurationTooLarge)
}

/// Parses a local wall-clock `HH:MM` (00:00 to 23:59).
pub(super) fn parse_hh_mm(s: &str) -> Result<NaiveTime, JobSettingError> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|source| JobSettingError::Time { source })
}
