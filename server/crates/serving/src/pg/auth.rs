//! Logins. With users configured, SCRAM-SHA-256 (the salted passwords are derived once at
//! start); without, anyone on the loopback interface gets in (the listener binds 127.0.0.1).

use std::collections::HashMap;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use pgwire::api::{ClientInfo, ConnectionManager, PgWireConnectionState, SessionExtensions};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::{Authentication, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage, ProtocolVersion};
use pgwire::tokio::tokio_rustls::rustls::pki_types::CertificateDer;

use super::session::{Connection, UserSlot, UserSlots};

use crate::serve::Credentials;

/// pgwire's SCRAM iteration count (what `ScramAuth` announces).
const ITERATIONS: usize = 4096;

/// Salted passwords of the configured users.
#[derive(Debug)]
pub struct ScramUsers {
    users: HashMap<String, (Vec<u8>, Vec<u8>)>,
}

impl ScramUsers {
    /// Derives each user's salted password with a fresh random salt; `None` without users.
    #[must_use]
    pub fn new(credentials: &Credentials) -> Option<Arc<Self>> {
        if !credentials.has_users() {
            return None;
        }
        let users = credentials
            .user_names()
            .iter()
            .filter_map(|n| credentials.password(n).map(|p| (n.clone(), p)))
            .map(|(name, password)| {
                let salt: [u8; 16] = rand::random();
                (name, (salt.to_vec(), gen_salted_password(password, &salt, ITERATIONS)))
            })
            .collect();
        Some(Arc::new(Self { users }))
    }
}

#[async_trait]
impl AuthSource for ScramUsers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.users.get(user) {
            Some((salt, salted)) => Ok(Password::new(Some(salt.clone()), salted.clone())),
            // An unknown user fails exactly like a wrong password, so names cannot be probed.
            None => {
                let salt: [u8; 16] = rand::random();
                let junk: [u8; 32] = rand::random();
                Ok(Password::new(Some(salt.to_vec()), junk.to_vec()))
            }
        }
    }
}

/// Parameters reported at startup: a read-only, non-superuser session.
fn parameters() -> Arc<DefaultServerParameterProvider> {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = super::compat::server_version();
    p.is_superuser = false;
    p.default_transaction_read_only = true;
    Arc::new(p)
}

/// How a connection logs in.
enum Login {
    /// No users configured.
    Open(OpenStartup),
    /// SCRAM-SHA-256.
    Scram(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

/// The startup handler of one connection: the login, then the user's connection slot.
pub struct Startup {
    login: Login,
    slots: Arc<UserSlots>,
    conn: Arc<Connection>,
}

impl Startup {
    /// The handler for a new connection.
    #[must_use]
    pub fn new(
        users: Option<&Arc<ScramUsers>>,
        connections: Arc<ConnectionManager>,
        slots: Arc<UserSlots>,
        conn: Arc<Connection>,
    ) -> Self {
        let login = match users.cloned() {
            Some(source) => Login::Scram(Box::new(
                SASLAuthStartupHandler::new(parameters())
                    .with_scram(ScramAuth::new(source))
                    .with_connection_manager(connections),
            )),
            None => Login::Open(OpenStartup { connections }),
        };
        Self { login, slots, conn }
    }
}

/// Startup without authentication.
pub struct OpenStartup {
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for OpenStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.connections))
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let max = self.conn.limits().max_connections_per_user;
        let mut checked = SlotCheck { inner: client, slots: &self.slots, max, slot: None, refused: None };
        let login = match &self.login {
            Login::Open(h) => h.on_startup(&mut checked, message).await,
            Login::Scram(h) => h.on_startup(&mut checked, message).await,
        };
        let (slot, refused) = (checked.slot.take(), checked.refused.take());
        if let Err(PgWireError::InvalidPassword(_)) = &login {
            // SCRAM clients send no user name in their first message: name the login user, as
            // Postgres does, and end the connection without a ReadyForQuery after the FATAL
            // (asyncpg treats one as a protocol violation).
            let user = client.metadata().get(pgwire::api::METADATA_USER).cloned().unwrap_or_default();
            tracing::info!(%user, peer = %self.conn.peer(), "postgres login failed: wrong password");
            let info = ErrorInfo::new(
                "FATAL".into(),
                "28P01".into(),
                format!("password authentication failed for user \"{user}\""),
            );
            client.send(PgWireBackendMessage::ErrorResponse(info.into())).await?;
            let _ = futures::SinkExt::close(client).await;
        }
        login?;
        if let Some(user) = refused {
            tracing::warn!(%user, peer = %self.conn.peer(), max, "postgres login refused: too many connections for this user");
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "53300".into(),
                format!(
                    "too many connections for role \"{user}\": at most {max} (server.limits.max_connections_per_user)"
                ),
            ))));
        }
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            let (pid, secret) = client.pid_and_secret_key();
            self.conn.logged_in(slot, pid, &secret);
        }
        Ok(())
    }
}

/// The client as the login sees it: when authentication succeeds (pgwire sends
/// `AuthenticationOk`), the user's connection slot is taken; without a free slot, nothing more
/// reaches the client and the login fails with 53300, before the client is ever ready.
struct SlotCheck<'a, C> {
    inner: &'a mut C,
    slots: &'a Arc<UserSlots>,
    max: usize,
    slot: Option<UserSlot>,
    refused: Option<String>,
}

impl<C: ClientInfo + Sink<PgWireBackendMessage> + Unpin> Sink<PgWireBackendMessage> for SlotCheck<'_, C> {
    type Error = C::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: PgWireBackendMessage) -> Result<(), Self::Error> {
        if self.refused.is_some() {
            return Ok(());
        }
        if matches!(item, PgWireBackendMessage::Authentication(Authentication::Ok)) && self.slot.is_none() {
            let this = &mut *self;
            let user = this.inner_user();
            match this.slots.acquire(&user, this.max) {
                Some(slot) => this.slot = Some(slot),
                None => {
                    this.refused = Some(user);
                    return Ok(());
                }
            }
        }
        Pin::new(&mut *self.inner).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.inner).poll_close(cx)
    }
}

impl<C> SlotCheck<'_, C> {
    fn inner_user(&self) -> String
    where
        C: ClientInfo,
    {
        self.inner.metadata().get(pgwire::api::METADATA_USER).cloned().unwrap_or_default()
    }
}

impl<C: ClientInfo> ClientInfo for SlotCheck<'_, C> {
    fn socket_addr(&self) -> std::net::SocketAddr {
        self.inner.socket_addr()
    }

    fn is_secure(&self) -> bool {
        self.inner.is_secure()
    }

    fn protocol_version(&self) -> ProtocolVersion {
        self.inner.protocol_version()
    }

    fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.inner.set_protocol_version(version);
    }

    fn pid_and_secret_key(&self) -> (i32, SecretKey) {
        self.inner.pid_and_secret_key()
    }

    fn set_pid_and_secret_key(&mut self, pid: i32, secret_key: SecretKey) {
        self.inner.set_pid_and_secret_key(pid, secret_key);
    }

    fn state(&self) -> PgWireConnectionState {
        self.inner.state()
    }

    fn set_state(&mut self, new_state: PgWireConnectionState) {
        self.inner.set_state(new_state);
    }

    fn transaction_status(&self) -> TransactionStatus {
        self.inner.transaction_status()
    }

    fn set_transaction_status(&mut self, new_status: TransactionStatus) {
        self.inner.set_transaction_status(new_status);
    }

    fn metadata(&self) -> &HashMap<String, String> {
        self.inner.metadata()
    }

    fn metadata_mut(&mut self) -> &mut HashMap<String, String> {
        self.inner.metadata_mut()
    }

    fn session_extensions(&self) -> &SessionExtensions {
        self.inner.session_extensions()
    }

    fn sni_server_name(&self) -> Option<&str> {
        self.inner.sni_server_name()
    }

    fn client_certificates<'a>(&self) -> Option<&[CertificateDer<'a>]> {
        self.inner.client_certificates()
    }
}
