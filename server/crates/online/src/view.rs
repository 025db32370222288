//! One view's recent rows in memory, sorted by entity and event time, with an index of each
//! entity's rows: a lookup is a hash probe and a binary search.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::OnlineError;
use bhavstore_features::PreparedView;
use bhavstore_lake::published::PublishedState;
use bhavstore_lake::quote_ident;
use bhavstore_lake::{MarketClock, epoch, from_days, to_days};

/// Why a lookup has no answer. Each maps to a stable error code of the REST API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    /// No such feature view (or it has not been materialized).
    #[error("unknown feature view {0:?}")]
    UnknownView(String),
    /// The view has no such feature.
    #[error("feature view {view:?} has no feature {feature:?}")]
    UnknownFeature {
        /// The view.
        view: String,
        /// The feature asked for.
        feature: String,
    },
    /// No security with that scrip code, symbol or ISIN.
    #[error("unknown entity {0:?} (use a BSE scrip code, or a symbol or ISIN where the data has them)")]
    UnknownEntity(String),
    /// The entity has no value at or before the time asked.
    #[error("no value of {entity} at or before {at}")]
    NoValue {
        /// The entity.
        entity: String,
        /// The time asked.
        at: DateTime<Utc>,
    },
    /// The newest value at or before the time asked is older than the view's ttl.
    #[error("the newest value at or before {at} is from {event_time}, older than the view's ttl of {ttl_secs} s")]
    Stale {
        /// The time asked.
        at: DateTime<Utc>,
        /// Event time of that value.
        event_time: DateTime<Utc>,
        /// The view's ttl.
        ttl_secs: u64,
    },
    /// The time asked is before the history the online store holds.
    #[error("{at} is before the online history of this view (from {oldest}); query the feature table instead")]
    BeforeHistory {
        /// The time asked.
        at: DateTime<Utc>,
        /// Oldest session held.
        oldest: NaiveDate,
    },
}

/// A feature value as JSON shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// NULL (warm-up, or a NULL input in the window).
    Null,
    /// A number.
    Float(f64),
    /// An integer.
    Int(i64),
    /// Text, or a date as `YYYY-MM-DD`.
    Text(String),
    /// A boolean.
    Bool(bool),
}

/// A value and the event time it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueAt {
    /// The value.
    pub value: Value,
    /// Event time of the row it comes from (market close of its trade date).
    pub event_time: DateTime<Utc>,
    /// That row's trade date.
    pub trade_date: NaiveDate,
}

/// A point-in-time read: the instant asked for and the newest trade date known then under the
/// request's rule ([`bhavstore_lake::AsOfRule`]), computed once per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOf {
    /// The instant.
    pub at: DateTime<Utc>,
    /// The newest trade date whose values are known at `at`.
    pub cutoff: NaiveDate,
}

/// One view's recent rows.
#[derive(Debug)]
pub struct OnlineView {
    name: String,
    version: String,
    seq: u64,
    ttl: Duration,
    clock: MarketClock,
    /// Trade dates (days since the epoch), sorted within each entity.
    dates: Vec<i32>,
    /// Each entity's row range.
    index: HashMap<i64, (usize, usize)>,
    features: HashMap<String, ArrayRef>,
    oldest: Option<NaiveDate>,
    newest: Option<NaiveDate>,
}

impl OnlineView {
    /// Reads the last `history_days` of the published `state` into memory.
    pub async fn build(
        pv: &PreparedView,
        state: &PublishedState,
        history_days: u32,
        clock: MarketClock,
    ) -> Result<Self, OnlineError> {
        let spec = &pv.view.spec;
        let m = &state.manifest;
        let ctx = SessionContext::new();
        state.table.register_store(&ctx);
        ctx.register_table("published", Arc::clone(&state.table) as _)?;
        let newest = m.max_trade_date.unwrap_or_else(epoch);
        let from = newest - Days::new(u64::from(history_days));
        let (e, t) = (quote_ident(&spec.entity), quote_ident(&spec.event_time));
        let cols: Vec<String> = spec.features.iter().map(|f| quote_ident(&f.name)).collect();
        let sql =
            format!("SELECT {e}, {t}, {} FROM published WHERE {t} >= DATE '{from}' ORDER BY {e}, {t}", cols.join(", "));
        let df = ctx.sql(&sql).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batch = concat_batches(&schema, &df.collect().await?).map_err(datafusion::error::DataFusionError::from)?;
        Self::from_batch(spec.name.clone(), m.version.clone(), m.seq, pv.view.ttl, clock, &batch)
    }

    /// From rows already sorted by entity then event time: entity, event time, then features.
    pub fn from_batch(
        name: String,
        version: String,
        seq: u64,
        ttl: Duration,
        clock: MarketClock,
        batch: &RecordBatch,
    ) -> Result<Self, OnlineError> {
        let bad = |what: &str| OnlineError::Shape { view: name.clone(), what: what.to_string() };
        let entities = cast(batch.column(0), &DataType::Int64).map_err(datafusion::error::DataFusionError::from)?;
        let entities = entities.as_primitive::<Int64Type>();
        let dates = cast(batch.column(1), &DataType::Date32).map_err(datafusion::error::DataFusionError::from)?;
        let dates: Vec<i32> = dates.as_primitive::<Date32Type>().values().to_vec();
        let mut index: HashMap<i64, (usize, usize)> = HashMap::new();
        let mut start = 0;
        for row in 1..=entities.len() {
            if row == entities.len() || entities.value(row) != entities.value(start) {
                if entities.is_null(start) {
                    return Err(bad("NULL entity key"));
                }
                index.insert(entities.value(start), (start, row));
                start = row;
            }
        }
        let schema = batch.schema();
        let features =
            (2..batch.num_columns()).map(|i| (schema.field(i).name().clone(), Arc::clone(batch.column(i)))).collect();
        let oldest = dates.iter().min().map(|d| from_days(*d));
        let newest = dates.iter().max().map(|d| from_days(*d));
        Ok(Self { name, version, seq, ttl, clock, dates, index, features, oldest, newest })
    }

    /// The newest trade date held.
    #[must_use]
    pub fn newest(&self) -> Option<NaiveDate> {
        self.newest
    }

    /// The view's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version held.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The manifest held.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Rows held.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.dates.len()
    }

    /// The view's features.
    #[must_use]
    pub fn feature_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.features.keys().cloned().collect();
        v.sort();
        v
    }

    /// Whether `feature` is a feature of this view.
    #[must_use]
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.contains_key(feature)
    }

    /// Whether the entity has any row.
    #[must_use]
    pub fn has_entity(&self, entity: i64) -> bool {
        self.index.contains_key(&entity)
    }

    /// The value of `feature` for `entity` as of `at`, known at the close (see [`AsOf`]).
    pub fn lookup(&self, entity: i64, feature: &str, at: DateTime<Utc>) -> Result<ValueAt, LookupError> {
        self.lookup_as_of(entity, feature, AsOf { at, cutoff: self.clock.last_known_date(at) })
    }

    /// The value of `feature` for `entity` at `as_of`.
    pub fn lookup_as_of(&self, entity: i64, feature: &str, as_of: AsOf) -> Result<ValueAt, LookupError> {
        let column = self
            .features
            .get(feature)
            .ok_or_else(|| LookupError::UnknownFeature { view: self.name.clone(), feature: feature.to_string() })?;
        let (row, date) = self.row_as_of(entity, as_of)?;
        Ok(ValueAt { value: value_of(column, row), event_time: self.clock.event_time(date), trade_date: date })
    }

    /// Every feature of `entity` at `as_of`, in feature-name order.
    pub fn lookup_all(&self, entity: i64, as_of: AsOf) -> Result<(NaiveDate, Vec<(String, Value)>), LookupError> {
        let (row, date) = self.row_as_of(entity, as_of)?;
        let mut out: Vec<(String, Value)> = self.features.iter().map(|(n, c)| (n.clone(), value_of(c, row))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((date, out))
    }

    fn row_as_of(&self, entity: i64, as_of: AsOf) -> Result<(usize, NaiveDate), LookupError> {
        let at = as_of.at;
        let &(lo, hi) = self.index.get(&entity).ok_or_else(|| LookupError::UnknownEntity(entity.to_string()))?;
        let cutoff = to_days(as_of.cutoff);
        // Rows of the entity with date <= cutoff: the last of them is the answer.
        let n = self.dates[lo..hi].partition_point(|d| *d <= cutoff);
        if n == 0 {
            if let Some(oldest) = self.oldest
                && to_days(oldest) > cutoff
            {
                return Err(LookupError::BeforeHistory { at, oldest });
            }
            return Err(LookupError::NoValue { entity: entity.to_string(), at });
        }
        let row = lo + n - 1;
        let date = from_days(self.dates[row]);
        let event_time = self.clock.event_time(date);
        let age = (at - event_time).to_std().unwrap_or_default();
        if age > self.ttl {
            return Err(LookupError::Stale { at, event_time, ttl_secs: self.ttl.as_secs() });
        }
        Ok((row, date))
    }
}

fn value_of(column: &ArrayRef, row: usize) -> Value {
    if column.is_null(row) {
        return Value::Null;
    }
    match column.data_type() {
        DataType::Float64 | DataType::Float32 => {
            let v = cast(column, &DataType::Float64).ok();
            v.map_or(Value::Null, |a| {
                let x = a.as_primitive::<Float64Type>().value(row);
                if x.is_finite() { Value::Float(x) } else { Value::Null }
            })
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => cast(column, &DataType::Int64)
            .ok()
            .map_or(Value::Null, |a| Value::Int(a.as_primitive::<Int64Type>().value(row))),
        DataType::Boolean => Value::Bool(column.as_boolean().value(row)),
        DataType::Date32 => Value::Text(from_days(column.as_primitive::<Date32Type>().value(row)).to_string()),
        _ => datafusion::arrow::util::display::array_value_to_string(column, row).map_or(Value::Null, Value::Text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, Float64Array, Int32Array};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn clock() -> MarketClock {
        crate::OnlineConfig::default().clock().unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn d(s: &str) -> i32 {
        to_days(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    fn view() -> OnlineView {
        let schema = Arc::new(Schema::new(vec![
            Field::new("scrip_code", DataType::Int32, false),
            Field::new("trade_date", DataType::Date32, false),
            Field::new("close", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 1, 1, 2])),
                Arc::new(Date32Array::from(vec![d("2024-11-13"), d("2024-11-14"), d("2024-11-18"), d("2024-11-14")])),
                Arc::new(Float64Array::from(vec![Some(10.0), None, Some(12.0), Some(99.0)])),
            ],
        )
        .unwrap();
        OnlineView::from_batch("v".into(), "v1".into(), 1, Duration::from_secs(5 * 86_400), clock(), &batch).unwrap()
    }

    #[test]
    fn event_time_is_the_close_in_india() {
        let c = clock();
        let date = NaiveDate::from_ymd_opt(2024, 11, 15).unwrap();
        assert_eq!(c.event_time(date), at("2024-11-15T10:00:00Z"));
        // 10:00 IST on the 15th: the 15th has not closed yet.
        assert_eq!(c.last_known_date(at("2024-11-15T04:30:00Z")), NaiveDate::from_ymd_opt(2024, 11, 14).unwrap());
        assert_eq!(c.last_known_date(at("2024-11-15T10:00:00Z")), date);
    }

    #[test]
    fn as_of_never_returns_a_value_from_after_the_time_asked() {
        let v = view();
        // Before the close of the 14th: the 13th's value.
        let r = v.lookup(1, "close", at("2024-11-14T09:59:59Z")).unwrap();
        assert_eq!((r.value, r.trade_date.to_string()), (Value::Float(10.0), "2024-11-13".to_string()));
        // At the close of the 14th: its (NULL) value, with its event time.
        let r = v.lookup(1, "close", at("2024-11-14T10:00:00Z")).unwrap();
        assert_eq!(r.value, Value::Null);
        assert_eq!(r.event_time, at("2024-11-14T10:00:00Z"));
        // Over the weekend: still the 14th; Monday after the close: the 18th.
        assert_eq!(v.lookup(1, "close", at("2024-11-17T12:00:00Z")).unwrap().trade_date.to_string(), "2024-11-14");
        assert_eq!(v.lookup(1, "close", at("2024-11-18T10:00:00Z")).unwrap().value, Value::Float(12.0));
        // ttl 5 days: entity 2's value of the 14th is stale on the 20th.
        assert!(matches!(v.lookup(2, "close", at("2024-11-20T12:00:00Z")), Err(LookupError::Stale { .. })));
        assert!(matches!(v.lookup(1, "close", at("2024-11-01T12:00:00Z")), Err(LookupError::BeforeHistory { .. })));
        assert!(matches!(v.lookup(3, "close", at("2024-11-18T12:00:00Z")), Err(LookupError::UnknownEntity(_))));
        assert!(matches!(v.lookup(1, "nope", at("2024-11-18T12:00:00Z")), Err(LookupError::UnknownFeature { .. })));
    }
}
