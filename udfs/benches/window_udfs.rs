//! Throughput over 1M rows: 10 partitions of 100k rows, window 20 (14 for RSI, lag 1 for
//! returns), 1% NULLs. Criterion reports time per 1M-row iteration and elements/s.
//!
//! * `kernels_1M_rows`: the pure kernels on `&[Option<f64>]`.
//! * `udwf_1M_rows`: the registered UDWFs' `PartitionEvaluator::evaluate_all` on arrow
//!   `Float64Array` partitions, i.e. the kernel plus the arrow conversions DataFusion pays.

use bhavstore_udfs::kernels;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::function::PartitionEvaluatorArgs;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use std::hint::black_box;
use std::sync::Arc;

const PARTITIONS: usize = 10;
const ROWS_PER_PARTITION: usize = 100_000;

type Kernel = fn(&[Option<f64>], usize) -> Vec<Option<f64>>;

const KERNELS: [(&str, Kernel, usize); 10] = [
    ("sma", kernels::sma, 20),
    ("rolling_sum", kernels::rolling_sum, 20),
    ("rolling_std", kernels::rolling_std, 20),
    ("zscore", kernels::zscore, 20),
    ("rolling_min", kernels::rolling_min, 20),
    ("rolling_max", kernels::rolling_max, 20),
    ("ema", kernels::ema, 20),
    ("rsi", kernels::rsi, 14),
    ("pct_change", kernels::pct_change, 1),
    ("log_return", kernels::log_return, 1),
];

/// Random-walk prices around 1000 with 1% NULLs (xorshift, deterministic).
fn partition(seed: u64) -> Vec<Option<f64>> {
    let mut state = seed | 1;
    let mut price = 1000.0f64;
    (0..ROWS_PER_PARTITION)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let r = (state >> 11) as f64 / (1u64 << 53) as f64;
            price *= 1.0 + (r - 0.5) * 0.02;
            (!state.is_multiple_of(100)).then_some(price)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let partitions: Vec<Vec<Option<f64>>> = (0..PARTITIONS as u64).map(|p| partition(p + 1)).collect();
    let mut group = c.benchmark_group("kernels_1M_rows");
    group.throughput(Throughput::Elements((PARTITIONS * ROWS_PER_PARTITION) as u64));
    for (name, kernel, n) in KERNELS {
        group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
            b.iter(|| {
                for values in &partitions {
                    black_box(kernel(black_box(values), n));
                }
            });
        });
    }
    group.finish();

    let arrays: Vec<ArrayRef> =
        partitions.iter().map(|p| Arc::new(p.iter().copied().collect::<Float64Array>()) as ArrayRef).collect();
    let mut group = c.benchmark_group("udwf_1M_rows");
    group.throughput(Throughput::Elements((PARTITIONS * ROWS_PER_PARTITION) as u64));
    for udwf in bhavstore_udfs::all_window_udfs() {
        let n = KERNELS.iter().find(|(name, ..)| *name == udwf.name()).map_or(20, |k| k.2);
        let exprs: [Arc<dyn PhysicalExpr>; 2] =
            [Arc::new(Column::new("x", 0)), Arc::new(Literal::new(ScalarValue::Int64(Some(n as i64))))];
        let fields: [FieldRef; 2] =
            [Arc::new(Field::new("x", DataType::Float64, true)), Arc::new(Field::new("n", DataType::Int64, false))];
        group.bench_function(BenchmarkId::new(udwf.name(), n), |b| {
            b.iter(|| {
                for array in &arrays {
                    let args = PartitionEvaluatorArgs::new(&exprs, &fields, false, false);
                    let mut evaluator = udwf.partition_evaluator_factory(args).unwrap();
                    black_box(evaluator.evaluate_all(std::slice::from_ref(array), array.len()).unwrap());
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
