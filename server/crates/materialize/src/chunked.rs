//! Full recomputes in bounded memory: the input is read once and split by entity into bucket
//! files on local disk ([`bhavstore_lake::spill`]), then the view runs over a few buckets at a
//! time.
//!
//! A window evaluates a whole partition (one entity's rows) at once, and DataFusion's window
//! operator holds every partition of its input until the input ends: over a 25 M-row history
//! that is the whole history, sorted, plus every feature column (8 GB). A view whose windows
//! are all partitioned by its entity (what makes it incremental, see `analysis`) gives the same
//! values over any set of whole entities, so running it over groups of entities of about
//! `materialize.chunk_rows` rows each gives the full run's values with one group in memory at a
//! time. The groups are also cheaper to sort than the whole history.

use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, col};
use datafusion::prelude::SessionContext;

use super::{MaterializeError, PreparedView};
use bhavstore_lake::quote_ident;
use bhavstore_lake::spill::{BucketOf, Spill, spill};

/// Entity buckets the input is split into.
pub(super) const BUCKETS: usize = 64;

/// The bucket of an entity: a multiplicative hash, so neighbouring codes spread out.
fn bucket_of(e: Option<i64>) -> usize {
    let h = (e.unwrap_or(i64::MIN) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) % BUCKETS as u64) as usize
}

/// The view's input columns, split by entity under `tmp`.
pub(super) async fn split_input(
    ctx: &SessionContext,
    pv: &PreparedView,
    tmp: &Path,
) -> Result<Spill, MaterializeError> {
    let input = ctx.table(pv.input_table()).await?;
    let present: Vec<String> = input.schema().fields().iter().map(|f| f.name().clone()).collect();
    let columns: Vec<Expr> =
        pv.input_columns.iter().filter(|c| present.contains(c)).map(|c| col(quote_ident(c))).collect();
    let by: BucketOf = Arc::new(bucket_of);
    Ok(spill(input.select(columns)?, tmp, BUCKETS, &pv.view.spec.entity, by).await?)
}

/// Consecutive buckets grouped to at most `chunk_rows` rows each (a bucket larger than that
/// alone; empty buckets skipped).
pub(super) fn chunks(spill: &Spill, chunk_rows: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut rows = 0usize;
    for (b, n) in spill.rows().iter().copied().enumerate().filter(|(_, n)| *n > 0) {
        match out.last_mut() {
            Some(last) if rows + n <= chunk_rows => last.push(b),
            _ => {
                out.push(vec![b]);
                rows = 0;
            }
        }
        rows += n;
    }
    out
}

/// The rows of `buckets` as one in-memory table.
pub(super) fn table(spill: &Spill, buckets: &[usize]) -> Result<MemTable, MaterializeError> {
    Ok(MemTable::try_new(spill.schema(), vec![spill.batches(buckets)?])?)
}
