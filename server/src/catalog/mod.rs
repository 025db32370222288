//! The SQL catalog: a DataFusion session over the storage root, with the `bhavcopy` and
//! `bhavcopy_quarantine` tables, the feature views and the system tables. Day tables are
//! listings of the day partitions, so days ingested by another process appear in the next query
//! without a restart.
//!
//! A feature view's name reads its newest published (materialized) state of the current
//! definition; until one is published it is computed live from `bhavcopy`. Other states are
//! reached with `view@selector` names ([`versioned`]).

pub mod system;
pub mod versioned;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::view::ViewTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{LogicalPlanBuilder, col};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::formats::canonical::{canonical_file_schema, canonical_schema, quarantine_file_schema, quarantine_schema};
use crate::paths;
use crate::storage::Storage;

/// Errors building the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A feature definition is invalid.
    #[error(transparent)]
    FeatureDefs(#[from] crate::features::FeatureDefError),
    /// Materialized state could not be read.
    #[error("materialized feature views: {0}")]
    Materialized(String),
    /// DataFusion refused a registration.
    #[error("registering table {table}: {source}")]
    Register {
        /// The table.
        table: &'static str,
        /// DataFusion's error.
        source: DataFusionError,
    },
}

/// Name of the canonical daily table.
pub const BHAVCOPY: &str = "bhavcopy";
/// Name of the quarantine table.
pub const BHAVCOPY_QUARANTINE: &str = "bhavcopy_quarantine";

/// A session with every bhavstore table registered.
pub fn session(storage: &Storage) -> Result<SessionContext, CatalogError> {
    // File statistics would make every physical plan (including the validation of each feature
    // view when a catalog opens) read the footer of every day file: seconds at 5000 sessions.
    // Scans still prune row groups with the predicates they are given.
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema("bhavstore", "public")
        .with_collect_statistics(false);
    // DataFusion caches directory listings forever by default; a day ingested after the session
    // started would stay invisible. Listing a few thousand day folders is cheap: no list cache.
    let runtime = RuntimeEnvBuilder::new()
        .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
        .build_arc()
        .map_err(|source| CatalogError::Register { table: "(runtime)", source })?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_object_store(storage.store_url(), storage.object_store());
    for udwf in bhavstore_udfs::all_window_udfs() {
        ctx.register_udwf(udwf);
    }
    register_day_table(&ctx, storage, BHAVCOPY, paths::BHAVCOPY_TABLE, canonical_file_schema(), canonical_schema())?;
    register_day_table(
        &ctx,
        storage,
        BHAVCOPY_QUARANTINE,
        paths::QUARANTINE_TABLE,
        quarantine_file_schema(),
        quarantine_schema(),
    )?;
    Ok(ctx)
}

/// A session with the tables and, when `feature_defs` is given, every feature view in it.
/// A missing directory is an error only when `required` (it was configured explicitly).
pub async fn open(
    storage: &Storage,
    feature_defs: &std::path::Path,
    required: bool,
) -> Result<SessionContext, CatalogError> {
    open_with(storage, feature_defs, required, &crate::online::OnlineConfig::default()).await
}

/// [`open`], with the market clock of `online` for point-in-time functions.
pub async fn open_with(
    storage: &Storage,
    feature_defs: &std::path::Path,
    required: bool,
    online: &crate::online::OnlineConfig,
) -> Result<SessionContext, CatalogError> {
    let ctx = session(storage)?;
    if !feature_defs.is_dir() {
        if required {
            return Err(CatalogError::FeatureDefs(crate::features::FeatureDefError::Io {
                path: feature_defs.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "feature definitions directory not found"),
            }));
        }
        tracing::warn!(dir = %feature_defs.display(), "no feature definitions directory: no feature views registered");
        return Ok(ctx);
    }
    let views = crate::features::load_dir(feature_defs)?;
    crate::features::register_views(&ctx, &views).await?;
    // Planned on this session, where the views were just registered: no second catalog.
    let prepared =
        crate::materialize::prepare_in(&ctx, &views).await.map_err(|e| CatalogError::Materialized(e.to_string()))?;
    let mut current = Vec::new();
    let mut live = std::collections::HashMap::new();
    let mut asof = std::collections::HashMap::new();
    for pv in &prepared {
        let name = pv.view.spec.name.as_str();
        if let Ok(p) = ctx.table_provider(name).await {
            let schema = p.schema();
            let features =
                pv.view.spec.features.iter().filter_map(|f| schema.field_with_name(&f.name).ok().cloned()).collect();
            asof.insert(
                name.to_string(),
                crate::training::AsofView {
                    entity: pv.view.spec.entity.clone(),
                    event_time: pv.view.spec.event_time.clone(),
                    features,
                    ttl: pv.view.ttl,
                },
            );
            live.insert(name.to_string(), p);
        }
        current.push((name.to_string(), pv.version.id.clone()));
    }
    let clock =
        crate::online::MarketClock::from_config(online).map_err(|e| CatalogError::Materialized(e.to_string()))?;
    ctx.register_udtf(crate::training::FUNCTION, Arc::new(crate::training::AsofFunction::new(asof, clock)));
    for (kind, table) in [
        (system::Kind::Runs, system::RUNS),
        (system::Kind::Quality, system::QUALITY),
        (system::Kind::Versions, system::VERSIONS),
    ] {
        ctx.register_table(table, Arc::new(system::SystemTable::new(kind, storage.clone(), current.clone())))
            .map_err(|source| CatalogError::Register { table, source })?;
    }
    let catalog = ctx.catalog("bhavstore").ok_or_else(|| CatalogError::Materialized("no default catalog".into()))?;
    let inner = catalog.schema("public").ok_or_else(|| CatalogError::Materialized("no default schema".into()))?;
    let names = prepared.iter().map(|p| p.view.spec.name.clone()).collect();
    let schema = Arc::new(versioned::VersionedSchema::new(inner, storage.clone(), names, live));
    catalog
        .register_schema("public", Arc::clone(&schema) as _)
        .map_err(|source| CatalogError::Register { table: "(schema)", source })?;
    for (name, version) in &current {
        if !publish_latest(&schema, storage, name, version).await? {
            tracing::info!(
                view = %name,
                %version,
                "no materialized state of the current definition yet: computing the view live (run `bhavstore materialize`)"
            );
        }
    }
    tracing::debug!(views = views.len(), dir = %feature_defs.display(), "feature views registered");
    Ok(ctx)
}

/// Points the plain name of each of `views` (name, version) at its newest published state, if
/// one exists. Queries already running keep the state they started with.
pub async fn refresh_views(
    ctx: &SessionContext,
    storage: &Storage,
    views: &[(String, String)],
) -> Result<(), CatalogError> {
    let schema = ctx
        .catalog("bhavstore")
        .and_then(|c| c.schema("public"))
        .ok_or_else(|| CatalogError::Materialized("no default schema".into()))?;
    let Some(schema) = schema.downcast_ref::<versioned::VersionedSchema>() else {
        return Err(CatalogError::Materialized("the default schema has no feature views".into()));
    };
    for (name, version) in views {
        publish_latest(schema, storage, name, version).await?;
    }
    Ok(())
}

async fn publish_latest(
    schema: &versioned::VersionedSchema,
    storage: &Storage,
    name: &str,
    version: &str,
) -> Result<bool, CatalogError> {
    let latest = crate::materialize::manifest::latest(storage, name, version)
        .await
        .map_err(|e| CatalogError::Materialized(e.to_string()))?;
    match latest {
        Some(m) if m.files().next().is_some() => {
            let table =
                versioned::manifest_table(storage, &m).await.map_err(|e| CatalogError::Materialized(e.to_string()))?;
            schema.publish(name, Arc::new(table));
            tracing::debug!(view = name, version, seq = m.seq, "serving the materialized view");
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Registers a table partitioned by `trade_date=YYYY-MM-DD/`. DataFusion appends partition
/// columns at the end; a view puts `trade_date` first, as users read the table, and filters on
/// it still prune partitions through the view.
fn register_day_table(
    ctx: &SessionContext,
    storage: &Storage,
    name: &'static str,
    folder: &str,
    file_schema: SchemaRef,
    table_schema: SchemaRef,
) -> Result<(), CatalogError> {
    let err = |source| CatalogError::Register { table: name, source };
    let url = ListingTableUrl::parse(storage.folder_url(folder)).map_err(err)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("trade_date".to_string(), DataType::Date32)]);
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(file_schema);
    let listing = ListingTable::try_new(config).map_err(err)?;
    let columns: Vec<_> = table_schema.fields().iter().map(|f| col(f.name().as_str())).collect();
    let plan = LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(listing)), None)
        .and_then(|b| b.project(columns))
        .and_then(LogicalPlanBuilder::build)
        .map_err(err)?;
    ctx.register_table(name, Arc::new(ViewTable::new(plan, None))).map_err(err)?;
    Ok(())
}
