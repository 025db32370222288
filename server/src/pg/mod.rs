//! The Postgres wire protocol (psql, BI tools, tokio-postgres, psycopg), on `datafusion-postgres`
//! and `pgwire`, over the same catalog as every other protocol.
//!
//! What this layer adds to `datafusion-postgres` 0.19:
//! * an accept loop that stops on shutdown and can bind port 0 ([`PgService`]);
//! * SCRAM-SHA-256 logins for the configured users, one SASL state per connection ([`auth`]);
//! * read-only sessions: only queries, `EXPLAIN`, `SHOW`, cursors and harmless `SET`s pass
//!   ([`guard`]);
//! * server-side cursors whose portals describe their columns, so psycopg's named cursors work
//!   ([`cursor`]);
//! * `COPY (query) TO STDOUT` in text and CSV ([`copy`]);
//! * SQLSTATEs a client can act on and messages without internals ([`errors`]).

pub mod auth;
pub mod copy;
pub mod cursor;
pub mod errors;
pub mod guard;
mod handlers;

use std::net::SocketAddr;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use futures::FutureExt;
use futures::future::BoxFuture;
use pgwire::tokio::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::serve::{Credentials, Service, TlsConfig};

/// Errors starting the Postgres listener.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// `pg_catalog` could not be set up on the session.
    #[error("setting up pg_catalog: {0}")]
    Catalog(String),
    /// The TLS certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The Postgres listener, bound.
pub struct PgService {
    listener: tokio::net::TcpListener,
    service: Arc<DfSessionService>,
    ctx: Arc<SessionContext>,
    users: Option<Arc<auth::ScramUsers>>,
    tls: Option<TlsAcceptor>,
}

impl PgService {
    /// Binds `addr` and prepares the session `ctx` for Postgres clients (`pg_catalog`, pg
    /// functions).
    pub async fn bind(
        addr: &str,
        ctx: &SessionContext,
        credentials: &Credentials,
        tls: Option<&TlsConfig>,
    ) -> Result<Self, PgError> {
        prepare_session(ctx)?;
        let tls = tls.map(crate::serve::tls::pg_acceptor).transpose().map_err(PgError::Tls)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| PgError::Bind { addr: addr.to_string(), source })?;
        let hooks: Vec<Arc<dyn datafusion_postgres::QueryHook>> = vec![
            Arc::new(guard::ReadOnlyHook),
            Arc::new(cursor::CursorHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let ctx = Arc::new(ctx.clone());
        let service = Arc::new(DfSessionService::new_with_hooks(Arc::clone(&ctx), hooks));
        Ok(Self { listener, service, ctx, users: auth::ScramUsers::new(credentials), tls })
    }
}

/// Registers `pg_catalog` and the Postgres functions BI tools call. Idempotent per session.
pub fn prepare_session(ctx: &SessionContext) -> Result<(), PgError> {
    if ctx.catalog("bhavstore").and_then(|c| c.schema("pg_catalog")).is_some() {
        return Ok(());
    }
    setup_pg_catalog(ctx, "bhavstore", EmptyContextProvider).map_err(|e| PgError::Catalog(e.to_string()))
}

impl Service for PgService {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn run(self: Box<Self>, shutdown: tokio::sync::watch::Receiver<bool>) -> BoxFuture<'static, std::io::Result<()>> {
        async move {
            let Self { listener, service, ctx, users, tls } = *self;
            let mut connections = tokio::task::JoinSet::new();
            // Shared, so a cancel request on a new connection finds the session it targets.
            let manager = Arc::new(pgwire::api::ConnectionManager::new());
            loop {
                tokio::select! {
                    () = crate::serve::wait_for(shutdown.clone()) => break,
                    accepted = listener.accept() => match accepted {
                        Ok((socket, peer)) => {
                            debug!(%peer, "postgres connection");
                            // The SASL state machine lives in the startup handler, so each
                            // connection gets its own.
                            let handlers = handlers::Handlers::new(Arc::clone(&service), Arc::clone(&ctx), users.as_ref(), &manager);
                            let tls = tls.clone();
                            connections.spawn(async move {
                                if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                                    debug!(%peer, error = %e, "postgres connection ended with an error");
                                }
                            });
                        }
                        Err(e) => warn!(error = %e, "postgres accept failed"),
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            // Sessions are interactive and may idle forever: give running statements a moment,
            // then close what is left.
            let drain = async { while connections.join_next().await.is_some() {} };
            if tokio::time::timeout(std::time::Duration::from_secs(5), drain).await.is_err() {
                info!(open = connections.len(), "closing idle postgres sessions");
                connections.abort_all();
            }
            Ok(())
        }
        .boxed()
    }
}
