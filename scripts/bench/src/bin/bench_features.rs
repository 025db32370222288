//! `bench-features`: times bhavstore computing the feature views over a `bhavcopy` history and
//! writing them as zstd Parquet, with a wall-clock breakdown (read, sort, compute, write), the
//! operators' own timers, and the same "comparable subset" of features that
//! `duckdb_features.py` computes, for the DuckDB comparison.
//!
//! Every timed query streams its result to the end (or to Parquet) and drops it: nothing is
//! collected in memory beyond what the plan itself buffers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bhavstore_storage::Storage;
use bhavstore_storage::StorageConfig;
use clap::{Parser, ValueEnum};
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use serde_json::{Value, json};

/// Benchmark bhavstore's feature views (and the DuckDB-comparable subset) over a history.
#[derive(Debug, Parser)]
struct Args {
    /// Storage root holding `parquet/bse/equity/trade_date=*/bhavcopy.parquet`.
    #[arg(long)]
    root: PathBuf,
    /// Feature definitions directory (`*.sql` + `*.yaml`).
    #[arg(long, default_value = "feature_defs")]
    feature_defs: PathBuf,
    /// Output directory: Parquet outputs, plans with metrics, `bhavstore_results.json`.
    #[arg(long)]
    out: PathBuf,
    /// Runs of every timed query; the table reports the best, the JSON every run.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// What to time.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Skip the read / sort / compute breakdown queries of the full views.
    #[arg(long)]
    no_breakdown: bool,
    /// DataFusion setting for this run, `KEY=VALUE` (repeatable), e.g.
    /// `datafusion.execution.sort_in_place_threshold_bytes=1073741824`; applied with `SET`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Full views and the comparable subset.
    All,
    /// Full views only.
    Views,
    /// Comparable subset only.
    Subset,
}

/// The full views and the columns of `bhavcopy` each one reads.
const VIEWS: [(&str, &str); 2] = [
    ("price_features", "scrip_code, trade_date, close, volume"),
    ("volatility_features", "scrip_code, trade_date, high, low, close"),
];

/// The views' features minus the recursive ones DuckDB window SQL cannot express exactly
/// (`ema_12`, `ema_26`, `rsi_14`; `atr_14` and `atr_14_pct`, Wilder-smoothed by definition).
/// Same rows (`WHERE is_equity`), same expressions as `feature_defs/*.sql`; the DuckDB
/// counterpart is in `duckdb_features.py` and must keep the same columns in the same order.
const SUBSET: [(&str, &str); 2] = [
    (
        "price_subset",
        "SELECT
            scrip_code,
            trade_date,
            close,
            pct_change(close, 1) OVER w AS return_1d,
            log_return(close, 1) OVER w AS log_return_1d,
            sma(close, 5) OVER w AS sma_5,
            sma(close, 20) OVER w AS sma_20,
            sma(close, 50) OVER w AS sma_50,
            lag(close, 1) OVER w AS close_lag_1,
            lag(close, 5) OVER w AS close_lag_5,
            pct_change(close, 10) OVER w AS momentum_10,
            zscore(close, 20) OVER w AS zscore_20,
            sma(volume, 20) OVER w AS volume_sma_20
        FROM bhavcopy
        WHERE is_equity
        WINDOW w AS (PARTITION BY scrip_code ORDER BY trade_date)",
    ),
    (
        "volatility_subset",
        "WITH daily AS (
            SELECT
                scrip_code,
                trade_date,
                high,
                low,
                close,
                pct_change(close, 1) OVER w AS return_1d,
                lag(close, 1) OVER w AS prev_close_row,
                CASE WHEN low > 0 THEN ln(high / low) END AS log_high_low
            FROM bhavcopy
            WHERE is_equity
            WINDOW w AS (PARTITION BY scrip_code ORDER BY trade_date)
        ),
        ranged AS (
            SELECT
                *,
                CASE
                    WHEN prev_close_row IS NULL THEN high - low
                    ELSE greatest(high - low, abs(high - prev_close_row), abs(low - prev_close_row))
                END AS true_range
            FROM daily
        )
        SELECT
            scrip_code,
            trade_date,
            rolling_std(return_1d, 20) OVER w AS std_20,
            rolling_std(return_1d, 20) OVER w * sqrt(252.0) AS volatility_20,
            rolling_std(return_1d, 60) OVER w * sqrt(252.0) AS volatility_60,
            (high - low) / close AS high_low_range,
            true_range,
            sqrt(sma(log_high_low * log_high_low, 20) OVER w / (4.0 * ln(2.0)) * 252.0) AS parkinson_vol_20,
            close / rolling_max(close, 20) OVER w - 1.0 AS drawdown_20
        FROM ranged
        WINDOW w AS (PARTITION BY scrip_code ORDER BY trade_date)",
    ),
];

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One full view's measurements: wall-clock runs by step, and the operator timers of the write.
#[derive(Debug)]
struct ViewResult {
    view: &'static str,
    steps: BTreeMap<&'static str, Runs>,
    operators: BTreeMap<String, f64>,
}

/// Wall-clock times of repeated runs of one measurement.
#[derive(Debug, Default, Clone)]
struct Runs {
    rows: u64,
    times: Vec<Duration>,
    /// Of each time, the part spent planning (SQL to physical plan, file listing included);
    /// only measured for the written queries.
    planning: Vec<Duration>,
}

impl Runs {
    fn best(&self) -> Duration {
        self.times.iter().min().copied().unwrap_or_default()
    }

    fn json(&self) -> Value {
        json!({
            "rows": self.rows,
            "best_s": self.best().as_secs_f64(),
            "runs_s": self.times.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            "planning_s": self.planning.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let root = std::fs::canonicalize(&args.root)?;
    std::fs::create_dir_all(&args.out)?;
    let out = std::fs::canonicalize(&args.out)?;
    let storage = Storage::open(&StorageConfig { url: format!("file://{}", root.display()), s3: Default::default() })?;
    let views = bhavstore_features::load_dir(&args.feature_defs)?;
    let (catalog, _publisher) =
        bhavstore_query::Catalog::open_now(&storage, &views, bhavstore_lake::MarketClock::default()).await?;
    let ctx = catalog.session().clone();
    for setting in &args.settings {
        let Some((key, value)) = setting.split_once('=') else {
            return Err(format!("--set {setting}: expected KEY=VALUE").into());
        };
        ctx.sql(&format!("SET {} = '{}'", key.trim(), value.trim().replace('\'', "''"))).await?.collect().await?;
        println!("setting {} = {}", key.trim(), value.trim());
    }
    let target_partitions = ctx.state().config().target_partitions();
    let repeat = args.repeat.max(1);
    println!(
        "bench-features: root {}, DataFusion target_partitions {target_partitions}, {repeat} run(s) per query",
        root.display()
    );
    let files = count_files(&root.join(bhavstore_storage::paths::BHAVCOPY_TABLE))?;
    let (table_rows, _) = drain(&ctx, "SELECT scrip_code FROM bhavcopy").await?;
    println!("bhavcopy: {table_rows} rows in {files} files");

    let mut results = serde_json::Map::new();
    results.insert("engine".into(), json!("bhavstore (DataFusion 55)"));
    results.insert("target_partitions".into(), json!(target_partitions));
    results.insert("settings".into(), json!(args.settings));
    results.insert("bhavcopy_rows".into(), json!(table_rows));
    results.insert("bhavcopy_files".into(), json!(files));

    if args.mode != Mode::Subset {
        let mut views = serde_json::Map::new();
        let mut table = Vec::new();
        for (view, columns) in VIEWS {
            let sql = format!("SELECT * FROM {view}");
            let mut m: BTreeMap<&'static str, Runs> = BTreeMap::new();
            if !args.no_breakdown {
                let read = format!("SELECT {columns} FROM bhavcopy WHERE is_equity");
                let sort = format!("{read} ORDER BY scrip_code, trade_date");
                // The sort exactly as the view's plan does it (hash-repartition on scrip_code, then
                // sort each partition), under a window function that costs next to nothing.
                let window_sort = format!(
                    "SELECT {columns}, row_number() OVER (PARTITION BY scrip_code ORDER BY trade_date) AS rn \
                     FROM bhavcopy WHERE is_equity"
                );
                let steps = [
                    ("1_read", "read", read),
                    ("2_read_sort", "read+ORDER BY", sort),
                    ("3_read_window_sort", "read+window sort", window_sort),
                    ("4_compute", "compute", sql.clone()),
                ];
                for (step, label, query) in steps {
                    let record = out.join(format!("explain_analyze_{view}_{step}.txt"));
                    m.insert(step, time_drain(&ctx, &query, repeat, &format!("{view}: {label}"), &record).await?);
                }
            }
            let (total, operators) = time_write(&ctx, &sql, &out, view, repeat).await?;
            m.insert("5_total_with_write", total);
            let mut v: serde_json::Map<String, Value> = m.iter().map(|(k, r)| ((*k).to_string(), r.json())).collect();
            v.insert("operators_cpu_s".into(), json!(operators));
            views.insert(view.to_string(), Value::Object(v));
            table.push(ViewResult { view, steps: m, operators });
        }
        results.insert("views".into(), Value::Object(views));
        print_views(&table);
    }

    if args.mode != Mode::Views {
        let mut subset = serde_json::Map::new();
        let mut total = Duration::ZERO;
        let mut lines = Vec::new();
        for (name, sql) in SUBSET {
            let (runs, _) = time_write(&ctx, sql, &out, name, repeat).await?;
            total += runs.best();
            let planning = runs.planning.iter().min().copied().unwrap_or_default();
            lines.push(format!(
                "  {name:<22} {:>10} rows {:>9.3} s   (planning {:.3} s)",
                runs.rows,
                runs.best().as_secs_f64(),
                planning.as_secs_f64()
            ));
            subset.insert(name.to_string(), runs.json());
        }
        subset.insert("total_best_s".into(), json!(total.as_secs_f64()));
        results.insert("subset".into(), Value::Object(subset));
        println!("\nComparable subset (bhavstore UDFs, written as zstd Parquet), best of {repeat}:");
        for l in lines {
            println!("{l}");
        }
        println!("  {:<22} {:>15} {:>9.3} s", "total", "", total.as_secs_f64());
    }

    let path = out.join("bhavstore_results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&Value::Object(results))?)?;
    println!("\nresults: {}", path.display());
    Ok(())
}

/// Runs `sql` to the end, dropping every batch; returns the row count and the executed plan
/// (with its metrics).
async fn drain(ctx: &SessionContext, sql: &str) -> Result<(u64, Arc<dyn ExecutionPlan>), BoxError> {
    let plan = ctx.sql(sql).await?.create_physical_plan().await?;
    let mut stream = execute_stream(Arc::clone(&plan), ctx.task_ctx())?;
    let mut rows = 0u64;
    while let Some(batch) = stream.try_next().await? {
        rows += batch.num_rows() as u64;
    }
    Ok((rows, plan))
}

/// Times [`drain`] `repeat` times; saves the last run's plan with metrics to `record`.
async fn time_drain(
    ctx: &SessionContext,
    sql: &str,
    repeat: usize,
    label: &str,
    record: &Path,
) -> Result<Runs, BoxError> {
    let mut runs = Runs::default();
    for i in 0..repeat {
        let started = Instant::now();
        let (rows, plan) = drain(ctx, sql).await?;
        let t = started.elapsed();
        runs.rows = rows;
        eprintln!("  {label} run {}: {rows} rows, {:.3} s", i + 1, t.as_secs_f64());
        runs.times.push(t);
        if i + 1 == repeat {
            let text = format!(
                "-- {label}: drained, wall {:.3} s\n-- {sql}\n\n{}",
                t.as_secs_f64(),
                DisplayableExecutionPlan::with_metrics(plan.as_ref()).indent(true)
            );
            std::fs::write(record, text)?;
        }
    }
    Ok(runs)
}

/// Times `COPY (sql) TO '{out}/bhavstore/{name}/' STORED AS PARQUET` (zstd level 3), `repeat`
/// times. Saves the last run's physical plan with its metrics (what `EXPLAIN ANALYZE` prints)
/// and returns the summed operator timers of that run.
async fn time_write(
    ctx: &SessionContext,
    sql: &str,
    out: &Path,
    name: &str,
    repeat: usize,
) -> Result<(Runs, BTreeMap<String, f64>), BoxError> {
    let dir = out.join("bhavstore").join(name);
    let copy = format!(
        "COPY ({sql}) TO '{}/' STORED AS PARQUET OPTIONS ('format.compression' 'zstd(3)')",
        dir.display().to_string().replace('\'', "''")
    );
    let mut runs = Runs::default();
    let mut operators = BTreeMap::new();
    for i in 0..repeat {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let started = Instant::now();
        let plan = ctx.sql(&copy).await?.create_physical_plan().await?;
        let planned = started.elapsed();
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await?;
        let t = started.elapsed();
        runs.rows = copied_rows(&batches);
        runs.times.push(t);
        runs.planning.push(planned);
        eprintln!(
            "  {name}: write run {}: {} rows, {:.3} s (planning {:.3} s)",
            i + 1,
            runs.rows,
            t.as_secs_f64(),
            planned.as_secs_f64()
        );
        if i + 1 == repeat {
            let text = format!(
                "-- {name}: COPY to zstd Parquet, wall {:.3} s (planning {:.3} s)\n-- {copy}\n\n{}",
                t.as_secs_f64(),
                planned.as_secs_f64(),
                DisplayableExecutionPlan::with_metrics(plan.as_ref()).indent(true)
            );
            std::fs::write(out.join(format!("explain_analyze_{name}.txt")), text)?;
            operator_times(plan.as_ref(), &mut operators);
        }
    }
    Ok((runs, operators))
}

/// The row count COPY returns (one `count` column).
fn copied_rows(batches: &[datafusion::arrow::array::RecordBatch]) -> u64 {
    use datafusion::arrow::array::{Array, UInt64Array};
    batches
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
        .flat_map(|a| (0..a.len()).map(move |i| a.value(i)))
        .sum()
}

/// Sums each operator's own CPU timers (seconds, over all partitions and threads) by operator
/// name: `elapsed_compute`, and for the Parquet scan `time_elapsed_processing` (decode).
fn operator_times(plan: &dyn ExecutionPlan, into: &mut BTreeMap<String, f64>) {
    if let Some(metrics) = plan.metrics() {
        let metrics = metrics.aggregate_by_name();
        let mut add = |key: String, nanos: usize| *into.entry(key).or_default() += nanos as f64 / 1e9;
        if let Some(ns) = metrics.elapsed_compute() {
            add(plan.name().to_string(), ns);
        }
        if let Some(v) = metrics.sum_by_name("time_elapsed_processing") {
            add(format!("{} (decode)", plan.name()), v.as_usize());
        }
    }
    for child in plan.children() {
        operator_times(child.as_ref(), into);
    }
}

fn count_files(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        if entry?.path().join("bhavcopy.parquet").is_file() {
            n += 1;
        }
    }
    Ok(n)
}

fn print_views(table: &[ViewResult]) {
    let secs = |m: &BTreeMap<&str, Runs>, k: &str| m.get(k).map(|r| r.best().as_secs_f64());
    println!("\nFull feature views, wall clock (best run), seconds:");
    println!(
        "  {:<21} {:>10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "view", "rows", "read", "+sort", "+winsort", "compute", "write", "TOTAL"
    );
    for ViewResult { view, steps: m, .. } in table {
        let total = secs(m, "5_total_with_write").unwrap_or_default();
        let cell = |k: &str| secs(m, k).map_or_else(|| "-".to_string(), |s| format!("{s:.3}"));
        let write = secs(m, "4_compute").map_or_else(|| "-".to_string(), |c| format!("{:.3}", total - c));
        println!(
            "  {view:<21} {:>10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>9.3}",
            m["5_total_with_write"].rows,
            cell("1_read"),
            cell("2_read_sort"),
            cell("3_read_window_sort"),
            cell("4_compute"),
            write,
            total
        );
    }
    println!(
        "  read: scan+filter of the columns the view needs; +sort: same ORDER BY scrip_code, trade_date;\n  \
         +winsort: same under row_number() OVER (PARTITION BY scrip_code ORDER BY trade_date), the view's own \
         repartition+sort;\n  compute: SELECT * FROM view drained; write = TOTAL - compute; TOTAL: COPY to zstd Parquet."
    );
    let all_views = table.iter().map(|r| r.steps["5_total_with_write"].best().as_secs_f64()).sum::<f64>();
    println!("  {:<21} {:>66.3}", "both views", all_views);
    println!("\nOperator CPU time of the TOTAL run (summed over partitions; can exceed wall clock), seconds:");
    for ViewResult { view, operators, .. } in table {
        let mut ops: Vec<_> = operators.iter().collect();
        ops.sort_by(|a, b| b.1.total_cmp(a.1));
        let line: Vec<String> = ops.iter().filter(|(_, s)| **s >= 0.0005).map(|(k, s)| format!("{k} {s:.3}")).collect();
        println!("  {view}: {}", line.join(", "));
    }
}
