//! Errors of the REST API: JSON with a stable `code`, an HTTP status, and a message a person
//! understands. Bad input is never a 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use bhavstore_ingest::location::LocationError;
use bhavstore_intraday::IntradayError;
use bhavstore_online::LookupError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 `bad_timestamp`.
    pub fn bad_timestamp(value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_timestamp",
            format!(
                "timestamp {value:?} is not an RFC 3339 time such as 2024-11-15T20:00:00Z or 2024-11-15T20:00:00+05:30"
            ),
        )
    }

    /// 500 `internal`: logged in full, answered without internals.
    pub fn internal(context: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(context, error = %detail, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("{context} failed; see the server log"))
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        let (status, code) = match &e {
            LookupError::UnknownView(_) => (StatusCode::NOT_FOUND, "unknown_view"),
            LookupError::UnknownFeature { .. } => (StatusCode::NOT_FOUND, "unknown_feature"),
            LookupError::UnknownEntity(_) => (StatusCode::NOT_FOUND, "unknown_entity"),
            LookupError::NoValue { .. } => (StatusCode::NOT_FOUND, "no_value"),
            LookupError::Stale { .. } => (StatusCode::NOT_FOUND, "stale_value"),
            LookupError::BeforeHistory { .. } => (StatusCode::NOT_FOUND, "before_online_history"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<IntradayError> for ApiError {
    fn from(e: IntradayError) -> Self {
        match &e {
            IntradayError::TooManyRows { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_rows", e.to_string())
            }
            IntradayError::Fenced { .. } => Self::new(StatusCode::CONFLICT, "another_writer", e.to_string()),
            IntradayError::Closed => Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", e.to_string()),
            IntradayError::Storage(_) | IntradayError::LogWrite(_) => {
                tracing::error!(error = %e, "intraday push not durable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the bars could not be made durable and were not accepted; retry the push",
                )
            }
            _ => Self::internal("intraday push", e),
        }
    }
}

impl From<LocationError> for ApiError {
    fn from(e: LocationError) -> Self {
        let (status, code) = match &e {
            LocationError::Malformed { .. } => (StatusCode::BAD_REQUEST, "bad_data_source"),
            LocationError::NoRoots
            | LocationError::OutsideRoots { .. }
            | LocationError::SymbolicLink { .. }
            | LocationError::Io { .. } => (StatusCode::FORBIDDEN, "location_not_allowed"),
            LocationError::NotFound { .. } => (StatusCode::NOT_FOUND, "location_not_found"),
            LocationError::BadRoot { .. } => return Self::internal("server.import_roots", e),
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}
