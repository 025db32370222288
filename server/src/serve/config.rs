//! The `server:` section: listeners and who may use them.

use serde::{Deserialize, Serialize};

/// Listeners of `bhavstore serve` and their authentication.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// REST API address (`host:port`; port 0 picks a free one); empty = no REST listener.
    pub http_addr: String,
    /// Bearer tokens accepted by the REST API. Empty = no authentication, and then every
    /// listener binds to 127.0.0.1 only, whatever address is configured.
    pub tokens: Vec<String>,
    /// Seconds between checks for views materialized by other processes (the online store
    /// reloads a view whose newest manifest changed).
    pub refresh_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { http_addr: "127.0.0.1:8080".into(), tokens: Vec::new(), refresh_secs: 30 }
    }
}
