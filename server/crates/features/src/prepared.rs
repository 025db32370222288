//! Views prepared for materialization and serving: each planned once, its plan analysed, its
//! version derived and the `bhavcopy` columns it reads listed.

use datafusion::error::DataFusionError;

use crate::{FeatureDefError, FeatureView, analysis, version};

/// Why a view cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Its definition does not load or register.
    #[error(transparent)]
    FeatureDefs(#[from] FeatureDefError),
    /// The base session could not be built.
    #[error(transparent)]
    Lake(#[from] bhavstore_lake::LakeError),
    /// DataFusion failed planning it.
    #[error("query engine: {0}")]
    Engine(#[from] DataFusionError),
    /// The definition is wrong for materialization (its analysis or declared lookback).
    #[error("{0}")]
    Definition(String),
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
    /// The input table's columns the view reads: the only ones its tail needs to keep.
    pub input_columns: Vec<String>,
}

impl PreparedView {
    /// The price basis of a view that reads one daily price table.
    #[must_use]
    pub fn basis(&self) -> Option<bhavstore_lake::adjust::PriceBasis> {
        self.analysis.daily_input().map(|d| d.0)
    }

    /// What the windows of a view that reads one daily price table count.
    #[must_use]
    pub fn window_unit(&self) -> Option<bhavstore_lake::adjust::WindowUnit> {
        self.analysis.daily_input().map(|d| d.1)
    }

    /// The daily table the view reads (`bhavcopy`, `bhavcopy_adjusted`, ...): the one an
    /// incremental run narrows to tail plus new days.
    #[must_use]
    pub fn input_table(&self) -> &'static str {
        self.analysis.daily_input().map_or(bhavstore_lake::BHAVCOPY, |(b, u)| b.input_table(u))
    }
}

/// Plans each view on a catalog session and derives what materialization needs.
pub async fn prepare(
    storage: &bhavstore_storage::Storage,
    views: &[FeatureView],
) -> Result<Vec<PreparedView>, PrepareError> {
    let ctx = bhavstore_lake::session(storage)?;
    crate::register_views(&ctx, views).await?;
    prepare_in(&ctx, views).await
}

/// [`prepare`] on a session where `views` are already registered (the catalog's own).
pub async fn prepare_in(
    ctx: &datafusion::prelude::SessionContext,
    views: &[FeatureView],
) -> Result<Vec<PreparedView>, PrepareError> {
    let mut out = Vec::new();
    for view in views {
        let plan = ctx.state().create_logical_plan(&view.sql).await?;
        let analysis = analysis::analyse(&plan, &view.spec.entity, &view.spec.event_time)
            .map_err(|m| PrepareError::Definition(format!("{}: {m}", view.sql_path.display())))?;
        let lookback_rows = match (&analysis.incremental, view.spec.lookback_rows) {
            (Ok(needed), Some(declared)) if (declared as usize) < *needed => {
                return Err(PrepareError::Definition(format!(
                    "{}: lookback_rows {declared} is less than the {needed} rows per {} its SQL reads back \
                     (a recursive function such as ema/rsi counts one row when resumed from its saved state, else until older rows weigh < 2^-64)",
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
        let daily = analysis.daily_input();
        if view.spec.prices.is_some() || view.spec.window_unit.is_some() {
            // What the YAML declares, completed by what the SQL reads, names one table.
            let (basis, unit) = daily.unwrap_or_default();
            let declared = (view.spec.prices.unwrap_or(basis), view.spec.window_unit.unwrap_or(unit));
            if daily != Some(declared) {
                return Err(PrepareError::Definition(format!(
                    "{}: prices: {}, window_unit: {}: the SQL must read {}, but it reads {:?}",
                    view.yaml_path.display(),
                    declared.0.as_str(),
                    declared.1.as_str(),
                    declared.0.input_table(declared.1),
                    analysis.tables
                )));
            }
        }
        let version = version::version_of(view, &analysis.functions);
        let input_table = daily.map_or(bhavstore_lake::BHAVCOPY, |(b, u)| b.input_table(u));
        let all_columns: Vec<String> =
            ctx.table(input_table).await?.schema().fields().iter().map(|f| f.name().clone()).collect();
        let input_columns = input_columns(ctx, &plan, &view.spec, input_table, all_columns)?;
        out.push(PreparedView { view: view.clone(), analysis, version, lookback_rows, input_columns });
    }
    Ok(out)
}

/// Columns of the input table the optimized plan reads (projection pushed into the scan), plus
/// the entity and event-time columns; all of `full` when the plan does not say.
fn input_columns(
    ctx: &datafusion::prelude::SessionContext,
    plan: &datafusion::logical_expr::LogicalPlan,
    spec: &crate::ViewSpec,
    input_table: &str,
    full: Vec<String>,
) -> Result<Vec<String>, PrepareError> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let optimized = ctx.state().optimize(plan)?;
    let mut cols: Vec<String> = Vec::new();
    let mut all = false;
    optimized
        .apply(|node| {
            if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node
                && scan.table_name.table() == input_table
            {
                match &scan.projection {
                    Some(_) => cols.extend(scan.projected_schema.fields().iter().map(|f| f.name().clone())),
                    None => all = true,
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(PrepareError::Engine)?;
    if all || cols.is_empty() {
        return Ok(full);
    }
    cols.push(spec.entity.clone());
    cols.push(spec.event_time.clone());
    // Keep bhavcopy's column order so tails of one version always have the same schema.
    Ok(full.into_iter().filter(|c| cols.contains(c)).collect())
}
