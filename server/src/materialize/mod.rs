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

pub mod analysis;
pub mod config;
pub mod failpoint;
pub mod lock;
pub mod manifest;
pub mod quality;
pub mod records;
mod run;
pub mod table;
pub mod version;
pub mod writer;

use std::sync::Arc;

use datafusion::error::DataFusionError;

pub use config::{MaterializeConfig, QualityThresholds};
pub use records::{QualityRecord, RunRecord};

use crate::features::FeatureView;
use crate::mlflow::MlflowClient;
use crate::storage::{Storage, StorageError};

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
    /// Another run published first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another run of the view is going.
    #[error("busy: {0}")]
    Busy(String),
    /// The view definitions are wrong for materialization.
    #[error("{0}")]
    Definition(String),
    /// No such view.
    #[error("unknown feature view {0:?} (see `bhavstore features`)")]
    UnknownView(String),
    /// The catalog could not be built.
    #[error(transparent)]
    Catalog(#[from] Box<crate::catalog::CatalogError>),
}

/// A view ready to materialize: definition, analysis and version.
#[derive(Debug, Clone)]
pub struct PreparedView {
    /// The definition.
    pub view: FeatureView,
    /// What its plan says.
    pub analysis: analysis::Analysis,
    /// Its version.
    pub version: version::VersionId,
    /// Rows per entity carried between runs (None: full recompute only).
    pub lookback_rows: Option<usize>,
    /// The `bhavcopy` columns the view reads: the only ones its tail needs to keep.
    pub input_columns: Vec<String>,
}

/// Runs materializations against one storage root.
#[derive(Clone)]
pub struct Materializer {
    storage: Storage,
    views: Arc<Vec<PreparedView>>,
    all_views: Arc<Vec<FeatureView>>,
    cfg: MaterializeConfig,
    mlflow: Option<Arc<MlflowClient>>,
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
        Ok(Self { storage, views: Arc::new(prepared), all_views: Arc::new(views), cfg, mlflow: mlflow.map(Arc::new) })
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
        let runs = selected.into_iter().map(|pv| async move {
            let name = pv.view.spec.name.clone();
            let result = run::run_view(self, pv, full).await;
            (name, result)
        });
        Ok(futures::future::join_all(runs).await)
    }
}

/// Plans each view on a catalog session and derives what materialization needs.
pub async fn prepare(storage: &Storage, views: &[FeatureView]) -> Result<Vec<PreparedView>, MaterializeError> {
    let ctx = crate::catalog::session(storage).map_err(Box::new)?;
    crate::features::register_views(&ctx, views)
        .await
        .map_err(|e| MaterializeError::Catalog(Box::new(crate::catalog::CatalogError::FeatureDefs(e))))?;
    prepare_in(&ctx, views).await
}

/// [`prepare`] on a session where `views` are already registered (the catalog's own).
pub async fn prepare_in(
    ctx: &datafusion::prelude::SessionContext,
    views: &[FeatureView],
) -> Result<Vec<PreparedView>, MaterializeError> {
    let mut out = Vec::new();
    for view in views {
        let plan = ctx.state().create_logical_plan(&view.sql).await?;
        let analysis = analysis::analyse(&plan, &view.spec.entity, &view.spec.event_time)
            .map_err(|m| MaterializeError::Definition(format!("{}: {m}", view.sql_path.display())))?;
        let lookback_rows = match (&analysis.incremental, view.spec.lookback_rows) {
            (Ok(needed), Some(declared)) if (declared as usize) < *needed => {
                return Err(MaterializeError::Definition(format!(
                    "{}: lookback_rows {declared} is less than the {needed} rows per {} its SQL reads back \
                     (recursive functions such as ema/rsi count until older rows weigh < 2^-64)",
                    view.yaml_path.display(),
                    view.spec.entity
                )));
            }
            (Ok(needed), declared) => Some((*needed).max(declared.unwrap_or(0) as usize)),
            (Err(why), _) => {
                tracing::info!(view = %view.spec.name, reason = %why, "view is materialized by full recompute only");
                None
            }
        };
        let version = version::version_of(view, &analysis.functions);
        let input_columns = input_columns(ctx, &plan, &view.spec)?;
        out.push(PreparedView { view: view.clone(), analysis, version, lookback_rows, input_columns });
    }
    Ok(out)
}

/// Columns of `bhavcopy` the optimized plan reads (projection pushed into the scan), plus the
/// entity and event-time columns; all columns when the plan does not say.
fn input_columns(
    ctx: &datafusion::prelude::SessionContext,
    plan: &datafusion::logical_expr::LogicalPlan,
    spec: &crate::features::ViewSpec,
) -> Result<Vec<String>, MaterializeError> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let optimized = ctx.state().optimize(plan)?;
    let mut cols: Vec<String> = Vec::new();
    let mut all = false;
    optimized
        .apply(|node| {
            if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node
                && scan.table_name.table() == crate::catalog::BHAVCOPY
            {
                match &scan.projection {
                    Some(_) => cols.extend(scan.projected_schema.fields().iter().map(|f| f.name().clone())),
                    None => all = true,
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(MaterializeError::Engine)?;
    let full: Vec<String> =
        crate::formats::canonical::canonical_schema().fields().iter().map(|f| f.name().clone()).collect();
    if all || cols.is_empty() {
        return Ok(full);
    }
    cols.push(spec.entity.clone());
    cols.push(spec.event_time.clone());
    // Keep bhavcopy's column order so tails of one version always have the same schema.
    Ok(full.into_iter().filter(|c| cols.contains(c)).collect())
}
