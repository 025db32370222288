//! Configuration: defaults < YAML file < `BHAVSTORE_*` environment < command-line flags.
//!
//! Every section denies unknown keys so a typo in YAML is an error naming the key instead of a
//! setting that silently does nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors loading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The YAML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The YAML file does not parse or has unknown keys.
    #[error("config file {path}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// serde's message, which names the key and its line.
        message: String,
    },
    /// An environment variable holds a value of the wrong type.
    #[error("environment variable {var}={value:?}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where bhavstore keeps everything.
    pub storage: StorageConfig,
    /// Where bhavcopies are downloaded from and how politely.
    pub source: SourceConfig,
    /// Backfill settings.
    pub backfill: BackfillConfig,
    /// How files are taken in: revisions that lose rows, archive limits.
    pub ingest: IngestConfig,
    /// Feature views.
    pub features: FeaturesConfig,
    /// Logging.
    pub log: LogConfig,
    /// Materialization of feature views.
    pub materialize: crate::materialize::MaterializeConfig,
    /// The scheduler of `bhavstore serve`.
    pub schedule: crate::schedule::ScheduleConfig,
    /// MLflow tracking of materialization runs.
    pub mlflow: crate::mlflow::MlflowConfig,
    /// Listeners of `bhavstore serve`.
    pub server: crate::serve::ServerConfig,
    /// The in-memory online store.
    pub online: crate::online::OnlineConfig,
}

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

/// The BSE download source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Base URL replacing `https://www.bseindia.com` (tests and mirrors).
    pub base_url: String,
    /// Also try `EQ_ISINCODE_{DDMMYY}.zip` when the plain legacy zip is missing (before UDiFF).
    pub isincode_fallback: bool,
    /// Whole-request timeout, seconds.
    pub timeout_secs: u64,
    /// Connect timeout, seconds.
    pub connect_timeout_secs: u64,
    /// Retries after the first attempt for transient failures (timeouts, resets, 5xx, 429).
    pub retries: u32,
    /// First retry delay, milliseconds; doubles each retry, with jitter.
    pub backoff_initial_ms: u64,
    /// Largest retry delay, milliseconds.
    pub backoff_max_ms: u64,
    /// Requests per second to BSE across all concurrent jobs.
    pub requests_per_second: f64,
    /// User-Agent to send; BSE refuses non-browser agents.
    pub user_agent: String,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            base_url: "https://www.bseindia.com".into(),
            isincode_fallback: true,
            timeout_secs: 60,
            connect_timeout_secs: 10,
            retries: 4,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            requests_per_second: 2.0,
            user_agent:
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
                    .into(),
        }
    }
}

/// Backfill defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillConfig {
    /// Days fetched concurrently.
    pub jobs: usize,
    /// Do not request Saturdays and Sundays (BSE holds rare special weekend sessions, so the
    /// default asks for every calendar day and records weekends as "no file published").
    pub skip_weekends: bool,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self { jobs: 4, skip_weekends: false }
    }
}

/// What happens when a new revision of a loaded day has fewer rows than the current one.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RowLossPolicy {
    /// Store the bytes but keep the current revision in force; the new one is held until a user
    /// accepts it (`--accept-revision`, `bhavstore revisions DATE --use ...`).
    #[default]
    Hold,
    /// Load it anyway (with a warning).
    Accept,
}

impl std::str::FromStr for RowLossPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hold" => Ok(Self::Hold),
            "accept" => Ok(Self::Accept),
            other => Err(format!("{other:?} is not hold or accept")),
        }
    }
}

/// Taking files in: the guard against revisions that lose rows, and the limits on archives and
/// files (real bhavcopies are a few MB; BSE's own zips expand about 3x).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// What a new revision of a loaded day with fewer rows than the current one does.
    pub on_row_loss: RowLossPolicy,
    /// Percent of the current revision's rows a new revision may lose and still take effect
    /// without being held (0: any loss holds it).
    pub max_row_loss_pct: f64,
    /// Largest file `import` (and REST ingest from a location) reads.
    pub max_file_bytes: crate::serve::limits::ByteSize,
    /// Largest uncompressed CSV member of a zip.
    pub max_member_bytes: crate::serve::limits::ByteSize,
    /// Largest uncompressed size of all CSV members of one zip together.
    pub max_archive_bytes: crate::serve::limits::ByteSize,
    /// Largest ratio of uncompressed to compressed size, per member and per archive.
    pub max_compression_ratio: u64,
    /// Most entries one zip may list.
    pub max_archive_members: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let zip = crate::formats::ZipLimits::default();
        Self {
            on_row_loss: RowLossPolicy::Hold,
            max_row_loss_pct: 0.0,
            max_file_bytes: crate::serve::limits::ByteSize::gib(1),
            max_member_bytes: crate::serve::limits::ByteSize(zip.max_member_bytes),
            max_archive_bytes: crate::serve::limits::ByteSize(zip.max_total_bytes),
            max_compression_ratio: zip.max_ratio,
            max_archive_members: zip.max_members,
        }
    }
}

impl IngestConfig {
    /// The limits archives are read under.
    #[must_use]
    pub fn zip_limits(&self) -> crate::formats::ZipLimits {
        crate::formats::ZipLimits {
            max_member_bytes: self.max_member_bytes.0,
            max_total_bytes: self.max_archive_bytes.0,
            max_ratio: self.max_compression_ratio,
            max_members: self.max_archive_members,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=100.0).contains(&self.max_row_loss_pct) {
            return Err(ConfigError::Invalid(format!(
                "ingest.max_row_loss_pct must be in 0..=100, got {}",
                self.max_row_loss_pct
            )));
        }
        for (name, v) in [
            ("max_file_bytes", self.max_file_bytes.0),
            ("max_member_bytes", self.max_member_bytes.0),
            ("max_archive_bytes", self.max_archive_bytes.0),
            ("max_compression_ratio", self.max_compression_ratio),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("ingest.{name} must be above 0")));
            }
        }
        if self.max_archive_members == 0 {
            return Err(ConfigError::Invalid("ingest.max_archive_members must be at least 1".into()));
        }
        Ok(())
    }
}

/// Feature view definitions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesConfig {
    /// Directory of `*.sql` + `*.yaml` view definitions. Default `feature_defs` (relative to the
    /// working directory); a missing default directory only means no views.
    pub dir: String,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        Self { dir: "feature_defs".into() }
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `bhavstore=debug`. `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

/// Environment variables read by [`Config::apply_env`], with the setting each overrides.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("BHAVSTORE_STORAGE", "storage.url"),
    ("BHAVSTORE_S3_MAX_RETRIES", "storage.s3.max_retries"),
    ("BHAVSTORE_S3_RETRY_TIMEOUT_SECS", "storage.s3.retry_timeout_secs"),
    ("BHAVSTORE_S3_TIMEOUT_SECS", "storage.s3.timeout_secs"),
    ("BHAVSTORE_SOURCE_URL", "source.base_url"),
    ("BHAVSTORE_SOURCE_ISINCODE_FALLBACK", "source.isincode_fallback"),
    ("BHAVSTORE_SOURCE_TIMEOUT_SECS", "source.timeout_secs"),
    ("BHAVSTORE_SOURCE_CONNECT_TIMEOUT_SECS", "source.connect_timeout_secs"),
    ("BHAVSTORE_SOURCE_RETRIES", "source.retries"),
    ("BHAVSTORE_SOURCE_BACKOFF_INITIAL_MS", "source.backoff_initial_ms"),
    ("BHAVSTORE_SOURCE_BACKOFF_MAX_MS", "source.backoff_max_ms"),
    ("BHAVSTORE_SOURCE_REQUESTS_PER_SECOND", "source.requests_per_second"),
    ("BHAVSTORE_SOURCE_USER_AGENT", "source.user_agent"),
    ("BHAVSTORE_BACKFILL_JOBS", "backfill.jobs"),
    ("BHAVSTORE_BACKFILL_SKIP_WEEKENDS", "backfill.skip_weekends"),
    ("BHAVSTORE_INGEST_ON_ROW_LOSS", "ingest.on_row_loss"),
    ("BHAVSTORE_INGEST_MAX_ROW_LOSS_PCT", "ingest.max_row_loss_pct"),
    ("BHAVSTORE_FEATURE_DEFS", "features.dir"),
    ("BHAVSTORE_LOG", "log.level"),
    ("BHAVSTORE_MATERIALIZE_KEEP_TAILS", "materialize.keep_tails"),
    ("BHAVSTORE_SCHEDULE_TIMEZONE", "schedule.timezone"),
    ("BHAVSTORE_MLFLOW_TRACKING_URI", "mlflow.tracking_uri"),
    ("BHAVSTORE_HTTP_ADDR", "server.http_addr"),
    ("BHAVSTORE_PG_ADDR", "server.pg_addr"),
    ("BHAVSTORE_FLIGHT_ADDR", "server.flight_addr"),
];

impl Config {
    /// Reads a YAML file over the defaults.
    pub fn from_yaml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::from_yaml_str(&text).map_err(|message| ConfigError::Yaml { path: path.into(), message })
    }

    /// Parses YAML text over the defaults; the error names unknown keys and their position.
    pub fn from_yaml_str(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies `BHAVSTORE_*` variables from `vars` (pass `std::env::vars()`); returns the names
    /// of `BHAVSTORE_*` variables that mean nothing, so the caller can warn about them.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<Vec<String>, ConfigError> {
        let mut unknown = Vec::new();
        for (var, value) in vars {
            if !var.starts_with("BHAVSTORE_") {
                continue;
            }
            let bad = |message: String| ConfigError::Env { var: var.clone(), value: value.clone(), message };
            let int = |v: &str| v.trim().parse::<u64>().map_err(|e| bad(e.to_string()));
            let boolean = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(bad("expected true or false".into())),
            };
            match var.as_str() {
                "BHAVSTORE_STORAGE" => self.storage.url = value.clone(),
                "BHAVSTORE_S3_MAX_RETRIES" => {
                    self.storage.s3.max_retries = Some(usize::try_from(int(&value)?).map_err(|e| bad(e.to_string()))?);
                }
                "BHAVSTORE_S3_RETRY_TIMEOUT_SECS" => self.storage.s3.retry_timeout_secs = Some(int(&value)?),
                "BHAVSTORE_S3_TIMEOUT_SECS" => self.storage.s3.timeout_secs = Some(int(&value)?),
                "BHAVSTORE_SOURCE_URL" => self.source.base_url = value.clone(),
                "BHAVSTORE_SOURCE_ISINCODE_FALLBACK" => self.source.isincode_fallback = boolean(&value)?,
                "BHAVSTORE_SOURCE_TIMEOUT_SECS" => self.source.timeout_secs = int(&value)?,
                "BHAVSTORE_SOURCE_CONNECT_TIMEOUT_SECS" => self.source.connect_timeout_secs = int(&value)?,
                "BHAVSTORE_SOURCE_RETRIES" => {
                    self.source.retries = u32::try_from(int(&value)?).map_err(|e| bad(e.to_string()))?;
                }
                "BHAVSTORE_SOURCE_BACKOFF_INITIAL_MS" => self.source.backoff_initial_ms = int(&value)?,
                "BHAVSTORE_SOURCE_BACKOFF_MAX_MS" => self.source.backoff_max_ms = int(&value)?,
                "BHAVSTORE_SOURCE_REQUESTS_PER_SECOND" => {
                    self.source.requests_per_second =
                        value.trim().parse().map_err(|e: std::num::ParseFloatError| bad(e.to_string()))?;
                }
                "BHAVSTORE_SOURCE_USER_AGENT" => self.source.user_agent = value.clone(),
                "BHAVSTORE_BACKFILL_JOBS" => {
                    self.backfill.jobs = usize::try_from(int(&value)?).map_err(|e| bad(e.to_string()))?;
                }
                "BHAVSTORE_BACKFILL_SKIP_WEEKENDS" => self.backfill.skip_weekends = boolean(&value)?,
                "BHAVSTORE_INGEST_ON_ROW_LOSS" => self.ingest.on_row_loss = value.parse().map_err(bad)?,
                "BHAVSTORE_INGEST_MAX_ROW_LOSS_PCT" => {
                    self.ingest.max_row_loss_pct =
                        value.trim().parse().map_err(|e: std::num::ParseFloatError| bad(e.to_string()))?;
                }
                "BHAVSTORE_FEATURE_DEFS" => self.features.dir = value.clone(),
                "BHAVSTORE_LOG" => self.log.level = value.clone(),
                "BHAVSTORE_MATERIALIZE_KEEP_TAILS" => {
                    self.materialize.keep_tails = usize::try_from(int(&value)?).map_err(|e| bad(e.to_string()))?;
                }
                "BHAVSTORE_SCHEDULE_TIMEZONE" => self.schedule.timezone = value.clone(),
                "BHAVSTORE_MLFLOW_TRACKING_URI" => {
                    self.mlflow.tracking_uri = Some(value.clone()).filter(|v| !v.trim().is_empty());
                }
                "BHAVSTORE_HTTP_ADDR" => self.server.http_addr = value.clone(),
                "BHAVSTORE_PG_ADDR" => self.server.pg_addr = value.clone(),
                "BHAVSTORE_FLIGHT_ADDR" => self.server.flight_addr = value.clone(),
                // Read by the CLI layer itself (clap `env`), and the crash-test pause points of
                // materialization (see materialize::failpoint).
                "BHAVSTORE_CONFIG" | "BHAVSTORE_FAILPOINT" | "BHAVSTORE_FAILPOINT_RESUME" => {}
                _ => unknown.push(var.clone()),
            }
        }
        Ok(unknown)
    }

    /// Checks ranges that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backfill.jobs == 0 || self.backfill.jobs > 64 {
            return Err(ConfigError::Invalid(format!("backfill.jobs must be 1..=64, got {}", self.backfill.jobs)));
        }
        if !(self.source.requests_per_second > 0.0 && self.source.requests_per_second <= 100.0) {
            return Err(ConfigError::Invalid(format!(
                "source.requests_per_second must be in (0, 100], got {}",
                self.source.requests_per_second
            )));
        }
        if self.source.timeout_secs == 0 || self.source.connect_timeout_secs == 0 {
            return Err(ConfigError::Invalid("source timeouts must be at least 1 second".into()));
        }
        url::Url::parse(&self.source.base_url)
            .map_err(|e| ConfigError::Invalid(format!("source.base_url {:?}: {e}", self.source.base_url)))?;
        self.ingest.validate()?;
        if self.storage.s3.timeout_secs == Some(0) {
            return Err(ConfigError::Invalid("storage.s3.timeout_secs must be at least 1".into()));
        }
        crate::ingest::location::ImportRoots::parse(&self.server.import_roots)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.materialize.keep_tails == 0 {
            return Err(ConfigError::Invalid("materialize.keep_tails must be at least 1".into()));
        }
        self.schedule.validate().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(uri) = &self.mlflow.tracking_uri {
            url::Url::parse(uri).map_err(|e| ConfigError::Invalid(format!("mlflow.tracking_uri {uri:?}: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_yaml_key_is_named() {
        let err = Config::from_yaml_str("source:\n  base_urll: http://x\n").unwrap_err();
        assert!(err.contains("base_urll"), "{err}");
        let err = Config::from_yaml_str("storag:\n  url: x\n").unwrap_err();
        assert!(err.contains("storag"), "{err}");
    }

    #[test]
    fn precedence_defaults_yaml_env() {
        let mut c = Config::from_yaml_str("storage:\n  url: s3://b/p\nbackfill:\n  jobs: 2\n").unwrap();
        assert_eq!(c.storage.url, "s3://b/p");
        assert_eq!(c.backfill.jobs, 2);
        assert_eq!(c.source.retries, 4, "unset keys keep defaults");
        let unknown = c
            .apply_env([
                ("BHAVSTORE_BACKFILL_JOBS".to_string(), "8".to_string()),
                ("BHAVSTORE_NOPE".to_string(), "1".to_string()),
                ("PATH".to_string(), "/bin".to_string()),
            ])
            .unwrap();
        assert_eq!(c.backfill.jobs, 8);
        assert_eq!(c.storage.url, "s3://b/p");
        assert_eq!(unknown, vec!["BHAVSTORE_NOPE".to_string()]);
    }

    #[test]
    fn ingest_section() {
        let mut c = Config::from_yaml_str("ingest:\n  on_row_loss: accept\n  max_member_bytes: 8MiB\n").unwrap();
        assert_eq!(c.ingest.on_row_loss, RowLossPolicy::Accept);
        assert_eq!(c.ingest.zip_limits().max_member_bytes, 8 << 20);
        assert!(Config::from_yaml_str("ingest:\n  on_row_los: accept\n").unwrap_err().contains("on_row_los"));
        c.apply_env([("BHAVSTORE_INGEST_ON_ROW_LOSS".to_string(), "hold".to_string())]).unwrap();
        assert_eq!(c.ingest.on_row_loss, RowLossPolicy::Hold);
        let err = c.apply_env([("BHAVSTORE_INGEST_ON_ROW_LOSS".to_string(), "maybe".to_string())]).unwrap_err();
        assert!(err.to_string().contains("BHAVSTORE_INGEST_ON_ROW_LOSS"), "{err}");
        c.ingest.max_row_loss_pct = 150.0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn bad_env_value_is_an_error() {
        let mut c = Config::default();
        let err = c.apply_env([("BHAVSTORE_SOURCE_RETRIES".to_string(), "many".to_string())]).unwrap_err();
        assert!(err.to_string().contains("BHAVSTORE_SOURCE_RETRIES"));
    }
}
