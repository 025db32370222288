//! A feature table as a manifest describes it: a Parquet scan over exactly the manifest's files,
//! with sizes from the manifest, so reading never lists a folder (and never sees an orphan).

use std::sync::Arc;

use async_trait::async_trait;
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

use super::manifest::FileRef;
use crate::storage::Storage;

/// Parquet files read as one table.
#[derive(Debug)]
pub struct ParquetFilesTable {
    schema: SchemaRef,
    store_url: ObjectStoreUrl,
    /// (object-store path, size)
    files: Vec<(String, u64)>,
}

impl ParquetFilesTable {
    /// A table over `files` (keys under `storage`'s root), all with `schema`.
    pub fn new(storage: &Storage, schema: SchemaRef, files: &[FileRef]) -> Result<Self> {
        let store_url = ObjectStoreUrl::parse(storage.store_url().as_str())?;
        let files = files.iter().map(|f| (storage.object_path(&f.key).to_string(), f.size)).collect();
        Ok(Self { schema, store_url, files })
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
