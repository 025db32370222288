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
//! trade date, a second pass reads the features of exactly those rows. Planning the function
//! plans the spine query only (so `EXPLAIN` runs nothing); [`AsofExec`] does the work when it
//! executes, reading the spine's partitions in order, and streams the result.

use std::collections::HashMap;
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
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, SessionState, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, col, lit};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use bhavstore_lake::{MarketClock, from_days, quote_ident, to_days};

use crate::dense::EntityIndex;

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
    /// For a view over intraday bars: how long after its `ts` a row becomes known (its bar's
    /// length). Such a view is keyed by text (`EXCHANGE:SYMBOL`) and a timestamp, and a spine
    /// row at `t` gets the newest row with `ts + available_after <= t`.
    pub bars: Option<Duration>,
}

/// `features_asof(view, spine_query [, rule])`.
#[derive(Debug)]
pub struct AsofFunction {
    views: HashMap<String, AsofView>,
    clock: MarketClock,
    storage: Option<bhavstore_storage::Storage>,
}

impl AsofFunction {
    /// Over `views`, with event times from `clock`; without storage every day counts as
    /// available at the clock's publish time.
    #[must_use]
    pub fn new(views: HashMap<String, AsofView>, clock: MarketClock) -> Self {
        Self { views, clock, storage: None }
    }

    /// The same function reading each day's availability from `storage` when it executes.
    #[must_use]
    pub fn with_storage(mut self, storage: bhavstore_storage::Storage) -> Self {
        self.storage = Some(storage);
        self
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
        let (view, spine, rule) = match args {
            [view, spine] => (view, spine, bhavstore_lake::AsOfRule::default()),
            [view, spine, rule] => {
                let r = string_arg(rule, "the rule")?;
                let rule = bhavstore_lake::AsOfRule::parse(&r).or_else(|m| plan_err!("{FUNCTION}: {m}"))?;
                (view, spine, rule)
            }
            _ => {
                return plan_err!(
                    "{FUNCTION}(view, spine_query [, rule]) takes two or three arguments, got {}",
                    args.len()
                );
            }
        };
        let view = string_arg(view, "the view name")?;
        let spine = string_arg(spine, "the spine query")?;
        let Some(v) = self.views.get(&view) else {
            let mut known: Vec<_> = self.views.keys().cloned().collect();
            known.sort();
            return plan_err!("{FUNCTION}: no feature view {view:?} (views: {})", known.join(", "));
        };
        let call = AsofCall {
            view,
            spine_sql: spine,
            def: v.clone(),
            clock: self.clock.clone(),
            storage: self.storage.clone(),
            rule,
            schema: output_schema(v),
        };
        Ok(Arc::new(AsofTable { call: Arc::new(call) }))
    }
}

fn output_schema(v: &AsofView) -> SchemaRef {
    let entity = if v.bars.is_some() { DataType::Utf8 } else { DataType::Int64 };
    let mut fields = vec![
        Field::new("entity", entity, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("feature_trade_date", DataType::Date32, true),
        Field::new("feature_event_time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
    ];
    fields.extend(v.features.iter().map(|f| f.clone().with_nullable(true)));
    Arc::new(Schema::new(fields))
}

/// One call of the function. Planning it plans the spine query (checked read-only, at least
/// two columns) and nothing else; the work happens when [`AsofExec`] executes.
#[derive(Debug)]
struct AsofTable {
    call: Arc<AsofCall>,
}

#[async_trait]
impl TableProvider for AsofTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.call.schema)
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
        // One partition for the spine: a repartition (round robin) would scramble its order,
        // and the result keeps the order the spine query returns its rows in.
        // (`with_config` replaces the whole config: keep the existing catalogs, don't create one.)
        let config = state.config().clone().with_target_partitions(1).with_create_default_catalog_and_schema(false);
        let state = SessionStateBuilder::new_from_existing(state.clone()).with_config(config).build();
        let ctx = SessionContext::new_with_state(state.clone());
        let spine = crate::sqlguard::plan_query(&ctx, &self.call.spine_sql).await.map_err(|e| match e {
            crate::sqlguard::GuardError::Engine(e) => e,
            other => DataFusionError::Plan(format!("{FUNCTION}: spine query: {other}")),
        })?;
        if spine.schema().fields().len() < 2 {
            return plan_err!("{FUNCTION}: the spine query must return (entity, timestamp) columns");
        }
        let schema = match projection {
            Some(p) => Arc::new(self.call.schema.project(p)?),
            None => Arc::clone(&self.call.schema),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(AsofExec {
            call: Arc::clone(&self.call),
            spine,
            state,
            projection: projection.cloned(),
            schema,
            properties,
        }))
    }
}

/// What one execution needs, shared with the stream it returns.
#[derive(Debug)]
pub(crate) struct AsofCall {
    pub(crate) view: String,
    spine_sql: String,
    pub(crate) def: AsofView,
    clock: MarketClock,
    /// Where each day's availability is read when the call executes.
    storage: Option<bhavstore_storage::Storage>,
    /// Which instant makes a daily row known.
    rule: bhavstore_lake::AsOfRule,
    /// The full output schema (before projection).
    pub(crate) schema: SchemaRef,
}

/// `features_asof` as an operator: a leaf whose `execute` runs the spine query, the as-of merge
/// and the two reads of the view, then streams the result in `batch_size` chunks in spine order.
pub struct AsofExec {
    call: Arc<AsofCall>,
    spine: LogicalPlan,
    state: SessionState,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl std::fmt::Debug for AsofExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsofExec").field("view", &self.call.view).field("spine", &self.call.spine_sql).finish()
    }
}

impl DisplayAs for AsofExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sql: String = self.call.spine_sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let sql =
            if sql.chars().count() > 120 { format!("{}...", sql.chars().take(120).collect::<String>()) } else { sql };
        write!(f, "AsofExec: view={}, spine=[{sql}]", self.call.view)
    }
}

impl ExecutionPlan for AsofExec {
    fn name(&self) -> &'static str {
        "AsofExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() { Ok(self) } else { exec_err!("AsofExec has no children") }
    }

    fn execute(&self, partition: usize, task: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return exec_err!("AsofExec has one partition, asked for {partition}");
        }
        let call = Arc::clone(&self.call);
        let ctx = SessionContext::new_with_state(self.state.clone());
        let spine = self.spine.clone();
        let projection = self.projection.clone();
        let batch_size = task.session_config().batch_size().max(1);
        // The merge needs the whole spine; the output rows are assembled a chunk at a time, as
        // the consumer pulls them, so the result is never held whole.
        if let Some(after) = call.def.bars {
            let schema = Arc::clone(&self.schema);
            let batches = futures::stream::once(async move {
                let all = crate::training_bars::merge(&call, &ctx, spine, after).await?;
                let n = all.num_rows();
                let chunks = (0..n).step_by(batch_size).map(move |start| {
                    let batch = all.slice(start, batch_size.min(n - start));
                    match &projection {
                        Some(p) => Ok(batch.project(p)?),
                        None => Ok(batch),
                    }
                });
                Ok::<_, DataFusionError>(futures::stream::iter(chunks))
            })
            .try_flatten();
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)));
        }
        let batches = futures::stream::once(async move {
            let merged = Arc::new(call.merge(&ctx, spine).await?);
            let n = merged.entities.len();
            let chunks = (0..n).step_by(batch_size).map(move |start| {
                let batch = call.assemble(&merged, start..n.min(start + batch_size))?;
                match &projection {
                    Some(p) => Ok(batch.project(p)?),
                    None => Ok(batch),
                }
            });
            Ok::<_, DataFusionError>(futures::stream::iter(chunks))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), batches)))
    }
}

/// The spine's rows in order (its partitions in order, each to its end: the spine's own row
/// order, whatever its plan): its first column cast to `entity_type`, its second to UTC
/// microseconds (naive timestamps and text read as UTC). Held whole, and counted against the
/// query's memory.
pub(crate) async fn read_spine(
    ctx: &SessionContext,
    plan: LogicalPlan,
    entity_type: &DataType,
) -> Result<(Vec<ArrayRef>, Vec<Option<i64>>)> {
    let reservation = MemoryConsumer::new(format!("{FUNCTION} spine")).register(&ctx.runtime_env().memory_pool);
    let physical = ctx.state().create_physical_plan(&plan).await?;
    let mut batches = Vec::new();
    for p in 0..physical.properties().output_partitioning().partition_count() {
        let mut stream = physical.execute(p, ctx.task_ctx())?;
        while let Some(b) = stream.try_next().await? {
            reservation.try_grow(b.get_array_memory_size().saturating_mul(2))?;
            batches.push(b);
        }
    }
    let ts_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let (mut entities, mut stamps) = (Vec::new(), Vec::new());
    for b in &batches {
        entities.push(cast(b.column(0), entity_type)?);
        let t = b.column(1);
        let t = match t.data_type() {
            DataType::Timestamp(_, None) => {
                cast(&cast(t, &DataType::Timestamp(TimeUnit::Microsecond, None))?, &ts_type)?
            }
            _ => cast(t, &ts_type)?,
        };
        stamps.extend(t.as_primitive::<TimestampMicrosecondType>().iter());
    }
    Ok((entities, stamps))
}

/// Rows `idx` of a view read `(entity, event time, features...)`, as `feature_schema`'s columns.
pub(crate) fn feature_rows(b: &RecordBatch, idx: Vec<u32>, feature_schema: &SchemaRef) -> Result<RecordBatch> {
    let idx = UInt32Array::from(idx);
    let cols = (2..b.num_columns())
        .zip(feature_schema.fields())
        .map(|(c, f)| cast(&take(b.column(c), &idx, None)?, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(feature_schema), cols)?)
}

impl AsofCall {
    async fn spine(&self, ctx: &SessionContext, plan: LogicalPlan) -> Result<(Vec<Option<i64>>, Vec<Option<i64>>)> {
        // The spine is held whole while the result is assembled: it counts against the query's
        // memory like any operator's, so a runaway spine query fails instead of filling RAM.
        let (arrays, stamps) = read_spine(ctx, plan, &DataType::Int64).await?;
        let entities = arrays.iter().flat_map(|a| a.as_primitive::<Int64Type>().iter().collect::<Vec<_>>()).collect();
        Ok((entities, stamps))
    }

    async fn merge(&self, ctx: &SessionContext, spine: LogicalPlan) -> Result<Merged> {
        let (entities, stamps) = self.spine(ctx, spine).await?;
        let n = entities.len();
        let availability = match &self.storage {
            Some(s) => bhavstore_lake::Availability::load(s, &self.clock)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
            None => bhavstore_lake::Availability::from_loads(self.clock.clone(), []),
        };
        // The trade date known at each spine instant under the call's rule: a binary search
        // over the sessions' availability, exact to the microsecond.
        let cutoffs: Vec<Option<i32>> = stamps
            .iter()
            .map(|t| {
                t.and_then(DateTime::from_timestamp_micros)
                    .map(|at| to_days(availability.last_known_date(at, self.rule)))
            })
            .collect();
        let index = Arc::new(EntityIndex::new(entities.iter().flatten().copied()));
        let (Some(&lo), Some(&hi)) = (cutoffs.iter().flatten().min(), cutoffs.iter().flatten().max()) else {
            return Ok(Merged::without_values(entities, stamps));
        };
        let ttl_days = i32::try_from(self.def.ttl.as_secs() / 86_400 + 2).unwrap_or(i32::MAX);
        let from = lo.saturating_sub(ttl_days);

        // Pass 1: the trade dates of every wanted entity in range, each of the view's scan
        // partitions on its own task.
        let (e, t) = (col(quote_ident(&self.def.entity)), col(quote_ident(&self.def.event_time)));
        let range = t
            .clone()
            .gt_eq(lit(ScalarValue::Date32(Some(from))))
            .and(t.clone().lt_eq(lit(ScalarValue::Date32(Some(hi)))));
        let keys = ctx.table(self.view.as_str()).await?.filter(range)?.select(vec![e.clone(), t.clone()])?;
        let streams = keys.execute_stream_partitioned().await?;
        let tasks = streams.into_iter().map(|mut stream| {
            let index = Arc::clone(&index);
            SpawnedTask::spawn(async move {
                let mut dates: Vec<Vec<i32>> = vec![Vec::new(); index.len()];
                while let Some(b) = stream.try_next().await? {
                    let (es, ds) = key_columns(&b)?;
                    for (e, d) in es.iter().zip(ds.iter()) {
                        if let (Some(e), Some(d)) = (e, d)
                            && let Some(k) = index.get(e)
                        {
                            dates[k as usize].push(d);
                        }
                    }
                }
                Ok::<_, DataFusionError>(dates)
            })
        });
        let mut dates: Vec<Vec<i32>> = vec![Vec::new(); index.len()];
        for part in join_all_tasks(tasks).await? {
            for (all, more) in dates.iter_mut().zip(part?) {
                all.extend(more);
            }
        }
        for v in &mut dates {
            v.sort_unstable();
        }
        // Every (entity, date) of the view has a flat number: `base[k]` + its place in `dates[k]`.
        let mut base = Vec::with_capacity(dates.len());
        let mut total = 0usize;
        for v in &dates {
            base.push(total);
            total += v.len();
        }

        // Each spine row's flat (entity, date), if recent enough.
        let ttl_micros = i64::try_from(self.def.ttl.as_micros()).unwrap_or(i64::MAX);
        let mut close_of: HashMap<i32, i64> = HashMap::new();
        let mut needed = vec![false; total];
        let mut row_flat: Vec<Option<usize>> = Vec::with_capacity(n);
        for i in 0..n {
            let found = (|| {
                let (e, t, cut) = (entities[i]?, stamps[i]?, cutoffs[i]?);
                let k = index.get(e)? as usize;
                let ds = &dates[k];
                let p = ds.partition_point(|d| *d <= cut).checked_sub(1)?;
                let d = ds[p];
                let close =
                    *close_of.entry(d).or_insert_with(|| self.clock.event_time(from_days(d)).timestamp_micros());
                (t - close <= ttl_micros).then_some(base[k] + p)
            })();
            if let Some(f) = found {
                needed[f] = true;
            }
            row_flat.push(found);
        }
        let lookup = Arc::new(FlatLookup { index: Arc::clone(&index), dates, base, needed });
        let needed_dates = lookup.needed.iter().enumerate().filter(|(_, x)| **x).map(|(f, _)| lookup.date_of(f));
        let Some((lo_needed, hi_needed)) = needed_dates
            .fold(None, |acc: Option<(i32, i32)>, d| Some(acc.map_or((d, d), |(a, b)| (a.min(d), b.max(d)))))
        else {
            return Ok(Merged::without_values(entities, stamps));
        };

        // Pass 2: the features of exactly those rows, each scan partition on its own task.
        let mut columns = vec![e.clone(), t.clone()];
        columns.extend(self.def.features.iter().map(|f| col(quote_ident(f.name()))));
        let range = t
            .clone()
            .gt_eq(lit(ScalarValue::Date32(Some(lo_needed))))
            .and(t.lt_eq(lit(ScalarValue::Date32(Some(hi_needed)))));
        let frame = ctx.table(self.view.as_str()).await?.filter(range)?.select(columns)?;
        let feature_schema = Arc::new(Schema::new(self.def.features.clone()));
        let streams = frame.execute_stream_partitioned().await?;
        let tasks = streams.into_iter().map(|mut stream| {
            let lookup = Arc::clone(&lookup);
            let feature_schema = Arc::clone(&feature_schema);
            SpawnedTask::spawn(async move {
                let (mut chunks, mut flats) = (Vec::new(), Vec::new());
                while let Some(b) = stream.try_next().await? {
                    let (es, ds) = key_columns(&b)?;
                    let mut idx = Vec::new();
                    for (r, (e, d)) in es.iter().zip(ds.iter()).enumerate() {
                        if let (Some(e), Some(d)) = (e, d)
                            && let Some(f) = lookup.needed_flat(e, d)
                        {
                            flats.push(f);
                            idx.push(u32::try_from(r).unwrap_or(u32::MAX));
                        }
                    }
                    if !idx.is_empty() {
                        chunks.push(feature_rows(&b, idx, &feature_schema)?);
                    }
                }
                Ok::<_, DataFusionError>((chunks, flats))
            })
        });
        let mut chunks: Vec<RecordBatch> = Vec::new();
        let mut position: Vec<u32> = vec![u32::MAX; total];
        let mut taken = 0u32;
        for part in join_all_tasks(tasks).await? {
            let (part_chunks, flats) = part?;
            // A key the view holds twice is read twice; the first row found answers.
            for f in flats {
                if position[f] == u32::MAX {
                    position[f] = taken;
                }
                taken += 1;
            }
            chunks.extend(part_chunks);
        }
        let features = concat_batches(&feature_schema, &chunks)?;
        let rows: Vec<Option<u32>> =
            row_flat.iter().map(|f| f.map(|f| position[f]).filter(|p| *p != u32::MAX)).collect();
        let dates_of_rows: Vec<Option<i32>> =
            row_flat.iter().zip(&rows).map(|(f, p)| p.and(f.map(|f| lookup.date_of(f)))).collect();
        Ok(Merged { entities, stamps, dates: dates_of_rows, rows, features: Some(features) })
    }

    /// Output rows `range` of `m`.
    fn assemble(&self, m: &Merged, range: std::ops::Range<usize>) -> Result<RecordBatch> {
        let n = range.len();
        let dates = &m.dates[range.clone()];
        let closes: Vec<Option<i64>> =
            dates.iter().map(|d| d.map(|d| self.clock.event_time(from_days(d)).timestamp_micros())).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(datafusion::arrow::array::Int64Array::from(m.entities[range.clone()].to_vec())),
            Arc::new(TimestampMicrosecondArray::from(m.stamps[range.clone()].to_vec()).with_timezone("UTC")),
            Arc::new(Date32Array::from(dates.to_vec())),
            Arc::new(TimestampMicrosecondArray::from(closes).with_timezone("UTC")),
        ];
        let idx = UInt32Array::from(m.rows[range].to_vec());
        for (i, f) in self.def.features.iter().enumerate() {
            columns.push(match &m.features {
                Some(b) => take(b.column(i), &idx, None)?,
                None => new_null_array(f.data_type(), n),
            });
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// Waits for every task; a task that panicked re-raises its panic here.
async fn join_all_tasks<T: Send + 'static>(tasks: impl IntoIterator<Item = SpawnedTask<T>>) -> Result<Vec<T>> {
    futures::future::try_join_all(tasks.into_iter().map(SpawnedTask::join_unwind))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

/// An entity and trade-date column pair of a batch, as Int64 and Date32.
fn key_columns(b: &RecordBatch) -> Result<(datafusion::arrow::array::Int64Array, Date32Array)> {
    let es = cast(b.column(0), &DataType::Int64)?;
    let ds = cast(b.column(1), &DataType::Date32)?;
    Ok((es.as_primitive::<Int64Type>().clone(), ds.as_primitive::<Date32Type>().clone()))
}

/// Pass 2's question, per view row: is this (entity, date) one the spine needs, and which?
struct FlatLookup {
    index: Arc<EntityIndex>,
    /// Sorted trade dates per entity index.
    dates: Vec<Vec<i32>>,
    /// Flat number of each entity's first date.
    base: Vec<usize>,
    needed: Vec<bool>,
}

impl FlatLookup {
    #[inline]
    fn needed_flat(&self, e: i64, d: i32) -> Option<usize> {
        let k = self.index.get(e)? as usize;
        let p = self.dates[k].binary_search(&d).ok()?;
        let f = self.base[k] + p;
        self.needed[f].then_some(f)
    }

    fn date_of(&self, f: usize) -> i32 {
        let k = self.base.partition_point(|b| *b <= f) - 1;
        self.dates[k][f - self.base[k]]
    }
}

/// The as-of merge of a spine: per spine row (in spine order) its entity, instant, the trade date
/// of the value it gets and that value's row in `features` (the distinct rows read).
struct Merged {
    entities: Vec<Option<i64>>,
    stamps: Vec<Option<i64>>,
    dates: Vec<Option<i32>>,
    rows: Vec<Option<u32>>,
    features: Option<RecordBatch>,
}

impl Merged {
    /// Every row without a value (nothing in range, or no view rows at all).
    fn without_values(entities: Vec<Option<i64>>, stamps: Vec<Option<i64>>) -> Self {
        let n = entities.len();
        Self { entities, stamps, dates: vec![None; n], rows: vec![None; n], features: None }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::datasource::MemTable;

    use super::*;

    const DAY: i32 = 20_000; // 2024-10-04, a Friday

    /// `v`: entities 1 and 2 on days DAY..DAY+4, feature = entity * 100 + day offset.
    fn session() -> SessionContext {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("scrip_code", DataType::Int64, false),
            Field::new("trade_date", DataType::Date32, false),
            Field::new("f", DataType::Float64, true),
        ]));
        let (mut e, mut d, mut f) = (Vec::new(), Vec::new(), Vec::new());
        for entity in [1i64, 2] {
            for k in 0..5 {
                e.push(entity);
                d.push(DAY + k);
                f.push(entity as f64 * 100.0 + f64::from(k));
            }
        }
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(e)), Arc::new(Date32Array::from(d)), Arc::new(Float64Array::from(f))],
        )
        .unwrap();
        ctx.register_table("v", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
        let view = AsofView {
            bars: None,
            entity: "scrip_code".into(),
            event_time: "trade_date".into(),
            features: vec![Field::new("f", DataType::Float64, true)],
            ttl: Duration::from_secs(10 * 86_400),
        };
        let views = HashMap::from([("v".to_string(), view)]);
        ctx.register_udtf(FUNCTION, Arc::new(AsofFunction::new(views, MarketClock::default())));
        ctx
    }

    /// A spine of `(entity, ts text)` rows in three partitions.
    fn register_spine(ctx: &SessionContext, parts: &[&[(i64, &str)]]) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("scrip_code", DataType::Int64, false),
            Field::new("ts", DataType::Utf8, false),
        ]));
        let partitions = parts
            .iter()
            .map(|rows| {
                let e: Vec<i64> = rows.iter().map(|r| r.0).collect();
                let t: Vec<&str> = rows.iter().map(|r| r.1).collect();
                vec![
                    RecordBatch::try_new(
                        Arc::clone(&schema),
                        vec![Arc::new(Int64Array::from(e)), Arc::new(StringArray::from(t))],
                    )
                    .unwrap(),
                ]
            })
            .collect();
        ctx.register_table("spine", Arc::new(MemTable::try_new(schema, partitions).unwrap())).unwrap();
    }

    fn day(k: i32) -> String {
        from_days(DAY + k).to_string()
    }

    #[tokio::test]
    async fn result_keeps_spine_order_across_partitions_and_never_looks_ahead() {
        let ctx = session();
        // 16:00 IST is after the 15:30 close: that day's value is known; 09:00 IST is not.
        let (after, before) = (format!("{}T10:30:00Z", day(2)), format!("{}T03:30:00Z", day(2)));
        let late = format!("{}T10:30:00Z", day(30));
        let parts: Vec<Vec<(i64, String)>> =
            vec![vec![(2, after.clone()), (1, before.clone())], vec![(9, after.clone())], vec![(1, after), (2, late)]];
        let borrowed: Vec<Vec<(i64, &str)>> =
            parts.iter().map(|p| p.iter().map(|(e, t)| (*e, t.as_str())).collect()).collect();
        let slices: Vec<&[(i64, &str)]> = borrowed.iter().map(Vec::as_slice).collect();
        register_spine(&ctx, &slices);
        let ctx = SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(ctx.state())
                .with_config(
                    ctx.copied_config()
                        .with_batch_size(2)
                        .with_target_partitions(4)
                        .with_create_default_catalog_and_schema(false),
                )
                .build(),
        );
        let read = |rule: &'static str| {
            let ctx = ctx.clone();
            async move {
                let sql = format!(
                    "SELECT entity, feature_trade_date, f FROM features_asof('v', 'SELECT scrip_code, ts FROM spine'{rule})"
                );
                ctx.sql(&sql).await.unwrap().collect().await.unwrap()
            }
        };
        // The default rule, available: without a store every day counts as published at 18:00
        // IST, so at 16:00 IST day 2 is not known yet and day 1 answers.
        let available = read("").await;
        let got = concat_batches(&available[0].schema(), &available).unwrap();
        let dates: Vec<Option<i32>> = got.column(1).as_primitive::<Date32Type>().iter().collect();
        assert_eq!(dates, [Some(DAY + 1), Some(DAY + 1), None, Some(DAY + 1), None]);
        let batches = read(", 'close'").await;
        // Streamed in batch_size chunks, not one concatenated batch.
        assert!(batches.len() >= 3, "{} batches", batches.len());
        let got = concat_batches(&batches[0].schema(), &batches).unwrap();
        let entities: Vec<Option<i64>> = got.column(0).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(entities, [Some(2), Some(1), Some(9), Some(1), Some(2)], "spine order");
        let dates: Vec<Option<i32>> = got.column(1).as_primitive::<Date32Type>().iter().collect();
        let values: Vec<Option<f64>> =
            got.column(2).as_primitive::<datafusion::arrow::datatypes::Float64Type>().iter().collect();
        // After the close of day 2: day 2's row. Before it: day 1's. Unknown entity and a
        // value older than the ttl: NULL.
        assert_eq!(dates, [Some(DAY + 2), Some(DAY + 1), None, Some(DAY + 2), None]);
        assert_eq!(values, [Some(202.0), Some(101.0), None, Some(102.0), None]);
    }

    #[tokio::test]
    async fn explain_plans_but_does_not_execute() {
        let ctx = session();
        register_spine(&ctx, &[&[(1, "not a timestamp")]]);
        let sql = "SELECT * FROM features_asof('v', 'SELECT scrip_code, to_timestamp(ts) FROM spine')";
        // Executing fails on the bad text: proof the spine query runs at execution...
        let err = ctx.sql(sql).await.unwrap().collect().await.unwrap_err();
        assert!(err.to_string().to_lowercase().contains("not a timestamp"), "{err}");
        // ...so EXPLAIN, which succeeds, did not run it.
        let plan = ctx.sql(&format!("EXPLAIN {sql}")).await.unwrap().collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan).unwrap().to_string();
        assert!(text.contains("AsofExec: view=v"), "{text}");
        // Planning still checks the spine: a write is refused, a one-column spine too.
        let refused = ctx.sql("SELECT * FROM features_asof('v', 'SELECT 1')").await;
        let err = match refused {
            Err(e) => e.to_string(),
            Ok(df) => df.collect().await.unwrap_err().to_string(),
        };
        assert!(err.contains("(entity, timestamp)"), "{err}");
    }
}
