//! The tail: the last `lookback` input rows of every entity, kept for the next run.
//!
//! Found without sorting the input: one pass over the (entity, event time) keys gives each
//! entity's cutoff (the date of its `lookback`-th newest row), the days between any entity's
//! cutoff and its newest row are the only ones read again, and each row read is kept when it is
//! not older than its entity's cutoff. The input is the whole history in a full run, so a sort
//! (what `row_number() OVER (PARTITION BY entity ORDER BY date DESC)` does) would cost as much
//! as the run's own windows.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type, SchemaRef};
use datafusion::common::HashMap;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use super::{MaterializeError, PreparedView};
use bhavstore_lake::manifest::{FileRef, TailRef};
use bhavstore_lake::quote_ident;
use bhavstore_lake::writer::write_stream;
use bhavstore_storage::{Storage, paths};

/// Day ranges closer than this are read as one range.
const MERGE_GAP_DAYS: i32 = 31;
/// At most this many day ranges in the scan's filter (the closest are merged beyond it).
const MAX_RANGES: usize = 64;

/// Writes the last `rows` input rows of every entity of `pv`'s input table in `ctx`.
pub(super) async fn write_tail(
    ctx: &SessionContext,
    storage: &Storage,
    pv: &PreparedView,
    run_id: &str,
    rows: usize,
) -> Result<TailRef, MaterializeError> {
    let spec = &pv.view.spec;
    let input = ctx.table(pv.input_table()).await?;
    let present: Vec<String> = input.schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut names: Vec<&String> = pv.input_columns.iter().filter(|c| present.contains(c)).collect();
    for key in [&spec.entity, &spec.event_time] {
        if !names.contains(&key) {
            names.push(key);
        }
    }
    let columns: Vec<Expr> = names.into_iter().map(|c| col(quote_ident(c))).collect();
    let (e, t) = (col(quote_ident(&spec.entity)), col(quote_ident(&spec.event_time)));
    let key = paths::tail_file(&spec.name, &pv.version.id, run_id);

    let cutoffs = Arc::new(cutoffs(input.clone().select(vec![e.clone(), t.clone()])?, rows).await?);
    let ranges = day_ranges(&cutoffs);
    let filter = ranges
        .iter()
        .map(|(lo, hi)| {
            t.clone()
                .gt_eq(lit(ScalarValue::Date32(Some(*lo))))
                .and(t.clone().lt_eq(lit(ScalarValue::Date32(Some(*hi)))))
        })
        .reduce(Expr::or)
        // No entity at all: read nothing, but keep the columns.
        .unwrap_or(lit(false));
    let rows_df = input.select(columns)?.filter(filter)?;
    let schema: SchemaRef = Arc::new(rows_df.schema().as_arrow().clone());
    let index_of = |c: &str| schema.index_of(c).map_err(|e| MaterializeError::Engine(e.into()));
    let (ei, ti) = (index_of(&spec.entity)?, index_of(&spec.event_time)?);
    let kept = rows_df.execute_stream().await?.and_then(move |b| {
        let cutoffs = Arc::clone(&cutoffs);
        async move { keep_recent(&b, ei, ti, &cutoffs) }
    });
    let stream = Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), kept));
    let written = write_stream(storage, &key, Arc::clone(&schema), stream, None).await?;
    let file = match written.file {
        Some(f) => f,
        None => {
            // An empty input still needs a readable tail with the right columns.
            write_empty(storage, &key, RecordBatch::new_empty(Arc::clone(&schema))).await?;
            FileRef { key: key.clone(), size: storage.size(&key).await?.unwrap_or(0), rows: 0 }
        }
    };
    Ok(TailRef { file, lookback_rows: rows as u64, recursions: None })
}

/// Per entity: the oldest date its tail keeps and its newest date. `None` entities (a NULL key)
/// are one entity, as SQL partitions them; rows with a NULL date are always kept.
type Cutoffs = HashMap<Option<i64>, (i32, i32)>;

async fn cutoffs(keys: datafusion::dataframe::DataFrame, rows: usize) -> Result<Cutoffs, MaterializeError> {
    let tasks: Vec<_> = keys
        .execute_stream_partitioned()
        .await?
        .into_iter()
        .map(|mut stream| {
            SpawnedTask::spawn(async move {
                let mut dates: HashMap<Option<i64>, Vec<i32>> = HashMap::new();
                while let Some(b) = stream.try_next().await? {
                    let es = cast(b.column(0), &DataType::Int64)?;
                    let ds = cast(b.column(1), &DataType::Date32)?;
                    for (e, d) in es.as_primitive::<Int64Type>().iter().zip(ds.as_primitive::<Date32Type>().iter()) {
                        if let Some(d) = d {
                            dates.entry(e).or_default().push(d);
                        }
                    }
                }
                Ok::<_, DataFusionError>(dates)
            })
        })
        .collect();
    let mut all: HashMap<Option<i64>, Vec<i32>> = HashMap::new();
    for part in futures::future::try_join_all(tasks.into_iter().map(SpawnedTask::join_unwind))
        .await
        .map_err(|e| MaterializeError::Engine(DataFusionError::External(Box::new(e))))?
    {
        for (e, ds) in part? {
            all.entry(e).or_default().extend(ds);
        }
    }
    let rows = rows.max(1);
    Ok(all
        .into_iter()
        .map(|(e, mut ds)| {
            let newest = ds.iter().copied().max().unwrap_or(i32::MIN);
            let cutoff = if ds.len() <= rows {
                ds.iter().copied().min().unwrap_or(i32::MIN)
            } else {
                let k = ds.len() - rows;
                *ds.select_nth_unstable(k).1
            };
            (e, (cutoff, newest))
        })
        .collect())
}

/// The day ranges to read: every entity's [cutoff, newest], merged when they overlap or are
/// close, at most [`MAX_RANGES`] of them.
fn day_ranges(cutoffs: &Cutoffs) -> Vec<(i32, i32)> {
    let mut ranges: Vec<(i32, i32)> = cutoffs.values().copied().collect();
    ranges.sort_unstable();
    let mut merged: Vec<(i32, i32)> = Vec::new();
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(MERGE_GAP_DAYS) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    while merged.len() > MAX_RANGES {
        // Join the two neighbours with the smallest gap.
        let i = (0..merged.len() - 1).min_by_key(|&i| merged[i + 1].0 - merged[i].1).unwrap_or(0);
        merged[i].1 = merged[i].1.max(merged[i + 1].1);
        merged.remove(i + 1);
    }
    merged
}

/// The rows of `b` not older than their entity's cutoff.
fn keep_recent(b: &RecordBatch, ei: usize, ti: usize, cutoffs: &Cutoffs) -> datafusion::error::Result<RecordBatch> {
    let es = cast(b.column(ei), &DataType::Int64)?;
    let ds = cast(b.column(ti), &DataType::Date32)?;
    let idx: Vec<u32> = es
        .as_primitive::<Int64Type>()
        .iter()
        .zip(ds.as_primitive::<Date32Type>().iter())
        .enumerate()
        .filter(|(_, (e, d))| match d {
            None => true,
            Some(d) => cutoffs.get(e).is_some_and(|(cut, _)| d >= cut),
        })
        .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    if idx.len() == b.num_rows() {
        return Ok(b.clone());
    }
    Ok(take_record_batch(b, &UInt32Array::from(idx))?)
}

async fn write_empty(storage: &Storage, key: &str, empty: RecordBatch) -> Result<(), MaterializeError> {
    let mut buf = Vec::new();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(&mut buf, empty.schema(), None)
        .map_err(|e| MaterializeError::Write(e.to_string()))?;
    w.write(&empty).map_err(|e| MaterializeError::Write(e.to_string()))?;
    w.close().map_err(|e| MaterializeError::Write(e.to_string()))?;
    storage.put(key, Bytes::from(buf)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_entity_and_merge_neighbours() {
        let mut c = Cutoffs::new();
        c.insert(Some(1), (100, 700));
        c.insert(Some(2), (650, 720)); // overlaps 1
        c.insert(Some(3), (10, 20)); // delisted long ago
        c.insert(None, (30, 40)); // within MERGE_GAP_DAYS of entity 3
        assert_eq!(day_ranges(&c), vec![(10, 40), (100, 720)]);
        // Too many ranges: the closest merge until MAX_RANGES remain, still covering all.
        let many: Cutoffs = (0..200).map(|i| (Some(i64::from(i)), (i * 100, i * 100 + 1))).collect();
        let r = day_ranges(&many);
        assert_eq!(r.len(), MAX_RANGES);
        for (lo, hi) in many.values() {
            assert!(r.iter().any(|(a, b)| a <= lo && hi <= b), "{lo}..{hi} not covered");
        }
    }
}
