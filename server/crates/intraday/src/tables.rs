//! SQL tables over what the server holds in memory, so Postgres and Flight queries see every
//! acknowledged bar: `intraday_bars`, `intraday_quarantine`, and each streaming view (a scan
//! first waits, briefly, for the live engine to catch up with the acknowledged pushes).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use bhavstore_lake::bars::{bars_schema, quarantine_schema};

use crate::Intraday;

/// How long a scan of a live view waits for pushes already acknowledged to be computed.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Which in-memory table.
#[derive(Debug, Clone)]
enum Kind {
    Bars,
    Quarantine,
    View(String),
}

/// A table over the server's intraday state.
#[derive(Debug)]
pub struct LiveTable {
    intraday: Intraday,
    kind: Kind,
    schema: SchemaRef,
}

impl LiveTable {
    /// `intraday_bars`.
    #[must_use]
    pub fn bars(intraday: &Intraday) -> Self {
        Self { intraday: intraday.clone(), kind: Kind::Bars, schema: bars_schema() }
    }

    /// `intraday_quarantine`.
    #[must_use]
    pub fn quarantine(intraday: &Intraday) -> Self {
        Self { intraday: intraday.clone(), kind: Kind::Quarantine, schema: quarantine_schema() }
    }

    /// The live rows of streaming view `name`, if it is one.
    #[must_use]
    pub fn view(intraday: &Intraday, name: &str) -> Option<Self> {
        let v = intraday.view(name)?;
        Some(Self { intraday: intraday.clone(), kind: Kind::View(name.to_string()), schema: v.schema() })
    }
}

fn external(e: crate::IntradayError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait::async_trait]
impl TableProvider for LiveTable {
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
        let batches = match &self.kind {
            Kind::Bars => self.intraday.bar_batches(64 * 1024).map_err(external)?,
            Kind::Quarantine => vec![self.intraday.quarantine_batch().map_err(external)?],
            Kind::View(name) => {
                if !self.intraday.wait_computed(CATCH_UP).await {
                    tracing::warn!(view = %name, "live view still computing after {CATCH_UP:?}; answering with what it has");
                }
                self.intraday.view(name).map(|v| v.batches()).unwrap_or_default()
            }
        };
        MemTable::try_new(Arc::clone(&self.schema), vec![batches])?.scan(state, projection, filters, limit).await
    }
}
