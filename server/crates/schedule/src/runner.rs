//! Runs the jobs: one task per enabled job, sleeping towards wall-clock fire times.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tracing::{debug, error, info, warn};

use super::config::{ValidatedJob, ValidatedSchedule};
use super::cron_tz::{fire_date, local_instant, show_local};
use super::{IngestAttempt, JobRunner};

/// Longest single sleep. Tokio sleeps on the monotonic clock, which stops while the machine is
/// suspended and ignores wall-clock corrections, so long waits are cut into pieces, each re-aimed at
/// the wall-clock deadline.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Waking this much after a fire time means the machine was suspended or the clock jumped; such
/// a fire counts as missed, like one that fell while the process was down.
const MISSED_FIRE_TOLERANCE: TimeDelta = TimeDelta::minutes(5);

/// Runs every enabled job until `shutdown` turns true; returns after in-flight work finishes.
///
/// Shutdown during a sleep returns at once; shutdown during a run lets the current ingest or
/// materialize call finish, then returns without retrying or starting the next step. A dropped
/// sender counts as shutdown, since nothing could ever stop the scheduler otherwise. With no
/// enabled jobs (or none that fires again) this just waits for shutdown.
pub async fn run(schedule: ValidatedSchedule, runner: Arc<dyn JobRunner>, mut shutdown: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    for job in schedule.jobs() {
        if job.enabled {
            tasks.spawn(job_loop(Arc::new(job.clone()), Arc::clone(&runner), shutdown.clone()));
        } else {
            info!(job = %job.name, "scheduled job disabled");
        }
    }
    if tasks.is_empty() {
        info!("no scheduled job enabled; scheduler idle until shutdown");
    }
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result {
            error!(error = %e, "scheduler job loop failed");
        }
    }
    // Jobs whose cron never fires again end early; the promise is still to return at shutdown.
    wait_for_shutdown(&mut shutdown).await;
    info!("scheduler stopped");
}

/// One job: sleep to the next fire time, start a run unless the previous one is still going.
async fn job_loop(job: Arc<ValidatedJob>, runner: Arc<dyn JobRunner>, mut shutdown: watch::Receiver<bool>) {
    let name = job.name.as_str();
    // Holds at most one run; a JoinSet aborts it if this loop is dropped instead of shut down.
    let mut running = JoinSet::new();
    let mut last_fire: Option<DateTime<Utc>> = None;
    loop {
        // Never fire the same instant twice, even if the wall clock reads a hair early on waking
        // or is stepped back.
        let now = Utc::now();
        let after = last_fire.map_or(now, |last| last.max(now));
        let Some(fire) = job.next_fire(after) else {
            warn!(job = name, "cron has no future fire time; job stops");
            break;
        };
        let next_fire = show_local(fire, job.timezone);
        if last_fire.is_none() {
            info!(job = name, %next_fire, "scheduled job waiting for its first fire");
        } else {
            debug!(job = name, %next_fire, "scheduled job waiting");
        }
        if !sleep_until(fire, &mut shutdown).await {
            break;
        }
        last_fire = Some(fire);
        let date = fire_date(fire, job.timezone);
        let late = Utc::now() - fire;
        if late > MISSED_FIRE_TOLERANCE {
            warn!(job = name, %date, fire = %next_fire, late_secs = late.num_seconds(),
                "fire missed (machine suspended or clock changed); not replayed");
            continue;
        }
        while let Some(finished) = running.try_join_next() {
            log_run_failure(name, finished);
        }
        if !running.is_empty() {
            warn!(job = name, %date, "previous run still going; skipping this fire");
            continue;
        }
        running.spawn(run_once(Arc::clone(&job), Arc::clone(&runner), date, shutdown.clone()));
    }
    // The in-flight run watches the same signal and stops after its current step.
    while let Some(finished) = running.join_next().await {
        log_run_failure(name, finished);
    }
}

fn log_run_failure(job: &str, finished: Result<(), JoinError>) {
    if let Err(e) = finished {
        error!(job, error = %e, "scheduled run panicked");
    }
}

/// One fire: ingest the day (with retries) if configured, then materialize.
async fn run_once(
    job: Arc<ValidatedJob>,
    runner: Arc<dyn JobRunner>,
    date: NaiveDate,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = job.name.as_str();
    info!(job = name, %date, "scheduled run starting");
    if job.ingest && !ingest_with_retries(&job, runner.as_ref(), date, &mut shutdown).await {
        return;
    }
    if is_shutdown(&shutdown) {
        info!(job = name, %date, "shutting down; materialize skipped");
        return;
    }
    let views = if job.materialize.is_empty() { "all".to_owned() } else { job.materialize.join(",") };
    match runner.materialize(job.materialize.clone()).await {
        Ok(()) => info!(job = name, %date, %views, "views materialized"),
        Err(e) => error!(job = name, %date, %views, error = %e, "materialize failed"),
    }
    let next_fire = job.next_fire(Utc::now()).map_or_else(|| "never".to_owned(), |t| show_local(t, job.timezone));
    info!(job = name, %date, %next_fire, "scheduled run finished");
}

/// Tries to ingest `date` until it is loaded, the cut-off passes or shutdown; true when the day is
/// loaded and materializing makes sense.
async fn ingest_with_retries(
    job: &ValidatedJob,
    runner: &dyn JobRunner,
    date: NaiveDate,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let name = job.name.as_str();
    let cutoff = local_instant(date, job.retry_until, job.timezone);
    // Validation keeps retry_every far below TimeDelta's range; saturating keeps that an invariant
    // rather than a panic.
    let retry_every = TimeDelta::from_std(job.retry_every).unwrap_or(TimeDelta::MAX);
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let last_error = match runner.ingest(date).await {
            Ok(IngestAttempt::Loaded) => {
                info!(job = name, %date, attempt, "bhavcopy loaded");
                return true;
            }
            Ok(IngestAttempt::AlreadyLoaded) => {
                info!(job = name, %date, attempt, "bhavcopy already loaded");
                return true;
            }
            Ok(IngestAttempt::NotPublished) => {
                info!(job = name, %date, attempt, "bhavcopy not published yet");
                None
            }
            Ok(IngestAttempt::Holiday) => {
                info!(job = name, %date, "an exchange holiday on the trading calendar: no bhavcopy to wait for");
                return false;
            }
            // Usually the network or BSE's firewall, both of which tend to pass; so retry.
            Err(e) => {
                warn!(job = name, %date, attempt, error = %e, "ingest failed");
                Some(e)
            }
        };
        let retry_at = Utc::now().checked_add_signed(retry_every).unwrap_or(DateTime::<Utc>::MAX_UTC);
        if retry_at >= cutoff {
            let by = cutoff.with_timezone(&job.timezone).format("%H:%M %Z");
            match last_error {
                None => warn!(job = name, %date, attempt, "no bhavcopy for {date} by {by}; holiday or BSE late"),
                Some(e) => warn!(job = name, %date, attempt, error = %e, "could not ingest {date} by {by}; giving up"),
            }
            return false;
        }
        if !sleep_until(retry_at, shutdown).await {
            info!(job = name, %date, attempt, "shutting down; ingest retries abandoned");
            return false;
        }
    }
}

/// Sleeps until the wall clock reaches `deadline`; false when shutdown came first.
async fn sleep_until(deadline: DateTime<Utc>, shutdown: &mut watch::Receiver<bool>) -> bool {
    loop {
        if is_shutdown(shutdown) {
            return false;
        }
        // A negative remainder fails the conversion: the deadline has passed.
        let remaining = match (deadline - Utc::now()).to_std() {
            Ok(d) if !d.is_zero() => d,
            _ => return true,
        };
        tokio::select! {
            biased;
            () = wait_for_shutdown(shutdown) => return false,
            () = tokio::time::sleep(remaining.min(MAX_SLEEP)) => {}
        }
    }
}

fn is_shutdown(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

async fn wait_for_shutdown(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which counts as shutdown (see `run`).
    let _ = shutdown.wait_for(|&stop| stop).await;
}
