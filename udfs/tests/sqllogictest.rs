//! Runs the `.slt` files in `tests/slt/` against a DataFusion session with every window UDF
//! of this crate registered — one test per file, each on a fresh session.
//!
//! Values are printed as text: NULL as `NULL`, floats rounded to 6 decimals with trailing
//! zeros trimmed (`1.500000` → `1.5`, `-0` → `0`), everything else with arrow's display.

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner, strict_column_validator};
use std::path::PathBuf;

/// One session of the engine under test.
struct DataFusionDb {
    ctx: SessionContext,
}

impl DataFusionDb {
    fn new() -> Self {
        // Several target partitions so PARTITION BY really splits work across streams.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
        for udwf in bhavstore_udfs::all_window_udfs() {
            ctx.register_udwf(udwf);
        }
        Self { ctx }
    }
}

#[async_trait]
impl AsyncDB for DataFusionDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let df = self.ctx.sql(sql).await?;
        let types = df.schema().fields().iter().map(|f| column_type(f.data_type())).collect();
        let batches = df.collect().await?;
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(format_rows(batch)?);
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "datafusion"
    }
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_floating() || matches!(data_type, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        DefaultColumnType::FloatingPoint
    } else if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        DefaultColumnType::Text
    } else {
        DefaultColumnType::Any
    }
}

fn format_rows(batch: &RecordBatch) -> Result<Vec<Vec<String>>, DataFusionError> {
    (0..batch.num_rows())
        .map(|row| batch.columns().iter().map(|column| format_value(column.as_ref(), row)).collect())
        .collect()
}

fn format_value(column: &dyn Array, row: usize) -> Result<String, DataFusionError> {
    if column.is_null(row) {
        return Ok("NULL".to_owned());
    }
    Ok(match column.data_type() {
        DataType::Float64 => format_float(column.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => format_float(f64::from(column.as_primitive::<Float32Type>().value(row))),
        _ => array_value_to_string(column, row)?,
    })
}

/// Six decimals, trailing zeros trimmed, no negative zero.
fn format_float(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let fixed = format!("{v:.6}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" { "0".to_owned() } else { trimmed.to_owned() }
}

/// `tests/slt`, from the run-time `CARGO_MANIFEST_DIR` (a reused binary's compile-time one may
/// name another checkout).
fn slt_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
        .join("tests/slt")
}

async fn run_slt(name: &str) {
    let path = slt_dir().join(format!("{name}.slt"));
    let mut runner = Runner::new(|| async { Ok(DataFusionDb::new()) });
    // `query TIR` must match the result's column types: every UDF returns Float64 (`R`).
    runner.with_column_validator(strict_column_validator);
    if let Err(e) = runner.run_file_async(&path).await {
        panic!("{}: {}", path.display(), e.display(false));
    }
}

macro_rules! slt_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                run_slt(stringify!($name)).await;
            }
        )*
    };
}

slt_tests!(sma_sum, rolling_std, rolling_minmax, zscore, ema, rsi, wilder_mean, returns, arguments);

#[test]
fn every_slt_file_has_a_test() {
    let dir = slt_dir();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut covered =
        vec!["arguments", "ema", "returns", "rolling_minmax", "rolling_std", "rsi", "sma_sum", "wilder_mean", "zscore"];
    covered.sort_unstable();
    assert_eq!(files, covered, "add new .slt files to slt_tests!");
}
