//! `bhavstore serve`: the listeners, the online store and the scheduler, until SIGINT/SIGTERM.
//! A signal stops the listeners (in-flight requests finish) and lets the scheduler's step in
//! flight finish.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::{info, warn};

use crate::config::Config;
use bhavstore_ingest::source::BseClient;
use bhavstore_ingest::{DayOutcome, Ingestor};
use bhavstore_lake::records::{RunRecord, new_run_id};
use bhavstore_online::OnlineStore;
use bhavstore_schedule::{IngestAttempt, JobRunner};
use bhavstore_serving::flight::FlightService;
use bhavstore_serving::pg::PgService;
use bhavstore_serving::rest::RestService;
use bhavstore_serving::serve::{AppState, Credentials, Engine, Metrics, ServeSettings, Service, effective_addr};
use bhavstore_storage::Storage;

/// What the scheduler's jobs do, wired to the real ingest and materializer.
struct Runner {
    state: Arc<AppState>,
    /// `source.corporate_actions_days`.
    actions_days: u32,
}

impl Runner {
    /// Whether the trading calendar lists `date` as a holiday.
    async fn holiday(&self, date: NaiveDate) -> Option<String> {
        match bhavstore_lake::adjust::calendar(&self.state.storage).await {
            Ok(days) => match days.get(&date) {
                Some(bhavstore_lake::adjust::DayStatus::Holiday(what)) => {
                    Some(what.clone().unwrap_or_else(|| "holiday".into()))
                }
                _ => None,
            },
            Err(e) => {
                warn!(%date, error = %e, "the trading calendar could not be read; trying the download");
                None
            }
        }
    }

    /// Downloads the corporate actions around a day just loaded. Best effort: the bhavcopy is
    /// in, and the next day's run tries again.
    async fn refresh_actions(&self, date: NaiveDate) {
        if self.actions_days == 0 {
            return;
        }
        let days = chrono::Days::new(u64::from(self.actions_days));
        let (from, to) = (date - days, date + days);
        let storage = &self.state.storage;
        match bhavstore_ingest::reference::download_actions(storage, &self.state.client, from, to, &|_| {}).await {
            Ok(months) => {
                for m in &months {
                    match &m.result {
                        Ok(r) => info!(from = %m.from, to = %m.to, "{}", r.describe()),
                        Err(e) => warn!(from = %m.from, to = %m.to, error = %e, "corporate actions not downloaded"),
                    }
                }
            }
            Err(e) => warn!(error = %e, "corporate actions not downloaded"),
        }
    }
}

impl JobRunner for Runner {
    fn ingest(&self, date: NaiveDate) -> BoxFuture<'_, Result<IngestAttempt, bhavstore_schedule::ScheduleError>> {
        async move {
            let state = &self.state;
            // Every attempt is a row of bhavstore_runs, so a late or missing file shows up there.
            let mut record = RunRecord::start(&new_run_id(), "ingest", None, None);
            record.min_trade_date = Some(date);
            record.max_trade_date = Some(date);
            let started = std::time::Instant::now();
            // A listed holiday gets one attempt: BSE holds sessions on some of them (Muhurat
            // trading on Diwali), and a list can be wrong.
            let holiday = self.holiday(date).await;
            let result = match state.configured_ingestor().fetch_day(&state.client, date).await {
                Ok(DayOutcome::Fetched { report, .. }) => {
                    info!(%date, rows = report.rows_loaded, quarantined = report.rows_quarantined, "bhavcopy loaded");
                    record.rows = report.rows_loaded;
                    record.mode = Some("loaded".into());
                    self.refresh_actions(date).await;
                    Ok(IngestAttempt::Loaded)
                }
                Ok(DayOutcome::Unchanged | DayOutcome::AlreadyStored) => {
                    record.mode = Some("unchanged".into());
                    Ok(IngestAttempt::AlreadyLoaded)
                }
                Ok(DayOutcome::NoFilePublished | DayOutcome::NoFileKnown) => match &holiday {
                    Some(what) => {
                        info!(%date, holiday = %what, "no bhavcopy on an exchange holiday of the trading calendar; not retrying");
                        record.mode = Some("holiday".into());
                        Ok(IngestAttempt::Holiday)
                    }
                    None => {
                        record.mode = Some("not published".into());
                        Ok(IngestAttempt::NotPublished)
                    }
                },
                // Stored but not loaded: a failure to retry (BSE may correct its file), and a
                // warning in bhavstore_runs rather than a success with nothing loaded.
                Ok(DayOutcome::Held(held)) => {
                    record.mode = Some("held".into());
                    record.rows = held.rows;
                    record.warnings.push(held.warning());
                    Err(held.warning())
                }
                Ok(DayOutcome::Failed { reason } | DayOutcome::NotAttempted { reason }) => Err(reason),
                Err(e) => Err(e.to_string()),
            };
            record.status = match (&result, record.mode.as_deref()) {
                (Ok(_), _) => "succeeded".into(),
                (Err(_), Some("held")) => "warning".into(),
                (Err(_), _) => "failed".into(),
            };
            record.error = result.as_ref().err().cloned();
            record.finished_at = Some(Utc::now());
            record.duration_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
            if let Err(e) = record.save(&state.storage).await {
                warn!(%date, error = %e, "could not write the ingest run record");
            }
            result.map_err(|reason| bhavstore_schedule::ScheduleError::Ingest(reason.into()))
        }
        .boxed()
    }

    fn materialize(&self, views: Vec<String>) -> BoxFuture<'_, Result<(), bhavstore_schedule::ScheduleError>> {
        async move {
            let results = self
                .state
                .materializer
                .run(&views, false)
                .await
                .map_err(|e| bhavstore_schedule::ScheduleError::Materialize(e.into()))?;
            if let Err(e) = self.state.refresh_online().await {
                warn!(error = %e, "online store refresh after materialization failed");
            }
            let failed: Vec<String> =
                results.iter().filter_map(|(v, r)| r.as_ref().err().map(|e| format!("{v}: {e}"))).collect();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(bhavstore_schedule::ScheduleError::Materialize(failed.join("; ").into()))
            }
        }
        .boxed()
    }
}

/// The address a listener binds, or `None` when it is turned off (empty address). A listener
/// without authentication binds the loopback interface only, and says so.
fn listen_addr(configured: &str, authenticated: bool, what: &str, needs: &str) -> Option<String> {
    let configured = configured.trim();
    if configured.is_empty() {
        return None;
    }
    if !authenticated {
        warn!("{what}: no {needs} configured, so no authentication: listening on 127.0.0.1 only");
    }
    Some(effective_addr(configured, authenticated))
}

pub(super) async fn run(config: &Config, storage: Storage, no_schedule: bool) -> Result<ExitCode, super::CliError> {
    let schedule = config.schedule.validate()?;
    let (catalog, publisher, views, intraday) = super::catalog_for(config, &storage, true).await?;
    let mlflow = bhavstore_mlflow::MlflowClient::from_config(&config.mlflow)?;
    let materializer = bhavstore_materialize::Materializer::from_prepared(
        storage.clone(),
        catalog.prepared().to_vec(),
        views,
        config.materialize.clone(),
        mlflow,
    );
    let client = BseClient::new(&config.source)?;
    let credentials = Arc::new(Credentials::from_config(&config.server)?);
    let limits = &config.server.limits;
    limits.validate()?;
    let engine = Engine::new(limits);
    // Every SQL query of the server draws from one memory pool and spills within one allowance.
    let sql = engine.server_session(catalog.session())?;
    bhavstore_serving::serve::listener::raise_fd_limit(
        limits.max_pg_connections + limits.max_flight_connections + limits.max_http_connections,
    );
    let state = Arc::new(AppState {
        config: ServeSettings {
            server: config.server.clone(),
            ingest: config.ingest.clone(),
            storage: config.storage.clone(),
            online: config.online.clone(),
            intraday: config.intraday.clone(),
        },
        storage: storage.clone(),
        materializer,
        ingestor: Ingestor::new(storage.clone()),
        client,
        online: OnlineStore::new(publisher.subscribe()),
        runs: Mutex::new(HashMap::new()),
        metrics: Metrics::default(),
        credentials: Arc::clone(&credentials),
        catalog,
        sql,
        publisher,
        refreshing: tokio::sync::Mutex::new(()),
        intraday: intraday.clone(),
    });
    let loaded = state.refresh_online().await?;
    info!(storage = %storage.display(), views = ?loaded, "online store ready");
    super::log_live_views(&state.catalog, &state.publisher.current());

    let mut services: Vec<Box<dyn Service>> = Vec::new();
    if let Some(addr) = listen_addr(&config.server.http_addr, credentials.has_tokens(), "REST API", "tokens") {
        let rest = RestService::bind(&addr, Arc::clone(&state)).await.map_err(|e| super::CliError::Listener {
            what: format!("binding the REST API to {addr}"),
            source: Box::new(e),
        })?;
        services.push(Box::new(rest));
    }
    if let Some(addr) = listen_addr(&config.server.pg_addr, credentials.has_users(), "Postgres listener", "users") {
        let pg = PgService::bind(&addr, &state.sql, &engine, &credentials, config.server.tls.as_ref())
            .await
            .map_err(|e| super::CliError::Listener { what: "Postgres listener".to_string(), source: Box::new(e) })?;
        services.push(Box::new(pg));
    }
    let flight_auth = credentials.has_users() || credentials.has_tokens();
    if let Some(addr) = listen_addr(&config.server.flight_addr, flight_auth, "Flight SQL listener", "users or tokens") {
        let flight = FlightService::bind(
            &addr,
            &state.sql,
            &engine,
            Arc::clone(&credentials),
            config.server.tls.as_ref(),
            intraday.clone(),
        )
        .await
        .map_err(|e| super::CliError::Listener { what: "Flight SQL listener".to_string(), source: Box::new(e) })?;
        services.push(Box::new(flight));
    }
    for s in &services {
        // Tests and operators read the bound address from this line (port 0 picks one).
        info!(protocol = s.name(), addr = %s.local_addr(), "listening");
    }

    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for s in services {
        let name = s.name();
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = s.run(rx).await {
                warn!(protocol = name, error = %e, "listener stopped with an error");
            }
        }));
    }
    if no_schedule {
        info!("scheduler disabled (--no-schedule)");
    } else {
        info!(timezone = %config.schedule.timezone, "scheduler started");
        for (job, at) in schedule.next_fires(Utc::now()) {
            info!(job, next_fire = %at, "scheduled");
        }
        let runner = Arc::new(Runner { state: Arc::clone(&state), actions_days: config.source.corporate_actions_days });
        tasks.push(tokio::spawn(bhavstore_schedule::run(schedule, runner, rx.clone())));
    }
    // Views materialized by other processes (a CLI run) reach the online store within refresh_secs.
    let refresher = {
        let state = Arc::clone(&state);
        let every = Duration::from_secs(config.server.refresh_secs.max(1));
        let rx = rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = bhavstore_serving::serve::wait_for(rx.clone()) => return,
                }
                match state.refresh_online().await {
                    Ok(v) if !v.is_empty() => info!(views = ?v, "online store reloaded"),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "online store refresh failed"),
                }
            }
        })
    };
    tasks.push(refresher);

    super::shutdown_signal().await;
    warn!("signal received: finishing in-flight work, then stopping");
    let _ = tx.send(true);
    for t in tasks {
        if let Err(e) = t.await {
            warn!(error = %e, "a task ended abnormally");
        }
    }
    if let Some(i) = &intraday {
        i.close().await;
    }
    info!("bhavstore serve stopped");
    Ok(ExitCode::SUCCESS)
}
