//! Recursive functions resumed from a saved state, for incremental materialization.
//!
//! `ema`, `rsi` and `wilder_mean` depend on every earlier row of their partition. An incremental
//! run that recomputed them from carried rows would need hundreds of rows per entity before
//! older ones stop mattering; instead, each call of the view is planned as its resumable twin
//! (see [`resumable_udwf`]), which also receives the partition key and the order key:
//!
//! * before computing a partition it looks up the state saved for that entity by the previous
//!   run ([`RecursionStates::new`]), skips the rows that state already covers (their results
//!   are NULL: the run does not emit them) and continues the recursion from it;
//! * after, it records the state after the partition's last row ([`RecursionStates::finals`])
//!   for the next run.
//!
//! The continued recursion performs the same operations on the same values as one pass from the
//! first row, so the results are the full run's bit for bit (see [`crate::kernels::Recursion`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use datafusion_common::arrow::array::{ArrayRef, Float64Array};
use datafusion_common::arrow::compute::kernels::cmp::lt_eq;
use datafusion_common::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::cast::as_float64_array;
use datafusion_common::{Result, ScalarValue, exec_err, plan_err};
use datafusion_expr::function::{ExpressionArgs, PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::{PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl};
use datafusion_physical_expr_common::physical_expr::PhysicalExpr;

use crate::args;
use crate::functions::FUNCTIONS;
use crate::kernels::{Recursion, Resume};
use crate::udwf::{FunctionSpec, finite};

/// One entity's state of one call: the order key of the last row it covers, and the state
/// after that row.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    /// Order key (event time) of the last row the state includes.
    pub upto: ScalarValue,
    /// The recursion's state after that row.
    pub state: Recursion,
}

/// Per call (its key in the plan) and entity: saved states.
pub type StatesByCall = HashMap<String, HashMap<ScalarValue, Saved>>;

/// The states one run starts from and the states it leaves, shared by every resumable call of
/// the run's plan.
#[derive(Debug, Default)]
pub struct RecursionStates {
    seeds: StatesByCall,
    finals: Mutex<StatesByCall>,
}

impl RecursionStates {
    /// States to start from (empty: every partition from its first row, as in a full run).
    #[must_use]
    pub fn new(seeds: StatesByCall) -> Self {
        Self { seeds, finals: Mutex::default() }
    }

    /// The states after the last row of every partition computed so far, plus the seeds of
    /// entities no partition held (kept unchanged for the run after).
    #[must_use]
    pub fn finals(&self) -> StatesByCall {
        let mut out = self.seeds.clone();
        let finals = self.finals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (call, by_entity) in finals.iter() {
            out.entry(call.clone()).or_default().extend(by_entity.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    fn record(&self, call: &str, entity: ScalarValue, saved: Saved) {
        let mut finals = self.finals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        finals.entry(call.to_string()).or_default().insert(entity, saved);
    }
}

/// Whether `name` is a recursive function that has a resumable twin.
#[must_use]
pub fn is_resumable(name: &str) -> bool {
    FUNCTIONS.iter().any(|f| f.name == name && f.resume.is_some())
}

/// The resumable twin of the recursive function `name`, called as
/// `name(x, n, partition_key, order_key)`; `call` names the call in the plan (its states are
/// kept under it). `None` if `name` is not resumable.
#[must_use]
pub fn resumable_udwf(name: &str, call: String, states: Arc<RecursionStates>) -> Option<WindowUDF> {
    let spec = FUNCTIONS.iter().find(|f| f.name == name)?;
    let resume = spec.resume?;
    Some(WindowUDF::new_from_impl(ResumableUdwf {
        spec,
        resume,
        call,
        states,
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug)]
struct ResumableUdwf {
    spec: &'static FunctionSpec,
    resume: Resume,
    call: String,
    states: Arc<RecursionStates>,
    signature: Signature,
}

impl PartialEq for ResumableUdwf {
    fn eq(&self, other: &Self) -> bool {
        self.spec.name == other.spec.name && self.call == other.call && Arc::ptr_eq(&self.states, &other.states)
    }
}

impl Eq for ResumableUdwf {}

impl Hash for ResumableUdwf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.spec.name.hash(state);
        self.call.hash(state);
    }
}

impl WindowUDFImpl for ResumableUdwf {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [x, n, key, order] = arg_types else {
            return plan_err!(
                "resumable {} takes 4 arguments (x, n, partition key, order key), got {}",
                self.spec.name,
                arg_types.len()
            );
        };
        let mut out = args::coerce_types(self.spec.name, &self.spec.arg, &[x.clone(), n.clone()])?;
        out.extend([key.clone(), order.clone()]);
        Ok(out)
    }

    /// `x` and the two keys are evaluated per row; `n` is read once as a literal.
    fn expressions(&self, expr_args: ExpressionArgs) -> Vec<Arc<dyn PhysicalExpr>> {
        let exprs = expr_args.input_exprs();
        [0, 2, 3].iter().filter_map(|&i| exprs.get(i).cloned()).collect()
    }

    fn partition_evaluator(&self, call: PartitionEvaluatorArgs) -> Result<Box<dyn PartitionEvaluator>> {
        let n = args::int_arg(self.spec.name, &self.spec.arg, &call)?;
        Ok(Box::new(ResumableEvaluator {
            name: self.spec.name,
            resume: self.resume,
            n,
            call: self.call.clone(),
            states: Arc::clone(&self.states),
        }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(field_args.name(), DataType::Float64, true)))
    }
}

#[derive(Debug)]
struct ResumableEvaluator {
    name: &'static str,
    resume: Resume,
    n: usize,
    call: String,
    states: Arc<RecursionStates>,
}

impl PartitionEvaluator for ResumableEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let [x, key, order] = values else {
            return exec_err!("resumable {}: expected x, partition key and order key", self.name);
        };
        if num_rows == 0 {
            return Ok(Arc::new(Float64Array::from(Vec::<Option<f64>>::new())));
        }
        let x: Vec<Option<f64>> = as_float64_array(x)?.iter().map(finite).collect();
        let entity = ScalarValue::try_from_array(key, 0)?;
        let seed = self.states.seeds.get(&self.call).and_then(|m| m.get(&entity));
        // Rows come in window order (ascending order key): the rows a seed covers are a prefix.
        let (skip, mut state) = match seed {
            None => (0, Recursion::default()),
            Some(saved) => (covered(order, &saved.upto)?, saved.state),
        };
        let mut out: Vec<Option<f64>> = vec![None; skip];
        out.extend((self.resume)(&x[skip..], self.n, &mut state));
        if out.len() != num_rows {
            return exec_err!("{}: produced {} values for {num_rows} rows", self.name, out.len());
        }
        let upto = match seed {
            Some(saved) if skip == num_rows => saved.upto.clone(),
            _ => ScalarValue::try_from_array(order, num_rows - 1)?,
        };
        self.states.record(&self.call, entity, Saved { upto, state });
        Ok(Arc::new(out.into_iter().map(finite).collect::<Float64Array>()))
    }
}

/// Rows at the start of `order` whose key is not after `upto` (a NULL key ends them).
fn covered(order: &ArrayRef, upto: &ScalarValue) -> Result<usize> {
    let not_after = lt_eq(order, &upto.to_scalar()?)?;
    Ok(not_after.iter().take_while(|v| *v == Some(true)).count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels;
    use datafusion_common::arrow::array::{Date32Array, Int64Array};

    fn run(states: &Arc<RecursionStates>, name: &str, xs: &[Option<f64>], dates: &[i32]) -> Vec<Option<f64>> {
        assert!(is_resumable(name) && resumable_udwf(name, "c".into(), Arc::clone(states)).is_some());
        let spec = FUNCTIONS.iter().find(|f| f.name == name).expect("known");
        let mut ev = ResumableEvaluator {
            name: spec.name,
            resume: spec.resume.expect("resumable"),
            n: 3,
            call: "c".into(),
            states: Arc::clone(states),
        };
        let values: Vec<ArrayRef> = vec![
            Arc::new(xs.iter().copied().collect::<Float64Array>()),
            Arc::new(Int64Array::from(vec![7; xs.len()])),
            Arc::new(Date32Array::from(dates.to_vec())),
        ];
        let out = ev.evaluate_all(&values, xs.len()).expect("evaluates");
        as_float64_array(&out).expect("f64").iter().collect()
    }

    /// A run over the first rows, then one over its last two rows (the carried tail) plus the
    /// new ones from the saved state, gives the one-pass values of the new rows bit for bit.
    #[test]
    fn a_continued_partition_equals_one_pass() {
        let xs: Vec<Option<f64>> = [10.0, 11.5, 9.25, 12.0, 12.5, 11.0, 13.75, 14.0].into_iter().map(Some).collect();
        let dates: Vec<i32> = (100..108).collect();
        for name in ["ema", "rsi", "wilder_mean"] {
            let whole = match name {
                "ema" => kernels::ema(&xs, 3),
                "rsi" => kernels::rsi(&xs, 3),
                _ => kernels::wilder_mean(&xs, 3),
            };
            let first = Arc::new(RecursionStates::default());
            assert_eq!(run(&first, name, &xs[..5], &dates[..5]), whole[..5]);
            let second = Arc::new(RecursionStates::new(first.finals()));
            let got = run(&second, name, &xs[3..], &dates[3..]);
            // The two carried rows are covered by the state: NULL, not emitted by a run.
            assert_eq!(got[..2], [None, None], "{name}");
            let bits = |v: &[Option<f64>]| v.iter().map(|x| x.map(f64::to_bits)).collect::<Vec<_>>();
            assert_eq!(bits(&got[2..]), bits(&whole[5..]), "{name}");
            // The state after the second run is at the last row.
            let saved = &second.finals()["c"][&ScalarValue::Int64(Some(7))];
            assert_eq!(saved.upto, ScalarValue::Date32(Some(107)));
        }
    }

    /// An entity with no new rows keeps its state for the run after.
    #[test]
    fn an_entity_without_new_rows_keeps_its_state() {
        let xs: Vec<Option<f64>> = [1.0, 2.0, 3.0, 4.0].into_iter().map(Some).collect();
        let first = Arc::new(RecursionStates::default());
        run(&first, "ema", &xs, &[1, 2, 3, 4]);
        let seeds = first.finals();
        let second = Arc::new(RecursionStates::new(seeds.clone()));
        assert_eq!(run(&second, "ema", &xs[2..], &[3, 4]), [None, None]);
        assert_eq!(second.finals(), seeds);
    }
}
