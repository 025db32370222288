//! Materialization: feature views computed into versioned Parquet that never half-appears.
//!
//! * A view's **version** is a hash of its definition ([`version`]); changing the SQL, the
//!   data-shaping YAML or a function's version starts a new one, and old ones stay readable.
//! * A **run** writes Parquet under `features/{view}/{version}/data/{run_id}/`, then publishes a
//!   [`manifest`] with a create-only put. Readers go through manifests only, so a killed run
//!   leaves orphan files (removed by the next run) and never a partial version.
//! * Runs are **incremental** when the view allows it ([`analysis`]): the previous run left, per
//!   entity, the last `lookback` input rows (the tail); the new run computes the new days from
//!   the tail plus the new rows, which gives the full recompute's values. A revision of an already-computed day
//!   (BSE re-publishing a file) restarts from the newest state before that day.
//! * Each run leaves a record (`bhavstore_runs`) and quality figures (`bhavstore_quality`), and is
//!   logged to MLflow when configured.

mod chunked;
mod compact;
pub mod config;
pub mod failpoint;
pub mod lock;
pub mod quality;
mod recursions;
mod run;
mod tail;

use std::sync::Arc;

use datafusion::error::DataFusionError;

use bhavstore_features::prepare;
pub use bhavstore_lake::records::{QualityRecord, RunRecord};
pub use config::{MaterializeConfig, QualityThresholds};

use bhavstore_features::{FeatureView, PreparedView};
use bhavstore_mlflow::MlflowClient;
use bhavstore_storage::{Storage, StorageError};

/// Errors of materialization.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// DataFusion failed planning or computing.
    #[error("query engine: {0}")]
    Engine(#[from] DataFusionError),
    /// Writing Parquet failed.
    #[error("writing Parquet: {0}")]
    Write(String),
    /// A stored record does not parse or is missing.
    #[error("stored state is damaged: {0}")]
    Corrupt(String),
    /// Another run of the view is going.
    #[error("busy: {0}")]
    Busy(String),
    /// No such view.
    #[error("unknown feature view {0:?} (see `bhavstore features`)")]
    UnknownView(String),
    /// Reading or writing published state failed.
    #[error(transparent)]
    Lake(#[from] bhavstore_lake::LakeError),
    /// A view could not be prepared.
    #[error(transparent)]
    Prepare(#[from] bhavstore_features::PrepareError),
    /// The store's registry of definitions could not be written.
    #[error(transparent)]
    Registry(#[from] bhavstore_features::registry::RegistryError),
}

impl From<datafusion::arrow::error::ArrowError> for MaterializeError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Self::Engine(DataFusionError::ArrowError(Box::new(e), None))
    }
}

/// Runs materializations against one storage root.
#[derive(Clone)]
pub struct Materializer {
    storage: Storage,
    views: Arc<Vec<PreparedView>>,
    all_views: Arc<Vec<FeatureView>>,
    cfg: MaterializeConfig,
    mlflow: Option<Arc<MlflowClient>>,
    /// Held by a full recompute while it computes: full runs of several views go one after
    /// the other (each uses every core; side by side they would only add up their memory),
    /// incremental runs side by side.
    full_runs: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Materializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Materializer")
            .field("storage", &self.storage.display())
            .field("views", &self.views.len())
            .finish()
    }
}

impl Materializer {
    /// Prepares every view: plans it, analyses the plan, derives its version and checks a
    /// declared `lookback_rows` against what the SQL needs.
    pub async fn new(
        storage: Storage,
        views: Vec<FeatureView>,
        cfg: MaterializeConfig,
        mlflow: Option<MlflowClient>,
    ) -> Result<Self, MaterializeError> {
        let prepared = prepare(&storage, &views).await?;
        Ok(Self::from_prepared(storage, prepared, views, cfg, mlflow))
    }

    /// Over views already prepared (by the SQL catalog, on its session), so `serve` loads and
    /// plans each definition once.
    #[must_use]
    pub fn from_prepared(
        storage: Storage,
        prepared: Vec<PreparedView>,
        views: Vec<FeatureView>,
        cfg: MaterializeConfig,
        mlflow: Option<MlflowClient>,
    ) -> Self {
        Self {
            storage,
            views: Arc::new(prepared),
            all_views: Arc::new(views),
            cfg,
            mlflow: mlflow.map(Arc::new),
            full_runs: Arc::default(),
        }
    }

    /// The prepared views.
    #[must_use]
    pub fn views(&self) -> &[PreparedView] {
        &self.views
    }

    /// The storage root.
    #[must_use]
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Materializes the named views (all when empty) concurrently; `full` forces a recompute
    /// of everything. One result per view, in the order asked.
    pub async fn run(
        &self,
        names: &[String],
        full: bool,
    ) -> Result<Vec<(String, Result<RunRecord, MaterializeError>)>, MaterializeError> {
        let selected: Vec<&PreparedView> = if names.is_empty() {
            self.views.iter().collect()
        } else {
            names
                .iter()
                .map(|n| {
                    self.views
                        .iter()
                        .find(|v| &v.view.spec.name == n)
                        .ok_or_else(|| MaterializeError::UnknownView(n.clone()))
                })
                .collect::<Result<_, _>>()?
        };
        // Views on adjusted prices follow the newest reconciliation: bring it up to date with
        // the data first, once for all of them. A failure leaves the previous one in force.
        if selected.iter().any(|pv| pv.analysis.uses_actions()) {
            match bhavstore_lake::adjust::reconcile(&self.storage).await {
                Ok(r) if r.changed => tracing::info!("{}", r.describe()),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reconciling corporate actions failed; using the previous reconciliation")
                }
            }
        }
        let runs = selected.into_iter().map(|pv| async move {
            let name = pv.view.spec.name.clone();
            let result = run::run_view(self, pv, full).await;
            (name, result)
        });
        Ok(futures::future::join_all(runs).await)
    }
}
