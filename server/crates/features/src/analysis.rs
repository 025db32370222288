//! What a view's plan tells materialization: which functions it calls (their versions are part
//! of the view's version), whether it can run incrementally, and how many rows of each entity an
//! incremental run must carry over.
//!
//! Incremental runs keep, per entity, the last `lookback` input rows (the *tail*) and compute new
//! days from tail + new rows. That gives the full recompute's values only if every window
//! is partitioned by the entity and ordered by event time, and reads a bounded number of rows
//! back; anything else (cumulative frames, other partitions, joins with other tables) makes the
//! view full-recompute only, which is correct, just slower. Reading *forward* (`lead`, a frame
//! ending in `FOLLOWING`) would leak future data into a feature and is refused outright.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition};

/// The facts materialization needs about one view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// Every bhavstore UDF the view calls, with its version.
    pub functions: BTreeMap<String, u32>,
    /// Tables the view reads.
    pub tables: BTreeSet<String>,
    /// Rows per entity an incremental run carries, or why it cannot run incrementally. The
    /// recursive calls it counts as one row are resumed from saved states ([`Analysis::resumed`]).
    pub incremental: Result<usize, String>,
    /// Calls of a recursive function (`ema`, `rsi`, `wilder_mean`) an incremental run resumes
    /// from the state the previous run saved instead of recomputing them from carried rows:
    /// those windowed by the entity and event time whose results no other window reads (see
    /// [`crate::resume`]).
    pub resumed: usize,
    /// For a view over `intraday_bars`: rows per instrument the live computation carries before
    /// the session of the first new bar (that session is always carried whole), or why the view
    /// cannot be computed live.
    pub live: Result<usize, String>,
}

impl Analysis {
    /// Whether any table the view reads depends on the reconciliation of corporate actions.
    #[must_use]
    pub fn uses_actions(&self) -> bool {
        self.tables.iter().any(|t| bhavstore_lake::adjust::depends_on_actions(t))
    }

    /// The price basis and window unit of a view that reads exactly one daily price table.
    #[must_use]
    pub fn daily_input(&self) -> Option<(bhavstore_lake::adjust::PriceBasis, bhavstore_lake::adjust::WindowUnit)> {
        match self.tables.len() {
            1 => self.tables.iter().next().and_then(|t| bhavstore_lake::adjust::PriceBasis::of_input_table(t)),
            _ => None,
        }
    }
}

/// Why a view cannot run incrementally, and why it cannot run live.
#[derive(Default)]
struct Blockers {
    incremental: Vec<String>,
    live: Vec<String>,
}

impl Blockers {
    fn both(&mut self, why: String) {
        self.live.push(why.clone());
        self.incremental.push(why);
    }
}

fn verdict(rows: usize, mut why: Vec<String>) -> Result<usize, String> {
    if why.is_empty() {
        Ok(rows)
    } else {
        why.sort();
        why.dedup();
        Err(why.join("; "))
    }
}

/// The column that splits an instrument's bars into sessions: windows partitioned by entity and
/// it may be cumulative in a live view, which carries the whole session.
pub const SESSION_KEY: &str = "trade_date";

/// Why a view's plan cannot be analysed: a look-ahead construct no feature may use, or a failure
/// walking the plan.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// DataFusion failed while walking the plan.
    #[error(transparent)]
    Plan(#[from] DataFusionError),
    /// The view calls a function that reads rows after the current one (`lead`).
    #[error("{function}() reads rows after the current one: a feature may only use the past")]
    ReadsAhead {
        /// The window function.
        function: String,
    },
    /// A bhavstore window function's length is not an integer literal.
    #[error("{function}(): the window length must be an integer literal")]
    WindowLength {
        /// The window function.
        function: String,
    },
    /// A window frame ends after the current row.
    #[error("{function}(): its window frame reaches past the current row: a feature may only use the past")]
    FrameReachesAhead {
        /// The window function.
        function: String,
    },
}

/// Analyses a view's logical plan. `entity` and `event_time` are the YAML's columns. Errors are
/// look-ahead constructs, which no feature may use.
pub fn analyse(plan: &LogicalPlan, entity: &str, event_time: &str) -> Result<Analysis, AnalysisError> {
    let mut functions = BTreeMap::new();
    let mut tables = BTreeSet::new();
    let mut blockers = Blockers::default();
    // With subqueries: `WHERE x IN (SELECT ... FROM bhavcopy ...)` hides a plan in an
    // expression, and an incremental run would evaluate it over the new days only.
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            tables.insert(scan.table_name.table().to_string());
        }
        if matches!(node, LogicalPlan::Join(_)) {
            blockers.both("it joins tables".to_string());
        }
        if matches!(node, LogicalPlan::Subquery(_)) {
            blockers.both("it has a subquery, which would see only the days of an incremental run".to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let live_lookback = rows_needed(plan, &mut Walk::new(entity, event_time, false), &mut functions, &mut blockers)?;
    let mut resumed = Walk::new(entity, event_time, true);
    let lookback = rows_needed(plan, &mut resumed, &mut BTreeMap::new(), &mut Blockers::default())?;
    let daily = tables.len() == 1 && tables.iter().all(|t| bhavstore_lake::adjust::PriceBasis::of_table(t).is_some());
    if !daily {
        blockers.incremental.push(format!(
            "it reads {tables:?}, not exactly one of {}",
            bhavstore_lake::adjust::PriceBasis::ALL.map(|b| b.table()).join(", ")
        ));
    }
    if tables.len() != 1 || !tables.contains(bhavstore_lake::bars::INTRADAY_BARS) {
        blockers.live.push(format!("it reads {tables:?}, not only {}", bhavstore_lake::bars::INTRADAY_BARS));
    }
    Ok(Analysis {
        functions,
        tables,
        incremental: verdict(lookback, blockers.incremental),
        resumed: resumed.resumed,
        live: verdict(live_lookback, blockers.live),
    })
}

/// How [`rows_needed`] walks a plan: the view's keys, and whether recursive calls that can be
/// resumed count one row (an incremental run) or their horizon (a live run, which has no
/// saved states).
struct Walk<'a> {
    entity: &'a str,
    event_time: &'a str,
    resume: bool,
    /// Whether the node being walked is read by no window above it.
    top: bool,
    /// Calls counted as resumed.
    resumed: usize,
}

impl<'a> Walk<'a> {
    fn new(entity: &'a str, event_time: &'a str, resume: bool) -> Self {
        Self { entity, event_time, resume, top: true, resumed: 0 }
    }
}

/// Rows of history (current row included) one output row of `plan` depends on. Stacked window
/// levels add up: a 20-row window over a column that itself looks 2 rows back needs 21.
fn rows_needed(
    plan: &LogicalPlan,
    walk: &mut Walk<'_>,
    functions: &mut BTreeMap<String, u32>,
    blockers: &mut Blockers,
) -> Result<usize, AnalysisError> {
    let top = walk.top;
    // Below a window, or anything that combines rows, results are read by more than their row.
    walk.top = top && crate::resume::passes_rows_through(plan);
    let mut below = 1;
    for input in plan.inputs() {
        below = below.max(rows_needed(input, walk, functions, blockers)?);
    }
    walk.top = top;
    // Subqueries in expressions (IN (SELECT ...)) hide their plans from inputs().
    if let LogicalPlan::Window(window) = plan {
        let mut level = 1;
        for expr in &window.window_expr {
            let mut found = Vec::new();
            expr.apply(|e| {
                if let Expr::WindowFunction(wf) = e {
                    found.push(wf.as_ref().clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
            for wf in found {
                level = level.max(window_rows(&wf, walk, functions, blockers)?);
            }
        }
        return Ok(below + level - 1);
    }
    Ok(below)
}

/// Rows one window function call reads back, current row included.
fn window_rows(
    wf: &WindowFunction,
    walk: &mut Walk<'_>,
    functions: &mut BTreeMap<String, u32>,
    blockers: &mut Blockers,
) -> Result<usize, AnalysisError> {
    let (entity, event_time) = (walk.entity, walk.event_time);
    let name = wf.fun.name().to_string();
    let p = &wf.params;
    let is_col = |e: &Expr, n: &str| matches!(e, Expr::Column(c) if c.name == n);
    let partitioned = matches!(p.partition_by.as_slice(), [e] if is_col(e, entity));
    // PARTITION BY entity, trade_date: one session of one instrument.
    let session = matches!(p.partition_by.as_slice(), [a, b]
        if (is_col(a, entity) && is_col(b, SESSION_KEY)) || (is_col(a, SESSION_KEY) && is_col(b, entity)));
    let ordered =
        matches!(p.order_by.as_slice(), [s] if s.asc && matches!(&s.expr, Expr::Column(c) if c.name == event_time));
    if !partitioned || !ordered {
        blockers.incremental.push(format!(
            "{name}() is not windowed PARTITION BY {entity} ORDER BY {event_time} (ascending, nothing else)"
        ));
    }
    if !(partitioned || session) || !ordered {
        blockers.live.push(format!(
            "{name}() is not windowed PARTITION BY {entity} [, {SESSION_KEY}] ORDER BY {event_time} (ascending)"
        ));
    }
    let int_arg = |i: usize| -> Option<usize> {
        match p.args.get(i) {
            Some(Expr::Literal(v, _)) => scalar_usize(v),
            _ => None,
        }
    };
    if name == "lead" || name == "lead_lag" {
        return Err(AnalysisError::ReadsAhead { function: name });
    }
    if let WindowFunctionDefinition::WindowUDF(udf) = &wf.fun {
        if bhavstore_udfs::is_cumulative(udf.name()) {
            if let Some(version) = bhavstore_udfs::function_version(udf.name()) {
                functions.insert(udf.name().to_string(), version);
            }
            // From the partition's first row: carried whole only when the partition is a session.
            let why = format!("{name}() is cumulative over its partition");
            blockers.incremental.push(why.clone());
            if !session {
                blockers.live.push(why);
            }
            return Ok(1);
        }
        if let Some(version) = bhavstore_udfs::function_version(udf.name()) {
            functions.insert(udf.name().to_string(), version);
            let n = int_arg(1).ok_or_else(|| AnalysisError::WindowLength { function: name.clone() })?;
            if !bhavstore_udfs::start_independent(udf.name(), n) {
                blockers.both(format!(
                    "{name}(…, {n}) sums its window with a running accumulator whose last bit depends on where the \
                     partition starts"
                ));
            }
            if walk.resume && walk.top && crate::resume::resumable_call(wf, entity, event_time) {
                walk.resumed += 1;
                return Ok(bhavstore_udfs::resumed_lookback_rows(udf.name(), n).unwrap_or(n));
            }
            return Ok(bhavstore_udfs::lookback_rows(udf.name(), n).unwrap_or(n));
        }
        return match name.as_str() {
            // lag(x) and lag(x, k): k rows back (default 1).
            "lag" => Ok(int_arg(1).unwrap_or(1) + 1),
            "first_value" | "nth_value" | "last_value" => frame_rows(wf, &name, session, blockers),
            other => {
                blockers.incremental.push(format!("{other}() depends on the whole partition"));
                if !session {
                    blockers.live.push(format!("{other}() depends on the whole partition"));
                }
                Ok(1)
            }
        };
    }
    // An aggregate used as a window: its frame decides.
    frame_rows(wf, &name, session, blockers)
}

/// Rows covered by a frame that ends at or before the current row. In a session window any
/// frame is computable live (the whole session is carried).
fn frame_rows(wf: &WindowFunction, name: &str, session: bool, blockers: &mut Blockers) -> Result<usize, AnalysisError> {
    let frame = &wf.params.window_frame;
    let ends_after = match &frame.end_bound {
        WindowFrameBound::Following(v) => v.is_null() || scalar_usize(v).is_none_or(|n| n > 0),
        _ => false,
    };
    if ends_after {
        return Err(AnalysisError::FrameReachesAhead { function: name.to_string() });
    }
    let mut block = |why: String| {
        if !session {
            blockers.live.push(why.clone());
        }
        blockers.incremental.push(why);
    };
    if frame.units != WindowFrameUnits::Rows {
        block(format!("{name}() uses a {} frame; only ROWS frames carry over", frame.units));
        return Ok(1);
    }
    match &frame.start_bound {
        WindowFrameBound::Preceding(v) if !v.is_null() => Ok(scalar_usize(v).unwrap_or(0) + 1),
        WindowFrameBound::CurrentRow => Ok(1),
        _ => {
            block(format!("{name}() uses a frame starting at UNBOUNDED PRECEDING (cumulative)"));
            Ok(1)
        }
    }
}

fn scalar_usize(v: &ScalarValue) -> Option<usize> {
    match v.cast_to(&datafusion::arrow::datatypes::DataType::UInt64).ok()? {
        ScalarValue::UInt64(Some(n)) => usize::try_from(n).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::analyse;

    async fn plan(sql: &str) -> datafusion::logical_expr::LogicalPlan {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("scrip_code", DataType::Int64, false),
            Field::new("trade_date", DataType::Date32, false),
            Field::new("close", DataType::Float64, true),
            Field::new("volume", DataType::Int64, true),
        ]));
        let table = MemTable::try_new(schema, vec![vec![]]).expect("table");
        ctx.register_table(bhavstore_lake::BHAVCOPY, Arc::new(table)).expect("register");
        ctx.state().create_logical_plan(sql).await.expect("plan")
    }

    const WINDOW: &str = "lag(close, 1) over (partition by scrip_code order by trade_date)";

    async fn bars_plan(sql: &str) -> datafusion::logical_expr::LogicalPlan {
        let ctx = SessionContext::new();
        for udwf in bhavstore_udfs::all_window_udfs() {
            ctx.register_udwf(udwf);
        }
        let table = MemTable::try_new(bhavstore_lake::bars::bars_schema(), vec![vec![]]).expect("table");
        ctx.register_table(bhavstore_lake::bars::INTRADAY_BARS, Arc::new(table)).expect("register");
        ctx.state().create_logical_plan(sql).await.expect("plan")
    }

    #[tokio::test]
    async fn session_windows_run_live_and_carry_the_entity_windows_lookback() {
        let sql = "select instrument, ts, sma(close, 15) over w as s, \
                   sum(volume) over (partition by instrument, trade_date order by ts rows between unbounded preceding and current row) as v, \
                   first_value(open) over (partition by instrument, trade_date order by ts) as o \
                   from intraday_bars window w as (partition by instrument order by ts)";
        let a = analyse(&bars_plan(sql).await, "instrument", "ts").expect("analysis");
        assert_eq!(a.live, Ok(15));
        assert!(a.incremental.is_err());
        // Partitioned by something else, or cumulative over the whole instrument: not live.
        for bad in [
            "select instrument, ts, sum(volume) over (partition by session order by ts) as v from intraday_bars",
            "select instrument, ts, sum(volume) over (partition by instrument order by ts) as v from intraday_bars",
        ] {
            let a = analyse(&bars_plan(bad).await, "instrument", "ts").expect("analysis");
            assert!(a.live.is_err(), "{bad}");
        }
        // A daily view is never live.
        let p = plan(&format!("select scrip_code, trade_date, {WINDOW} as prev from bhavcopy")).await;
        assert!(analyse(&p, "scrip_code", "trade_date").expect("analysis").live.is_err());
    }

    #[tokio::test]
    async fn a_window_over_bhavcopy_is_incremental() {
        let p = plan(&format!("select scrip_code, trade_date, {WINDOW} as prev from bhavcopy")).await;
        let a = analyse(&p, "scrip_code", "trade_date").expect("analysis");
        assert_eq!(a.incremental, Ok(2));
    }

    #[tokio::test]
    async fn subqueries_in_expressions_make_a_view_run_in_full() {
        for filter in [
            "scrip_code in (select scrip_code from bhavcopy where volume > 200000)",
            "exists (select 1 from bhavcopy b where b.volume > 200000 and b.scrip_code = bhavcopy.scrip_code)",
            "close > (select avg(close) from bhavcopy)",
        ] {
            let p =
                plan(&format!("select scrip_code, trade_date, {WINDOW} as prev from bhavcopy where {filter}")).await;
            let a = analyse(&p, "scrip_code", "trade_date").expect("analysis");
            let why = a.incremental.expect_err(filter);
            assert!(why.contains("subquery"), "{filter}: {why}");
        }
    }
}
