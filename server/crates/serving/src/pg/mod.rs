//! The Postgres wire protocol (psql, BI tools, tokio-postgres, psycopg), on `datafusion-postgres`
//! and `pgwire`, over the same catalog as every other protocol.
//!
//! What this layer adds to `datafusion-postgres` 0.19:
//! * an accept loop that stops on shutdown and can bind port 0 ([`PgService`]);
//! * SCRAM-SHA-256 logins for the configured users, one SASL state per connection ([`auth`]);
//! * connection caps (per listener and per user), a login timeout, and statements that stop on
//!   a cancel request, their timeout or their client going away ([`session`]);
//! * a memory pool per connection, and portals that stream rows instead of collecting them
//!   ([`handlers`]);
//! * read-only sessions: only queries, `EXPLAIN`, `SHOW`, cursors and harmless `SET`s pass
//!   ([`guard`]);
//! * server-side cursors whose portals describe their columns, so psycopg's named cursors work
//!   ([`cursor`]);
//! * `COPY (query) TO STDOUT` in text and CSV ([`copy`]);
//! * SQLSTATEs a client can act on and messages without internals ([`errors`]).

pub mod auth;
pub mod compat;
pub mod copy;
pub mod cursor;
pub mod errors;
pub mod guard;
mod handlers;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use futures::FutureExt;
use futures::future::BoxFuture;
use pgwire::tokio::TlsAcceptor;
use tracing::{debug, info};

use crate::serve::limits::LimitsConfig;
use crate::serve::listener::Acceptor;
use crate::serve::{Credentials, Engine, Service, TlsConfig};

/// The socket for pgwire, and a duplicate of it to notice a client that goes away while its
/// statement runs (see [`session`]). The duplicate shares the socket's non-blocking mode.
fn split_probe(socket: tokio::net::TcpStream) -> (tokio::net::TcpStream, Option<std::net::TcpStream>) {
    let probe = rustix::io::dup(&socket).ok().map(std::net::TcpStream::from);
    (socket, probe)
}

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
    Tls(#[from] crate::serve::tls::TlsError),
}

/// The Postgres listener, bound.
pub struct PgService {
    acceptor: Acceptor,
    shared: Arc<handlers::Shared>,
    tls: Option<TlsAcceptor>,
    limits: Arc<LimitsConfig>,
}

impl PgService {
    /// Binds `addr` and prepares the server session `ctx` for Postgres clients (`pg_catalog`,
    /// pg functions). Statements run in per-connection sessions derived from `ctx` by `engine`.
    pub async fn bind(
        addr: &str,
        ctx: &SessionContext,
        engine: &Engine,
        credentials: &Credentials,
        tls: Option<&TlsConfig>,
    ) -> Result<Self, PgError> {
        // The functions bhavstore adds (feature UDFs, table functions), before pg_catalog's own.
        let ours = compat::catalog::own_functions(ctx);
        prepare_session(ctx)?;
        compat::catalog::install(ctx, "bhavstore", &credentials.user_names(), &ours)
            .await
            .map_err(|e| PgError::Catalog(e.to_string()))?;
        let tls = tls.map(crate::serve::tls::pg_acceptor).transpose().map_err(PgError::Tls)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| PgError::Bind { addr: addr.to_string(), source })?;
        let limits = Arc::new(engine.limits().clone());
        let refusal: crate::serve::listener::Refusal = Arc::new(|| {
            Some(session::fatal_error_bytes(
                "53300",
                "sorry, too many clients already (server.limits.max_pg_connections)",
            ))
        });
        let acceptor = Acceptor::new(listener, "postgres", limits.max_pg_connections, refusal);
        let hooks: Vec<Arc<dyn datafusion_postgres::QueryHook>> = vec![
            Arc::new(compat::statements::CompatHook),
            Arc::new(guard::ReadOnlyHook),
            Arc::new(cursor::CursorHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let shared = Arc::new(handlers::Shared {
            ctx: ctx.clone(),
            engine: engine.clone(),
            hooks,
            users: auth::ScramUsers::new(credentials),
            // Shared, so a cancel request on a new connection finds the session it targets.
            manager: Arc::new(pgwire::api::ConnectionManager::new()),
            registry: Arc::new(session::CancelRegistry::default()),
            user_slots: Arc::new(session::UserSlots::default()),
        });
        Ok(Self { acceptor, shared, tls, limits })
    }
}

/// Registers `pg_catalog` and the Postgres functions BI tools call. Idempotent per session.
pub fn prepare_session(ctx: &SessionContext) -> Result<(), PgError> {
    if ctx.catalog("bhavstore").and_then(|c| c.schema("pg_catalog")).is_some() {
        return Ok(());
    }
    setup_pg_catalog(ctx, "bhavstore", EmptyContextProvider).map_err(|e| PgError::Catalog(e.to_string()))?;
    compat::functions::register(ctx);
    Ok(())
}

impl Service for PgService {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn run(self: Box<Self>, shutdown: tokio::sync::watch::Receiver<bool>) -> BoxFuture<'static, std::io::Result<()>> {
        async move {
            let Self { mut acceptor, shared, tls, limits } = *self;
            let mut connections = tokio::task::JoinSet::new();
            let login = Duration::from_secs(limits.login_timeout_secs);
            loop {
                tokio::select! {
                    () = crate::serve::wait_for(shutdown.clone()) => break,
                    admitted = acceptor.accept() => {
                        let peer = admitted.peer;
                        debug!(%peer, "postgres connection");
                        let (socket, probe) = split_probe(admitted.stream);
                        let conn = session::Connection::new(peer, probe, Arc::clone(&shared.registry), Arc::clone(&limits));
                        let handlers = handlers::Handlers::new(&shared, Arc::clone(&conn));
                        let tls = tls.clone();
                        let permit = admitted.permit;
                        connections.spawn(async move {
                            let _permit = permit;
                            tokio::select! {
                                r = pgwire::tokio::process_socket(socket, tls, handlers) => {
                                    if let Err(e) = r {
                                        debug!(%peer, error = %e, "postgres connection ended with an error");
                                    }
                                }
                                () = conn.login_overdue(login) => {
                                    info!(%peer, seconds = login.as_secs(), "postgres connection closed: no login within server.limits.login_timeout_secs");
                                }
                            }
                        });
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
