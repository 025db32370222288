//! Cumulative window functions `f(x) OVER (PARTITION BY ... ORDER BY ...)`: a value per row from
//! the partition's first row to the current one, computed for the whole partition in one pass.
//! They are what `SUM(x) OVER (... ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)` and its
//! `MAX`/`MIN`/`FIRST_VALUE` cousins compute, without DataFusion's row-at-a-time frame
//! machinery (an order of magnitude slower on many small partitions, such as one trading
//! session per instrument).
//!
//! NULL, NaN and ±∞ inputs are skipped (as SQL aggregates skip NULL); a row before the first
//! value gets NULL. `cum_first` is the partition's first row's value, whatever it is.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion_common::arrow::array::{ArrayRef, Float64Array};
use datafusion_common::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::cast::as_float64_array;
use datafusion_common::{Result, exec_err, plan_err};
use datafusion_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::window_doc_sections::DOC_SECTION_ANALYTICAL;
use datafusion_expr::{Documentation, PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl};

type Kernel = fn(&[Option<f64>]) -> Vec<Option<f64>>;

/// One cumulative function.
#[derive(Debug)]
pub(crate) struct CumulativeSpec {
    pub(crate) name: &'static str,
    pub(crate) version: u32,
    kernel: Kernel,
    description: &'static str,
}

fn running(x: &[Option<f64>], f: fn(f64, f64) -> f64) -> Vec<Option<f64>> {
    let mut acc: Option<f64> = None;
    x.iter()
        .map(|v| {
            if let Some(v) = v {
                acc = Some(acc.map_or(*v, |a| f(a, *v)));
            }
            acc
        })
        .collect()
}

/// Sum of the values so far, added left to right (the order SQL's running `SUM` adds them).
#[must_use]
pub fn cum_sum(x: &[Option<f64>]) -> Vec<Option<f64>> {
    running(x, |a, v| a + v)
}

/// Largest value so far.
#[must_use]
pub fn cum_max(x: &[Option<f64>]) -> Vec<Option<f64>> {
    running(x, f64::max)
}

/// Smallest value so far.
#[must_use]
pub fn cum_min(x: &[Option<f64>]) -> Vec<Option<f64>> {
    running(x, f64::min)
}

/// The first row's value on every row.
#[must_use]
pub fn cum_first(x: &[Option<f64>]) -> Vec<Option<f64>> {
    let first = x.first().copied().flatten();
    vec![first; x.len()]
}

pub(crate) static CUMULATIVE: [CumulativeSpec; 4] = [
    CumulativeSpec {
        name: "cum_sum",
        version: 1,
        kernel: cum_sum,
        description: "Sum of x from the partition's first row to this one, added in window order \
            (= SUM(x) OVER (... ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)). NULL until \
            the first non-NULL value.",
    },
    CumulativeSpec {
        name: "cum_max",
        version: 1,
        kernel: cum_max,
        description: "Largest x from the partition's first row to this one. NULL until the first \
            non-NULL value.",
    },
    CumulativeSpec {
        name: "cum_min",
        version: 1,
        kernel: cum_min,
        description: "Smallest x from the partition's first row to this one. NULL until the first \
            non-NULL value.",
    },
    CumulativeSpec {
        name: "cum_first",
        version: 1,
        kernel: cum_first,
        description: "x of the partition's first row, on every row (NULL if that x is NULL).",
    },
];

impl CumulativeSpec {
    pub(crate) fn udwf(&'static self) -> WindowUDF {
        let documentation = Documentation::builder(
            DOC_SECTION_ANALYTICAL,
            self.description,
            format!("{}(x) OVER (PARTITION BY ... ORDER BY ...)", self.name),
        )
        .with_argument("x", "Numeric expression; computed as Float64. NaN and ±infinity count as NULL.")
        .build();
        WindowUDF::new_from_impl(CumulativeUdwf {
            spec: self,
            signature: Signature::user_defined(Volatility::Immutable),
            documentation,
        })
    }
}

#[derive(Debug)]
struct CumulativeUdwf {
    spec: &'static CumulativeSpec,
    signature: Signature,
    documentation: Documentation,
}

impl PartialEq for CumulativeUdwf {
    fn eq(&self, other: &Self) -> bool {
        self.spec.name == other.spec.name
    }
}

impl Eq for CumulativeUdwf {}

impl Hash for CumulativeUdwf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.spec.name.hash(state);
    }
}

impl WindowUDFImpl for CumulativeUdwf {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [x] if x.is_numeric() || x.is_null() => Ok(vec![DataType::Float64]),
            [x] => plan_err!("{}: x must be numeric, got a value of type {x}", self.spec.name),
            other => plan_err!("{} takes 1 argument (x), got {}", self.spec.name, other.len()),
        }
    }

    fn partition_evaluator(&self, _call: PartitionEvaluatorArgs) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(CumulativeEvaluator { spec: self.spec }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(field_args.name(), DataType::Float64, true)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

#[derive(Debug)]
struct CumulativeEvaluator {
    spec: &'static CumulativeSpec,
}

impl PartitionEvaluator for CumulativeEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let Some(x) = values.first() else {
            return exec_err!("{}: missing argument x", self.spec.name);
        };
        let x: Vec<Option<f64>> = as_float64_array(x)?.iter().map(|v| v.filter(|f| f.is_finite())).collect();
        let out = (self.spec.kernel)(&x);
        if out.len() != num_rows {
            return exec_err!("{}: produced {} values for {num_rows} rows", self.spec.name, out.len());
        }
        Ok(Arc::new(out.into_iter().map(|v| v.filter(|f| f.is_finite())).collect::<Float64Array>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_values_skip_nulls_and_match_a_naive_loop() {
        let x = [None, Some(2.0), Some(-1.0), None, Some(5.0), Some(0.5)];
        assert_eq!(cum_sum(&x), [None, Some(2.0), Some(1.0), Some(1.0), Some(6.0), Some(6.5)]);
        assert_eq!(cum_max(&x), [None, Some(2.0), Some(2.0), Some(2.0), Some(5.0), Some(5.0)]);
        assert_eq!(cum_min(&x), [None, Some(2.0), Some(-1.0), Some(-1.0), Some(-1.0), Some(-1.0)]);
        assert_eq!(cum_first(&x), [None; 6]);
        assert_eq!(cum_first(&[Some(3.0), None]), [Some(3.0), Some(3.0)]);
        assert!(cum_sum(&[]).is_empty());
        // Against a naive prefix recomputation on a longer series.
        let long: Vec<Option<f64>> =
            (0..500).map(|i| if i % 7 == 3 { None } else { Some(((i * 37) % 101) as f64 / 3.0 - 10.0) }).collect();
        let (s, mx, mn) = (cum_sum(&long), cum_max(&long), cum_min(&long));
        for i in 0..long.len() {
            let prefix: Vec<f64> = long[..=i].iter().flatten().copied().collect();
            let naive_sum = prefix.iter().copied().reduce(|a, b| a + b);
            assert_eq!(s[i].map(f64::to_bits), naive_sum.map(f64::to_bits), "sum {i}");
            assert_eq!(mx[i], prefix.iter().copied().reduce(f64::max), "max {i}");
            assert_eq!(mn[i], prefix.iter().copied().reduce(f64::min), "min {i}");
        }
    }
}
