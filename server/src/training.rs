//! Training sets: the features of a view as of many (entity, timestamp) rows, with the online
//! store's point-in-time rule. A row at instant `t` gets the view's row with the latest event
//! time ≤ `t` (event time = market close of the trade date), and NULLs when that row is older
//! than the view's `ttl` or there is none: no value ever comes from after `t`.
//!
//! SQL: `SELECT * FROM features_asof('price_features', 'SELECT scrip_code, ts FROM spine')`.
//! The second argument is a read-only query whose first column is the entity (scrip code) and
//! second the timestamp (any timestamp type, or RFC 3339 text; naive timestamps are UTC). The
//! result has one row per spine row, in the order the spine query returns them: `entity`, `ts`,
//! `feature_trade_date`, `feature_event_time`, then every feature of the view.
//!
//! The join is an as-of merge, not SQL: one pass over the view's keys finds each spine row's
//! trade date, a second pass reads the features of exactly those rows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, RecordBatch, TimestampMicrosecondArray, UInt32Array, new_null_array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::catalog::{Session, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use crate::online::MarketClock;
use crate::online::{from_days, to_days};

/// Name of the table function.
pub const FUNCTION: &str = "features_asof";

/// What the function needs to know about a view.
#[derive(Debug, Clone)]
pub struct AsofView {
    /// Entity column (scrip code).
    pub entity: String,
    /// Event-time column (trade date).
    pub event_time: String,
    /// Feature columns with their types, in view order.
    pub features: Vec<Field>,
    /// Values older than this are NULL.
    pub ttl: Duration,
}

/// `features_asof(view, spine_query)`.
#[derive(Debug)]
pub struct AsofFunction {
    views: HashMap<String, AsofView>,
    clock: MarketClock,
}

impl AsofFunction {
    /// Over `views`, with event times from `clock`.
    #[must_use]
    pub fn new(views: HashMap<String, AsofView>, clock: MarketClock) -> Self {
        Self { views, clock }
    }
}

fn string_arg(e: &Expr, what: &str) -> Result<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Ok(s.clone()),
        other => plan_err!("{FUNCTION}: {what} must be a string literal, got {other}"),
    }
}

impl TableFunctionImpl for AsofFunction {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        let [view, spine] = args else {
            return plan_err!("{FUNCTION}(view, spine_query) takes two arguments, got {}", args.len());
        };
        let view = string_arg(view, "the view name")?;
        let spine = string_arg(spine, "the spine query")?;
        let Some(v) = self.views.get(&view) else {
            let mut known: Vec<_> = self.views.keys().cloned().collect();
            known.sort();
            return plan_err!("{FUNCTION}: no feature view {view:?} (views: {})", known.join(", "));
        };
        Ok(Arc::new(AsofTable { view, spine, def: v.clone(), clock: self.clock.clone(), schema: output_schema(v) }))
    }
}

fn output_schema(v: &AsofView) -> SchemaRef {
    let mut fields = vec![
        Field::new("entity", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("feature_trade_date", DataType::Date32, true),
        Field::new("feature_event_time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
    ];
    fields.extend(v.features.iter().map(|f| f.clone().with_nullable(true)));
    Arc::new(Schema::new(fields))
}

/// One call of the function: computed when planned for execution.
#[derive(Debug)]
struct AsofTable {
    view: String,
    spine: String,
    def: AsofView,
    clock: MarketClock,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for AsofTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(state) = state.as_any().downcast_ref::<SessionState>() else {
            return exec_err!("{FUNCTION} needs a DataFusion session");
        };
        let ctx = SessionContext::new_with_state(state.clone());
        let batch = self.compute(&ctx).await?;
        let exec = MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::clone(&self.schema), projection.cloned())?;
        Ok(exec)
    }
}

impl AsofTable {
    async fn spine(&self, ctx: &SessionContext) -> Result<(Vec<Option<i64>>, Vec<Option<i64>>)> {
        // One partition: a multi-partition scan (an upload of many batches) would come back
        // interleaved, and the result must keep spine order.
        let config = ctx.copied_config().with_target_partitions(1);
        let ctx = &SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(ctx.state()).with_config(config).build(),
        );
        let plan = crate::sqlguard::plan_query(ctx, &self.spine).await.map_err(|e| match e {
            crate::sqlguard::GuardError::Engine(e) => e,
            other => DataFusionError::Plan(format!("{FUNCTION}: spine query: {other}")),
        })?;
        if plan.schema().fields().len() < 2 {
            return plan_err!("{FUNCTION}: the spine query must return (entity, timestamp) columns");
        }
        // The spine is held whole while the result is assembled: it counts against the query's
        // memory like any operator's, so a runaway spine query fails instead of filling RAM.
        let reservation = MemoryConsumer::new(format!("{FUNCTION} spine")).register(&ctx.runtime_env().memory_pool);
        let mut stream = ctx.execute_logical_plan(plan).await?.execute_stream().await?;
        let mut batches = Vec::new();
        while let Some(b) = stream.try_next().await? {
            reservation.try_grow(b.get_array_memory_size().saturating_mul(2))?;
            batches.push(b);
        }
        let ts_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let (mut entities, mut stamps) = (Vec::new(), Vec::new());
        for b in &batches {
            let e = cast(b.column(0), &DataType::Int64)?;
            let t = b.column(1);
            // Naive timestamps and text are read as UTC.
            let t = match t.data_type() {
                DataType::Timestamp(_, None) => {
                    cast(&cast(t, &DataType::Timestamp(TimeUnit::Microsecond, None))?, &ts_type)?
                }
                _ => cast(t, &ts_type)?,
            };
            entities.extend(e.as_primitive::<Int64Type>().iter());
            stamps.extend(t.as_primitive::<TimestampMicrosecondType>().iter());
        }
        Ok((entities, stamps))
    }

    async fn compute(&self, ctx: &SessionContext) -> Result<RecordBatch> {
        let (entities, stamps) = self.spine(ctx).await?;
        let n = entities.len();
        // The trade date known at each spine instant. It only changes at a close, which is on
        // a whole minute, so it is computed once per minute of the spine.
        let mut by_minute: HashMap<i64, i32> = HashMap::new();
        let mut cutoffs: Vec<Option<i32>> = Vec::with_capacity(n);
        for t in &stamps {
            cutoffs.push(t.and_then(|t| {
                let minute = t.div_euclid(60_000_000);
                let at = DateTime::from_timestamp_micros(t)?;
                Some(*by_minute.entry(minute).or_insert_with(|| to_days(self.clock.last_known_date(at))))
            }));
        }
        let wanted: HashSet<i64> = entities.iter().flatten().copied().collect();
        let (Some(&lo), Some(&hi)) = (cutoffs.iter().flatten().min(), cutoffs.iter().flatten().max()) else {
            return self.assemble(&entities, &stamps, &[], &vec![None; n], None);
        };
        let ttl_days = i32::try_from(self.def.ttl.as_secs() / 86_400 + 2).unwrap_or(i32::MAX);
        let from = lo.saturating_sub(ttl_days);

        // Pass 1: the trade dates of every wanted entity in range.
        let (e, t) = (col(format!("\"{}\"", self.def.entity)), col(format!("\"{}\"", self.def.event_time)));
        let range = t
            .clone()
            .gt_eq(lit(ScalarValue::Date32(Some(from))))
            .and(t.clone().lt_eq(lit(ScalarValue::Date32(Some(hi)))));
        let keys = ctx.table(self.view.as_str()).await?.filter(range)?.select(vec![e.clone(), t.clone()])?;
        let mut dates: HashMap<i64, Vec<i32>> = HashMap::new();
        let mut stream = keys.execute_stream().await?;
        while let Some(b) = stream.try_next().await? {
            let es = cast(b.column(0), &DataType::Int64)?;
            let ds = cast(b.column(1), &DataType::Date32)?;
            for (e, d) in es.as_primitive::<Int64Type>().iter().zip(ds.as_primitive::<Date32Type>().iter()) {
                if let (Some(e), Some(d)) = (e, d)
                    && wanted.contains(&e)
                {
                    dates.entry(e).or_default().push(d);
                }
            }
        }
        for v in dates.values_mut() {
            v.sort_unstable();
        }

        // Each spine row's (entity, date), if recent enough.
        let ttl_micros = i64::try_from(self.def.ttl.as_micros()).unwrap_or(i64::MAX);
        let mut close_of: HashMap<i32, i64> = HashMap::new();
        let mut slot_of: HashMap<(i64, i32), u32> = HashMap::new();
        let mut slots: Vec<(i64, i32)> = Vec::new();
        let mut row_slot: Vec<Option<u32>> = Vec::with_capacity(n);
        for i in 0..n {
            let found = (|| {
                let (e, t, cut) = (entities[i]?, stamps[i]?, cutoffs[i]?);
                let ds = dates.get(&e)?;
                let k = ds.partition_point(|d| *d <= cut);
                let d = *ds.get(k.checked_sub(1)?)?;
                let close =
                    *close_of.entry(d).or_insert_with(|| self.clock.event_time(from_days(d)).timestamp_micros());
                (t - close <= ttl_micros).then_some((e, d))
            })();
            row_slot.push(found.map(|key| {
                *slot_of.entry(key).or_insert_with(|| {
                    slots.push(key);
                    u32::try_from(slots.len() - 1).unwrap_or(u32::MAX)
                })
            }));
        }

        // Pass 2: the features of exactly those rows.
        let Some(lo_needed) = slots.iter().map(|s| s.1).min() else {
            return self.assemble(&entities, &stamps, &[], &row_slot, None);
        };
        let hi_needed = slots.iter().map(|s| s.1).max().unwrap_or(lo_needed);
        let mut columns = vec![e.clone(), t.clone()];
        columns.extend(self.def.features.iter().map(|f| col(format!("\"{}\"", f.name()))));
        let range = t
            .clone()
            .gt_eq(lit(ScalarValue::Date32(Some(lo_needed))))
            .and(t.lt_eq(lit(ScalarValue::Date32(Some(hi_needed)))));
        let frame = ctx.table(self.view.as_str()).await?.filter(range)?.select(columns)?;
        let feature_schema = Arc::new(Schema::new(self.def.features.clone()));
        let mut chunks: Vec<RecordBatch> = Vec::new();
        let mut position: Vec<u32> = vec![u32::MAX; slots.len()];
        let mut taken = 0u32;
        let mut stream = frame.execute_stream().await?;
        while let Some(b) = stream.try_next().await? {
            let es = cast(b.column(0), &DataType::Int64)?;
            let ds = cast(b.column(1), &DataType::Date32)?;
            let mut idx = Vec::new();
            for (r, (e, d)) in
                es.as_primitive::<Int64Type>().iter().zip(ds.as_primitive::<Date32Type>().iter()).enumerate()
            {
                if let (Some(e), Some(d)) = (e, d)
                    && let Some(&s) = slot_of.get(&(e, d))
                    && position[s as usize] == u32::MAX
                {
                    position[s as usize] = taken;
                    taken += 1;
                    idx.push(u32::try_from(r).unwrap_or(u32::MAX));
                }
            }
            if idx.is_empty() {
                continue;
            }
            let idx = UInt32Array::from(idx);
            let cols = (2..b.num_columns())
                .zip(feature_schema.fields())
                .map(|(c, f)| cast(&take(b.column(c), &idx, None)?, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            chunks.push(RecordBatch::try_new(Arc::clone(&feature_schema), cols)?);
        }
        let features = concat_batches(&feature_schema, &chunks)?;
        let rows: Vec<Option<u32>> =
            row_slot.iter().map(|s| s.map(|s| position[s as usize]).filter(|p| *p != u32::MAX)).collect();
        let dates_of_rows: Vec<Option<i32>> =
            row_slot.iter().zip(&rows).map(|(s, p)| p.and(s.map(|s| slots[s as usize].1))).collect();
        self.assemble(&entities, &stamps, &dates_of_rows, &rows, Some(&features))
    }

    fn assemble(
        &self,
        entities: &[Option<i64>],
        stamps: &[Option<i64>],
        dates: &[Option<i32>],
        rows: &[Option<u32>],
        features: Option<&RecordBatch>,
    ) -> Result<RecordBatch> {
        let n = entities.len();
        let dates: Vec<Option<i32>> = if dates.is_empty() { vec![None; n] } else { dates.to_vec() };
        let closes: Vec<Option<i64>> =
            dates.iter().map(|d| d.map(|d| self.clock.event_time(from_days(d)).timestamp_micros())).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(datafusion::arrow::array::Int64Array::from(entities.to_vec())),
            Arc::new(TimestampMicrosecondArray::from(stamps.to_vec()).with_timezone("UTC")),
            Arc::new(Date32Array::from(dates)),
            Arc::new(TimestampMicrosecondArray::from(closes).with_timezone("UTC")),
        ];
        let idx = UInt32Array::from(rows.to_vec());
        for (i, f) in self.def.features.iter().enumerate() {
            columns.push(match features {
                Some(b) => take(b.column(i), &idx, None)?,
                None => new_null_array(f.data_type(), n),
            });
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}
