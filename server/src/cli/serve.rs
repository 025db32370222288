//! `bhavstore serve`: the scheduler, running until SIGINT/SIGTERM. Each job downloads the day's
//! bhavcopy and materializes the views; a signal lets the step in flight finish.

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::{info, warn};

use crate::config::Config;
use crate::ingest::{DayOutcome, Ingestor};
use crate::materialize::Materializer;
use crate::materialize::records::{RunRecord, new_run_id};
use crate::schedule::{IngestAttempt, JobRunner};
use crate::source::BseClient;
use crate::storage::Storage;

/// What the scheduler's jobs do, wired to the real ingest and materializer.
struct Runner {
    storage: Storage,
    ingestor: Ingestor,
    client: BseClient,
    materializer: Materializer,
}

impl JobRunner for Runner {
    fn ingest(&self, date: NaiveDate) -> BoxFuture<'_, Result<IngestAttempt, String>> {
        async move {
            // Every attempt is a row of bhavstore_runs, so a late or missing file shows up there.
            let mut record = RunRecord::start(&new_run_id(), "ingest", None, None);
            record.min_trade_date = Some(date);
            record.max_trade_date = Some(date);
            let started = std::time::Instant::now();
            let result = match self.ingestor.fetch_day(&self.client, date).await {
                Ok(DayOutcome::Fetched { report, .. }) => {
                    info!(%date, rows = report.rows_loaded, quarantined = report.rows_quarantined, "bhavcopy loaded");
                    record.rows = report.rows_loaded;
                    record.mode = Some("loaded".into());
                    Ok(IngestAttempt::Loaded)
                }
                Ok(DayOutcome::Unchanged | DayOutcome::AlreadyStored) => {
                    record.mode = Some("unchanged".into());
                    Ok(IngestAttempt::AlreadyLoaded)
                }
                Ok(DayOutcome::NoFilePublished | DayOutcome::NoFileKnown) => {
                    record.mode = Some("not published".into());
                    Ok(IngestAttempt::NotPublished)
                }
                Ok(DayOutcome::Failed { reason } | DayOutcome::NotAttempted { reason }) => Err(reason),
                Err(e) => Err(e.to_string()),
            };
            record.status = if result.is_ok() { "succeeded".into() } else { "failed".into() };
            record.error = result.as_ref().err().cloned();
            record.finished_at = Some(Utc::now());
            record.duration_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
            if let Err(e) = record.save(&self.storage).await {
                warn!(%date, error = %e, "could not write the ingest run record");
            }
            result
        }
        .boxed()
    }

    fn materialize(&self, views: Vec<String>) -> BoxFuture<'_, Result<(), String>> {
        async move {
            let results = self.materializer.run(&views, false).await.map_err(|e| e.to_string())?;
            let failed: Vec<String> =
                results.iter().filter_map(|(v, r)| r.as_ref().err().map(|e| format!("{v}: {e}"))).collect();
            if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
        }
        .boxed()
    }
}

pub(super) async fn run(config: &Config, storage: Storage) -> Result<ExitCode, String> {
    let schedule = config.schedule.validate().map_err(|e| e.to_string())?;
    let materializer = super::materializer(config, storage.clone()).await?;
    let client = BseClient::new(&config.source).map_err(|e| e.to_string())?;
    let runner =
        Arc::new(Runner { storage: storage.clone(), ingestor: Ingestor::new(storage.clone()), client, materializer });
    info!(storage = %storage.display(), timezone = %config.schedule.timezone, "bhavstore serve: scheduler started");
    for (job, at) in schedule.next_fires(Utc::now()) {
        info!(job, next_fire = %at, "scheduled");
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(crate::schedule::run(schedule, runner, rx));
    super::shutdown_signal().await;
    warn!("signal received: letting the step in flight finish, then stopping");
    let _ = tx.send(true);
    if let Err(e) = scheduler.await {
        warn!(error = %e, "scheduler task ended abnormally");
    }
    info!("bhavstore serve stopped");
    Ok(ExitCode::SUCCESS)
}
