//! A view's plan with its recursive calls resumable, for incremental materialization.
//!
//! `ema`, `rsi` and `wilder_mean` depend on every earlier row of their entity. An incremental
//! run resumes each such call from the state the previous run saved (see
//! [`bhavstore_udfs::resumable`]), so it carries only the rows the plain windows read back.
//! That is exact only for a call whose rows no other window reads: the resumed call's results
//! on the carried rows are NULL (the run does not emit them), which a window above it would
//! read. [`resume_plan`] and the analysis ([`crate::analysis`]) apply the same rule: a call is
//! resumed when it is windowed by the entity and ordered by the event time, and every node
//! between its window and the plan's root passes rows through unchanged in number
//! ([`passes_rows_through`]).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, WindowFunctionDefinition};

use bhavstore_udfs::resumable::{RecursionStates, is_resumable, resumable_udwf};

/// Whether `plan` hands each input row's values to its output without another row reading
/// them: a projection, a filter, an alias or a sort. A window, an aggregate, a join or a union
/// does not.
#[must_use]
pub fn passes_rows_through(plan: &LogicalPlan) -> bool {
    matches!(
        plan,
        LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) | LogicalPlan::Sort(_)
    )
}

/// Whether `wf` is a call of a recursive function windowed `PARTITION BY entity ORDER BY
/// event_time` (ascending), with the plain two arguments.
#[must_use]
pub fn resumable_call(wf: &WindowFunction, entity: &str, event_time: &str) -> bool {
    let WindowFunctionDefinition::WindowUDF(udf) = &wf.fun else { return false };
    let p = &wf.params;
    let is_col = |e: &Expr, n: &str| matches!(e, Expr::Column(c) if c.name == n);
    is_resumable(udf.name())
        && p.args.len() == 2
        && p.filter.is_none()
        && matches!(p.partition_by.as_slice(), [e] if is_col(e, entity))
        && matches!(p.order_by.as_slice(), [s] if s.asc && is_col(&s.expr, event_time))
}

/// `plan` with every resumable call (see the module docs) replaced by its resumable twin,
/// sharing `states`, under the name the call had so the plan's columns are unchanged. Each call
/// keeps its states under a key made of its position in the plan and its text. Returns the
/// plan and the number of calls replaced.
pub fn resume_plan(
    plan: LogicalPlan,
    entity: &str,
    event_time: &str,
    states: &Arc<RecursionStates>,
) -> Result<(LogicalPlan, usize)> {
    let mut cx = Rewrite { entity, event_time, states, calls: 0 };
    let plan = rewrite(plan, true, &mut cx)?.data;
    Ok((plan, cx.calls))
}

struct Rewrite<'a> {
    entity: &'a str,
    event_time: &'a str,
    states: &'a Arc<RecursionStates>,
    calls: usize,
}

fn rewrite(plan: LogicalPlan, top: bool, cx: &mut Rewrite<'_>) -> Result<Transformed<LogicalPlan>> {
    let child_top = top && passes_rows_through(&plan);
    let plan = plan.map_children(|child| rewrite(child, child_top, cx))?;
    if !(top && matches!(plan.data, LogicalPlan::Window(_))) {
        return Ok(plan);
    }
    let window = plan.transform_data(|p| p.map_expressions(|e| resume_expr(e, cx)))?;
    if window.transformed { window.map_data(LogicalPlan::recompute_schema) } else { Ok(window) }
}

/// One expression of a window node: the call itself (renamed to its old name), or the call
/// under an alias (which keeps the name).
fn resume_expr(e: Expr, cx: &mut Rewrite<'_>) -> Result<Transformed<Expr>> {
    let named = matches!(e, Expr::Alias(_));
    e.transform_up(|e| match e {
        Expr::WindowFunction(wf) if resumable_call(&wf, cx.entity, cx.event_time) => {
            let name = Expr::WindowFunction(wf.clone()).schema_name().to_string();
            let twin = Expr::WindowFunction(Box::new(resumed(*wf, &name, cx)));
            Ok(Transformed::yes(if named { twin } else { twin.alias(name) }))
        }
        other => Ok(Transformed::no(other)),
    })
}

fn resumed(mut wf: WindowFunction, name: &str, cx: &mut Rewrite<'_>) -> WindowFunction {
    let key = format!("{}:{name}", cx.calls);
    cx.calls += 1;
    if let WindowFunctionDefinition::WindowUDF(udf) = &wf.fun
        && let Some(twin) = resumable_udwf(udf.name(), key, Arc::clone(cx.states))
    {
        wf.fun = WindowFunctionDefinition::WindowUDF(Arc::new(twin));
        let (entity, order) = (wf.params.partition_by[0].clone(), wf.params.order_by[0].expr.clone());
        wf.params.args.extend([entity, order]);
    }
    wf
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch};
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{DataFrame, SessionContext, col};

    use super::*;
    use crate::analysis::analyse;

    const SQL: &str = "select scrip_code, trade_date, ema(close, 12) over w as e, rsi(close, 14) over w as r, \
                       wilder_mean(close * 2, 5) over w as m, sma(close, 3) over w as s from bhavcopy \
                       window w as (partition by scrip_code order by trade_date)";

    /// Two securities, `days` sessions each (the second trades every other day), a NULL close
    /// in the middle of the first so a warm-up restarts.
    fn rows(days: i32) -> Vec<(i64, i32, Option<f64>)> {
        let mut out = Vec::new();
        for d in 0..days {
            let wave = f64::from(d).sin() * 7.0 + f64::from(d % 13);
            out.push((1, d, (d != 150).then_some(100.0 + wave)));
            if d % 2 == 0 {
                out.push((2, d, Some(50.0 - wave / 3.0)));
            }
        }
        out
    }

    fn session(rows: &[(i64, i32, Option<f64>)]) -> SessionContext {
        let ctx = SessionContext::new();
        for udwf in bhavstore_udfs::all_window_udfs() {
            ctx.register_udwf(udwf);
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("scrip_code", DataType::Int64, false),
            Field::new("trade_date", DataType::Date32, false),
            Field::new("close", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
                Arc::new(Date32Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(rows.iter().map(|r| r.2).collect::<Float64Array>()),
            ],
        )
        .expect("batch");
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
        ctx.register_table("bhavcopy", Arc::new(table)).expect("register");
        ctx
    }

    /// The view over `rows`, resumed from `states` when given, rows after day `after` only.
    async fn run(rows: &[(i64, i32, Option<f64>)], states: Option<&Arc<RecursionStates>>, after: i32) -> RecordBatch {
        let ctx = session(rows);
        let mut plan = ctx.state().create_logical_plan(SQL).await.expect("plan");
        if let Some(states) = states {
            let (p, calls) = resume_plan(plan, "scrip_code", "trade_date", states).expect("rewrite");
            assert_eq!(calls, 3);
            plan = p;
        }
        let df = DataFrame::new(ctx.state(), plan)
            .filter(
                col("trade_date").gt(datafusion::prelude::lit(datafusion::common::ScalarValue::Date32(Some(after)))),
            )
            .and_then(|d| d.sort_by(vec![col("scrip_code"), col("trade_date")]))
            .expect("frame");
        let schema = Arc::new(df.schema().as_arrow().clone());
        concat_batches(&schema, &df.collect().await.expect("collect")).expect("concat")
    }

    /// Day by day from day 200, each run over the plain windows' tail plus the new day and
    /// continuing from the previous run's states, equals one run over everything, bit for bit.
    #[tokio::test]
    async fn resumed_runs_continue_a_full_run_bit_for_bit() {
        let all = rows(260);
        let whole = run(&all, None, 199).await;
        let states = Arc::new(RecursionStates::default());
        let first: Vec<_> = all.iter().copied().filter(|r| r.1 < 200).collect();
        run(&first, Some(&states), -1).await;
        let mut states = states;
        let mut pieces = Vec::new();
        for day in 200..260 {
            // The tail: the last 3 rows (sma's window) of each security before `day`.
            let mut input: Vec<_> = Vec::new();
            for code in [1, 2] {
                let before: Vec<_> = all.iter().copied().filter(|r| r.0 == code && r.1 < day).collect();
                input.extend(before[before.len().saturating_sub(3)..].iter().copied());
            }
            input.extend(all.iter().copied().filter(|r| r.1 == day));
            let next = Arc::new(RecursionStates::new(states.finals()));
            pieces.push(run(&input, Some(&next), day - 1).await);
            states = next;
        }
        let pieces = concat_batches(&whole.schema(), &pieces).expect("concat");
        // Same order (scrip_code, trade_date) after a sort of the pieces.
        let sorted = {
            let ctx = SessionContext::new();
            let df = ctx.read_batch(pieces).expect("read");
            let df = df.sort_by(vec![col("scrip_code"), col("trade_date")]).expect("sort");
            let schema = Arc::new(df.schema().as_arrow().clone());
            concat_batches(&schema, &df.collect().await.expect("collect")).expect("concat")
        };
        assert_eq!(sorted.num_rows(), whole.num_rows());
        assert!(whole.num_rows() > 80);
        for c in 2..whole.num_columns() {
            let (a, b) =
                (whole.column(c).as_primitive::<Float64Type>(), sorted.column(c).as_primitive::<Float64Type>());
            assert!(a.null_count() < a.len(), "column {c} all NULL proves nothing");
            let bits = |x: &datafusion::arrow::array::PrimitiveArray<Float64Type>| {
                x.iter().map(|v| v.map(f64::to_bits)).collect::<Vec<_>>()
            };
            assert_eq!(bits(a), bits(b), "column {c}");
        }
    }

    /// A recursion another window reads is not resumed; the analysis counts its horizon.
    #[tokio::test]
    async fn a_recursion_read_by_another_window_is_not_resumed() {
        let ctx = session(&rows(5));
        let w = "window w as (partition by scrip_code order by trade_date)";
        let top = ctx.state().create_logical_plan(SQL).await.expect("plan");
        let a = analyse(&top, "scrip_code", "trade_date").expect("analysis");
        assert_eq!((a.incremental.clone(), a.resumed), (Ok(3), 3));
        let stacked = format!(
            "with e as (select scrip_code, trade_date, ema(close, 12) over w as e from bhavcopy {w}) \
             select scrip_code, trade_date, sma(e, 5) over w as s, rsi(e, 14) over w as r from e {w}"
        );
        let plan = ctx.state().create_logical_plan(&stacked).await.expect("plan");
        let a = analyse(&plan, "scrip_code", "trade_date").expect("analysis");
        // rsi on top is resumed; the ema below it, read by sma and rsi, is not.
        assert_eq!(a.resumed, 1);
        let ema_rows = bhavstore_udfs::lookback_rows("ema", 12).expect("known");
        assert_eq!(a.incremental, Ok(ema_rows + 4));
        let (_, calls) = resume_plan(plan, "scrip_code", "trade_date", &Arc::default()).expect("rewrite");
        assert_eq!(calls, a.resumed);
    }
}
