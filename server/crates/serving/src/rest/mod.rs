//! The REST API (axum): the seed's `POST /feature-store/ingest` and `GET /feature-store/lookup`,
//! a batch lookup, run status, `/health`, `/metrics` and `/openapi.json`. Parameters are only ever
//! used as values; nothing here builds SQL from them.

mod error;
mod ingest;
mod lineage;
mod lookup;
mod meta;
mod push;
mod ui;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt;
use futures::future::BoxFuture;

pub use error::ApiError;
pub use meta::document as openapi_document;

use crate::serve::listener::{Acceptor, http_busy};
use crate::serve::{AppState, Service};

/// The REST listener, bound.
pub struct RestService {
    acceptor: Acceptor,
    router: Router,
    login: Duration,
}

impl RestService {
    /// Binds `addr` (port 0 picks one).
    pub async fn bind(addr: &str, state: Arc<AppState>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let limits = &state.config.server.limits;
        let acceptor = Acceptor::new(listener, "http", limits.max_http_connections, Arc::new(|| Some(http_busy())));
        let login = Duration::from_secs(limits.login_timeout_secs);
        Ok(Self { acceptor, router: router(state), login })
    }
}

/// The routes, with bearer authentication when tokens are configured. Every answer the API
/// itself gives is JSON, errors included: an unknown path is 404 `not_found`, a method a path
/// does not take is 405 `method_not_allowed` (with `Allow`, listing the methods it takes).
pub fn router(state: Arc<AppState>) -> Router {
    let open = Router::new()
        .route("/health", get(meta::health))
        .route("/openapi.json", get(meta::openapi))
        .method_not_allowed_fallback(method_not_allowed);
    // The 405 fallback is set before the token check is layered on, so a caller without a
    // token learns nothing about a guarded path, not even which methods it takes.
    let guarded = Router::new()
        .route("/feature-store/lookup", get(lookup::lookup))
        .route("/feature-store/lookup/batch", post(lookup::batch))
        .route("/feature-store/lineage", get(lineage::lineage))
        .route("/feature-store/ingest", post(ingest::ingest))
        .route(
            "/feature-store/push",
            post(push::push)
                .layer(axum::extract::DefaultBodyLimit::max(state.config.intraday.max_push_bytes.as_usize())),
        )
        .route("/feature-store/stream", get(push::stream))
        .route("/feature-store/runs/{id}", get(ingest::run_status))
        .route("/feature-store/views", get(views::views))
        .route("/metrics", get(meta::metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), require_token));
    open.merge(guarded)
        .nest("/ui", ui::router(&state))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see /openapi.json") })
        .layer(middleware::from_fn_with_state(Arc::clone(&state), request_timeout))
        .with_state(state)
}

/// 405 for a method the path does not take; axum adds the `Allow` header.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method} (the Allow header lists what it takes); see /openapi.json", uri.path()),
    )
}

/// Answers 503 (JSON) for a request that takes longer than the configured limit; the work
/// behind it is dropped.
async fn request_timeout(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.server.limits.http_request_timeout_secs);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} s (server.limits.http_request_timeout_secs)", limit.as_secs()),
        )
        .into_response(),
    }
}

async fn require_token(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let credentials = &state.credentials;
    if !credentials.has_tokens() {
        return next.run(request).await;
    }
    // The scheme is case-insensitive (RFC 7235): `bearer x` is `Bearer x`.
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::serve::authorization::bearer);
    match given {
        Some(t) if credentials.check_token(t) => next.run(request).await,
        _ => {
            let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required")
                .into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            r
        }
    }
}

impl Service for RestService {
    fn name(&self) -> &'static str {
        "http"
    }

    fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn run(self: Box<Self>, shutdown: tokio::sync::watch::Receiver<bool>) -> BoxFuture<'static, std::io::Result<()>> {
        async move {
            let Self { acceptor, router, login } = *self;
            axum::serve(acceptor.into_admitted(login, None), router)
                .with_graceful_shutdown(crate::serve::wait_for(shutdown))
                .await
        }
        .boxed()
    }
}

/// Query results as JSON objects, one per row, NULLs kept (Arrow's JSON writer). `what` names
/// the caller in the error a failure becomes.
pub(super) fn json_rows(
    batches: &[datafusion::arrow::array::RecordBatch],
    what: &'static str,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, error::ApiError> {
    let mut buf = Vec::new();
    let mut writer = datafusion::arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut buf);
    for b in batches {
        writer.write(b).map_err(|e| error::ApiError::internal(what, e))?;
    }
    writer.finish().map_err(|e| error::ApiError::internal(what, e))?;
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| error::ApiError::internal(what, e))
}
