//! The `server:` section: listeners and who may use them.

use serde::{Deserialize, Serialize};

/// Listeners of `bhavstore serve` and their authentication.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// REST API address (`host:port`; port 0 picks a free one); empty = no REST listener.
    pub http_addr: String,
    /// Postgres wire address (psql, BI tools); empty = no Postgres listener.
    pub pg_addr: String,
    /// Arrow Flight SQL address (bulk pulls); empty = no Flight listener.
    pub flight_addr: String,
    /// Bearer tokens accepted by the REST API and by Flight SQL: a plain string (read only), or
    /// `{token: ..., roles: [write]}` for a token that may also push intraday bars. Empty = REST
    /// needs no authentication and binds to 127.0.0.1 only, whatever address is configured.
    pub tokens: Vec<TokenConfig>,
    /// Users for Postgres (SCRAM-SHA-256) and Flight SQL (basic, exchanged for a bearer token in
    /// the handshake). Empty = Postgres needs no password and binds to 127.0.0.1 only.
    pub users: Vec<User>,
    /// TLS for Postgres and Flight SQL (optional; REST is meant to sit behind a proxy).
    pub tls: Option<TlsConfig>,
    /// Seconds between checks for views materialized by other processes (the online store
    /// and the SQL catalog reload a view whose newest manifest changed).
    pub refresh_secs: u64,
    /// Locations `POST /feature-store/ingest` may load files from (`file:///abs/dir` or
    /// `s3://bucket/prefix`). Empty (the default): only trade dates, fetched from BSE.
    pub import_roots: Vec<String>,
    /// Resource limits of the listeners: memory, time, connections, uploads.
    pub limits: crate::serve::limits::LimitsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_addr: "127.0.0.1:8080".into(),
            pg_addr: "127.0.0.1:5433".into(),
            flight_addr: "127.0.0.1:50051".into(),
            tokens: Vec::new(),
            users: Vec::new(),
            tls: None,
            refresh_secs: 30,
            import_roots: Vec::new(),
            limits: crate::serve::limits::LimitsConfig::default(),
        }
    }
}

/// What a user or token may do beyond reading.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Query and look up (every user and token may).
    Read,
    /// Push intraday bars (REST `POST /feature-store/push`, Flight bulk ingest into
    /// `intraday_bars`).
    Write,
}

/// A bearer token: its text alone (read only), or with roles.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TokenConfig {
    /// A read-only token.
    Plain(String),
    /// A token with roles.
    WithRoles(TokenEntry),
}

/// A token with roles.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The token.
    pub token: String,
    /// Its roles (`read` is implied).
    #[serde(default)]
    pub roles: Vec<Role>,
}

impl TokenConfig {
    fn parts(&self) -> (String, bool) {
        match self {
            Self::Plain(t) => (t.clone(), false),
            Self::WithRoles(e) => (e.token.clone(), e.roles.contains(&Role::Write)),
        }
    }
}

/// A user of the SQL protocols.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Password in the file (prefer `password_env`).
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Roles beyond reading: `[write]` may push intraday bars through Flight SQL.
    #[serde(default)]
    pub roles: Vec<Role>,
}

/// Why a user's password cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The user's `password_env` names a variable that is not set (or not UTF-8).
    #[error("server.users: environment variable {var} (password of {user}) is not set")]
    PasswordEnvUnset {
        /// The user's name.
        user: String,
        /// The variable's name.
        var: String,
        /// Why the variable could not be read.
        source: std::env::VarError,
    },
    /// The user has both or neither of `password` and `password_env`.
    #[error("server.users: user {user} needs exactly one of password, password_env")]
    PasswordSource {
        /// The user's name.
        user: String,
    },
}

impl User {
    /// The password, from the file or the environment.
    pub fn resolve_password(&self) -> Result<String, CredentialsError> {
        match (&self.password, &self.password_env) {
            (Some(p), None) => Ok(p.clone()),
            (None, Some(var)) => std::env::var(var).map_err(|source| CredentialsError::PasswordEnvUnset {
                user: self.name.clone(),
                var: var.clone(),
                source,
            }),
            _ => Err(CredentialsError::PasswordSource { user: self.name.clone() }),
        }
    }
}

/// PEM files for TLS.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: String,
    /// Private key (PEM, PKCS#8).
    pub key: String,
}

/// Users with their passwords resolved, as the protocols check them.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    users: Vec<(String, String)>,
    tokens: Vec<String>,
    writers: Vec<String>,
    write_tokens: Vec<String>,
}

impl Credentials {
    /// Resolves every password now, so a missing variable fails at start, not at first login.
    pub fn from_config(config: &ServerConfig) -> Result<Self, CredentialsError> {
        let users =
            config.users.iter().map(|u| u.resolve_password().map(|p| (u.name.clone(), p))).collect::<Result<_, _>>()?;
        let tokens: Vec<(String, bool)> = config.tokens.iter().map(TokenConfig::parts).collect();
        Ok(Self {
            users,
            tokens: tokens.iter().map(|(t, _)| t.clone()).collect(),
            write_tokens: tokens.iter().filter(|(_, w)| *w).map(|(t, _)| t.clone()).collect(),
            writers: config.users.iter().filter(|u| u.roles.contains(&Role::Write)).map(|u| u.name.clone()).collect(),
        })
    }

    /// Whether any user is configured.
    #[must_use]
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// The configured user names.
    #[must_use]
    pub fn user_names(&self) -> Vec<String> {
        self.users.iter().map(|(u, _)| u.clone()).collect()
    }

    /// Whether any bearer token is configured.
    #[must_use]
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The password of `user`.
    #[must_use]
    pub fn password(&self, user: &str) -> Option<&str> {
        self.users.iter().find(|(u, _)| u == user).map(|(_, p)| p.as_str())
    }

    /// Checks a user's password in constant time.
    #[must_use]
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        self.password(user).is_some_and(|p| constant_time_eq(p.as_bytes(), password.as_bytes()))
    }

    /// Whether anyone must authenticate at all (no users, no tokens: a loopback-only server
    /// where every caller may do everything).
    #[must_use]
    pub fn open(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }

    /// Whether a configured token has the `write` role (constant time).
    #[must_use]
    pub fn token_can_write(&self, token: &str) -> bool {
        self.write_tokens.iter().any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    }

    /// Whether a configured user has the `write` role.
    #[must_use]
    pub fn user_can_write(&self, user: &str) -> bool {
        self.writers.iter().any(|u| u == user)
    }

    /// Checks a configured bearer token in constant time.
    #[must_use]
    pub fn check_token(&self, token: &str) -> bool {
        self.tokens.iter().any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    }
}

/// Byte comparison whose time does not depend on where the inputs differ.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_errors_name_the_user() {
        let user = |password: Option<&str>, password_env: Option<&str>| User {
            name: "ana".into(),
            password: password.map(Into::into),
            password_env: password_env.map(Into::into),
            roles: Vec::new(),
        };
        assert_eq!(user(Some("pw"), None).resolve_password().unwrap(), "pw");
        let unset = user(None, Some("BHAVSTORE_TEST_UNSET_PASSWORD_VARIABLE")).resolve_password().unwrap_err();
        assert_eq!(
            unset.to_string(),
            "server.users: environment variable BHAVSTORE_TEST_UNSET_PASSWORD_VARIABLE (password of ana) is not set"
        );
        for (password, password_env) in [(None, None), (Some("pw"), Some("VAR"))] {
            assert_eq!(
                user(password, password_env).resolve_password().unwrap_err().to_string(),
                "server.users: user ana needs exactly one of password, password_env"
            );
        }
        let config = ServerConfig { users: vec![user(None, None)], ..ServerConfig::default() };
        assert!(matches!(Credentials::from_config(&config), Err(CredentialsError::PasswordSource { .. })));
    }
}
