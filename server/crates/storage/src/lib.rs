//! The object store behind everything: the local filesystem (the embedded default) or any
//! S3-compatible service (MinIO, SeaweedFS, AWS). Callers pass keys from [`paths`].

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};
use url::Url;

pub mod bytesize;
pub mod config;
pub mod paths;

pub use bytesize::{ByteSize, ByteSizeError};
pub use config::{S3Config, StorageConfig};

/// A configuration value out of its range; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

/// Hex SHA-256 of `bytes`: how raw files, revisions and held locks are named.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage URL is malformed or of an unsupported scheme.
    #[error("storage URL {url:?}: {message}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The S3 endpoint did not answer in time (object_store's own message is only "error
    /// sending request").
    #[error(
        "object store {op} {key}: timed out: the S3 endpoint {endpoint} did not answer within {secs} s (storage.s3.timeout_secs); is it running and reachable?"
    )]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
        /// The endpoint (or `AWS` when none is configured).
        endpoint: String,
        /// The request timeout.
        secs: u64,
    },
    /// The object store refused or failed an operation.
    #[error("object store {op} {key}: {source}")]
    Store {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
        /// The underlying error.
        source: object_store::Error,
    },
    /// Creating the local directory failed.
    #[error("cannot create local storage directory {path}: {source}")]
    LocalDir {
        /// The directory.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
}

/// Outcome of a create-only put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The object was written.
    New,
    /// An object already existed at that key; nothing was written.
    AlreadyExisted,
}

/// Seconds one S3 request may take when `storage.s3.timeout_secs` is unset (object_store's
/// default).
pub const DEFAULT_S3_TIMEOUT_SECS: u64 = 30;

/// A bhavstore storage root.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// For S3: the endpoint and request timeout, to say which server did not answer in time.
    s3: Option<(String, u64)>,
    /// URL of the object store itself (`file:///` or `s3://bucket/`), as DataFusion registers it.
    store_url: Url,
    /// Key prefix of the bhavstore root inside the store (no leading or trailing slash).
    prefix: String,
    /// Human-readable root, for logs.
    display: String,
}

impl Storage {
    /// Opens the storage named by the configuration, creating a local directory if needed.
    pub fn open(cfg: &StorageConfig) -> Result<Self, StorageError> {
        let url = cfg.url.trim();
        let bad = |message: String| StorageError::Url { url: url.to_string(), message };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            return Self::open_s3(bucket, prefix, &cfg.s3);
        }
        let dir = if let Some(rest) = url.strip_prefix("file://") {
            let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
            if !rest.starts_with('/') {
                return Err(bad("file URLs must be absolute: file:///abs/path".into()));
            }
            parsed.to_file_path().map_err(|()| bad("not a local path".into()))?
        } else if url.contains("://") {
            return Err(bad("supported schemes are file:// and s3://".into()));
        } else {
            std::path::PathBuf::from(if url.is_empty() { "./data" } else { url })
        };
        std::fs::create_dir_all(&dir)
            .map_err(|source| StorageError::LocalDir { path: dir.display().to_string(), source })?;
        let abs = std::fs::canonicalize(&dir)
            .map_err(|source| StorageError::LocalDir { path: dir.display().to_string(), source })?;
        let prefix = abs.to_string_lossy().trim_matches('/').to_string();
        let store = LocalFileSystem::new().with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            s3: None,
            store_url: Url::parse("file:///").expect("static URL"),
            prefix,
            display: format!("file://{}", abs.display()),
        })
    }

    /// Opens `prefix` of an S3 bucket with the given settings (falling back to `AWS_*`).
    /// Nothing is created.
    pub fn open_s3(bucket: &str, prefix: &str, s3: &S3Config) -> Result<Self, StorageError> {
        let prefix = prefix.trim_matches('/').to_string();
        let display = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
        let bad = |message: String| StorageError::Url { url: display.clone(), message };
        if bucket.is_empty() {
            return Err(bad("no bucket name".into()));
        }
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            // Custom endpoints (MinIO, SeaweedFS) need path-style requests.
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        if let Some(v) = &s3.endpoint {
            b = b.with_endpoint(v);
        }
        if let Some(v) = &s3.region {
            b = b.with_region(v);
        } else if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            b = b.with_region("us-east-1");
        }
        if let Some(v) = &s3.access_key_id {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = &s3.secret_access_key {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = s3.allow_http {
            b = b.with_allow_http(v);
        }
        if s3.max_retries.is_some() || s3.retry_timeout_secs.is_some() {
            let mut retry = RetryConfig::default();
            if let Some(n) = s3.max_retries {
                retry.max_retries = n;
            }
            if let Some(secs) = s3.retry_timeout_secs {
                retry.retry_timeout = std::time::Duration::from_secs(secs);
            }
            b = b.with_retry(retry);
        }
        let secs = s3.timeout_secs.unwrap_or(DEFAULT_S3_TIMEOUT_SECS);
        // Through the config key: replacing the client options would drop allow_http and the
        // AWS_* client settings read above.
        b = b.with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), format!("{secs}s"));
        let endpoint = s3
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| "of AWS".to_string());
        let store = b.build().map_err(|e| bad(e.to_string()))?;
        let store_url = Url::parse(&format!("s3://{bucket}/")).map_err(|e| bad(e.to_string()))?;
        Ok(Self { store: Arc::new(store), s3: Some((endpoint, secs)), store_url, prefix, display })
    }

    /// The error of operation `op` on `key`, saying plainly when S3 timed out.
    fn error(&self, op: &'static str, key: &str, source: object_store::Error) -> StorageError {
        if let Some((endpoint, secs)) = &self.s3
            && is_timeout(&source)
        {
            // object_store's own text adds only "error sending request" and the URL.
            tracing::debug!(op, key, error = %source, "S3 request timed out");
            return StorageError::Timeout { op, key: key.to_string(), endpoint: endpoint.clone(), secs: *secs };
        }
        StorageError::Store { op, key: key.to_string(), source }
    }

    /// The underlying object store, for registering with DataFusion.
    #[must_use]
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// URL of the object store (what DataFusion registers it under).
    #[must_use]
    pub fn store_url(&self) -> &Url {
        &self.store_url
    }

    /// URL of a folder under the root, with a trailing slash (for listing tables).
    #[must_use]
    pub fn folder_url(&self, rel: &str) -> String {
        let full = self.full(rel);
        format!("{}{}/", self.store_url, full)
    }

    /// Human-readable root, e.g. `file:///work/data` or `s3://bucket/prefix`.
    #[must_use]
    pub fn display(&self) -> &str {
        &self.display
    }

    fn full(&self, rel: &str) -> String {
        let rel = rel.trim_matches('/');
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        }
    }

    fn path(&self, rel: &str) -> Path {
        Path::from(self.full(rel))
    }

    fn strip(&self, location: &Path) -> String {
        let s = location.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&self.prefix).map_or_else(|| s.to_string(), |r| r.trim_start_matches('/').to_string())
        }
    }

    /// Writes an object only if none exists at the key (raw bytes are immutable).
    pub async fn put_create(&self, rel: &str, bytes: Bytes) -> Result<Created, StorageError> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&self.path(rel), PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(Created::New),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Ok(Created::AlreadyExisted)
            }
            Err(source) => Err(self.error("create", rel, source)),
        }
    }

    /// Writes (or replaces) an object atomically: readers see the old or the new bytes.
    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.store
            .put(&self.path(rel), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|source| self.error("put", rel, source))
    }

    /// Reads an object; `None` if it does not exist.
    pub async fn get(&self, rel: &str) -> Result<Option<Bytes>, StorageError> {
        let err = |source| self.error("get", rel, source);
        match self.store.get(&self.path(rel)).await {
            Ok(r) => r.bytes().await.map(Some).map_err(err),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, rel: &str) -> Result<(), StorageError> {
        match self.store.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(self.error("delete", rel, source)),
        }
    }

    /// Object-store path of a key (for readers that open objects themselves, e.g. Parquet scans).
    #[must_use]
    pub fn object_path(&self, rel: &str) -> Path {
        self.path(rel)
    }

    /// Size of an object; `None` if it does not exist.
    pub async fn size(&self, rel: &str) -> Result<Option<u64>, StorageError> {
        match self.store.head(&self.path(rel)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(self.error("head", rel, source)),
        }
    }

    /// Objects under a folder whose keys sort after `after` (a full key), sorted. Used to
    /// resume reading an append-only log without listing what was already consumed.
    pub async fn list_after(&self, rel_prefix: &str, after: &str) -> Result<Vec<String>, StorageError> {
        let prefix = self.path(rel_prefix);
        let offset = self.path(after);
        let mut keys: Vec<String> = self
            .store
            .list_with_offset(Some(&prefix), &offset)
            .map_ok(|m| self.strip(&m.location))
            .try_collect()
            .await
            .map_err(|source| self.error("list", rel_prefix, source))?;
        keys.sort();
        keys.retain(|k| k.as_str() > after);
        Ok(keys)
    }

    /// Every object under a folder, as keys relative to the root, sorted.
    pub async fn list(&self, rel_prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix = self.path(rel_prefix);
        let mut keys: Vec<String> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| self.strip(&m.location))
            .try_collect()
            .await
            .map_err(|source| self.error("list", rel_prefix, source))?;
        keys.sort();
        Ok(keys)
    }

    /// Names of the sub-folders directly under a folder, sorted (one delimited listing, not a
    /// walk of every object below).
    pub async fn list_folders(&self, rel_prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix = self.path(rel_prefix);
        let listed = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|source| self.error("list", rel_prefix, source))?;
        let mut names: Vec<String> =
            listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
        names.sort();
        Ok(names)
    }

    /// Every object under a folder with its size, sorted by key.
    pub async fn list_sized(&self, rel_prefix: &str) -> Result<Vec<(String, u64)>, StorageError> {
        let prefix = self.path(rel_prefix);
        let mut keys: Vec<(String, u64)> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| (self.strip(&m.location), m.size))
            .try_collect()
            .await
            .map_err(|source| self.error("list", rel_prefix, source))?;
        keys.sort();
        Ok(keys)
    }
}

/// Whether an object_store error is a request that timed out, wherever in its chain of sources
/// that is recorded.
fn is_timeout(e: &object_store::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<HttpError>()
            && h.kind() == HttpErrorKind::Timeout
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if let Some(r) = err.downcast_ref::<reqwest::Error>()
            && r.is_timeout()
        {
            return true;
        }
        cur = err.source();
    }
    false
}
