//! Printing query results as a table, CSV or JSON.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::args::OutputFormat;

/// Writes `batches` to `out` in `format`.
pub(super) fn write_batches(
    out: &mut dyn Write,
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
