//! Flight authentication: HTTP basic with a configured user (exchanged for a session bearer
//! token in the handshake, as ADBC and JDBC do), or a bearer token (configured, or issued by a
//! handshake). With neither users nor tokens configured, every call is accepted and the
//! listener binds 127.0.0.1 only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tonic::{Request, Status};

use crate::serve::Credentials;
use crate::serve::authorization::{bearer, scheme_value};

/// How long a token issued by a handshake stays valid.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Handshake sessions kept at most; the oldest goes first.
const MAX_SESSIONS: usize = 10_000;

/// Users, tokens and the sessions handshakes opened.
#[derive(Debug)]
pub struct FlightAuth {
    credentials: Arc<Credentials>,
    sessions: Mutex<HashMap<String, (String, Instant)>>,
}

impl FlightAuth {
    /// Checks against `credentials`.
    #[must_use]
    pub fn new(credentials: Arc<Credentials>) -> Self {
        Self { credentials, sessions: Mutex::new(HashMap::new()) }
    }

    /// Whether calls must authenticate.
    #[must_use]
    pub fn required(&self) -> bool {
        self.credentials.has_users() || self.credentials.has_tokens()
    }

    /// The user of a valid `authorization` header value, or why it is not valid.
    pub fn check(&self, header: Option<&str>) -> Result<String, Status> {
        if !self.required() {
            return Ok("anonymous".into());
        }
        let Some(header) = header else {
            return Err(Status::unauthenticated("authentication required: basic credentials or a bearer token"));
        };
        if let Some(token) = bearer(header) {
            if self.credentials.check_token(token) {
                return Ok("token".into());
            }
            let now = Instant::now();
            let mut sessions = self.sessions.lock().map_err(|_| Status::internal("session table poisoned"))?;
            sessions.retain(|_, (_, at)| now.duration_since(*at) < SESSION_TTL);
            return match sessions.get(token) {
                Some((user, _)) => Ok(user.clone()),
                None => Err(Status::unauthenticated("unknown or expired bearer token; handshake again")),
            };
        }
        if let Some(b64) = scheme_value(header, "basic") {
            let (user, password) = decode_basic(b64)?;
            if self.credentials.check_password(&user, &password) {
                return Ok(user);
            }
            return Err(Status::unauthenticated("invalid user or password"));
        }
        Err(Status::unauthenticated("unsupported authorization scheme (use Basic or Bearer)"))
    }

    /// Whether the caller of a valid `authorization` header may write (push intraday bars): any
    /// caller of a server without users and tokens, else a token or user with the write role.
    #[must_use]
    pub fn can_write(&self, header: Option<&str>) -> bool {
        if !self.required() {
            return true;
        }
        let Some(header) = header else { return false };
        if let Some(token) = bearer(header) {
            if self.credentials.token_can_write(token) {
                return true;
            }
            let user = self.sessions.lock().ok().and_then(|s| s.get(token).map(|(u, _)| u.clone()));
            return user.is_some_and(|u| self.credentials.user_can_write(&u));
        }
        if let Some(b64) = scheme_value(header, "basic")
            && let Ok((user, password)) = decode_basic(b64)
        {
            return self.credentials.check_password(&user, &password) && self.credentials.user_can_write(&user);
        }
        false
    }

    /// Opens a session for `user` and returns its bearer token.
    pub fn open_session(&self, user: &str) -> Result<String, Status> {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut sessions = self.sessions.lock().map_err(|_| Status::internal("session table poisoned"))?;
        let now = Instant::now();
        sessions.retain(|_, (_, at)| now.duration_since(*at) < SESSION_TTL);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(token.clone(), (user.to_string(), now));
        Ok(token)
    }

    /// Whether `token` was issued by a handshake (and is still valid).
    #[must_use]
    pub fn is_session(&self, token: &str) -> bool {
        self.sessions.lock().is_ok_and(|s| s.contains_key(token))
    }
}

fn decode_basic(b64: &str) -> Result<(String, String), Status> {
    // arrow-go (the ADBC driver) sends unpadded base64; other clients pad.
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(b64).map_err(|_| Status::invalid_argument("basic credentials are not base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| Status::invalid_argument("basic credentials are not UTF-8"))?;
    let (user, password) =
        text.split_once(':').ok_or_else(|| Status::invalid_argument("basic credentials need user:password"))?;
    Ok((user.to_string(), password.to_string()))
}

/// Checks every call before it reaches the service.
#[derive(Clone)]
pub(super) struct Interceptor(pub Arc<FlightAuth>);

impl tonic::service::Interceptor for Interceptor {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        self.0.check(header)?;
        Ok(request)
    }
}
