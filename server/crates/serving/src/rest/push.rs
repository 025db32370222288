//! `POST /feature-store/push` (intraday bars in) and `GET /feature-store/stream` (feature rows
//! out, as Server-Sent Events).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use crate::serve::AppState;
use bhavstore_intraday::{Intraday, input};

/// A push.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushRequest {
    /// The table the rows are for: `intraday_bars`.
    source: String,
    /// The bars.
    rows: Vec<Value>,
}

fn intraday(state: &AppState) -> Result<&Intraday, ApiError> {
    state.intraday.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "intraday_unavailable",
            "this server does not take intraday bars",
        )
    })
}

/// `POST /feature-store/push`: every valid row is durable when the answer comes; each refused
/// row is listed with its index and reason and kept in `intraday_quarantine`.
pub(super) async fn push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let intraday = intraday(&state)?;
    let credentials = &state.credentials;
    if credentials.has_tokens() {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::serve::authorization::bearer);
        if !token.is_some_and(|t| credentials.token_can_write(t)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "write_role_required",
                "pushing bars needs a token with the write role (server.tokens: [{token: ..., roles: [write]}])",
            ));
        }
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the bars as JSON with Content-Type: application/json",
        ));
    }
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "body_too_large", "the body is larger than intraday.max_push_bytes")
        } else {
            ApiError::new(status, "bad_request", e.body_text())
        }
    })?;
    let req: PushRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("JSON body: {e}")))?;
    if req.source != bhavstore_lake::bars::INTRADAY_BARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_source",
            format!("source {:?}: the only push source is \"intraday_bars\"", req.source),
        ));
    }
    if req.rows.is_empty() {
        return Err(ApiError::bad_request("rows is empty"));
    }
    let parsed = input::from_json_rows(&req.rows, chrono::Utc::now().timestamp_micros());
    let o = intraday.push(parsed).await?;
    let status = if o.rejected.is_empty() {
        "ok"
    } else if o.accepted > 0 {
        "partial"
    } else {
        "rejected"
    };
    let body = json!({
        "status": status,
        "accepted": o.accepted,
        "new": o.new,
        "duplicates": o.duplicates,
        "corrections": o.corrections,
        "rejected": o.rejected.iter().map(|(i, r)| json!({"index": i, "reason": r})).collect::<Vec<_>>(),
        "durable_at": chrono::DateTime::from_timestamp_micros(o.durable_at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        "log_seq": o.seq,
    });
    let code = if status == "rejected" { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((code, Json(body)).into_response())
}

/// `GET /feature-store/stream?view=V[&entity_id=E ...]`: each new feature row of streaming view
/// `V` (of the instruments named, or all) as an SSE event `features`. A subscriber that falls
/// more than `intraday.stream_buffer` rows behind gets an event `dropped` and the stream ends.
pub(super) async fn stream(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let intraday = intraday(&state)?;
    let mut view = None;
    let mut entities = HashSet::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "view" => view = Some(v.into_owned()),
            "entity_id" => {
                entities.insert(v.into_owned());
            }
            other => return Err(ApiError::bad_request(format!("unknown parameter {other:?}; use view and entity_id"))),
        }
    }
    let view =
        view.ok_or_else(|| ApiError::bad_request("view is required (a streaming view, e.g. intraday_features)"))?;
    if intraday.view(&view).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_view",
            format!(
                "{view:?} is not a streaming view; streaming views: {:?}",
                intraday.views().iter().map(|v| v.name().to_string()).collect::<Vec<_>>()
            ),
        ));
    }
    let mut rx = intraday.subscribe();
    let stream = async_stream(move |tx| async move {
        let hello = json!({"view": view, "entity_ids": entities.iter().collect::<Vec<_>>()});
        if tx.send(Event::default().event("subscribed").data(hello.to_string())).await.is_err() {
            return;
        }
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if *e.view != *view || (!entities.is_empty() && !entities.contains(&*e.instrument)) {
                        continue;
                    }
                    if tx.send(Event::default().event("features").data(&*e.json)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(view = %view, behind = n, "stream subscriber too slow; dropped");
                    let msg = json!({"reason": "slow consumer", "missed": n,
                        "message": "this subscriber fell behind by more than intraday.stream_buffer rows and was dropped; reconnect and read the gap from intraday_features"});
                    let _ = tx.send(Event::default().event("dropped").data(msg.to_string())).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A stream fed by a task through a small channel: the task waits when the client is slow, so
/// the broadcast buffer (bounded) is what fills, not this.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(f(tx));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) })
}
