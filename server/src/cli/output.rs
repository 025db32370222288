//! Printing query results as a table, CSV or JSON.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::args::OutputFormat;

/// Writes `batches` (of `schema`) to `out` in `format`. An empty result still prints its
/// header in CSV, as psql `--csv` and DuckDB do, so readers of the output get the columns.
pub(super) fn write_batches(
    out: &mut dyn Write,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<(), super::CliError> {
    match format {
        OutputFormat::Table => {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let table = pretty_format_batches(batches).map_err(|e| super::CliError::Output(e.to_string()))?;
            writeln!(out, "{table}").map_err(|e| super::CliError::Output(e.to_string()))?;
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })
                .map_err(|e| super::CliError::Output(e.to_string()))?;
        }
        OutputFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut *out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(std::sync::Arc::clone(schema)))
                    .map_err(|e| super::CliError::Output(e.to_string()))?;
            }
            for b in batches {
                w.write(b).map_err(|e| super::CliError::Output(e.to_string()))?;
            }
        }
        OutputFormat::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(|e| super::CliError::Output(e.to_string()))?;
            w.finish().map_err(|e| super::CliError::Output(e.to_string()))?;
            writeln!(out).map_err(|e| super::CliError::Output(e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn empty_csv_has_its_header() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("scrip_code", DataType::Int32, false),
            Field::new("close", DataType::Float64, true),
        ]));
        let mut out = Vec::new();
        write_batches(&mut out, &schema, &[], OutputFormat::Csv).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "scrip_code,close\n");
    }
}
