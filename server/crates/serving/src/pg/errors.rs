//! DataFusion errors as Postgres errors: a SQLSTATE a client can act on and a message a person
//! understands. Storage and internal failures are logged in full and reported without paths or
//! internals.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use pgwire::api::{ClientInfo, ErrorHandler};
use pgwire::error::{ErrorInfo, PgWireError};

/// Rewrites every error pgwire is about to send.
pub struct SqlStateErrors;

impl ErrorHandler for SqlStateErrors {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(inner) = error {
            let info = if let Some(e) = inner.downcast_ref::<DataFusionError>() {
                to_error_info(e)
            } else if inner.to_string().contains("recursion limit exceeded") {
                ErrorInfo::new(
                    "ERROR".into(),
                    "54001".into(),
                    "statement too complex: its parentheses or subqueries nest too deep for the parser".into(),
                )
            } else if inner.downcast_ref::<ParserError>().is_some() || inner.to_string().starts_with("sql parser error")
            {
                ErrorInfo::new("ERROR".into(), "42601".into(), inner.to_string())
            } else {
                tracing::warn!(error = %inner, "unclassified error answering a Postgres client");
                ErrorInfo::new("ERROR".into(), "XX000".into(), inner.to_string())
            };
            *error = PgWireError::UserError(Box::new(info));
        }
        if let PgWireError::UserError(info) = error {
            tracing::debug!(peer = %client.socket_addr(), code = %info.code, message = %info.message, "postgres error");
        }
    }
}

/// The SQLSTATE and message for a DataFusion error.
#[must_use]
pub fn to_error_info(e: &DataFusionError) -> ErrorInfo {
    let (code, message) = classify(e);
    ErrorInfo::new("ERROR".into(), code.into(), message)
}

/// The SQLSTATE and the message to show, shared with Flight SQL.
#[must_use]
pub fn classify(e: &DataFusionError) -> (&'static str, String) {
    let root = e.find_root();
    let text = root.to_string();
    let plain = strip_prefixes(&text);
    if text.contains("recursion limit exceeded") {
        return ("54001", "statement too complex: its parentheses or subqueries nest too deep for the parser".into());
    }
    if text.contains("disk space during the spilling process") {
        return (
            "53100",
            "the query spilled more to disk than the server allows (server.limits.spill_disk); filter or \
             aggregate more in SQL"
                .into(),
        );
    }
    match root {
        DataFusionError::SQL(..) => ("42601", plain),
        DataFusionError::SchemaError(..) => {
            if text.contains("No field named") || text.contains("not found") {
                ("42703", plain)
            } else {
                ("42P18", plain)
            }
        }
        DataFusionError::Plan(msg) => {
            if msg.contains("table") && msg.contains("not found") || msg.contains("is not a feature view") {
                ("42P01", plain)
            } else if msg.contains("No function matches") || msg.contains("Invalid function") {
                ("42883", plain)
            } else {
                ("42000", plain)
            }
        }
        DataFusionError::NotImplemented(_) => ("0A000", plain),
        DataFusionError::ResourcesExhausted(_) => ("53200", plain),
        DataFusionError::ArrowError(..) => ("22000", plain),
        DataFusionError::Execution(_) => ("22000", plain),
        DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) | DataFusionError::ParquetError(_) => {
            tracing::warn!(error = %e, "storage error while answering a SQL query");
            ("58030", "the feature store could not read its storage; see the server log".into())
        }
        _ => {
            tracing::warn!(error = %e, "internal error while answering a SQL query");
            ("XX000", "internal error; see the server log".into())
        }
    }
}

fn strip_prefixes(text: &str) -> String {
    let mut t = text;
    for p in [
        "Error during planning: ",
        "SQL error: ",
        "Schema error: ",
        "This feature is not implemented: ",
        "Execution error: ",
        "Arrow error: ",
        "Resources exhausted: ",
    ] {
        t = t.strip_prefix(p).unwrap_or(t);
    }
    t.to_string()
}
