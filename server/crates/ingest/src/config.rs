//! The `source:`, `backfill:` and `ingest:` sections of the configuration.

use bhavstore_storage::{ByteSize, InvalidSetting};
use serde::{Deserialize, Serialize};

/// The BSE download source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Base URL replacing `https://www.bseindia.com` (tests and mirrors).
    pub base_url: String,
    /// Base URL of BSE's API (corporate actions, trading holidays), replacing
    /// `https://api.bseindia.com`. Unset, it follows `base_url` when that points elsewhere than
    /// BSE (a mirror or a test server serves both).
    pub api_base_url: Option<String>,
    /// Days before and after each scheduled trading day whose corporate actions are downloaded
    /// again after its bhavcopy (0: none; actions are then only imported by hand).
    pub corporate_actions_days: u32,
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
            api_base_url: None,
            corporate_actions_days: 30,
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

impl SourceConfig {
    /// BSE's API host as configured (see [`SourceConfig::api_base_url`]).
    #[must_use]
    pub fn api_base(&self) -> String {
        match &self.api_base_url {
            Some(u) => u.clone(),
            None if self.base_url.trim_end_matches('/') != "https://www.bseindia.com" => self.base_url.clone(),
            None => "https://api.bseindia.com".into(),
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
    pub max_file_bytes: ByteSize,
    /// Largest uncompressed CSV member of a zip.
    pub max_member_bytes: ByteSize,
    /// Largest uncompressed size of all CSV members of one zip together.
    pub max_archive_bytes: ByteSize,
    /// Largest ratio of uncompressed to compressed size, per member and per archive.
    pub max_compression_ratio: u64,
    /// Most entries one zip may list.
    pub max_archive_members: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let zip = bhavstore_formats::ZipLimits::default();
        Self {
            on_row_loss: RowLossPolicy::Hold,
            max_row_loss_pct: 0.0,
            max_file_bytes: ByteSize::gib(1),
            max_member_bytes: ByteSize(zip.max_member_bytes),
            max_archive_bytes: ByteSize(zip.max_total_bytes),
            max_compression_ratio: zip.max_ratio,
            max_archive_members: zip.max_members,
        }
    }
}

impl IngestConfig {
    /// The limits archives are read under.
    #[must_use]
    pub fn zip_limits(&self) -> bhavstore_formats::ZipLimits {
        bhavstore_formats::ZipLimits {
            max_member_bytes: self.max_member_bytes.0,
            max_total_bytes: self.max_archive_bytes.0,
            max_ratio: self.max_compression_ratio,
            max_members: self.max_archive_members,
        }
    }

    /// Checks ranges that serde cannot express.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(0.0..=100.0).contains(&self.max_row_loss_pct) {
            return Err(InvalidSetting(format!(
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
                return Err(InvalidSetting(format!("ingest.{name} must be above 0")));
            }
        }
        if self.max_archive_members == 0 {
            return Err(InvalidSetting("ingest.max_archive_members must be at least 1".into()));
        }
        Ok(())
    }
}
