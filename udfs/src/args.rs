//! Argument rules shared by every function: the value argument is coerced to `Float64`, the
//! integer argument (`n` or `k`) must be an integer literal no smaller than a minimum.

use datafusion_common::arrow::datatypes::{DataType, Schema};
use datafusion_common::arrow::record_batch::RecordBatch;
use datafusion_common::{Result, ScalarValue, plan_err};
use datafusion_expr::function::PartitionEvaluatorArgs;
use datafusion_expr::{ColumnarValue, ExpressionPlacement};
use std::sync::Arc;

/// Describes a function's integer argument, for validation and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IntArg {
    /// What the argument means, e.g. "window length".
    pub(crate) meaning: &'static str,
    /// Its name in the SQL signature, e.g. "n".
    pub(crate) name: &'static str,
    /// Smallest accepted value.
    pub(crate) min: i64,
}

impl IntArg {
    /// `n >= 1`: window length of a rolling function.
    pub(crate) const WINDOW: IntArg = IntArg { meaning: "window length", name: "n", min: 1 };
    /// `n >= 2`: window length of a function built on the sample standard deviation.
    pub(crate) const SAMPLE_WINDOW: IntArg = IntArg { meaning: "window length", name: "n", min: 2 };
    /// `k >= 1`: lag of a return.
    pub(crate) const LAG: IntArg = IntArg { meaning: "lag", name: "k", min: 1 };

    fn requirement(&self) -> String {
        if self.min == 1 {
            "a positive integer literal".to_owned()
        } else {
            format!("an integer literal >= {}", self.min)
        }
    }

    fn rejected<T>(&self, function: &str, got: impl std::fmt::Display) -> Result<T> {
        plan_err!("{function}: {} {} must be {}, got {got}", self.meaning, self.name, self.requirement())
    }
}

/// Coerces `(x, n)`: any numeric `x` (or an untyped NULL) to `Float64`, any integer `n` to
/// `Int64`. A non-integer `n` is rejected here, before a cast could truncate `2.5` to `2`.
pub(crate) fn coerce_types(function: &str, arg: &IntArg, types: &[DataType]) -> Result<Vec<DataType>> {
    let [x, n] = types else {
        return plan_err!("{function} takes 2 arguments (x, {}), got {}", arg.name, types.len());
    };
    if !(x.is_numeric() || x.is_null()) {
        return plan_err!("{function}: x must be numeric, got a value of type {x}");
    }
    if n.is_null() {
        return arg.rejected(function, "NULL");
    }
    if !n.is_integer() {
        return arg.rejected(function, format_args!("a value of type {n}"));
    }
    Ok(vec![DataType::Float64, DataType::Int64])
}

/// Reads and validates the integer argument (second argument) from the physical call.
pub(crate) fn int_arg(function: &str, arg: &IntArg, call: &PartitionEvaluatorArgs) -> Result<usize> {
    let Some(expr) = call.input_exprs().get(1) else {
        return plan_err!("{function} takes 2 arguments (x, {}), got {}", arg.name, call.input_exprs().len());
    };
    if expr.placement() != ExpressionPlacement::Literal {
        return arg.rejected(function, format_args!("the non-literal expression {expr}"));
    }
    // A literal evaluates to its scalar without looking at the batch.
    let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let ColumnarValue::Scalar(value) = expr.evaluate(&empty)? else {
        return arg.rejected(function, format_args!("the non-literal expression {expr}"));
    };
    let integer = match value {
        ScalarValue::Int8(Some(v)) => i64::from(v),
        ScalarValue::Int16(Some(v)) => i64::from(v),
        ScalarValue::Int32(Some(v)) => i64::from(v),
        ScalarValue::Int64(Some(v)) => v,
        ScalarValue::UInt8(Some(v)) => i64::from(v),
        ScalarValue::UInt16(Some(v)) => i64::from(v),
        ScalarValue::UInt32(Some(v)) => i64::from(v),
        ScalarValue::UInt64(Some(v)) => i64::try_from(v).unwrap_or(i64::MAX),
        v if v.is_null() => return arg.rejected(function, "NULL"),
        v => return arg.rejected(function, format_args!("{v} of type {}", v.data_type())),
    };
    if integer < arg.min {
        return arg.rejected(function, integer);
    }
    // Larger than the address space: no partition can fill such a window.
    Ok(usize::try_from(integer).unwrap_or(usize::MAX))
}
