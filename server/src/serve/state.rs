//! What every listener of `bhavstore serve` shares.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::ingest::Ingestor;
use crate::materialize::Materializer;
use crate::online::OnlineStore;
use crate::source::BseClient;
use crate::storage::Storage;

/// Progress of work started through the REST API.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    /// The id `GET /feature-store/runs/{id}` takes.
    pub run_id: String,
    /// `running`, `succeeded`, `failed`.
    pub status: String,
    /// What happened so far.
    pub message: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Materialization runs it caused (see `bhavstore_runs`).
    pub materialize_runs: Vec<String>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Lookups answered with a value.
    pub lookups_ok: AtomicU64,
    /// Lookups refused (unknown view, feature, entity, stale, ...).
    pub lookups_refused: AtomicU64,
    /// Total lookup handling time, microseconds.
    pub lookup_micros: AtomicU64,
    /// Ingest requests.
    pub ingests: AtomicU64,
    /// Online store reloads.
    pub reloads: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// Shared state of the server.
pub struct AppState {
    /// The configuration it was started with.
    pub config: Config,
    /// The storage root.
    pub storage: Storage,
    /// Materializes views (scheduler and REST ingest).
    pub materializer: Materializer,
    /// Ingests files.
    pub ingestor: Ingestor,
    /// Downloads from BSE.
    pub client: BseClient,
    /// In-memory feature values.
    pub online: OnlineStore,
    /// Work started through the REST API.
    pub runs: Mutex<HashMap<String, RunStatus>>,
    /// Counters.
    pub metrics: Metrics,
    /// Newest manifest seq per view held by the online store, to notice new publications.
    pub loaded: Mutex<HashMap<String, (String, u64)>>,
    /// The SQL catalog Postgres and Flight SQL clients query; its views follow the same
    /// publications as the online store.
    pub sql: datafusion::prelude::SessionContext,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("storage", &self.storage.display()).finish_non_exhaustive()
    }
}

impl AppState {
    /// Reloads every view whose newest manifest differs from the one held. Returns the views
    /// reloaded.
    pub async fn refresh_online(&self) -> Result<Vec<String>, crate::online::OnlineError> {
        let mut changed = Vec::new();
        for pv in self.materializer.views() {
            let name = pv.view.spec.name.clone();
            let seqs = crate::materialize::manifest::list_seqs(&self.storage, &name, &pv.version.id).await?;
            let Some(&seq) = seqs.last() else { continue };
            let held = self.loaded.lock().ok().and_then(|m| m.get(&name).cloned());
            if held.as_ref() == Some(&(pv.version.id.clone(), seq)) {
                continue;
            }
            changed.push((pv.clone(), seq));
        }
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        let views: Vec<_> = changed.iter().map(|(pv, _)| pv.clone()).collect();
        self.online.load(&self.storage, &views, &self.config.online).await?;
        let names: Vec<_> = views.iter().map(|p| (p.view.spec.name.clone(), p.version.id.clone())).collect();
        if let Err(e) = crate::catalog::refresh_views(&self.sql, &self.storage, &names).await {
            tracing::warn!(error = %e, "SQL catalog refresh failed; SQL clients keep the previous state");
        }
        Metrics::inc(&self.metrics.reloads, 1);
        if let Ok(mut m) = self.loaded.lock() {
            for (pv, seq) in &changed {
                m.insert(pv.view.spec.name.clone(), (pv.version.id.clone(), *seq));
            }
        }
        Ok(views.into_iter().map(|p| p.view.spec.name).collect())
    }
}
