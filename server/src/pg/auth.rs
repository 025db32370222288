//! Logins. With users configured, SCRAM-SHA-256 (the salted passwords are derived once at
//! start); without, anyone on the loopback interface gets in (the listener binds 127.0.0.1).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use pgwire::api::{ClientInfo, ConnectionManager};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

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
    p.is_superuser = false;
    p.default_transaction_read_only = true;
    Arc::new(p)
}

/// The startup handler of one connection.
pub enum Startup {
    /// No users configured.
    Open(OpenStartup),
    /// SCRAM-SHA-256.
    Scram(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

impl Startup {
    /// The handler for a new connection.
    #[must_use]
    pub fn new(users: Option<&Arc<ScramUsers>>, connections: Arc<ConnectionManager>) -> Self {
        match users.cloned() {
            Some(source) => Self::Scram(Box::new(
                SASLAuthStartupHandler::new(parameters())
                    .with_scram(ScramAuth::new(source))
                    .with_connection_manager(connections),
            )),
            None => Self::Open(OpenStartup { connections }),
        }
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
        match self {
            Self::Open(h) => h.on_startup(client, message).await,
            Self::Scram(h) => h.on_startup(client, message).await,
        }
    }
}
