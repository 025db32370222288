//! `bhavstore serve`: every listener, the scheduler and the online store in one process, sharing
//! one [`AppState`]. Each protocol binds its listener first (so port 0 works and the bound
//! address can be logged and tested), then runs until the shutdown signal.

pub(crate) mod authorization;
mod config;
pub mod engine;
pub mod limits;
pub mod listener;
mod state;
pub mod tls;

use std::net::SocketAddr;

use futures::future::BoxFuture;

pub use config::{Credentials, CredentialsError, ServerConfig, TlsConfig, User, constant_time_eq};
pub use engine::Engine;
pub use state::{AppState, Metrics, RunStatus, ServeSettings};

/// A bound listener of one protocol.
pub trait Service: Send {
    /// Protocol name for logs (`http`, `postgres`, `flight`).
    fn name(&self) -> &'static str;
    /// The address actually bound.
    fn local_addr(&self) -> SocketAddr;
    /// Serves until `shutdown` turns true, then finishes in-flight requests.
    fn run(self: Box<Self>, shutdown: tokio::sync::watch::Receiver<bool>) -> BoxFuture<'static, std::io::Result<()>>;
}

/// Applies the "no authentication, loopback only" rule to a configured address.
#[must_use]
pub fn effective_addr(configured: &str, authenticated: bool) -> String {
    if authenticated {
        return configured.to_string();
    }
    match configured.rsplit_once(':') {
        Some((host, port)) if host != "127.0.0.1" && host != "localhost" && host != "[::1]" => {
            tracing::warn!(configured, "no users configured: listening on 127.0.0.1 only");
            format!("127.0.0.1:{port}")
        }
        _ => configured.to_string(),
    }
}

/// Resolves when `rx` turns true (or its sender is gone).
pub async fn wait_for(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
