//! The states of a view's resumed recursive calls (`ema`, `rsi`, `wilder_mean`), carried from
//! one run to the next beside the tail.
//!
//! An incremental run plans the view with those calls resumable
//! ([`bhavstore_features::resume`]): each continues, per entity, from the state the previous run
//! saved, so the tail holds only the rows the plain windows read back (61 instead of 620 for
//! the shipped views) and the results are still the full run's bit for bit. Every run, full or
//! incremental, saves the states after each entity's last row in one small Parquet file
//! (`state/{run}/recursions.parquet`, one row per call and entity) referenced by its tail.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::{DataFrame, SessionContext};

use super::{MaterializeError, PreparedView};
use bhavstore_lake::manifest::FileRef;
use bhavstore_storage::{Storage, paths};
use bhavstore_udfs::kernels::Recursion;
use bhavstore_udfs::resumable::{RecursionStates, Saved, StatesByCall};

/// The view `pv` as a frame over `ctx` (where it is registered), its resumable calls
/// continuing from `states`.
pub(super) async fn view_frame(
    ctx: &SessionContext,
    pv: &PreparedView,
    states: &Arc<RecursionStates>,
) -> Result<DataFrame, MaterializeError> {
    let spec = &pv.view.spec;
    let provider = ctx.table_provider(spec.name.as_str()).await?;
    let Some(plan) = provider.get_logical_plan() else {
        return Err(MaterializeError::Corrupt(format!("{} is not registered as a view", spec.name)));
    };
    let (plan, calls) =
        bhavstore_features::resume::resume_plan(plan.into_owned(), &spec.entity, &spec.event_time, states)?;
    if calls != pv.analysis.resumed {
        // The analysis sized the tail for this many resumed calls; any other count would
        // compute some call from too few rows.
        return Err(MaterializeError::Corrupt(format!(
            "{}: {calls} recursive calls planned as resumable, the analysis counted {}",
            spec.name, pv.analysis.resumed
        )));
    }
    Ok(DataFrame::new(ctx.state(), plan))
}

/// The columns of a states file; the entity and order-key columns have the input's types.
fn schema(entity: &DataType, order: &DataType) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("call", DataType::Utf8, false),
        Field::new("entity", entity.clone(), true),
        Field::new("upto", order.clone(), true),
        Field::new("count", DataType::UInt64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("second", DataType::Float64, false),
        Field::new("previous", DataType::Float64, true),
    ]))
}

/// Writes `states` to the run's states file. The key columns take the types of the keys the
/// states hold; with no state at all, those of the view's `output` columns of the same names.
pub(super) async fn write(
    storage: &Storage,
    pv: &PreparedView,
    run_id: &str,
    states: &StatesByCall,
    output: &Schema,
) -> Result<FileRef, MaterializeError> {
    let spec = &pv.view.spec;
    let mut rows: Vec<(&String, &ScalarValue, &Saved)> =
        states.iter().flat_map(|(call, by)| by.iter().map(move |(e, s)| (call, e, s))).collect();
    // A stable order, so the same states give the same file.
    rows.sort_by(|a, b| a.0.cmp(b.0).then(a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal)));
    let keys = |it: Vec<ScalarValue>, column: &str| -> Result<ArrayRef, MaterializeError> {
        if it.is_empty() {
            Ok(datafusion::arrow::array::new_empty_array(output.field_with_name(column)?.data_type()))
        } else {
            Ok(ScalarValue::iter_to_array(it)?)
        }
    };
    let entity = keys(rows.iter().map(|r| r.1.clone()).collect(), &spec.entity)?;
    let upto = keys(rows.iter().map(|r| r.2.upto.clone()).collect(), &spec.event_time)?;
    let schema = schema(entity.data_type(), upto.data_type());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| Some(r.0.as_str())).collect::<StringArray>()),
        entity,
        upto,
        Arc::new(rows.iter().map(|r| r.2.state.count).collect::<UInt64Array>()),
        Arc::new(rows.iter().map(|r| r.2.state.value).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.2.state.second).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.2.state.previous).collect::<Float64Array>()),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    let bytes = bhavstore_lake::writer::batch_bytes(&batch, None)?;
    let key = paths::recursions_file(&spec.name, &pv.version.id, run_id);
    let size = bytes.len() as u64;
    storage.put(&key, bytes).await?;
    Ok(FileRef { key, size, rows: batch.num_rows() as u64 })
}

/// Reads a states file written by [`write`].
pub(super) async fn read(storage: &Storage, file: &FileRef) -> Result<StatesByCall, MaterializeError> {
    let corrupt = |why: String| MaterializeError::Corrupt(format!("{}: {why}", file.key));
    let bytes = storage.get(&file.key).await?.ok_or_else(|| corrupt("missing".into()))?;
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build()).map_err(|e| corrupt(e.to_string()))?;
    let mut out = StatesByCall::new();
    for batch in reader {
        let b = batch?;
        let column = |name: &str| b.column_by_name(name).ok_or_else(|| corrupt(format!("no column {name}")));
        let (call, entity, upto) = (column("call")?, column("entity")?, column("upto")?);
        let call = call.as_string_opt::<i32>().ok_or_else(|| corrupt("call is not a string".into()))?;
        let count = column("count")?.as_primitive_opt::<UInt64Type>().cloned();
        let value = column("value")?.as_primitive_opt::<Float64Type>().cloned();
        let second = column("second")?.as_primitive_opt::<Float64Type>().cloned();
        let previous = column("previous")?.as_primitive_opt::<Float64Type>().cloned();
        let (Some(count), Some(value), Some(second), Some(previous)) = (count, value, second, previous) else {
            return Err(corrupt("a state column has the wrong type".into()));
        };
        for i in 0..b.num_rows() {
            let state = Recursion {
                count: count.value(i),
                value: value.value(i),
                second: second.value(i),
                previous: previous.is_valid(i).then(|| previous.value(i)),
            };
            let saved = Saved { upto: ScalarValue::try_from_array(upto, i)?, state };
            out.entry(call.value(i).to_string()).or_default().insert(ScalarValue::try_from_array(entity, i)?, saved);
        }
    }
    Ok(out)
}
