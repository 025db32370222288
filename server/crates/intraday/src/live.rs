//! Feature views computed live: each acknowledged bar re-evaluates the view's own plan over its
//! instrument's carried bars plus the new ones, micro-batched across instruments.
//!
//! **Carry rule.** For an instrument whose earliest changed bar is `t0`, the input is every bar
//! from the start of `t0`'s trade date, plus the `lookback` regular-session bars before it
//! (`lookback` is the analysis's: the rows a window reads back, recursive functions counted to
//! their 2^-64 horizon, as in incremental materialization). Session windows (`PARTITION BY
//! instrument, trade_date`) therefore start where the batch evaluation starts them, and every
//! other window sees the rows that decide its value bit for bit. Rows from `t0` on replace the
//! held ones; rows before `t0` cannot change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use serde_json::{Map, Value};

use bhavstore_features::PreparedView;
use bhavstore_lake::bars::{Bar, BarStore, INTRADAY_BARS, Session as BarSession, bars_schema, to_batch, trade_date_of};
use bhavstore_lake::table::ScanTimeTable;
use bhavstore_storage::Storage;

use crate::IntradayError;

/// The bars one evaluation reads, swapped in before each run.
type Input = Arc<Mutex<Vec<RecordBatch>>>;

/// `intraday_bars` as a streaming view's plan reads it: the input of the evaluation under way.
/// The input is sorted by instrument, then ts (see `LiveView::input`); a trade date only grows
/// with ts, so it is sorted by (instrument, trade_date, ts) too. Declaring both lets every window
/// of a streaming view run without a sort.
fn input_table(input: &Input) -> ScanTimeTable {
    let input = Arc::clone(input);
    let key = |c: &str| datafusion::logical_expr::col(c).sort(true, false);
    ScanTimeTable::new(
        INTRADAY_BARS,
        bars_schema(),
        Arc::new(move || {
            let batches = input.lock().map(|b| b.clone()).unwrap_or_default();
            Box::pin(async move { Ok(batches) })
        }),
    )
    .with_orders(vec![vec![key("instrument"), key("ts")], vec![key("instrument"), key("trade_date"), key("ts")]])
}

/// Why a live lookup has no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    /// The view has no such feature.
    #[error("feature view {view:?} has no feature {feature:?}")]
    UnknownFeature {
        /// The view.
        view: String,
        /// The feature asked for.
        feature: String,
    },
    /// No bar of that instrument.
    #[error("unknown entity {0:?} (intraday views are keyed by EXCHANGE:SYMBOL, e.g. NSE:TCS)")]
    UnknownEntity(String),
    /// No bar of the instrument had ended by the time asked.
    #[error("no value of {entity} whose bar ended at or before {at}")]
    NoValue {
        /// The instrument.
        entity: String,
        /// The time asked (RFC 3339).
        at: String,
    },
    /// The newest value is older than the view's ttl.
    #[error("the newest value at or before {at} became known at {known_at}, older than the view's ttl of {ttl_secs} s")]
    Stale {
        /// The time asked (RFC 3339).
        at: String,
        /// When that value became known (RFC 3339).
        known_at: String,
        /// The ttl.
        ttl_secs: u64,
    },
}

/// One value as a lookup answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveValue {
    /// The bar's start (the row's event time), UTC microseconds.
    pub ts: i64,
    /// When the row became known: the bar's end.
    pub known_at: i64,
    /// Its trade date (Date32).
    pub trade_date: i32,
    /// The value as JSON.
    pub value: Value,
}

/// A feature row as subscribers receive it.
#[derive(Debug, Clone)]
pub struct FeatureEvent {
    /// The view.
    pub view: Arc<str>,
    /// The instrument.
    pub instrument: Arc<str>,
    /// The event as JSON text.
    pub json: Arc<str>,
}

/// One streaming view: its plan over swappable input, and each instrument's rows.
pub struct LiveView {
    name: Arc<str>,
    version: String,
    features: Vec<String>,
    lookback: usize,
    available_after_us: i64,
    ttl_us: i64,
    ctx: SessionContext,
    input: Input,
    plan: LogicalPlan,
    schema: SchemaRef,
    entity_idx: usize,
    ts_idx: usize,
    date_idx: Option<usize>,
    rows: RwLock<HashMap<Arc<str>, Held>>,
}

/// Chunks an instrument's rows are kept in before they are merged into one.
const MAX_CHUNKS: usize = 32;

/// One instrument's rows: chunks sorted by ts, their ranges not overlapping. An update cuts the
/// chunks at its first changed bar and appends its rows as a chunk (a slice of one batch shared
/// by every instrument of the update), so it copies nothing per instrument; chunks are merged
/// when there are too many.
#[derive(Debug, Clone, Default)]
struct Held {
    chunks: Vec<RecordBatch>,
}

impl Held {
    fn rows(&self) -> usize {
        self.chunks.iter().map(RecordBatch::num_rows).sum()
    }

    fn ts(b: &RecordBatch, ts_idx: usize) -> &[i64] {
        b.column(ts_idx).as_primitive::<TimestampMicrosecondType>().values()
    }

    /// Drops the rows with ts >= `t0`; returns them (for comparing recomputed rows).
    fn cut(&mut self, t0: i64, ts_idx: usize) -> Vec<RecordBatch> {
        let mut removed = Vec::new();
        while let Some(last) = self.chunks.last() {
            let ts = Self::ts(last, ts_idx);
            let n = ts.partition_point(|t| *t < t0);
            if n == ts.len() {
                break;
            }
            removed.push(last.slice(n, ts.len() - n));
            if n == 0 {
                self.chunks.pop();
            } else {
                let kept = last.slice(0, n);
                if let Some(l) = self.chunks.last_mut() {
                    *l = kept;
                }
                break;
            }
        }
        removed.reverse();
        removed
    }

    fn push(&mut self, b: RecordBatch, schema: &SchemaRef) -> Result<(), IntradayError> {
        if b.num_rows() > 0 {
            self.chunks.push(b);
        }
        if self.chunks.len() > MAX_CHUNKS {
            let merged = concat_batches(schema, &self.chunks).map_err(datafusion::error::DataFusionError::from)?;
            self.chunks = vec![merged];
        }
        Ok(())
    }

    /// The chunk and row of the last row with ts <= `cut`.
    fn find(&self, cut: i64, ts_idx: usize) -> Option<(&RecordBatch, usize)> {
        let k = self.chunks.partition_point(|c| Self::ts(c, ts_idx).first().is_some_and(|t| *t <= cut));
        let chunk = self.chunks.get(k.checked_sub(1)?)?;
        let n = Self::ts(chunk, ts_idx).partition_point(|t| *t <= cut);
        Some((chunk, n.checked_sub(1)?))
    }
}

impl std::fmt::Debug for LiveView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveView").field("name", &self.name).field("lookback", &self.lookback).finish_non_exhaustive()
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// `ts` in RFC 3339 (UTC, seconds; fractions only when present).
#[must_use]
pub fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp_micros(ts)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// An Arrow value as JSON: numbers (NULL for NaN and infinities), text, dates as `YYYY-MM-DD`,
/// timestamps in RFC 3339.
#[must_use]
pub fn json_value(col: &dyn Array, row: usize) -> Value {
    if col.is_null(row) {
        return Value::Null;
    }
    match col.data_type() {
        DataType::Float64 => {
            serde_json::Number::from_f64(col.as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(row))
                .map_or(Value::Null, Value::Number)
        }
        DataType::Timestamp(_, _) => match datafusion::arrow::compute::cast(
            &col.slice(row, 1),
            &DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
        ) {
            Ok(c) => Value::String(rfc3339(c.as_primitive::<TimestampMicrosecondType>().value(0))),
            Err(_) => Value::Null,
        },
        _ => match ScalarValue::try_from_array(col, row) {
            Ok(ScalarValue::Int64(Some(v))) => Value::from(v),
            Ok(ScalarValue::Int32(Some(v))) => Value::from(v),
            Ok(ScalarValue::Boolean(Some(v))) => Value::from(v),
            Ok(ScalarValue::Float32(Some(v))) => {
                serde_json::Number::from_f64(f64::from(v)).map_or(Value::Null, Value::Number)
            }
            Ok(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
                Value::String(s)
            }
            Ok(ScalarValue::Date32(Some(d))) => Value::String(bhavstore_lake::from_days(d).to_string()),
            Ok(other) => Value::String(other.to_string()),
            Err(_) => Value::Null,
        },
    }
}

impl LiveView {
    /// Plans `pv` over swappable input. Refuses a view the analysis says cannot run live.
    /// `partitions` is how many threads one evaluation may use (DataFusion target partitions).
    pub async fn new(storage: &Storage, pv: &PreparedView, partitions: usize) -> Result<Self, IntradayError> {
        let name = pv.view.spec.name.clone();
        let lookback = pv.analysis.live.clone().map_err(|why| IntradayError::View { view: name.clone(), why })?;
        let base = bhavstore_lake::session(storage)?;
        let config = base.state().config().clone().with_target_partitions(partitions.max(1));
        let ctx = SessionContext::new_with_state(
            datafusion::execution::SessionStateBuilder::new_from_existing(base.state()).with_config(config).build(),
        );
        let input = Input::default();
        ctx.deregister_table(INTRADAY_BARS)?;
        ctx.register_table(INTRADAY_BARS, Arc::new(input_table(&input)))?;
        let plan = ctx.state().create_logical_plan(&pv.view.sql).await?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let idx = |c: &str| {
            schema
                .index_of(c)
                .map_err(|_| IntradayError::View { view: name.clone(), why: format!("it has no column {c:?}") })
        };
        let entity_idx = idx(&pv.view.spec.entity)?;
        let ts_idx = idx(&pv.view.spec.event_time)?;
        if !matches!(schema.field(entity_idx).data_type(), DataType::Utf8) {
            return Err(IntradayError::View {
                view: name,
                why: "its entity column must be text (EXCHANGE:SYMBOL)".into(),
            });
        }
        if !matches!(schema.field(ts_idx).data_type(), DataType::Timestamp(_, Some(_))) {
            return Err(IntradayError::View {
                view: name,
                why: "its event time must be the bar's ts (timestamp with time zone)".into(),
            });
        }
        let date_idx = schema.index_of(bhavstore_features::analysis::SESSION_KEY).ok();
        Ok(Self {
            name: Arc::from(name.as_str()),
            version: pv.version.id.clone(),
            features: pv.view.spec.features.iter().map(|f| f.name.clone()).collect(),
            lookback,
            available_after_us: micros(pv.view.available_after),
            ttl_us: micros(pv.view.ttl),
            ctx,
            input,
            plan,
            schema,
            entity_idx,
            ts_idx,
            date_idx,
            rows: RwLock::new(HashMap::new()),
        })
    }

    /// The view's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version of its definition.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Its output columns.
    #[must_use]
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Whether it has a feature of that name.
    #[must_use]
    pub fn has_feature(&self, f: &str) -> bool {
        self.features.iter().any(|x| x == f)
    }

    /// Rows per instrument carried before the session of a changed bar.
    #[must_use]
    pub fn lookback(&self) -> usize {
        self.lookback
    }

    /// Instruments with rows.
    #[must_use]
    pub fn instruments(&self) -> usize {
        self.rows.read().map(|r| r.len()).unwrap_or(0)
    }

    /// Every row held, instrument by instrument (sorted by instrument, then ts).
    #[must_use]
    pub fn batches(&self) -> Vec<RecordBatch> {
        let rows = self.rows.read().map(|r| r.iter().map(|(k, v)| (Arc::clone(k), v.clone())).collect::<Vec<_>>());
        let mut rows = rows.unwrap_or_default();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        // Many small chunks make slow scans: merged into batches of up to 64k rows.
        let mut out = Vec::new();
        let mut group: Vec<RecordBatch> = Vec::new();
        let mut n = 0;
        for chunk in rows.into_iter().flat_map(|(_, h)| h.chunks) {
            n += chunk.num_rows();
            group.push(chunk);
            if n >= 65_536 {
                out.extend(concat_batches(&self.schema, &group).ok());
                group.clear();
                n = 0;
            }
        }
        if !group.is_empty() {
            out.extend(concat_batches(&self.schema, &group).ok());
        }
        out
    }

    /// The newest row of `instrument` known at `at` (its bar ended at or before it).
    pub fn lookup(&self, instrument: &str, feature: &str, at: i64) -> Result<LiveValue, LookupError> {
        if !self.has_feature(feature) {
            return Err(LookupError::UnknownFeature { view: self.name.to_string(), feature: feature.into() });
        }
        let rows = self.rows.read().map_err(|_| LookupError::UnknownEntity(instrument.into()))?;
        let held = rows.get(instrument).ok_or_else(|| LookupError::UnknownEntity(instrument.into()))?;
        let cut = at.saturating_sub(self.available_after_us);
        let Some((batch, row)) = held.find(cut, self.ts_idx) else {
            return Err(LookupError::NoValue { entity: instrument.into(), at: rfc3339(at) });
        };
        let ts = batch.column(self.ts_idx).as_primitive::<TimestampMicrosecondType>();
        let t = ts.value(row);
        let known_at = t + self.available_after_us;
        if at - known_at > self.ttl_us {
            return Err(LookupError::Stale {
                at: rfc3339(at),
                known_at: rfc3339(known_at),
                ttl_secs: u64::try_from(self.ttl_us / 1_000_000).unwrap_or(0),
            });
        }
        let col = batch
            .column_by_name(feature)
            .ok_or_else(|| LookupError::UnknownFeature { view: self.name.to_string(), feature: feature.into() })?;
        let trade_date = self
            .date_idx
            .and_then(|i| {
                batch.column(i).as_primitive_opt::<datafusion::arrow::datatypes::Date32Type>().map(|d| d.value(row))
            })
            .unwrap_or_else(|| trade_date_of(t));
        Ok(LiveValue { ts: t, known_at, trade_date, value: json_value(col.as_ref(), row) })
    }

    /// The bars to evaluate for `changed` (instrument → earliest changed start), by the carry rule.
    fn input(&self, store: &BarStore, changed: &HashMap<Arc<str>, i64>) -> DfResult<RecordBatch> {
        let mut rows: Vec<&Bar> = Vec::new();
        // Sorted by instrument: the input table declares that order.
        let mut changed: Vec<(&Arc<str>, &i64)> = changed.iter().collect();
        changed.sort_unstable();
        for (instrument, t0) in changed {
            let Some(bars) = store.bars_of(instrument) else { continue };
            let day = trade_date_of(*t0);
            let mut from = bars.partition_point(|b| trade_date_of(b.ts) < day);
            let mut carried = 0;
            while from > 0 && carried < self.lookback {
                from -= 1;
                if bars[from].session() == BarSession::Regular {
                    carried += 1;
                }
            }
            rows.extend(&bars[from..]);
        }
        to_batch(rows)
    }

    async fn evaluate(&self, input: RecordBatch) -> DfResult<RecordBatch> {
        if let Ok(mut b) = self.input.lock() {
            *b = vec![input];
        }
        let out = self.ctx.execute_logical_plan(self.plan.clone()).await;
        let out = match out {
            Ok(df) => df.collect().await,
            Err(e) => Err(e),
        };
        if let Ok(mut b) = self.input.lock() {
            b.clear();
        }
        concat_batches(&self.schema, &out?).map_err(Into::into)
    }

    /// Recomputes the rows of `changed` instruments from their earliest changed bar on, and
    /// returns the new rows' events (built only when someone listens). Instruments are evaluated
    /// `group` at a time, which bounds the memory one evaluation takes.
    pub(crate) async fn update(
        &self,
        store: &RwLock<crate::State>,
        changed: &HashMap<Arc<str>, i64>,
        want_events: bool,
        group: usize,
    ) -> Result<Vec<FeatureEvent>, IntradayError> {
        if changed.len() <= group.max(1) {
            return self.update_group(store, changed, want_events).await;
        }
        let mut names: Vec<(&Arc<str>, &i64)> = changed.iter().collect();
        names.sort_unstable();
        let mut events = Vec::new();
        for part in names.chunks(group.max(1)) {
            let part: HashMap<Arc<str>, i64> = part.iter().map(|(k, v)| (Arc::clone(k), **v)).collect();
            events.extend(self.update_group(store, &part, want_events).await?);
        }
        Ok(events)
    }

    async fn update_group(
        &self,
        store: &RwLock<crate::State>,
        changed: &HashMap<Arc<str>, i64>,
        want_events: bool,
    ) -> Result<Vec<FeatureEvent>, IntradayError> {
        let started = std::time::Instant::now();
        let input = {
            let st = store.read().map_err(|_| IntradayError::Poisoned)?;
            self.input(&st.store, changed)?
        };
        let t_input = started.elapsed();
        let out = self.evaluate(input).await?;
        let t_eval = started.elapsed();
        // Each changed instrument's rows from its first changed bar, in one batch: the input is
        // sorted by instrument and ts and evaluated in one partition, so the output keeps that
        // order and each instrument is one run of rows.
        let names = out.column(self.entity_idx).as_string::<i32>();
        let ts = Held::ts(&out, self.ts_idx);
        let mut pick: Vec<u32> = Vec::new();
        let mut runs: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut i = 0;
        while i < out.num_rows() {
            let name = if names.is_valid(i) { names.value(i) } else { "" };
            let mut j = i;
            while j < out.num_rows() && names.is_valid(j) && names.value(j) == name {
                j += 1;
            }
            let j = j.max(i + 1);
            if let Some(t0) = changed.get(name) {
                let from = i + ts[i..j].partition_point(|t| t < t0);
                let start = pick.len();
                pick.extend((from..j).map(|r| u32::try_from(r).unwrap_or(u32::MAX)));
                if runs.insert(name, (start, pick.len() - start)).is_some() {
                    return Err(IntradayError::View {
                        view: self.name.to_string(),
                        why: format!("its output is not ordered by {} (rows of {name} are apart)", "instrument"),
                    });
                }
            }
            i = j;
        }
        let fresh_all =
            take_record_batch(&out, &UInt32Array::from(pick)).map_err(datafusion::error::DataFusionError::from)?;

        let mut events = Vec::new();
        let mut rows = self.rows.write().map_err(|_| IntradayError::Poisoned)?;
        for (instrument, t0) in changed {
            let fresh = runs.get(&**instrument).map(|(start, len)| fresh_all.slice(*start, *len));
            let held = rows.entry(Arc::clone(instrument)).or_default();
            let replaced = held.cut(*t0, self.ts_idx);
            if let Some(f) = &fresh {
                held.push(f.clone(), &self.schema)?;
            }
            if held.chunks.is_empty() {
                rows.remove(instrument);
            }
            if want_events && let Some(f) = fresh {
                let replaced = match replaced.as_slice() {
                    [] => None,
                    parts => {
                        Some(concat_batches(&self.schema, parts).map_err(datafusion::error::DataFusionError::from)?)
                    }
                };
                events.extend(self.events(instrument, &f, replaced.as_ref()));
            }
        }
        drop(rows);
        tracing::debug!(
            view = %self.name,
            instruments = changed.len(),
            input_ms = t_input.as_secs_f64() * 1e3,
            evaluate_ms = (t_eval - t_input).as_secs_f64() * 1e3,
            merge_ms = (started.elapsed() - t_eval).as_secs_f64() * 1e3,
            "live view updated"
        );
        Ok(events)
    }

    /// Recomputes every instrument from all bars (at start).
    pub(crate) async fn rebuild(&self, store: &RwLock<crate::State>, group: usize) -> Result<usize, IntradayError> {
        let changed: HashMap<Arc<str>, i64> = {
            let st = store.read().map_err(|_| IntradayError::Poisoned)?;
            st.store.iter().filter_map(|(k, v)| v.first().map(|b| (Arc::clone(k), b.ts))).collect()
        };
        if changed.is_empty() {
            return Ok(0);
        }
        self.update(store, &changed, false, group).await?;
        Ok(self.rows.read().map(|r| r.values().map(Held::rows).sum()).unwrap_or(0))
    }

    /// Events for the rows of `b` that are new or differ from the row of the same ts in
    /// `replaced` (what was held before): a recomputation that changes nothing sends nothing.
    fn events(&self, instrument: &Arc<str>, b: &RecordBatch, replaced: Option<&RecordBatch>) -> Vec<FeatureEvent> {
        let ts = Held::ts(b, self.ts_idx);
        let before: HashMap<i64, usize> = replaced
            .map(|r| Held::ts(r, self.ts_idx).iter().enumerate().map(|(i, t)| (*t, i)).collect())
            .unwrap_or_default();
        let same = |row: usize| {
            let (Some(r), Some(&i)) = (replaced, before.get(&ts[row])) else { return false };
            b.columns().iter().zip(r.columns()).all(|(x, y)| x.slice(row, 1).to_data() == y.slice(i, 1).to_data())
        };
        (0..b.num_rows())
            .filter(|row| !same(*row))
            .map(|row| {
                let mut values = Map::new();
                for f in &self.features {
                    if let Some(c) = b.column_by_name(f) {
                        values.insert(f.clone(), json_value(c.as_ref(), row));
                    }
                }
                let date = self
                    .date_idx
                    .map(|i| json_value(b.column(i).as_ref(), row))
                    .unwrap_or_else(|| Value::String(bhavstore_lake::from_days(trade_date_of(ts[row])).to_string()));
                let json = serde_json::json!({
                    "view": &*self.name,
                    "entity_id": &**instrument,
                    "ts": rfc3339(ts[row]),
                    "known_at": rfc3339(ts[row] + self.available_after_us),
                    "trade_date": date,
                    "values": values,
                });
                FeatureEvent {
                    view: Arc::clone(&self.name),
                    instrument: Arc::clone(instrument),
                    json: Arc::from(json.to_string()),
                }
            })
            .collect()
    }
}
