//! Parameters of prepared statements: received within limits, checked against the statement's
//! placeholders (count and types, by name), and turned into one row of values per execution.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use futures::{Stream, TryStreamExt};
use tonic::Status;

/// Reads parameter batches, refusing more than `max_rows` rows or `max_bytes` bytes as soon as
/// they are exceeded (not after everything has arrived).
pub async fn receive(
    stream: impl Stream<Item = Result<arrow_flight::FlightData, arrow_flight::error::FlightError>> + Send + 'static,
    max_rows: usize,
    max_bytes: usize,
) -> Result<Vec<RecordBatch>, Status> {
    let mut batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream);
    let (mut rows, mut bytes, mut out) = (0usize, 0usize, Vec::new());
    while let Some(batch) =
        batches.try_next().await.map_err(|e| Status::invalid_argument(format!("reading parameters: {e}")))?
    {
        rows += batch.num_rows();
        bytes += super::received_bytes(&batch);
        if rows > max_rows {
            return Err(Status::invalid_argument(format!(
                "more than {max_rows} parameter rows bound to one statement (server.limits.max_parameter_rows)"
            )));
        }
        if bytes > max_bytes {
            return Err(Status::resource_exhausted(format!(
                "parameters larger than {max_bytes} bytes (server.limits.upload_bytes_per_session)"
            )));
        }
        out.push(batch);
    }
    Ok(out)
}

/// The statement's placeholders in order (`$1`, `$2`, ..., `$10` after `$9`), with the types
/// the planner inferred.
pub fn placeholders(plan: &LogicalPlan) -> Result<Vec<(String, Option<DataType>)>, Status> {
    let types = plan.get_parameter_types().map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
    let mut ids: Vec<_> = types.into_iter().collect();
    ids.sort_by_key(|(id, _)| (id.len(), id.clone()));
    Ok(ids)
}

/// One row of values per execution, each cast to its placeholder's type. A row with more or
/// fewer values than placeholders, or a value that does not convert, is refused with the
/// parameter named.
pub fn bind_rows(
    plan: &LogicalPlan,
    batches: &[RecordBatch],
    max_rows: usize,
) -> Result<Vec<Vec<ScalarValue>>, Status> {
    let expected = placeholders(plan)?;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if total > max_rows {
        return Err(Status::invalid_argument(format!(
            "{total} parameter rows bound; at most {max_rows} per statement (server.limits.max_parameter_rows)"
        )));
    }
    let names = expected.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", ");
    let mut rows = Vec::with_capacity(total);
    for batch in batches {
        if batch.num_columns() != expected.len() {
            return Err(Status::invalid_argument(format!(
                "the statement has {} parameter(s) ({}) but {} value(s) were bound per row",
                expected.len(),
                if names.is_empty() { "none" } else { names.as_str() },
                batch.num_columns()
            )));
        }
        let options = CastOptions { safe: false, ..CastOptions::default() };
        let columns = batch
            .columns()
            .iter()
            .zip(&expected)
            .map(|(c, (id, ty))| match ty {
                Some(t) if c.data_type() != t && !c.data_type().is_null() => {
                    cast_with_options(c, t, &options).map_err(|e| {
                        Status::invalid_argument(format!(
                            "parameter {id}: expected {t}, got {} that does not convert: {e}",
                            c.data_type()
                        ))
                    })
                }
                _ => Ok(std::sync::Arc::clone(c)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let values = columns
                .iter()
                .zip(&expected)
                .map(|(c, (id, _))| {
                    ScalarValue::try_from_array(c, row)
                        .map_err(|e| Status::invalid_argument(format!("parameter {id}, row {row}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            rows.push(values);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn plan(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        ctx.state().create_logical_plan(sql).await.unwrap()
    }

    fn batch(cols: Vec<(&str, datafusion::arrow::array::ArrayRef)>) -> RecordBatch {
        let schema =
            Schema::new(cols.iter().map(|(n, c)| Field::new(*n, c.data_type().clone(), true)).collect::<Vec<_>>());
        RecordBatch::try_new(Arc::new(schema), cols.into_iter().map(|(_, c)| c).collect()).unwrap()
    }

    #[tokio::test]
    async fn counts_and_types_are_checked_by_name() {
        let p = plan("select * from (values (1, 'a')) t(x, y) where x = $1 and y = $2").await;
        let ok = batch(vec![
            ("a", Arc::new(StringArray::from(vec!["1", "2"])) as _),
            ("b", Arc::new(StringArray::from(vec!["a", "b"])) as _),
        ]);
        let rows = bind_rows(&p, &[ok], 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][0], ScalarValue::Int64(Some(2)));
        let extra = batch(vec![
            ("a", Arc::new(Int64Array::from(vec![1])) as _),
            ("b", Arc::new(StringArray::from(vec!["a"])) as _),
            ("c", Arc::new(Int64Array::from(vec![3])) as _),
        ]);
        let e = bind_rows(&p, &[extra], 10).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("2 parameter(s) ($1, $2) but 3"), "{}", e.message());
        let wrong = batch(vec![
            ("a", Arc::new(StringArray::from(vec!["not a number"])) as _),
            ("b", Arc::new(StringArray::from(vec!["a"])) as _),
        ]);
        let e = bind_rows(&p, &[wrong], 10).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with("parameter $1: expected Int64"), "{}", e.message());
        let many = batch(vec![
            ("a", Arc::new(Int64Array::from(vec![1; 11])) as _),
            ("b", Arc::new(StringArray::from(vec!["a"; 11])) as _),
        ]);
        assert!(bind_rows(&p, &[many], 10).unwrap_err().message().contains("max_parameter_rows"));
    }
}
