//! SQL tables over what the server holds in memory, so Postgres and Flight queries see every
//! acknowledged bar: `intraday_bars`, `intraday_quarantine`, and each streaming view (a scan
//! first waits, briefly, for the live engine to catch up with the acknowledged pushes).

use std::sync::Arc;
use std::time::Duration;

use datafusion::error::DataFusionError;

use bhavstore_lake::bars::{INTRADAY_BARS, INTRADAY_QUARANTINE, bars_schema, quarantine_schema};
use bhavstore_lake::table::ScanTimeTable;

use crate::Intraday;

/// How long a scan of a live view waits for pushes already acknowledged to be computed.
const CATCH_UP: Duration = Duration::from_secs(10);

fn external(e: crate::IntradayError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// `intraday_bars`.
#[must_use]
pub fn bars(intraday: &Intraday) -> ScanTimeTable {
    let intraday = intraday.clone();
    ScanTimeTable::new(
        INTRADAY_BARS,
        bars_schema(),
        Arc::new(move || {
            let rows = intraday.bar_batches(64 * 1024).map_err(external);
            Box::pin(async move { rows })
        }),
    )
}

/// `intraday_quarantine`.
#[must_use]
pub fn quarantine(intraday: &Intraday) -> ScanTimeTable {
    let intraday = intraday.clone();
    ScanTimeTable::new(
        INTRADAY_QUARANTINE,
        quarantine_schema(),
        Arc::new(move || {
            let rows = intraday.quarantine_batch().map(|b| vec![b]).map_err(external);
            Box::pin(async move { rows })
        }),
    )
}

/// The live rows of streaming view `name`, if it is one.
#[must_use]
pub fn view(intraday: &Intraday, name: &str) -> Option<ScanTimeTable> {
    let view = intraday.view(name)?;
    let schema = view.schema();
    let intraday = intraday.clone();
    Some(ScanTimeTable::new(
        "streaming view",
        schema,
        Arc::new(move || {
            let (intraday, view) = (intraday.clone(), Arc::clone(&view));
            Box::pin(async move {
                if !intraday.wait_computed(CATCH_UP).await {
                    tracing::warn!(
                        view = view.name(),
                        "live view still computing after {CATCH_UP:?}; answering with what it has"
                    );
                }
                Ok(view.batches())
            })
        }),
    ))
}
