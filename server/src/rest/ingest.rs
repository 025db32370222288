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
use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use super::lookup::parse_time;
use crate::config::StorageConfig;
use crate::ingest::{DayOutcome, Ingested, Provenance};
use crate::materialize::records::new_run_id;
use crate::serve::Metrics;
use crate::serve::{AppState, RunStatus};
use crate::storage::Storage;

/// How long the request waits for the work before answering 202.
const SYNC_WAIT: Duration = Duration::from_secs(20);

/// The seed's ingest request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// The view to materialize afterwards.
    pub feature_view: String,
    /// `YYYY-MM-DD` (fetched from BSE), `s3://bucket/prefix` or `file:///path` (files loaded).
    pub data_source: String,
    /// Features the caller expects the view to have (checked; the view is computed whole).
    #[serde(default)]
    pub features: Vec<String>,
    /// When the caller asks for it (RFC 3339); recorded in the message.
    pub timestamp: Option<String>,
}

enum Source {
    Day(NaiveDate),
    Location(String),
}

/// `POST /feature-store/ingest`.
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    body: Result<Json<IngestRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Metrics::inc(&state.metrics.ingests, 1);
    let pv = state
        .materializer
        .views()
        .iter()
        .find(|v| v.view.spec.name == req.feature_view)
        .ok_or_else(|| crate::online::LookupError::UnknownView(req.feature_view.clone()))?;
    if let Some(f) = req.features.iter().find(|f| !pv.view.spec.features.iter().any(|s| &s.name == *f)) {
        return Err(
            crate::online::LookupError::UnknownFeature { view: req.feature_view.clone(), feature: f.clone() }.into()
        );
    }
    let requested_at = parse_time(req.timestamp.as_deref())?;
    let source = match NaiveDate::parse_from_str(req.data_source.trim(), "%Y-%m-%d") {
        Ok(d) => Source::Day(d),
        Err(_) if req.data_source.starts_with("s3://") || req.data_source.starts_with("file:///") => {
            Source::Location(req.data_source.trim().to_string())
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_data_source",
                format!(
                    "data_source {:?} must be a trade date (YYYY-MM-DD), s3://bucket/prefix or file:///path",
                    req.data_source
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
    };
    if let Ok(mut runs) = state.runs.lock() {
        runs.insert(run_id.clone(), status);
    }
    let view = req.feature_view.clone();
    let work_state = Arc::clone(&state);
    let work_id = run_id.clone();
    let task = tokio::spawn(async move {
        let outcome = work(&work_state, &source, &view).await;
        if let Ok(mut runs) = work_state.runs.lock()
            && let Some(r) = runs.get_mut(&work_id)
        {
            r.finished_at = Some(Utc::now());
            match outcome {
                Ok((message, materialize_runs)) => {
                    r.status = "succeeded".into();
                    r.message = message;
                    r.materialize_runs = materialize_runs;
                }
                Err(e) => {
                    r.status = "failed".into();
                    r.message = e;
                }
            }
        }
    });
    let finished = tokio::time::timeout(SYNC_WAIT, task).await.is_ok();
    let current = state.runs.lock().ok().and_then(|r| r.get(&run_id).cloned());
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
pub async fn run_status(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Json_>, ApiError> {
    let run = state.runs.lock().ok().and_then(|r| r.get(&id).cloned());
    match run {
        Some(r) => Ok(Json(serde_json::to_value(r).map_err(|e| ApiError::internal("run status", e))?)),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_run", format!("no run {id:?} in this server"))),
    }
}

/// Loads the source, materializes the view and refreshes the online store. Errors are messages
/// for the caller: they name what failed without internals.
async fn work(state: &AppState, source: &Source, view: &str) -> Result<(String, Vec<String>), String> {
    let loaded = match source {
        Source::Day(d) => match state.ingestor.fetch_day(&state.client, *d).await {
            Ok(DayOutcome::Fetched { report, .. }) => {
                format!("{d}: loaded {} rows ({} quarantined)", report.rows_loaded, report.rows_quarantined)
            }
            Ok(DayOutcome::Unchanged | DayOutcome::AlreadyStored) => format!("{d}: already loaded"),
            Ok(DayOutcome::NoFilePublished | DayOutcome::NoFileKnown) => {
                return Err(format!("BSE has no bhavcopy for {d} (holiday, weekend or not yet published)"));
            }
            Ok(DayOutcome::Failed { reason } | DayOutcome::NotAttempted { reason }) => return Err(reason),
            Err(e) => return Err(e.to_string()),
        },
        Source::Location(url) => load_location(state, url).await?,
    };
    let results = state.materializer.run(&[view.to_string()], false).await.map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    let mut notes = Vec::new();
    for (v, r) in results {
        let r = r.map_err(|e| format!("{v}: {e}"))?;
        notes.push(format!(
            "{v}@{}: {} ({}) {} rows",
            r.version.as_deref().unwrap_or("-"),
            r.status,
            r.mode.as_deref().unwrap_or("-"),
            r.rows
        ));
        runs.push(r.run_id);
    }
    if let Err(e) = state.refresh_online().await {
        tracing::warn!(error = %e, "online store refresh after ingest failed");
    }
    Ok((format!("{loaded}; {}", notes.join("; ")), runs))
}

/// Every object under an `s3://` or `file://` location, loaded through the normal ingest path.
async fn load_location(state: &AppState, url: &str) -> Result<String, String> {
    let cfg = StorageConfig { url: url.to_string(), s3: state.config.storage.s3.clone() };
    let source = Storage::open(&cfg).map_err(|e| e.to_string())?;
    let keys = source.list("").await.map_err(|e| e.to_string())?;
    if keys.is_empty() {
        return Err(format!("no files at {url}"));
    }
    let (mut loaded, mut unchanged) = (0u64, 0usize);
    for key in &keys {
        let bytes: Bytes =
            source.get(key).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("{key} vanished"))?;
        let name = key.rsplit('/').next().unwrap_or(key);
        let prov = Provenance {
            kind: "import".into(),
            source: format!("{}/{key}", url.trim_end_matches('/')),
            fetched_at: Utc::now(),
            http_status: None,
            content_type: None,
        };
        match state.ingestor.ingest_bytes(name, bytes, prov, None).await {
            Ok(Ingested::Loaded { report, .. }) => loaded += report.rows_loaded,
            Ok(Ingested::Unchanged { .. }) => unchanged += 1,
            Err(e) => return Err(format!("{key}: {e}")),
        }
    }
    Ok(format!("{} files from {url}: {loaded} rows loaded, {unchanged} unchanged", keys.len()))
}
