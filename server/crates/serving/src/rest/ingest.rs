//! `POST /feature-store/ingest`: load what the request names (a trade date fetched from BSE, or
//! bhavcopy files at an `s3://` or `file://` location), materialize the view, refresh the online
//! store. Work that outlasts a short wait answers `202` with a run id for
//! `GET /feature-store/runs/{id}`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use super::lookup::parse_time;
use crate::serve::Metrics;
use crate::serve::{AppState, RunStatus};
use bhavstore_ingest::import;
use bhavstore_ingest::location::{Confined, ImportRoots, Location};
use bhavstore_ingest::{DayOutcome, HeldRevision, IngestError, Ingested};
use bhavstore_lake::records::new_run_id;
use bhavstore_materialize::MaterializeError;

/// How long the request waits for the work before answering 202.
const SYNC_WAIT: Duration = Duration::from_secs(20);

/// The seed's ingest request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IngestRequest {
    /// The view to materialize afterwards.
    pub feature_view: String,
    /// `YYYY-MM-DD` (fetched from BSE), or `s3://bucket/prefix` / `file:///path` inside one of
    /// `server.import_roots` (files loaded).
    pub data_source: String,
    /// Features the caller expects the view to have (checked; the view is computed whole).
    #[serde(default)]
    pub features: Vec<String>,
    /// When the caller asks for it (RFC 3339); recorded in the message.
    pub timestamp: Option<String>,
}

enum Source {
    Day(NaiveDate),
    Location(Confined),
}

/// Why an ingest run failed. The message becomes the run's status message: it names what failed
/// without internals and without file content (ingest errors show their client message only,
/// and are not exposed as a `source`).
#[derive(Debug, thiserror::Error)]
enum IngestRunError {
    /// BSE publishes no file for the day.
    #[error("BSE has no bhavcopy for {date} (holiday, weekend or not yet published)")]
    NoFile {
        /// The trade date asked for.
        date: NaiveDate,
    },
    /// The new revision was stored but held, not loaded.
    #[error("{}", .held.warning())]
    Held {
        /// The held revision.
        held: HeldRevision,
    },
    /// The day was not loaded, for the ingest's stated reason.
    #[error("{reason}")]
    DayFailed {
        /// The ingest's reason.
        reason: String,
    },
    /// Fetching the day failed.
    #[error("{}", .error.client_message())]
    Fetch {
        /// The trade date asked for.
        date: NaiveDate,
        /// The error (logged in full; only its client message is shown).
        error: IngestError,
    },
    /// Importing the location failed as a whole.
    #[error("{}", .error.client_message())]
    Import {
        /// The location.
        url: String,
        /// The error (logged in full; only its client message is shown).
        error: IngestError,
    },
    /// The location holds no bhavcopy files.
    #[error("no .csv or .zip files at {url}{skipped}")]
    NoFiles {
        /// The location.
        url: String,
        /// What was skipped, as `"; N skipped: ..."`, or empty.
        skipped: String,
    },
    /// Some files at the location failed or were held.
    #[error("{summary}: {}", .problems.join("; "))]
    Files {
        /// Counts of files and rows.
        summary: String,
        /// One `file: reason` per failed or held file.
        problems: Vec<String>,
    },
    /// Materialization could not start.
    #[error(transparent)]
    Materialize(#[from] MaterializeError),
    /// Materializing the view failed.
    #[error("{view}: {source}")]
    View {
        /// The view.
        view: String,
        /// Why.
        source: MaterializeError,
    },
}

/// `POST /feature-store/ingest`.
pub(super) async fn ingest(
    State(state): State<Arc<AppState>>,
    body: Result<Json<IngestRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if req.feature_view.trim().is_empty() || req.data_source.trim().is_empty() {
        return Err(ApiError::bad_request("feature_view and data_source must not be empty"));
    }
    Metrics::inc(&state.metrics.ingests, 1);
    let pv = state
        .materializer
        .views()
        .iter()
        .find(|v| v.view.spec.name == req.feature_view)
        .ok_or_else(|| bhavstore_online::LookupError::UnknownView(req.feature_view.clone()))?;
    if let Some(f) = req.features.iter().find(|f| !pv.view.spec.features.iter().any(|s| &s.name == *f)) {
        return Err(bhavstore_online::LookupError::UnknownFeature {
            view: req.feature_view.clone(),
            feature: f.clone(),
        }
        .into());
    }
    let requested_at = parse_time(req.timestamp.as_deref())?;
    // Exactly as `/openapi.json` describes it: a date YYYY-MM-DD, or an s3:// or file:// URL.
    let data_source = req.data_source.as_str();
    let day = (data_source.len() == 10 && data_source.as_bytes()[4] == b'-' && data_source.as_bytes()[7] == b'-')
        .then(|| NaiveDate::parse_from_str(data_source, "%Y-%m-%d").ok())
        .flatten()
        .ok_or(());
    let source = match day {
        Ok(d) => Source::Day(d),
        Err(()) if data_source.starts_with("s3://") || data_source.starts_with("file://") => {
            // Only inside the configured import roots, checked before any work starts.
            let location = Location::parse(data_source)?;
            let roots = ImportRoots::parse(&state.config.server.import_roots)
                .map_err(|e| ApiError::internal("server.import_roots", e))?;
            Source::Location(roots.confine(&location)?)
        }
        Err(()) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_data_source",
                format!(
                    "data_source {:?} must be a trade date (YYYY-MM-DD), s3://bucket/prefix or file:///path",
                    bhavstore_formats::detect::truncate(&req.data_source, 200)
                ),
            ));
        }
    };
    let run_id = new_run_id();
    let status = RunStatus {
        run_id: run_id.clone(),
        status: "running".into(),
        message: format!("ingesting {} for {} (requested for {requested_at})", req.data_source, req.feature_view),
        started_at: Utc::now(),
        finished_at: None,
        materialize_runs: Vec::new(),
        materializations: Vec::new(),
    };
    if !state.start_run(status) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_runs",
            format!(
                "{} ingest runs are in progress, the most this server tracks (server.limits.max_run_statuses); try again later",
                state.config.server.limits.max_run_statuses
            ),
        ));
    }
    let view = req.feature_view.clone();
    let work_state = Arc::clone(&state);
    let work_id = run_id.clone();
    let task = tokio::spawn(async move {
        let outcome = work(&work_state, &source, &view).await;
        work_state.update_run(&work_id, |r| {
            r.finished_at = Some(Utc::now());
            match outcome {
                Ok((message, records)) => {
                    r.status = "succeeded".into();
                    r.message = message;
                    r.materialize_runs = records.iter().map(|rec| rec.run_id.clone()).collect();
                    r.materializations = records;
                }
                Err(e) => {
                    r.status = "failed".into();
                    r.message = e.to_string();
                }
            }
        });
    });
    let finished = tokio::time::timeout(SYNC_WAIT, task).await.is_ok();
    let current = state.run_status(&run_id);
    match (finished, current) {
        (true, Some(r)) if r.status == "succeeded" => {
            Ok(Json(json!({"status": "success", "message": r.message, "run_id": r.run_id})).into_response())
        }
        (true, Some(r)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"status": "error", "error": {"code": "ingest_failed", "message": r.message}, "run_id": r.run_id})),
        )
            .into_response()),
        _ => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "status": "accepted",
                "message": "still working; poll the run",
                "run_id": run_id,
                "status_url": format!("/feature-store/runs/{run_id}"),
            })),
        )
            .into_response()),
    }
}

/// `GET /feature-store/runs/{id}`.
pub(super) async fn run_status(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Json_>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let run = state.run_status(&id);
    match run {
        Some(r) => Ok(Json(serde_json::to_value(r).map_err(|e| ApiError::internal("run status", e))?)),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_run", format!("no run {id:?} in this server"))),
    }
}

/// Loads the source, materializes the view and refreshes the online store. Errors are messages
/// for the caller: they name what failed without internals and without file content.
async fn work(
    state: &AppState,
    source: &Source,
    view: &str,
) -> Result<(String, Vec<bhavstore_lake::records::RunRecord>), IngestRunError> {
    let loaded = match source {
        Source::Day(d) => match state.configured_ingestor().fetch_day(&state.client, *d).await {
            Ok(DayOutcome::Fetched { report, .. }) => {
                format!("{d}: loaded {} rows ({} quarantined)", report.rows_loaded, report.rows_quarantined)
            }
            Ok(DayOutcome::Unchanged | DayOutcome::AlreadyStored) => format!("{d}: already loaded"),
            Ok(DayOutcome::NoFilePublished | DayOutcome::NoFileKnown) => {
                return Err(IngestRunError::NoFile { date: *d });
            }
            Ok(DayOutcome::Held(held)) => return Err(IngestRunError::Held { held }),
            Ok(DayOutcome::Failed { reason } | DayOutcome::NotAttempted { reason }) => {
                return Err(IngestRunError::DayFailed { reason });
            }
            Err(error) => {
                tracing::warn!(date = %d, error = %error, "REST ingest failed");
                return Err(IngestRunError::Fetch { date: *d, error });
            }
        },
        Source::Location(location) => load_location(state, location).await?,
    };
    let results = state.materializer.run(&[view.to_string()], false).await?;
    let mut runs = Vec::new();
    let mut notes = Vec::new();
    for (v, r) in results {
        let r = r.map_err(|source| IngestRunError::View { view: v.clone(), source })?;
        notes.push(format!(
            "{v}@{}: {} ({}) {} rows",
            r.version.as_deref().unwrap_or("-"),
            r.status,
            r.mode.as_deref().unwrap_or("-"),
            r.rows
        ));
        runs.push(r);
    }
    if let Err(e) = state.refresh_online().await {
        tracing::warn!(error = %e, "online store refresh after ingest failed");
    }
    Ok((format!("{loaded}; {}", notes.join("; ")), runs))
}

/// Every `.csv` and `.zip` file at a confined location, through the same import path as
/// `bhavstore import` (archives split per day, links never followed). Messages name files and
/// reasons, never file content.
async fn load_location(state: &AppState, location: &Confined) -> Result<String, IngestRunError> {
    let url = location.url();
    let ingestor = state.configured_ingestor();
    let report = import::import_location(&ingestor, location, &state.config.storage.s3, &|_: &import::ImportedFile| {})
        .await
        .map_err(|error| {
            tracing::warn!(location = url, error = %error, "REST ingest from a location failed");
            IngestRunError::Import { url: url.to_string(), error }
        })?;
    for (entry, why) in &report.skipped {
        tracing::info!(location = url, entry, "skipped: {why}");
    }
    let skipped = if report.skipped.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = report.skipped.iter().take(20).map(|(p, why)| format!("{p} ({why})")).collect();
        let more = report.skipped.len().saturating_sub(20);
        format!(
            "; {} skipped: {}{}",
            report.skipped.len(),
            list.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        )
    };
    if report.files.is_empty() {
        return Err(IngestRunError::NoFiles { url: url.to_string(), skipped });
    }
    let (mut loaded, mut unchanged, mut problems, mut references) = (0u64, 0usize, Vec::new(), Vec::new());
    for f in &report.files {
        match &f.result {
            Ok(Ingested::Loaded { report, .. }) => loaded += report.rows_loaded,
            Ok(Ingested::Unchanged { .. }) => unchanged += 1,
            Ok(Ingested::Held(held)) => problems.push(format!("{}: {}", f.source, held.warning())),
            Ok(Ingested::Reference(r)) => references.push(format!("{}: {}", f.source, r.describe())),
            Err(e) => problems.push(format!("{}: {}", f.source, e.client_message())),
        }
    }
    let summary = format!(
        "{} files from {url}: {loaded} rows loaded, {unchanged} unchanged, {} failed or held{skipped}{}",
        report.files.len(),
        problems.len(),
        if references.is_empty() { String::new() } else { format!("; {}", references.join("; ")) }
    );
    if problems.is_empty() { Ok(summary) } else { Err(IngestRunError::Files { summary, problems }) }
}
