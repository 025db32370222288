//! The one generic DataFusion window function: `f(x, n) -> Float64` evaluated by a kernel
//! over a whole partition at once.

use crate::args::{self, IntArg};
use datafusion_common::arrow::array::{ArrayRef, Float64Array};
use datafusion_common::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::cast::as_float64_array;
use datafusion_common::{Result, exec_err};
use datafusion_expr::function::{ExpressionArgs, PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::window_doc_sections::DOC_SECTION_ANALYTICAL;
use datafusion_expr::{Documentation, PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl};
use datafusion_physical_expr_common::physical_expr::PhysicalExpr;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A kernel: the partition's values in window order and the integer argument in, one output
/// per row out (see [`crate::kernels`]).
pub(crate) type Kernel = fn(&[Option<f64>], usize) -> Vec<Option<f64>>;

/// Everything that distinguishes one SQL function from another.
#[derive(Debug)]
pub(crate) struct FunctionSpec {
    /// SQL name.
    pub(crate) name: &'static str,
    /// Bumped whenever the kernel's results change, so feature versions built on it change too.
    pub(crate) version: u32,
    /// How many rows of history one output depends on.
    pub(crate) lookback: Lookback,
    /// The integer argument's rule.
    pub(crate) arg: IntArg,
    /// The computation.
    pub(crate) kernel: Kernel,
    /// For a recursive function, the computation continued from a saved state.
    pub(crate) resume: Option<crate::kernels::Resume>,
    /// One-paragraph description for `Documentation`, semantics included.
    pub(crate) description: &'static str,
}

/// How far back in the partition one output row looks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lookback {
    /// The last `n` rows.
    Window,
    /// This row and the one `k` rows back.
    Lag,
    /// A recursion over the whole partition; rows beyond the horizon weigh less than
    /// [`HORIZON_WEIGHT`] together (see [`recursive_horizon`]).
    Recursive {
        /// Weight of the newest value as a function of `n`.
        alpha: fn(usize) -> f64,
        /// Rows before the recursion starts (RSI needs one row to form its first difference).
        warm_up: usize,
    },
}

/// Combined weight below which older history cannot change a recursive result: 2^-64 of the
/// value is far below one unit in the last place of an `f64`, so a run that starts this far
/// back converges to the same double as one that started at the first row.
pub const HORIZON_WEIGHT: f64 = 1.0 / 18_446_744_073_709_551_616.0;

/// Rows a recursion with weight `alpha` must see before older rows stop mattering.
#[must_use]
pub fn recursive_horizon(alpha: f64) -> usize {
    if !(alpha > 0.0 && alpha < 1.0) {
        return 1;
    }
    (HORIZON_WEIGHT.ln() / (1.0 - alpha).ln()).ceil() as usize
}

impl Lookback {
    pub(crate) fn rows(self, n: usize) -> usize {
        match self {
            Lookback::Window => n.max(1),
            Lookback::Lag => n + 1,
            Lookback::Recursive { alpha, warm_up } => n + warm_up + recursive_horizon(alpha(n)),
        }
    }
}

impl FunctionSpec {
    /// The DataFusion window function for this spec.
    pub(crate) fn udwf(&'static self) -> WindowUDF {
        WindowUDF::new_from_impl(KernelUdwf::new(self))
    }
}

/// Adapts a [`FunctionSpec`] to DataFusion's [`WindowUDFImpl`].
#[derive(Debug)]
struct KernelUdwf {
    spec: &'static FunctionSpec,
    signature: Signature,
    documentation: Documentation,
}

impl KernelUdwf {
    fn new(spec: &'static FunctionSpec) -> Self {
        let arg = spec.arg;
        let documentation = Documentation::builder(
            DOC_SECTION_ANALYTICAL,
            spec.description,
            format!("{}(x, {}) OVER (PARTITION BY ... ORDER BY ...)", spec.name, arg.name),
        )
        .with_argument("x", "Numeric expression; computed as Float64. NaN and ±infinity count as NULL.")
        .with_argument(arg.name, format!("The {}: an integer literal >= {}.", arg.meaning, arg.min))
        .build();
        Self { spec, signature: Signature::user_defined(Volatility::Immutable), documentation }
    }
}

impl PartialEq for KernelUdwf {
    fn eq(&self, other: &Self) -> bool {
        self.spec.name == other.spec.name
    }
}

impl Eq for KernelUdwf {}

impl Hash for KernelUdwf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.spec.name.hash(state);
    }
}

impl WindowUDFImpl for KernelUdwf {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        args::coerce_types(self.spec.name, &self.spec.arg, arg_types)
    }

    /// Only `x` is evaluated per row; the integer argument is read once as a literal.
    fn expressions(&self, expr_args: ExpressionArgs) -> Vec<Arc<dyn PhysicalExpr>> {
        expr_args.input_exprs().iter().take(1).cloned().collect()
    }

    fn partition_evaluator(&self, call: PartitionEvaluatorArgs) -> Result<Box<dyn PartitionEvaluator>> {
        let n = args::int_arg(self.spec.name, &self.spec.arg, &call)?;
        Ok(Box::new(KernelEvaluator { spec: self.spec, n }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(field_args.name(), DataType::Float64, true)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

/// Runs the kernel over a whole partition (`uses_window_frame` is false, so DataFusion calls
/// [`PartitionEvaluator::evaluate_all`] once per partition, rows in window order).
#[derive(Debug)]
struct KernelEvaluator {
    spec: &'static FunctionSpec,
    n: usize,
}

impl PartitionEvaluator for KernelEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let Some(x) = values.first() else {
            return exec_err!("{}: missing argument x", self.spec.name);
        };
        let x: Vec<Option<f64>> = as_float64_array(x)?.iter().map(finite).collect();
        let out = (self.spec.kernel)(&x, self.n);
        if out.len() != num_rows {
            return exec_err!("{}: produced {} values for {num_rows} rows", self.spec.name, out.len());
        }
        Ok(Arc::new(out.into_iter().map(finite).collect::<Float64Array>()))
    }
}

/// NaN and ±∞ are NULL on the way in and on the way out.
pub(crate) fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}
