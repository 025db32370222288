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

/// How long a token issued by a handshake stays valid.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

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
        if let Some(token) = header.strip_prefix("Bearer ").map(str::trim) {
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
        if let Some(b64) = header.strip_prefix("Basic ").map(str::trim) {
            let (user, password) = decode_basic(b64)?;
            if self.credentials.check_password(&user, &password) {
                return Ok(user);
            }
            return Err(Status::unauthenticated("invalid user or password"));
        }
        Err(Status::unauthenticated("unsupported authorization scheme (use Basic or Bearer)"))
    }

    /// Opens a session for `user` and returns its bearer token.
    pub fn open_session(&self, user: &str) -> Result<String, Status> {
        let token = hex::encode(rand::random::<[u8; 32]>());
        self.sessions
            .lock()
            .map_err(|_| Status::internal("session table poisoned"))?
            .insert(token.clone(), (user.to_string(), Instant::now()));
        Ok(token)
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

/// Which session a call belongs to (the key of its uploads): its bearer token, its basic user,
/// or the anonymous session. Never the password.
#[must_use]
pub fn session_key(metadata: &tonic::metadata::MetadataMap) -> String {
    let header = metadata.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if let Some(token) = header.strip_prefix("Bearer ") {
        return format!("bearer:{}", token.trim());
    }
    if let Some(b64) = header.strip_prefix("Basic ")
        && let Ok((user, _)) = decode_basic(b64.trim())
    {
        return format!("basic:{user}");
    }
    "anonymous".to_string()
}

/// Checks every call before it reaches the service.
#[derive(Clone)]
pub struct Interceptor(pub Arc<FlightAuth>);

impl tonic::service::Interceptor for Interceptor {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        self.0.check(header)?;
        Ok(request)
    }
}
