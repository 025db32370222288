//! Arrow Flight SQL, for bulk pulls into training: statements and prepared statements (with
//! bound parameters, written `?` or `$1`), `executemany` of queries (refused for writes), catalogs, schemas, tables, table types and SqlInfo, over the same
//! read-only catalog as Postgres and REST. Results stream batch by batch from DataFusion to the
//! wire; nothing is collected whole.
//!
//! Statement and prepared-statement handles are self-contained (the SQL and any bound
//! parameters), so the server keeps no per-statement state and a handle survives a reconnect.

mod auth;
mod bars;
mod handle;
pub mod params;
mod qmark;
mod service;
pub mod uploads;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;

use datafusion::prelude::SessionContext;
use futures::FutureExt;
use futures::future::BoxFuture;

pub use auth::FlightAuth;
pub use service::BhavFlightSql;

use crate::serve::listener::{Acceptor, CloseHook};
use crate::serve::{Credentials, Engine, Service, TlsConfig};

/// Errors starting the Flight listener.
#[derive(Debug, thiserror::Error)]
pub enum FlightError {
    /// The address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(#[from] crate::serve::tls::TlsError),
}

/// The Flight SQL listener, bound.
pub struct FlightService {
    acceptor: Acceptor,
    service: BhavFlightSql,
    auth: Arc<FlightAuth>,
    tls: Option<tonic::transport::ServerTlsConfig>,
    login: Duration,
}

impl FlightService {
    /// Binds `addr`; calls run in per-call sessions of `engine` over the server session `ctx`.
    pub async fn bind(
        addr: &str,
        ctx: &SessionContext,
        engine: &Engine,
        credentials: Arc<Credentials>,
        tls: Option<&TlsConfig>,
        intraday: Option<bhavstore_intraday::Intraday>,
    ) -> Result<Self, FlightError> {
        let tls = tls.map(crate::serve::tls::flight_identity).transpose().map_err(FlightError::Tls)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| FlightError::Bind { addr: addr.to_string(), source })?;
        let limits = engine.limits();
        // gRPC has no answer before the HTTP/2 handshake: a connection over the cap is closed.
        let acceptor = Acceptor::new(listener, "flight", limits.max_flight_connections, Arc::new(|| None));
        let auth = Arc::new(FlightAuth::new(credentials));
        let login = Duration::from_secs(limits.login_timeout_secs);
        Ok(Self {
            acceptor,
            service: BhavFlightSql::new(ctx.clone(), engine.clone(), Arc::clone(&auth)).with_intraday(intraday),
            auth,
            tls,
            login,
        })
    }
}

impl Service for FlightService {
    fn name(&self) -> &'static str {
        "flight"
    }

    fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn run(self: Box<Self>, shutdown: tokio::sync::watch::Receiver<bool>) -> BoxFuture<'static, std::io::Result<()>> {
        async move {
            let Self { acceptor, service, auth, tls, login } = *self;
            // A connection's uploads (outside a handshake session) die with it.
            let uploads = service.uploads();
            let on_close: CloseHook = Arc::new(move |id| uploads.drop_session(&service::connection_key(id)));
            let incoming = acceptor.into_admitted(login, Some(on_close)).into_stream();
            let server = FlightServiceServer::new(service)
                // Training pulls move big batches; tonic's 4 MiB default would refuse them.
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20);
            let server = tonic::service::interceptor::InterceptedService::new(server, auth::Interceptor(auth));
            let mut builder = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                .http2_keepalive_timeout(Some(Duration::from_secs(20)));
            if let Some(tls) = tls {
                builder = builder.tls_config(tls).map_err(std::io::Error::other)?;
            }
            builder
                .add_service(server)
                .serve_with_incoming_shutdown(incoming, crate::serve::wait_for(shutdown))
                .await
                .map_err(std::io::Error::other)
        }
        .boxed()
    }
}

/// The bytes a batch received over Flight holds. Decoded batches share one message buffer
/// across their columns, so `get_array_memory_size` would count it once per column; the sliced
/// size of each column adds up to the message instead.
fn received_bytes(batch: &datafusion::arrow::array::RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or_else(|_| c.get_array_memory_size()))
        .sum()
}
