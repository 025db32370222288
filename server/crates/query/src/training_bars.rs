//! `features_asof` over an intraday view: entities are text (`EXCHANGE:SYMBOL`), event times
//! bar starts, and a row is known when its bar ends (`ts + available_after`). A spine row at
//! `t` gets the newest row with `ts + available_after <= t`, NULLs when there is none or it is
//! older than the view's ttl: no value ever comes from a bar that had not ended at `t`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
    new_null_array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{LogicalPlan, col, lit};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use bhavstore_lake::bars::trade_date_of;
use bhavstore_lake::quote_ident;

use crate::training::{AsofCall, read_spine};

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The whole result, in spine order.
pub(crate) async fn merge(
    call: &AsofCall,
    ctx: &SessionContext,
    spine: LogicalPlan,
    after: Duration,
) -> Result<RecordBatch> {
    let (entity_arrays, stamps) = read_spine(ctx, spine, &DataType::Utf8).await?;
    let mut entities: Vec<Option<String>> = Vec::with_capacity(stamps.len());
    for a in &entity_arrays {
        entities.extend(a.as_string::<i32>().iter().map(|s| s.map(str::to_string)));
    }
    let (after_us, ttl_us) = (micros(after), micros(call.def.ttl));
    let feature_schema = Arc::new(Schema::new(call.def.features.clone()));
    let mut by_entity: HashMap<String, Vec<(i64, u32)>> =
        entities.iter().flatten().map(|e| (e.clone(), Vec::new())).collect();
    let mut chunks: Vec<RecordBatch> = Vec::new();
    let mut taken = 0u32;
    if let (Some(lo), Some(hi)) = (stamps.iter().flatten().min(), stamps.iter().flatten().max()) {
        let ts_lit = |v: i64| lit(ScalarValue::TimestampMicrosecond(Some(v), Some("UTC".into())));
        let t = col(quote_ident(&call.def.event_time));
        let range = t
            .clone()
            .gt_eq(ts_lit(lo.saturating_sub(after_us).saturating_sub(ttl_us)))
            .and(t.clone().lt_eq(ts_lit(hi.saturating_sub(after_us))));
        let mut columns = vec![col(quote_ident(&call.def.entity)), t];
        columns.extend(call.def.features.iter().map(|f| col(quote_ident(f.name()))));
        let frame = ctx.table(call.view.as_str()).await?.filter(range)?.select(columns)?;
        let mut stream = frame.execute_stream().await?;
        while let Some(b) = stream.try_next().await? {
            let es = cast(b.column(0), &DataType::Utf8)?;
            let ts = cast(b.column(1), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))?;
            let (es, ts) = (es.as_string::<i32>(), ts.as_primitive::<TimestampMicrosecondType>());
            let mut idx = Vec::new();
            for r in 0..b.num_rows() {
                if es.is_valid(r)
                    && ts.is_valid(r)
                    && let Some(rows) = by_entity.get_mut(es.value(r))
                {
                    rows.push((ts.value(r), taken));
                    taken += 1;
                    idx.push(u32::try_from(r).unwrap_or(u32::MAX));
                }
            }
            if idx.is_empty() {
                continue;
            }
            chunks.push(crate::training::feature_rows(&b, idx, &feature_schema)?);
        }
    }
    for rows in by_entity.values_mut() {
        rows.sort_unstable();
    }
    let features = concat_batches(&feature_schema, &chunks)?;
    let n = stamps.len();
    let mut pick: Vec<Option<u32>> = Vec::with_capacity(n);
    let mut bar_ts: Vec<Option<i64>> = Vec::with_capacity(n);
    for (e, t) in entities.iter().zip(&stamps) {
        let found = (|| {
            let (rows, t) = (by_entity.get(e.as_deref()?)?, (*t)?);
            let k = rows.partition_point(|(ts, _)| ts.saturating_add(after_us) <= t);
            let (ts, row) = *rows.get(k.checked_sub(1)?)?;
            (t - (ts + after_us) <= ttl_us).then_some((ts, row))
        })();
        pick.push(found.map(|f| f.1));
        bar_ts.push(found.map(|f| f.0));
    }
    let idx = UInt32Array::from(pick);
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(entities)),
        Arc::new(TimestampMicrosecondArray::from(stamps).with_timezone("UTC")),
        Arc::new(Date32Array::from(bar_ts.iter().map(|t| t.map(trade_date_of)).collect::<Vec<_>>())),
        Arc::new(
            TimestampMicrosecondArray::from(bar_ts.iter().map(|t| t.map(|t| t + after_us)).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
    ];
    for (i, f) in call.def.features.iter().enumerate() {
        columns.push(if features.num_rows() == 0 {
            new_null_array(f.data_type(), n)
        } else {
            take(features.column(i), &idx, None)?
        });
    }
    Ok(RecordBatch::try_new(Arc::clone(&call.schema), columns)?)
}
