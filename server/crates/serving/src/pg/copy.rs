//! `COPY (query) TO STDOUT` and `COPY table TO STDOUT`, in Postgres' text or CSV format (psql's
//! `\copy ... to` and drivers' copy APIs use it). Any other COPY is refused: COPY to or from a
//! file or program would touch the server's disk.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use futures::StreamExt;
use pgwire::api::results::{CopyResponse, Response};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;

/// Whether the text is a COPY statement (its first keyword, after blanks and `--` comments).
#[must_use]
pub fn is_copy(query: &str) -> bool {
    let mut rest = query.trim_start();
    while let Some(r) = rest.strip_prefix("--") {
        rest = r.split_once('\n').map_or("", |(_, after)| after).trim_start();
    }
    rest.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("copy"))
        && rest[4..].starts_with(|c: char| c.is_whitespace() || c == '(')
}

fn unsupported(message: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), "0A000".into(), message.into())))
}

/// How rows are written.
#[derive(Debug, Clone)]
struct Format {
    binary: bool,
    csv: bool,
    header: bool,
    delimiter: char,
    null: String,
}

impl Format {
    fn from_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> PgWireResult<Self> {
        let mut f = Self { binary: false, csv: false, header: false, delimiter: '\t', null: "\\N".into() };
        let mut delimiter = None;
        let mut null = None;
        for o in options {
            match o {
                CopyOption::Format(name) => match name.value.to_lowercase().as_str() {
                    "text" => f.csv = false,
                    "csv" => f.csv = true,
                    "binary" => f.binary = true,
                    other => return Err(unsupported(&format!("COPY format {other:?} is not supported"))),
                },
                CopyOption::Header(h) => f.header = *h,
                CopyOption::Delimiter(c) => delimiter = Some(*c),
                CopyOption::Null(s) => null = Some(s.clone()),
                other => return Err(unsupported(&format!("COPY option {other} is not supported"))),
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Csv(csv) => {
                    f.csv = true;
                    for c in csv {
                        match c {
                            CopyLegacyCsvOption::Header => f.header = true,
                            other => return Err(unsupported(&format!("COPY option {other} is not supported"))),
                        }
                    }
                }
                CopyLegacyOption::Header => f.header = true,
                CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Binary => f.binary = true,
                other => return Err(unsupported(&format!("COPY option {other} is not supported"))),
            }
        }
        if f.binary && (f.csv || f.header || delimiter.is_some() || null.is_some()) {
            return Err(unsupported("COPY BINARY takes no CSV, HEADER, DELIMITER or NULL option"));
        }
        if f.csv {
            f.delimiter = ',';
            f.null = String::new();
        }
        if let Some(d) = delimiter {
            f.delimiter = d;
        }
        if let Some(n) = null {
            f.null = n;
        }
        if f.header && !f.csv {
            return Err(unsupported("COPY HEADER is available only in CSV mode"));
        }
        Ok(f)
    }

    fn push_value(&self, out: &mut BytesMut, value: &str) {
        if self.csv {
            let needs_quotes =
                value.is_empty() || value == self.null || value.contains([self.delimiter, '"', '\n', '\r']);
            if needs_quotes {
                out.put_u8(b'"');
                out.put_slice(value.replace('"', "\"\"").as_bytes());
                out.put_u8(b'"');
            } else {
                out.put_slice(value.as_bytes());
            }
            return;
        }
        for c in value.chars() {
            match c {
                '\\' => out.put_slice(b"\\\\"),
                '\n' => out.put_slice(b"\\n"),
                '\r' => out.put_slice(b"\\r"),
                '\t' if self.delimiter == '\t' => out.put_slice(b"\\t"),
                c if c == self.delimiter => {
                    out.put_u8(b'\\');
                    out.put_slice(c.to_string().as_bytes());
                }
                c => out.put_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
    }

    fn header_row(&self, names: &[String]) -> Bytes {
        let mut out = BytesMut::new();
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                out.put_slice(self.delimiter.to_string().as_bytes());
            }
            self.push_value(&mut out, n);
        }
        out.put_u8(b'\n');
        out.freeze()
    }

    /// Whether every value of a column of type `t` is printed as is: numbers, dates and times
    /// never hold a quote, backslash or line break, so only a delimiter among their own
    /// characters, or a NULL marker that looks like one, would need escaping.
    fn prints_plain(&self, t: &DataType) -> bool {
        let plain_type = t.is_numeric()
            || matches!(t, DataType::Boolean | DataType::Date32 | DataType::Date64 | DataType::Timestamp(..));
        let own_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | ':' | ' ');
        plain_type && !own_chars(self.delimiter) && (!self.csv || self.null.is_empty())
    }

    /// One CopyData per row (psycopg parses each message as exactly one row), all of a batch
    /// formatted into one buffer and cut into rows without copying.
    fn rows(&self, batch: &RecordBatch) -> PgWireResult<Vec<CopyData>> {
        use std::fmt::Write as _;
        let options = FormatOptions::default()
            .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
            .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"));
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let plain: Vec<bool> = batch.columns().iter().map(|c| self.prints_plain(c.data_type())).collect();
        let mut delimiter = [0u8; 4];
        let delimiter = self.delimiter.encode_utf8(&mut delimiter).as_bytes();
        let mut out = BytesMut::with_capacity(batch.num_rows() * 16 * batch.num_columns().max(1));
        let mut ends = Vec::with_capacity(batch.num_rows());
        let mut scratch = String::new();
        let fmt_err = |e: std::fmt::Error| PgWireError::ApiError(Box::new(e));
        for r in 0..batch.num_rows() {
            for (i, (col, fmt)) in batch.columns().iter().zip(&formatters).enumerate() {
                if i > 0 {
                    out.put_slice(delimiter);
                }
                if col.is_null(r) {
                    out.put_slice(self.null.as_bytes());
                } else if plain[i] {
                    write!(out, "{}", fmt.value(r)).map_err(fmt_err)?;
                } else {
                    scratch.clear();
                    write!(scratch, "{}", fmt.value(r)).map_err(fmt_err)?;
                    self.push_value(&mut out, &scratch);
                }
            }
            out.put_u8(b'\n');
            ends.push(out.len());
        }
        let mut whole = out.freeze();
        let mut start = 0;
        Ok(ends
            .into_iter()
            .map(|end| {
                let row = whole.split_to(end - start);
                start = end;
                CopyData::new(row)
            })
            .collect())
    }
}

/// Runs a `COPY ... TO STDOUT` statement.
pub async fn copy_to_stdout(ctx: &SessionContext, sql: &str) -> PgWireResult<Response> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), "42601".into(), e.to_string()))))?;
    let [Statement::Copy { source, to, target, options, legacy_options, .. }] = statements.as_slice() else {
        return Err(unsupported("send COPY as a statement of its own"));
    };
    if !*to {
        return Err(super::guard::refusal("COPY FROM"));
    }
    if !matches!(target, CopyTarget::Stdout) {
        return Err(super::guard::refusal("COPY ... TO a file or program (use COPY ... TO STDOUT)"));
    }
    let format = Format::from_options(options, legacy_options)?;
    let query = match source {
        CopySource::Query(q) => q.to_string(),
        CopySource::Table { table_name, columns } => {
            let cols = if columns.is_empty() {
                "*".to_string()
            } else {
                columns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            format!("SELECT {cols} FROM {table_name}")
        }
    };
    let plan = bhavstore_query::sqlguard::plan_query(ctx, &query).await.map_err(super::guard::from_guard)?;
    let plan = super::compat::types::signed_output(plan).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    if format.binary {
        return binary(ctx, plan).await;
    }
    let names: Vec<String> = plan.schema().fields().iter().map(|f| f.name().clone()).collect();
    let frame = ctx.execute_logical_plan(plan).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let batches = frame.execute_stream().await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let header = format.header.then(|| Ok(CopyData::new(format.header_row(&names))));
    let columns = names.len();
    let rows = batches.flat_map(move |batch| {
        let out: Vec<PgWireResult<CopyData>> = match batch {
            Ok(b) => match format.rows(&b) {
                Ok(rows) => rows.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            },
            Err(e) => vec![Err(PgWireError::ApiError(Box::new(e)))],
        };
        futures::stream::iter(out)
    });
    let stream = futures::stream::iter(header).chain(rows);
    Ok(Response::CopyOut(CopyResponse::new(0, columns, stream)))
}

/// The rows of `plan` in Postgres' binary COPY format: the `PGCOPY` signature, then per row its
/// field count and each field as length and bytes (a DataRow's body in binary format), then -1.
async fn binary(ctx: &SessionContext, plan: datafusion::logical_expr::LogicalPlan) -> PgWireResult<Response> {
    use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
    let fields = Arc::new(arrow_schema_to_pg_fields(
        plan.schema().as_arrow(),
        &pgwire::api::portal::Format::UnifiedBinary,
        None,
    )?);
    let columns = fields.len();
    let frame = ctx.execute_logical_plan(plan).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let batches = frame.execute_stream().await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let mut header = BytesMut::with_capacity(19);
    header.put_slice(b"PGCOPY\n\xFF\r\n\x00");
    header.put_i32(0);
    header.put_i32(0);
    // The signature goes in front of the first row (psycopg reads each message as whole
    // rows), or in front of the trailer when there are none.
    let pending = Arc::new(std::sync::Mutex::new(Some(header.freeze())));
    let first = Arc::clone(&pending);
    let with_header = move |row: Bytes| -> Bytes {
        match first.lock().ok().and_then(|mut h| h.take()) {
            Some(h) => {
                let mut buf = BytesMut::with_capacity(h.len() + row.len());
                buf.put_slice(&h);
                buf.put_slice(&row);
                buf.freeze()
            }
            None => row,
        }
    };
    let rows = batches.flat_map(move |batch| {
        let out: Vec<PgWireResult<CopyData>> = match batch {
            Ok(b) => encode_recordbatch(Arc::clone(&fields), b)
                .map(|row| {
                    row.map(|r| {
                        let mut buf = BytesMut::with_capacity(r.data.len() + 2);
                        buf.put_i16(r.field_count);
                        buf.put_slice(&r.data);
                        CopyData::new(with_header(buf.freeze()))
                    })
                })
                .collect(),
            Err(e) => vec![Err(PgWireError::ApiError(Box::new(e)))],
        };
        futures::stream::iter(out)
    });
    let trailer = futures::stream::once(async move {
        let mut buf = BytesMut::new();
        if let Some(h) = pending.lock().ok().and_then(|mut h| h.take()) {
            buf.put_slice(&h);
        }
        buf.put_i16(-1);
        Ok(CopyData::new(buf.freeze()))
    });
    let stream = rows.chain(trailer);
    // Built by hand: `CopyResponse::new` appends a trailer of its own, and the signature must
    // come before it when there are no rows.
    let mut response = CopyResponse::new(1, columns, futures::stream::empty());
    response.data_stream = Box::pin(stream);
    Ok(Response::CopyOut(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_copy() {
        assert!(is_copy("COPY (select 1) TO STDOUT"));
        assert!(is_copy("  -- x\n copy t to stdout"));
        assert!(is_copy("copy(select 1) to stdout"));
        assert!(!is_copy("copyright"));
        assert!(!is_copy("select 'copy'"));
    }

    #[test]
    fn text_and_csv_escaping() {
        let text = Format { binary: false, csv: false, header: false, delimiter: '\t', null: "\\N".into() };
        let mut out = BytesMut::new();
        text.push_value(&mut out, "a\tb\\c\nd");
        assert_eq!(&out[..], b"a\\tb\\\\c\\nd");
        let csv = Format { binary: false, csv: true, header: true, delimiter: ',', null: String::new() };
        let mut out = BytesMut::new();
        csv.push_value(&mut out, "x,\"y\"");
        assert_eq!(&out[..], b"\"x,\"\"y\"\"\"");
        let mut out = BytesMut::new();
        csv.push_value(&mut out, "");
        assert_eq!(&out[..], b"\"\"");
    }
}
