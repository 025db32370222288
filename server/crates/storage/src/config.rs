//! The `storage:` section of the configuration.

use serde::{Deserialize, Serialize};

/// Storage location and S3 credentials.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file:///abs/path`, a plain directory path, or `s3://bucket/prefix`. Default `./data`.
    pub url: String,
    /// S3 settings; each falls back to the standard `AWS_*` variables when unset.
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { url: "./data".into(), s3: S3Config::default() }
    }
}

/// S3-compatible object storage (AWS, MinIO, SeaweedFS). Unset fields come from `AWS_*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000` (`AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region (`AWS_REGION`); MinIO accepts any, default `us-east-1`.
    pub region: Option<String>,
    /// Access key (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret key (`AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// Allow plain HTTP endpoints (`AWS_ALLOW_HTTP`).
    pub allow_http: Option<bool>,
    /// Retries of a failed request (5xx, connection errors, timeouts) before giving up. Unset:
    /// object_store's default (10).
    pub max_retries: Option<usize>,
    /// Seconds after a request's first attempt beyond which it is not retried. Unset:
    /// object_store's default (180), which is how long a run waits on an unreachable server.
    pub retry_timeout_secs: Option<u64>,
    /// Seconds one request may take before it counts as timed out. Unset: 30.
    pub timeout_secs: Option<u64>,
}
