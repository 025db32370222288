//! What every listener of `bhavstore serve` shares.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;

use bhavstore_ingest::Ingestor;
use bhavstore_ingest::config::IngestConfig;
use bhavstore_ingest::source::BseClient;
use bhavstore_lake::Publisher;
use bhavstore_materialize::Materializer;
use bhavstore_online::{OnlineConfig, OnlineError, OnlineStore};
use bhavstore_query::Catalog;
use bhavstore_storage::{Storage, StorageConfig};

use super::ServerConfig;

/// The configuration sections serving reads (each owned by its layer; the CLI assembles them).
#[derive(Debug, Clone, Default)]
pub struct ServeSettings {
    /// `server:` listeners, limits, tokens, import roots.
    pub server: ServerConfig,
    /// `ingest:` for REST ingest.
    pub ingest: IngestConfig,
    /// `storage:` (S3 settings for `s3://` REST ingest locations).
    pub storage: StorageConfig,
    /// `online:` history and market clock.
    pub online: OnlineConfig,
    /// `intraday:` group commit, snapshots, limits.
    pub intraday: bhavstore_intraday::IntradayConfig,
}

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
    /// Those runs' records, as `bhavstore_runs` shows them: view, version, mode, status
    /// (`succeeded`, or `warning` when a quality threshold was crossed), rows, trade dates,
    /// warnings.
    pub materializations: Vec<bhavstore_lake::records::RunRecord>,
}

/// How long a finished run status is kept; `None` (hours = 0) keeps it until the count limit
/// pushes it out.
fn run_ttl(hours: u64) -> Option<chrono::Duration> {
    (hours > 0)
        .then(|| i64::try_from(hours).ok().and_then(chrono::Duration::try_hours).unwrap_or(chrono::Duration::MAX))
}

fn is_expired(r: &RunStatus, ttl: Option<chrono::Duration>, now: DateTime<Utc>) -> bool {
    matches!((r.finished_at, ttl), (Some(done), Some(ttl)) if now - done > ttl)
}

/// Drops finished statuses older than `ttl`, then the oldest finished ones until at most `keep`
/// remain. Running statuses are never dropped. Returns how many were dropped.
pub(crate) fn evict_runs(
    runs: &mut HashMap<String, RunStatus>,
    keep: usize,
    ttl: Option<chrono::Duration>,
    now: DateTime<Utc>,
) -> usize {
    let before = runs.len();
    runs.retain(|_, r| !is_expired(r, ttl, now));
    if runs.len() > keep {
        let mut finished: Vec<(DateTime<Utc>, String)> =
            runs.values().filter_map(|r| r.finished_at.map(|t| (t, r.run_id.clone()))).collect();
        finished.sort();
        let excess = runs.len() - keep;
        for (_, id) in finished.into_iter().take(excess) {
            runs.remove(&id);
        }
    }
    before - runs.len()
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
    /// The configuration sections it was started with.
    pub config: ServeSettings,
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
    /// Users and tokens (the one place passwords and tokens are checked).
    pub credentials: std::sync::Arc<super::Credentials>,
    /// The SQL catalog Postgres and Flight SQL clients query.
    pub catalog: Catalog,
    /// The session of [`AppState::catalog`].
    pub sql: datafusion::prelude::SessionContext,
    /// The only writer of published state; the catalog and the online store read its snapshots.
    pub publisher: Publisher,
    /// One refresh at a time (the poller and REST ingest both refresh).
    pub refreshing: tokio::sync::Mutex<()>,
    /// Intraday bars and the streaming views computed live (`None` in one-shot tools).
    pub intraday: Option<bhavstore_intraday::Intraday>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("storage", &self.storage.display()).finish_non_exhaustive()
    }
}

impl AppState {
    /// The ingestor with the configuration's `ingest:` settings.
    #[must_use]
    pub fn configured_ingestor(&self) -> Ingestor {
        self.ingestor.clone().with_config(&self.config.ingest)
    }

    /// Records a REST run that starts now. Expired and then the oldest finished statuses are
    /// dropped to stay within `server.limits.max_run_statuses`; a running one never is, so when
    /// every slot holds a running ingest the new run is refused (`false`).
    pub fn start_run(&self, status: RunStatus) -> bool {
        let limits = &self.config.server.limits;
        let Ok(mut runs) = self.runs.lock() else { return false };
        evict_runs(
            &mut runs,
            limits.max_run_statuses.saturating_sub(1),
            run_ttl(limits.run_status_ttl_hours),
            Utc::now(),
        );
        if runs.len() >= limits.max_run_statuses {
            return false;
        }
        runs.insert(status.run_id.clone(), status);
        true
    }

    /// Updates a run's status (if it is still held).
    pub fn update_run(&self, run_id: &str, update: impl FnOnce(&mut RunStatus)) {
        if let Ok(mut runs) = self.runs.lock()
            && let Some(r) = runs.get_mut(run_id)
        {
            update(r);
        }
    }

    /// The views computed live from pushed intraday bars (none without `intraday`).
    #[must_use]
    pub fn streaming_views(&self) -> Vec<String> {
        self.intraday.as_ref().map(|i| i.views().iter().map(|v| v.name().to_string()).collect()).unwrap_or_default()
    }

    /// A run's status; `None` when unknown, evicted or expired.
    #[must_use]
    pub fn run_status(&self, run_id: &str) -> Option<RunStatus> {
        let ttl = run_ttl(self.config.server.limits.run_status_ttl_hours);
        let mut runs = self.runs.lock().ok()?;
        let expired = runs.get(run_id).is_some_and(|r| is_expired(r, ttl, Utc::now()));
        if expired {
            runs.remove(run_id);
            return None;
        }
        runs.get(run_id).cloned()
    }

    /// Publishes the newest state of every view whose newest manifest changed: each manifest
    /// is read once, the online store builds its data from the same states, and one snapshot
    /// switches SQL, Flight, Postgres and REST together. Returns the views that changed.
    pub async fn refresh_online(&self) -> Result<Vec<String>, OnlineError> {
        let _one = self.refreshing.lock().await;
        let current = self.publisher.current();
        let Some((mut next, changed)) = self.publisher.next(&self.storage, &self.catalog.current_versions()).await?
        else {
            return Ok(Vec::new());
        };
        OnlineStore::prepare(&self.storage, self.catalog.prepared(), &current, &mut next, &self.config.online).await?;
        tracing::info!(generation = next.generation, views = ?changed, "published state switched");
        self.publisher.send(next);
        Metrics::inc(&self.metrics.reloads, 1);
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, started: i64, finished: Option<i64>) -> RunStatus {
        let at = |m: i64| DateTime::<Utc>::from_timestamp(1_700_000_000 + m * 60, 0).unwrap();
        RunStatus {
            run_id: id.into(),
            status: if finished.is_some() { "succeeded".into() } else { "running".into() },
            message: String::new(),
            started_at: at(started),
            finished_at: finished.map(at),
            materialize_runs: Vec::new(),
            materializations: Vec::new(),
        }
    }

    #[test]
    fn eviction_drops_expired_then_oldest_finished_never_running() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000 + 600 * 60, 0).unwrap();
        let mut runs: HashMap<String, RunStatus> = [
            status("old-done", 0, Some(1)),
            status("running-1", 2, None),
            status("done-a", 3, Some(590)),
            status("done-b", 4, Some(595)),
            status("running-2", 5, None),
        ]
        .into_iter()
        .map(|r| (r.run_id.clone(), r))
        .collect();
        // A two-hour ttl expires the status finished ten hours ago.
        assert_eq!(evict_runs(&mut runs, 10, Some(chrono::Duration::hours(2)), now), 1);
        assert!(!runs.contains_key("old-done"));
        // Down to three: the oldest finished goes, the running ones stay.
        assert_eq!(evict_runs(&mut runs, 3, None, now), 1);
        assert!(!runs.contains_key("done-a") && runs.contains_key("done-b"));
        // Down to one: only running ones are left, and they are kept over the limit.
        evict_runs(&mut runs, 1, None, now);
        let mut left: Vec<&str> = runs.keys().map(String::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["running-1", "running-2"]);
    }
}
