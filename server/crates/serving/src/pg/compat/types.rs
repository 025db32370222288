//! Result types as Postgres clients expect them. Postgres has no unsigned integers: an
//! unsigned column (`source_line`, the counts of the system tables) would go out as NUMERIC,
//! which drivers turn into `Decimal`, `BigDecimal` or strings. They go out as the signed type
//! that holds every value (INT8 for `UInt32` and `UInt64`; a `UInt64` above `i64::MAX` fails
//! the statement rather than wrapping).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, cast};

/// The signed type a client receives instead of `ty`, if `ty` is unsigned.
#[must_use]
pub fn wire_type(ty: &DataType) -> Option<DataType> {
    match ty {
        DataType::UInt8 => Some(DataType::Int16),
        DataType::UInt16 => Some(DataType::Int32),
        DataType::UInt32 | DataType::UInt64 => Some(DataType::Int64),
        _ => None,
    }
}

/// `plan` with its unsigned output columns cast to [`wire_type`]; unchanged when it has none
/// or is not a query.
pub fn signed_output(plan: LogicalPlan) -> Result<LogicalPlan> {
    if !matches!(
        plan,
        LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Values(_)
    ) {
        return Ok(plan);
    }
    let schema = plan.schema();
    if !schema.fields().iter().any(|f| wire_type(f.data_type()).is_some()) {
        return Ok(plan);
    }
    let exprs: Vec<_> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = datafusion::common::Column::from((qualifier, field));
            let e = datafusion::prelude::Expr::Column(column);
            match wire_type(field.data_type()) {
                Some(to) => cast(e, to).alias_qualified(qualifier.cloned(), field.name()),
                None => e,
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn unsigned_columns_go_out_signed() {
        let ctx = SessionContext::new();
        let plan = ctx
            .sql("select arrow_cast(7, 'UInt64') as line, arrow_cast(1, 'UInt8') as b, 'x' as s")
            .await
            .unwrap()
            .into_optimized_plan()
            .unwrap();
        let plan = signed_output(plan).unwrap();
        let types: Vec<_> = plan.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        assert_eq!(
            types,
            vec![("line".into(), DataType::Int64), ("b".into(), DataType::Int16), ("s".into(), DataType::Utf8)]
        );
        let batches = ctx.execute_logical_plan(plan).await.unwrap().collect().await.unwrap();
        assert_eq!(batches[0].num_rows(), 1);
    }
}
