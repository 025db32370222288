//! The `server.limits:` section: what one client, one query and the whole server may use.
//!
//! Every limit has a default that keeps a server on a small machine alive under a careless or
//! hostile client; each can be raised in YAML. Sizes are written as `512MiB`, `4GiB` or a plain
//! number of bytes.

use std::time::Duration;

pub use bhavstore_storage::ByteSize;
use serde::{Deserialize, Serialize};

/// Limits of `bhavstore serve`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Memory all SQL queries together may hold (sorts, joins and aggregations spill to disk
    /// beyond their share; what cannot spill fails with SQLSTATE 53200).
    pub query_memory_total: ByteSize,
    /// Memory one query (one Postgres session, one Flight call) may hold.
    pub query_memory: ByteSize,
    /// Disk all spilling queries together may use in the temporary directory.
    pub spill_disk: ByteSize,
    /// Directory for spill files; default the system's temporary directory.
    pub spill_dir: Option<String>,
    /// Seconds a statement may run when the client does not say (Postgres `statement_timeout`,
    /// gRPC deadlines); 0 = no limit.
    pub statement_timeout_secs: u64,
    /// Longest timeout a client may ask for; 0 = no limit.
    pub max_statement_timeout_secs: u64,
    /// Longest SQL text accepted, bytes.
    pub max_statement_bytes: ByteSize,
    /// Deepest nesting of operators and parentheses accepted in a statement (SQLSTATE 54001
    /// beyond it). Postgres answers such statements with "stack depth limit exceeded".
    pub max_expression_depth: usize,
    /// Open Postgres connections.
    pub max_pg_connections: usize,
    /// Open Flight SQL connections.
    pub max_flight_connections: usize,
    /// Open REST connections.
    pub max_http_connections: usize,
    /// Open Postgres connections of one user.
    pub max_connections_per_user: usize,
    /// Seconds a new connection may take to log in (Postgres startup, TLS, HTTP/2 preface).
    pub login_timeout_secs: u64,
    /// Seconds a REST request may take before it is answered 503.
    pub http_request_timeout_secs: u64,
    /// Bytes one Flight session may hold in temporary uploads (spines for training sets).
    pub upload_bytes_per_session: ByteSize,
    /// Bytes all Flight sessions together may hold in temporary uploads.
    pub upload_bytes_total: ByteSize,
    /// Parameter rows one Flight prepared statement may be bound to.
    pub max_parameter_rows: usize,
    /// REST ingest run statuses kept in memory (oldest finished ones are dropped first).
    pub max_run_statuses: usize,
    /// Hours a finished REST ingest run status is kept.
    pub run_status_ttl_hours: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            query_memory_total: ByteSize::gib(4),
            query_memory: ByteSize::gib(2),
            spill_disk: ByteSize::gib(20),
            spill_dir: None,
            statement_timeout_secs: 300,
            max_statement_timeout_secs: 3600,
            max_statement_bytes: ByteSize(bhavstore_query::sqlguard::TextLimits::DEFAULT_MAX_BYTES as u64),
            max_expression_depth: bhavstore_query::sqlguard::TextLimits::DEFAULT_MAX_DEPTH,
            max_pg_connections: 256,
            max_flight_connections: 256,
            max_http_connections: 1024,
            max_connections_per_user: 64,
            login_timeout_secs: 10,
            http_request_timeout_secs: 60,
            upload_bytes_per_session: ByteSize::gib(1),
            upload_bytes_total: ByteSize::gib(2),
            max_parameter_rows: 100_000,
            max_run_statuses: 10_000,
            run_status_ttl_hours: 24,
        }
    }
}

/// A `server.limits` setting out of range. Each message names its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// `query_memory` is zero or above `query_memory_total`.
    #[error(
        "server.limits.query_memory ({query_memory}) must be above 0 and at most query_memory_total ({query_memory_total})"
    )]
    QueryMemory {
        /// The configured `query_memory`.
        query_memory: ByteSize,
        /// The configured `query_memory_total`.
        query_memory_total: ByteSize,
    },
    /// A setting is below its minimum.
    #[error("server.limits.{key} must be at least {minimum}")]
    BelowMinimum {
        /// The setting, e.g. `max_pg_connections`.
        key: &'static str,
        /// The smallest value accepted, as written in the message (`16`, `1KiB`).
        minimum: &'static str,
    },
    /// `login_timeout_secs` or `http_request_timeout_secs` is zero.
    #[error("server.limits timeouts must be at least 1 second")]
    ZeroTimeout,
    /// `upload_bytes_per_session` is above `upload_bytes_total`.
    #[error("server.limits.upload_bytes_per_session must be at most upload_bytes_total")]
    UploadBytesPerSession,
}

impl LimitsConfig {
    /// Checks ranges serde cannot express.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.query_memory.0 == 0 || self.query_memory > self.query_memory_total {
            return Err(LimitsError::QueryMemory {
                query_memory: self.query_memory,
                query_memory_total: self.query_memory_total,
            });
        }
        if self.max_expression_depth < 16 {
            return Err(LimitsError::BelowMinimum { key: "max_expression_depth", minimum: "16" });
        }
        if self.max_statement_bytes.0 < 1024 {
            return Err(LimitsError::BelowMinimum { key: "max_statement_bytes", minimum: "1KiB" });
        }
        for (name, v) in [
            ("max_pg_connections", self.max_pg_connections),
            ("max_flight_connections", self.max_flight_connections),
            ("max_http_connections", self.max_http_connections),
            ("max_connections_per_user", self.max_connections_per_user),
            ("max_parameter_rows", self.max_parameter_rows),
            ("max_run_statuses", self.max_run_statuses),
        ] {
            if v == 0 {
                return Err(LimitsError::BelowMinimum { key: name, minimum: "1" });
            }
        }
        if self.login_timeout_secs == 0 || self.http_request_timeout_secs == 0 {
            return Err(LimitsError::ZeroTimeout);
        }
        if self.upload_bytes_per_session > self.upload_bytes_total {
            return Err(LimitsError::UploadBytesPerSession);
        }
        Ok(())
    }

    /// The timeout of a statement: the client's own (`Some(0)` = none asked), else the default,
    /// never above the maximum. `None` = no limit.
    #[must_use]
    pub fn statement_timeout(&self, client: Option<Duration>) -> Option<Duration> {
        let default = (self.statement_timeout_secs > 0).then(|| Duration::from_secs(self.statement_timeout_secs));
        let max = (self.max_statement_timeout_secs > 0).then(|| Duration::from_secs(self.max_statement_timeout_secs));
        let asked = match client {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => default,
        };
        match (asked, max) {
            (Some(a), Some(m)) => Some(a.min(m)),
            (None, m) => m,
            (a, None) => a,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("4GiB").unwrap(), ByteSize::gib(4));
        assert_eq!(ByteSize::parse("512 MiB").unwrap(), ByteSize::mib(512));
        assert_eq!(ByteSize::parse("10MB").unwrap().0, 10_000_000);
        assert_eq!(ByteSize::parse("123").unwrap().0, 123);
        assert_eq!(ByteSize::parse("1.5KiB").unwrap().0, 1536);
        assert!(ByteSize::parse("lots").is_err());
        assert!(ByteSize::parse("5 parsecs").is_err());
        assert_eq!(ByteSize::gib(4).to_string(), "4GiB");
        assert_eq!(ByteSize(1536).to_string(), "1.5KiB");
        let c: LimitsConfig = serde_norway::from_str("query_memory: 256MiB\nquery_memory_total: 1073741824\n").unwrap();
        assert_eq!(c.query_memory, ByteSize::mib(256));
        assert_eq!(c.query_memory_total, ByteSize::gib(1));
        assert!(serde_norway::from_str::<LimitsConfig>("query_memroy: 1GiB\n").is_err());
    }

    #[test]
    fn refusals_name_their_key() {
        let msg = |c: LimitsConfig| c.validate().unwrap_err().to_string();
        let d = LimitsConfig::default;
        assert_eq!(d().validate(), Ok(()));
        assert_eq!(
            msg(LimitsConfig { query_memory: ByteSize::gib(8), ..d() }),
            "server.limits.query_memory (8GiB) must be above 0 and at most query_memory_total (4GiB)"
        );
        assert_eq!(
            msg(LimitsConfig { max_expression_depth: 15, ..d() }),
            "server.limits.max_expression_depth must be at least 16"
        );
        assert_eq!(
            msg(LimitsConfig { max_statement_bytes: ByteSize(1023), ..d() }),
            "server.limits.max_statement_bytes must be at least 1KiB"
        );
        assert_eq!(
            msg(LimitsConfig { max_run_statuses: 0, ..d() }),
            "server.limits.max_run_statuses must be at least 1"
        );
        assert_eq!(
            msg(LimitsConfig { login_timeout_secs: 0, ..d() }),
            "server.limits timeouts must be at least 1 second"
        );
        assert_eq!(
            msg(LimitsConfig { upload_bytes_per_session: ByteSize::gib(3), ..d() }),
            "server.limits.upload_bytes_per_session must be at most upload_bytes_total"
        );
    }

    #[test]
    fn timeouts() {
        let c = LimitsConfig::default();
        assert_eq!(c.statement_timeout(None), Some(Duration::from_secs(300)));
        assert_eq!(c.statement_timeout(Some(Duration::from_secs(2))), Some(Duration::from_secs(2)));
        assert_eq!(c.statement_timeout(Some(Duration::ZERO)), Some(Duration::from_secs(3600)));
        assert_eq!(c.statement_timeout(Some(Duration::from_secs(10_000))), Some(Duration::from_secs(3600)));
        let open = LimitsConfig { statement_timeout_secs: 0, max_statement_timeout_secs: 0, ..c };
        assert_eq!(open.statement_timeout(None), None);
    }
}
