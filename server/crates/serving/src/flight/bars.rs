//! Flight SQL bulk ingest into `intraday_bars` (ADBC `adbc_ingest("intraday_bars", data,
//! mode="append")`): the one persistent table a client may write. Batches go through the same
//! checks and log as REST pushes; the answer (rows stored) comes once they are durable. Refused
//! rows are kept in `intraday_quarantine` with their index in the upload.

use arrow_flight::error::FlightError;
use arrow_flight::sql::{CommandStatementIngest, TableExistsOption};
use datafusion::arrow::array::RecordBatch;
use futures::{Stream, TryStreamExt};
use tonic::Status;

use bhavstore_intraday::{Intraday, IntradayError, Parsed, input};

/// Rows gathered before they are pushed: large enough to amortize a log write, small enough
/// that a long upload is durable as it goes.
const PUSH_ROWS: usize = 50_000;

fn status(e: IntradayError) -> Status {
    match e {
        IntradayError::TooManyRows { .. } => Status::resource_exhausted(e.to_string()),
        IntradayError::Fenced { .. } => Status::aborted(e.to_string()),
        IntradayError::Closed | IntradayError::Storage(_) | IntradayError::LogWrite(_) => {
            tracing::error!(error = %e, "intraday ingest not durable");
            Status::unavailable(
                "the bars could not be made durable; rows of this upload not acknowledged may be sent again",
            )
        }
        other => {
            tracing::error!(error = %other, "intraday ingest failed");
            Status::internal("intraday ingest failed; see the server log")
        }
    }
}

/// Stores an upload's bars; returns how many rows were stored (refused rows are not counted).
pub(super) async fn ingest(
    intraday: Option<&Intraday>,
    cmd: &CommandStatementIngest,
    mut batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Unpin + Send,
) -> Result<i64, Status> {
    let intraday = intraday.ok_or_else(|| Status::unavailable("this server does not take intraday bars"))?;
    let if_exists = cmd.table_definition_options.map_or(TableExistsOption::Fail, |o| {
        TableExistsOption::try_from(o.if_exists).unwrap_or(TableExistsOption::Fail)
    });
    match if_exists {
        TableExistsOption::Append => {}
        TableExistsOption::Replace => {
            return Err(Status::permission_denied(
                "intraday_bars cannot be replaced, only appended to (mode=\"append\")",
            ));
        }
        _ => return Err(Status::already_exists("intraday_bars exists; ingest with mode=\"append\"")),
    }
    let mut pending = Parsed::default();
    let mut index = 0i64;
    let mut stored = 0i64;
    let mut refused = 0usize;
    while let Some(batch) =
        batches.try_next().await.map_err(|e| Status::invalid_argument(format!("reading the upload: {e}")))?
    {
        let now = chrono::Utc::now().timestamp_micros();
        let parsed =
            input::from_record_batch(&batch, index, now).map_err(|e| Status::invalid_argument(e.to_string()))?;
        index += i64::try_from(batch.num_rows()).unwrap_or(i64::MAX);
        pending.bars.extend(parsed.bars);
        pending.rejected.extend(parsed.rejected);
        if pending.bars.len() + pending.rejected.len() >= PUSH_ROWS {
            let o = intraday.push(std::mem::take(&mut pending)).await.map_err(status)?;
            stored += i64::try_from(o.accepted).unwrap_or(i64::MAX);
            refused += o.rejected.len();
        }
    }
    if !pending.bars.is_empty() || !pending.rejected.is_empty() {
        let o = intraday.push(pending).await.map_err(status)?;
        stored += i64::try_from(o.accepted).unwrap_or(i64::MAX);
        refused += o.rejected.len();
    }
    if refused > 0 {
        tracing::warn!(refused, stored, "intraday upload: rows refused (see intraday_quarantine)");
    }
    Ok(stored)
}
