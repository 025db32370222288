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
    pub storage: bhavstore_storage::StorageConfig,
    /// Where bhavcopies are downloaded from and how politely.
    pub source: bhavstore_ingest::config::SourceConfig,
    /// Backfill settings.
    pub backfill: bhavstore_ingest::config::BackfillConfig,
    /// How files are taken in: revisions that lose rows, archive limits.
    pub ingest: bhavstore_ingest::config::IngestConfig,
    /// Feature views.
    pub features: FeaturesConfig,
    /// Logging.
    pub log: LogConfig,
    /// Materialization of feature views.
    pub materialize: bhavstore_materialize::MaterializeConfig,
    /// The scheduler of `bhavstore serve`.
    pub schedule: bhavstore_schedule::ScheduleConfig,
    /// MLflow tracking of materialization runs.
    pub mlflow: bhavstore_mlflow::MlflowConfig,
    /// Listeners of `bhavstore serve`.
    pub server: bhavstore_serving::serve::ServerConfig,
    /// The in-memory online store.
    pub online: bhavstore_online::OnlineConfig,
    /// Real-time intraday bars: group commit, snapshots, limits, streams.
    pub intraday: bhavstore_intraday::IntradayConfig,
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

impl Config {
    /// Reads a YAML file over the defaults.
    pub fn from_yaml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::from_yaml_str(&text).map_err(|e| ConfigError::Yaml { path: path.into(), message: e.to_string() })
    }

    /// Parses YAML text over the defaults; the error names unknown keys and their position.
    pub fn from_yaml_str(text: &str) -> Result<Self, serde_norway::Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str(text)
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
                "BHAVSTORE_SOURCE_API_URL" => self.source.api_base_url = Some(value.clone()),
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
                "BHAVSTORE_MATERIALIZE_CHUNK_ROWS" => {
                    self.materialize.chunk_rows = usize::try_from(int(&value)?).map_err(|e| bad(e.to_string()))?;
                }
                "BHAVSTORE_MATERIALIZE_COMPACT_AFTER" => {
                    self.materialize.compact_after = usize::try_from(int(&value)?).map_err(|e| bad(e.to_string()))?;
                }
                "BHAVSTORE_SCHEDULE_TIMEZONE" => self.schedule.timezone = value.clone(),
                "BHAVSTORE_MLFLOW_TRACKING_URI" => {
                    self.mlflow.tracking_uri = Some(value.clone()).filter(|v| !v.trim().is_empty());
                }
                "BHAVSTORE_HTTP_ADDR" => self.server.http_addr = value.clone(),
                "BHAVSTORE_PG_ADDR" => self.server.pg_addr = value.clone(),
                "BHAVSTORE_FLIGHT_ADDR" => self.server.flight_addr = value.clone(),
                "BHAVSTORE_INTRADAY_FLUSH_INTERVAL_MS" => self.intraday.flush_interval_ms = int(&value)?,
                "BHAVSTORE_INTRADAY_SNAPSHOT_INTERVAL_SECS" => self.intraday.snapshot_interval_secs = int(&value)?,
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
        url::Url::parse(&self.source.api_base())
            .map_err(|e| ConfigError::Invalid(format!("source.api_base_url {:?}: {e}", self.source.api_base())))?;
        self.ingest.validate().map_err(|e| ConfigError::Invalid(e.0))?;
        if self.storage.s3.timeout_secs == Some(0) {
            return Err(ConfigError::Invalid("storage.s3.timeout_secs must be at least 1".into()));
        }
        bhavstore_ingest::location::ImportRoots::parse(&self.server.import_roots)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.materialize.keep_tails == 0 {
            return Err(ConfigError::Invalid("materialize.keep_tails must be at least 1".into()));
        }
        if self.materialize.chunk_rows == 0 {
            return Err(ConfigError::Invalid("materialize.chunk_rows must be at least 1".into()));
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
    use bhavstore_ingest::config::RowLossPolicy;

    #[test]
    fn unknown_yaml_key_is_named() {
        let err = Config::from_yaml_str("source:\n  base_urll: http://x\n").unwrap_err().to_string();
        assert!(err.contains("base_urll"), "{err}");
        let err = Config::from_yaml_str("storag:\n  url: x\n").unwrap_err().to_string();
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
        assert!(
            Config::from_yaml_str("ingest:\n  on_row_los: accept\n").unwrap_err().to_string().contains("on_row_los")
        );
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
