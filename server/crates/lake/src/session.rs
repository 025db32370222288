//! The base session every reader starts from: the object store, the window UDFs and the
//! `bhavcopy` / `bhavcopy_quarantine` day tables. Day tables are listings of the day partitions,
//! so days ingested by another process appear in the next query without a restart.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::view::ViewTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::provider_as_source;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{LogicalPlanBuilder, col};
use datafusion::prelude::{SessionConfig, SessionContext};

use bhavstore_formats::canonical::{
    canonical_file_schema, canonical_schema, quarantine_file_schema, quarantine_schema,
};
use bhavstore_storage::{Storage, paths};

use crate::LakeError;
use crate::bars::stored::{StoredKind, stored_table};

/// Name of the canonical daily table.
pub const BHAVCOPY: &str = "bhavcopy";
/// Name of the quarantine table.
pub const BHAVCOPY_QUARANTINE: &str = "bhavcopy_quarantine";

/// A session with every bhavstore table registered.
pub fn session(storage: &Storage) -> Result<SessionContext, LakeError> {
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
        .map_err(|source| LakeError::Register { table: "(runtime)", source })?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_object_store(storage.store_url(), storage.object_store());
    for udwf in bhavstore_udfs::all_window_udfs() {
        ctx.register_udwf(udwf);
    }
    let bhavcopy = register_day_table(
        &ctx,
        storage,
        BHAVCOPY,
        paths::BHAVCOPY_TABLE,
        canonical_file_schema(),
        canonical_schema(),
    )?;
    let _quarantine = register_day_table(
        &ctx,
        storage,
        BHAVCOPY_QUARANTINE,
        paths::QUARANTINE_TABLE,
        quarantine_file_schema(),
        quarantine_schema(),
    )?;
    for (name, kind) in
        [(crate::bars::INTRADAY_BARS, StoredKind::Bars), (crate::bars::INTRADAY_QUARANTINE, StoredKind::Quarantine)]
    {
        ctx.register_table(name, Arc::new(stored_table(storage.clone(), kind)))
            .map_err(|source| LakeError::Register { table: name, source })?;
    }
    crate::adjust::tables::register(&ctx, storage, bhavcopy)?;
    Ok(ctx)
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
) -> Result<Arc<dyn datafusion::catalog::TableProvider>, LakeError> {
    let err = |source| LakeError::Register { table: name, source };
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
    let table: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(TableView(ViewTable::new(plan, None)));
    ctx.register_table(name, Arc::clone(&table)).map_err(err)?;
    Ok(table)
}

/// A table defined as a view over another (stored Parquet files in the column order users read,
/// a catalog table with corrected columns): catalogs (`pg_class`, `information_schema.tables`,
/// Flight's table list) show it as the table it is; planners still see through it, so filters
/// prune partitions.
#[derive(Debug)]
pub struct TableView(pub ViewTable);

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for TableView {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Base
    }

    fn get_logical_plan(&self) -> Option<std::borrow::Cow<'_, datafusion::logical_expr::LogicalPlan>> {
        self.0.get_logical_plan()
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.0.get_table_definition()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::prelude::Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::prelude::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}
