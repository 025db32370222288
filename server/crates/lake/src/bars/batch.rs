//! Arrow shapes of `intraday_bars` and `intraday_quarantine`.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;

use super::{Bar, Rejected};

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Columns of `intraday_bars`.
#[must_use]
pub fn bars_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("instrument", DataType::Utf8, false),
            Field::new("ts", utc(), false),
            Field::new("trade_date", DataType::Date32, false),
            Field::new("interval_s", DataType::Int32, false),
            Field::new("open", DataType::Float64, false),
            Field::new("high", DataType::Float64, false),
            Field::new("low", DataType::Float64, false),
            Field::new("close", DataType::Float64, false),
            Field::new("volume", DataType::Int64, false),
            Field::new("session", DataType::Utf8, false),
            Field::new("revision", DataType::Int32, false),
            Field::new("received_at", utc(), false),
        ]))
    }))
}

/// Columns of `intraday_quarantine`.
#[must_use]
pub fn quarantine_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("received_at", utc(), false),
            Field::new("via", DataType::Utf8, false),
            Field::new("row_index", DataType::Int64, false),
            Field::new("instrument", DataType::Utf8, true),
            Field::new("ts", utc(), true),
            Field::new("reason", DataType::Utf8, false),
            Field::new("raw", DataType::Utf8, false),
        ]))
    }))
}

/// `bars` as one batch of [`bars_schema`].
pub fn to_batch<'a>(bars: impl IntoIterator<Item = &'a Bar>) -> Result<RecordBatch> {
    let bars: Vec<&Bar> = bars.into_iter().collect();
    let ts = |f: fn(&Bar) -> i64| {
        TimestampMicrosecondArray::from_iter_values(bars.iter().map(|b| f(b))).with_timezone("UTC")
    };
    let f64s = |f: fn(&Bar) -> f64| Arc::new(Float64Array::from_iter_values(bars.iter().map(|b| f(b)))) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(bars.iter().map(|b| &*b.instrument))),
        Arc::new(ts(|b| b.ts)),
        Arc::new(Date32Array::from_iter_values(bars.iter().map(|b| b.trade_date()))),
        Arc::new(Int32Array::from_iter_values(bars.iter().map(|b| b.interval_s))),
        f64s(|b| b.open),
        f64s(|b| b.high),
        f64s(|b| b.low),
        f64s(|b| b.close),
        Arc::new(Int64Array::from_iter_values(bars.iter().map(|b| b.volume))),
        Arc::new(StringArray::from_iter_values(bars.iter().map(|b| b.session().as_str()))),
        Arc::new(Int32Array::from_iter_values(bars.iter().map(|b| b.revision))),
        Arc::new(ts(|b| b.received_at)),
    ];
    Ok(RecordBatch::try_new(bars_schema(), columns)?)
}

/// `rows` as one batch of [`quarantine_schema`].
pub fn to_quarantine_batch<'a>(rows: impl IntoIterator<Item = &'a Rejected>) -> Result<RecordBatch> {
    let rows: Vec<&Rejected> = rows.into_iter().collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.received_at)).with_timezone("UTC")),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.via.as_str()))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.index))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.instrument.as_deref()))),
        Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.ts)).with_timezone("UTC")),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.reason.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.raw.as_str()))),
    ];
    Ok(RecordBatch::try_new(quarantine_schema(), columns)?)
}
