//! A feature table as a manifest describes it: a Parquet scan over exactly the manifest's files,
//! with sizes from the manifest, so reading never lists a folder (and never sees an orphan).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::TableProvider;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use bhavstore_storage::Storage;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;

use crate::LakeError;
use crate::manifest::{FileRef, Manifest};

/// Parquet files read as one table.
pub struct ParquetFilesTable {
    schema: SchemaRef,
    store_url: ObjectStoreUrl,
    store: (url::Url, Arc<dyn object_store::ObjectStore>),
    /// (object-store path, size)
    files: Vec<(String, u64)>,
}

impl ParquetFilesTable {
    /// A table over `files` (keys under `storage`'s root), all with `schema`.
    pub fn new(storage: &Storage, schema: SchemaRef, files: &[FileRef]) -> Result<Self> {
        let store_url = ObjectStoreUrl::parse(storage.store_url().as_str())?;
        let files = files.iter().map(|f| (storage.object_path(&f.key).to_string(), f.size)).collect();
        Ok(Self { schema, store_url, store: (storage.store_url().clone(), storage.object_store()), files })
    }

    /// Registers the object store the files live in with `ctx`, so a session that does not
    /// start from the base session can scan the table.
    pub fn register_store(&self, ctx: &datafusion::prelude::SessionContext) {
        ctx.register_object_store(&self.store.0, Arc::clone(&self.store.1));
    }

    /// How many files the table reads.
    #[must_use]
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

impl std::fmt::Debug for ParquetFilesTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetFilesTable").field("store", &self.store.0.as_str()).field("files", &self.files).finish()
    }
}

#[async_trait]
impl TableProvider for ParquetFilesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used to skip row groups by their statistics; DataFusion still applies the filter.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut source = ParquetSource::new(Arc::clone(&self.schema))
            .with_table_parquet_options(state.table_options().parquet.clone());
        if let Some(predicate) = conjunction(filters.to_vec()) {
            let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let files = self.files.iter().map(|(path, size)| PartitionedFile::new(path.clone(), *size)).collect();
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_group(FileGroup::new(files))
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// A table over exactly the files of `m`, with the schema its files carry.
pub async fn manifest_table(storage: &Storage, m: &Manifest) -> Result<ParquetFilesTable, LakeError> {
    let files: Vec<_> = m.files().cloned().collect();
    let Some(first) = files.first() else {
        return Err(LakeError::Empty(format!("{}@{} seq {} holds no rows", m.view, m.version, m.seq)));
    };
    let schema = file_schema(storage, &first.key, first.size).await?;
    Ok(ParquetFilesTable::new(storage, schema, &files)?)
}

// parquet 59 deprecates its object-store reader in favour of hand-written ones; it still reads
// a footer correctly, which is all this needs.
#[allow(deprecated)]
async fn file_schema(storage: &Storage, key: &str, size: u64) -> Result<SchemaRef, LakeError> {
    use datafusion::parquet::arrow::async_reader::ParquetObjectReader;
    let reader = ParquetObjectReader::new(storage.object_store(), storage.object_path(key)).with_file_size(size);
    let builder =
        ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| LakeError::Corrupt(format!("{key}: {e}")))?;
    Ok(Arc::clone(builder.schema()))
}

/// Produces a [`ScanTimeTable`]'s rows when it is scanned.
pub type RowsAtScan = Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<Vec<RecordBatch>>> + Send + Sync>;

/// A table whose rows are produced anew by every scan: what a server holds in memory at that
/// moment, or what storage holds then. Rows come as one partition, in the declared orders.
pub struct ScanTimeTable {
    name: &'static str,
    schema: SchemaRef,
    orders: Vec<Vec<datafusion::logical_expr::SortExpr>>,
    rows: RowsAtScan,
}

impl ScanTimeTable {
    /// A table of `schema` named `name` (for debugging) whose rows `rows` produces.
    #[must_use]
    pub fn new(name: &'static str, schema: SchemaRef, rows: RowsAtScan) -> Self {
        Self { name, schema, orders: Vec::new(), rows }
    }

    /// Declares that the rows come sorted in each of `orders` (lets windows skip a sort).
    #[must_use]
    pub fn with_orders(mut self, orders: Vec<Vec<datafusion::logical_expr::SortExpr>>) -> Self {
        self.orders = orders;
        self
    }
}

impl std::fmt::Debug for ScanTimeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanTimeTable").field("name", &self.name).finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for ScanTimeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = (self.rows)().await?;
        datafusion::datasource::MemTable::try_new(Arc::clone(&self.schema), vec![batches])?
            .with_sort_order(self.orders.clone())
            .scan(state, projection, filters, limit)
            .await
    }
}
