//! MLflow tracking over its REST API 2.0: each finished bhavstore run becomes one MLflow run in
//! the experiment `{experiment_prefix}{view}`, with its params, metrics, tags and artifacts.
//!
//! Only the plain REST API is used, so any MLflow server (self-hosted `mlflow server`, or one
//! behind a proxy) works without a Python runtime on our side. Artifacts go through the
//! server's artifact proxy (`mlflow-artifacts:` URIs, the `mlflow server` default); a run whose
//! artifact store is not proxied keeps its params and metrics and skips artifacts with a warning.
//!
//! Credentials: userinfo in `tracking_uri` (`http://user:pass@host`) is sent as basic auth, and
//! the standard MLflow variables `MLFLOW_TRACKING_TOKEN` or `MLFLOW_TRACKING_USERNAME` +
//! `MLFLOW_TRACKING_PASSWORD` are honoured, as the Python client does.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

/// MLflow's per-request limits for `runs/log-batch` (mlflow/utils/validation.py). Exceeding any
/// of them makes the server reject the whole batch, so batches are cut below them.
const MAX_METRICS_PER_BATCH: usize = 1000;
const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// The server refuses log-batch bodies over 1 MB; keep a margin for the envelope.
const MAX_BATCH_BYTES: usize = 900_000;
/// Length limits, in characters (MLflow counts Python `str` length, i.e. code points).
const MAX_KEY_CHARS: usize = 250;
const MAX_PARAM_VALUE_CHARS: usize = 6000;
const MAX_TAG_VALUE_CHARS: usize = 8000;

/// `mlflow:` section of the YAML config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MlflowConfig {
    /// Tracking server, e.g. `http://127.0.0.1:5000`; unset (or blank) turns MLflow logging off.
    pub tracking_uri: Option<String>,
    /// Prefix of experiment names: a view's runs go to `{experiment_prefix}{view}`. Default
    /// `bhavstore/`, so bhavstore's experiments sort together in the MLflow UI.
    pub experiment_prefix: String,
    /// Per-request timeout in seconds (default 10); must be positive.
    pub timeout_secs: u64,
}

impl Default for MlflowConfig {
    fn default() -> Self {
        Self { tracking_uri: None, experiment_prefix: "bhavstore/".into(), timeout_secs: 10 }
    }
}

/// Errors talking to MLflow.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// The `mlflow:` configuration cannot be used.
    #[error("invalid MLflow configuration: {0}")]
    Config(String),
    /// No HTTP answer: connection refused, DNS failure, TLS failure, or timeout.
    #[error("MLflow at {url} is unreachable: {message}")]
    Unreachable {
        /// The request URL, without credentials.
        url: String,
        /// The transport error with its causes.
        message: String,
    },
    /// MLflow answered with an error status.
    #[error("MLflow {endpoint} answered HTTP {status} {error_code}: {message}")]
    Api {
        /// The REST endpoint, e.g. `runs/log-batch`.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// MLflow's `error_code` (e.g. `INVALID_PARAMETER_VALUE`); empty when the body was not
        /// MLflow's JSON (a proxy's error page, say).
        error_code: String,
        /// MLflow's `message`, or the start of the body.
        message: String,
    },
    /// A success status with a body that is not what the REST API documents.
    #[error("MLflow {endpoint}: unexpected response: {message}")]
    BadResponse {
        /// The REST endpoint.
        endpoint: String,
        /// What is wrong with it.
        message: String,
    },
    /// The experiment exists but is deleted; MLflow refuses new runs in it, and restoring a
    /// deliberately deleted experiment is the user's call, not ours.
    #[error(
        "MLflow experiment {name:?} is deleted: restore it, or delete it permanently (mlflow gc), to log runs to it"
    )]
    ExperimentDeleted {
        /// The experiment name.
        name: String,
    },
    /// An artifact file name that would escape the run's artifact directory or is empty.
    #[error("artifact name {name:?}: {message}")]
    ArtifactName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

/// One finished bhavstore run, as it should appear in MLflow.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Experiment (the view name); the client prepends `experiment_prefix`.
    pub experiment: String,
    /// MLflow run name: the bhavstore run id.
    pub run_name: String,
    /// When the bhavstore run started.
    pub start_time: DateTime<Utc>,
    /// When it ended; also the timestamp of every metric.
    pub end_time: DateTime<Utc>,
    /// `FINISHED` when true, `FAILED` otherwise.
    pub succeeded: bool,
    /// Params; keys are sanitized to MLflow's key rules, values over 6000 characters truncated.
    pub params: Vec<(String, String)>,
    /// Metrics, logged at step 0; NaN and infinities are skipped (MLflow rejects them).
    pub metrics: Vec<(String, f64)>,
    /// Tags; keys sanitized like params, values over 8000 characters truncated.
    pub tags: Vec<(String, String)>,
    /// Files for the run's artifact root: (relative name, e.g. `manifest.json`, bytes).
    pub artifacts: Vec<(String, Bytes)>,
}

/// Credentials from MLflow's standard environment variables.
enum Auth {
    Bearer(String),
    Basic(String, String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer(***)"),
            Self::Basic(user, _) => write!(f, "Basic({user:?}, ***)"),
        }
    }
}

/// A client for one MLflow tracking server.
#[derive(Debug)]
pub struct MlflowClient {
    http: reqwest::Client,
    base: Url,
    experiment_prefix: String,
    auth: Option<Auth>,
}

impl MlflowClient {
    /// A client for the configured server; `None` when `tracking_uri` is not set.
    pub fn from_config(cfg: &MlflowConfig) -> Result<Option<Self>, MlflowError> {
        let Some(uri) = cfg.tracking_uri.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        // The URI is not echoed back: it may hold a password.
        let base = Url::parse(uri).map_err(|e| MlflowError::Config(format!("tracking_uri is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(MlflowError::Config(format!(
                "tracking_uri {:?}: must be an http:// or https:// URL of an MLflow tracking server",
                redact(&base)
            )));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(MlflowError::Config(format!(
                "tracking_uri {:?}: must not have a query or fragment",
                redact(&base)
            )));
        }
        if cfg.timeout_secs == 0 {
            return Err(MlflowError::Config("timeout_secs must be at least 1".into()));
        }
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let http = reqwest::Client::builder()
            .user_agent(concat!("bhavstore/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| MlflowError::Config(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(Some(Self { http, base, experiment_prefix: cfg.experiment_prefix.clone(), auth: auth_from_env() }))
    }

    /// Logs one finished bhavstore run; returns MLflow's run id.
    ///
    /// If anything fails after the MLflow run was created, the run is marked `FAILED` (best
    /// effort) so it does not linger as `RUNNING`, and the first error is returned.
    pub async fn log_run(&self, run: &RunRecord) -> Result<String, MlflowError> {
        // Checked before any request so a bad name cannot leave a half-logged run behind.
        for (name, _) in &run.artifacts {
            validate_artifact_name(name)?;
        }
        let batches = build_batches(run);
        let experiment = format!("{}{}", self.experiment_prefix, run.experiment);
        let experiment_id = self.experiment_id(&experiment).await?;

        let created: CreateRunResponse = self
            .post(
                "runs/create",
                &json!({
                    "experiment_id": experiment_id,
                    "run_name": run.run_name,
                    "start_time": run.start_time.timestamp_millis(),
                    "tags": [
                        // Servers before MLflow 1.29 know a run's name only from this tag.
                        {"key": "mlflow.runName", "value": run.run_name},
                        {"key": "mlflow.source.name", "value": "bhavstore"},
                    ],
                }),
            )
            .await?;
        let run_id = created.run.info.run_id;
        tracing::debug!(%experiment, %run_id, "created MLflow run");

        if let Err(e) = self.complete_run(&run_id, created.run.info.artifact_uri.as_deref(), &batches, run).await {
            let failed = json!({
                "run_id": run_id,
                "status": "FAILED",
                "end_time": run.end_time.timestamp_millis(),
            });
            if let Err(e2) = self.post::<serde_json::Value>("runs/update", &failed).await {
                tracing::warn!(%run_id, error = %e2, "could not mark the half-logged MLflow run FAILED");
            }
            return Err(e);
        }
        tracing::info!(%experiment, %run_id, run_name = %run.run_name, "logged run to MLflow");
        Ok(run_id)
    }

    async fn complete_run(
        &self,
        run_id: &str,
        artifact_uri: Option<&str>,
        batches: &[LogBatch],
        run: &RunRecord,
    ) -> Result<(), MlflowError> {
        for batch in batches {
            let body = json!({
                "run_id": run_id,
                "params": batch.params,
                "tags": batch.tags,
                "metrics": batch.metrics,
            });
            self.post::<serde_json::Value>("runs/log-batch", &body).await?;
        }
        if !run.artifacts.is_empty() {
            match artifact_uri.and_then(|uri| self.artifact_root(uri)) {
                Some(root) => {
                    for (name, bytes) in &run.artifacts {
                        self.put_artifact(&root, name, bytes.clone()).await?;
                    }
                }
                None => tracing::warn!(
                    %run_id,
                    artifact_uri = artifact_uri.unwrap_or(""),
                    "MLflow artifact store is not proxied by the tracking server (no mlflow-artifacts: URI); skipping {} artifact(s)",
                    run.artifacts.len()
                ),
            }
        }
        let status = if run.succeeded { "FINISHED" } else { "FAILED" };
        self.post::<serde_json::Value>(
            "runs/update",
            &json!({"run_id": run_id, "status": status, "end_time": run.end_time.timestamp_millis()}),
        )
        .await?;
        Ok(())
    }

    /// The id of the named experiment, created if missing.
    async fn experiment_id(&self, name: &str) -> Result<String, MlflowError> {
        if let Some(id) = self.get_experiment(name).await? {
            return Ok(id);
        }
        match self.post::<CreateExperimentResponse>("experiments/create", &json!({"name": name})).await {
            Ok(created) => {
                tracing::info!(experiment = name, id = %created.experiment_id, "created MLflow experiment");
                Ok(created.experiment_id)
            }
            // Another process created it between our get and create.
            Err(MlflowError::Api { error_code, .. }) if error_code == "RESOURCE_ALREADY_EXISTS" => {
                self.get_experiment(name).await?.ok_or_else(|| MlflowError::BadResponse {
                    endpoint: "experiments/get-by-name".into(),
                    message: format!("experiment {name:?} reported as existing by create but not found"),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn get_experiment(&self, name: &str) -> Result<Option<String>, MlflowError> {
        const ENDPOINT: &str = "experiments/get-by-name";
        let mut url = self.api_url(ENDPOINT);
        url.query_pairs_mut().append_pair("experiment_name", name);
        match self.send(ENDPOINT, self.http.get(url)).await {
            Ok(body) => {
                let got: GetExperimentResponse = parse(ENDPOINT, &body)?;
                if got.experiment.lifecycle_stage.as_deref() == Some("deleted") {
                    return Err(MlflowError::ExperimentDeleted { name: name.into() });
                }
                Ok(Some(got.experiment.experiment_id))
            }
            Err(MlflowError::Api { status, error_code, .. })
                if error_code == "RESOURCE_DOES_NOT_EXIST" || (status == 404 && error_code.is_empty()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Where the artifact proxy serves `artifact_uri`, mirroring the Python client's
    /// `MlflowArtifactsRepository.resolve_uri`: the tracking server's scheme and path prefix,
    /// the artifact URI's host if it names one, then `/api/2.0/mlflow-artifacts/artifacts/<path>`.
    fn artifact_root(&self, artifact_uri: &str) -> Option<Url> {
        if !artifact_uri.starts_with("mlflow-artifacts:") {
            return None;
        }
        let parsed = Url::parse(artifact_uri).ok()?;
        let mut root = self.base.clone();
        if let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) {
            if Some(host) != self.base.host_str() || parsed.port() != self.base.port() {
                // Never send the tracking server's credentials to another host.
                let _ = root.set_username("");
                let _ = root.set_password(None);
            }
            root.set_host(Some(host)).ok()?;
            root.set_port(parsed.port()).ok()?;
        }
        let path = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}",
            self.base.path().trim_end_matches('/'),
            parsed.path().trim_matches('/')
        );
        root.set_path(path.trim_end_matches('/'));
        Some(root)
    }

    async fn put_artifact(&self, root: &Url, name: &str, bytes: Bytes) -> Result<(), MlflowError> {
        const ENDPOINT: &str = "mlflow-artifacts/artifacts";
        let mut url = root.clone();
        url.set_path(&format!("{}/{name}", root.path()));
        let len = bytes.len();
        let req = self.http.put(url).header(CONTENT_TYPE, content_type(name)).body(bytes);
        self.send(ENDPOINT, req).await?;
        tracing::debug!(artifact = name, bytes = len, "uploaded MLflow artifact");
        Ok(())
    }

    fn api_url(&self, endpoint: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}/api/2.0/mlflow/{endpoint}", self.base.path().trim_end_matches('/')));
        url
    }

    async fn post<T: DeserializeOwned>(&self, endpoint: &str, body: &serde_json::Value) -> Result<T, MlflowError> {
        let req = self
            .http
            .post(self.api_url(endpoint))
            // reqwest is built without its "json" feature.
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let body = self.send(endpoint, req).await?;
        parse(endpoint, &body)
    }

    /// Sends a request; a non-success status becomes [`MlflowError::Api`] with MLflow's
    /// `error_code` and `message`.
    async fn send(&self, endpoint: &str, req: reqwest::RequestBuilder) -> Result<Bytes, MlflowError> {
        let req = match &self.auth {
            Some(Auth::Bearer(token)) => req.bearer_auth(token),
            Some(Auth::Basic(user, password)) => req.basic_auth(user, Some(password)),
            None => req,
        };
        let unreachable = |e: reqwest::Error| MlflowError::Unreachable {
            url: e.url().map_or_else(|| redact(&self.base), redact),
            message: error_chain(&e),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(unreachable)?;
        tracing::debug!(endpoint, status = status.as_u16(), "MLflow request");
        if status.is_success() {
            return Ok(body);
        }
        let (error_code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => (e.error_code, e.message),
            Err(_) => (String::new(), String::from_utf8_lossy(&body).chars().take(300).collect()),
        };
        Err(MlflowError::Api { endpoint: endpoint.into(), status: status.as_u16(), error_code, message })
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct GetExperimentResponse {
    experiment: Experiment,
}

#[derive(Deserialize)]
struct Experiment {
    experiment_id: String,
    lifecycle_stage: Option<String>,
}

#[derive(Deserialize)]
struct CreateExperimentResponse {
    experiment_id: String,
}

#[derive(Deserialize)]
struct CreateRunResponse {
    run: CreatedRun,
}

#[derive(Deserialize)]
struct CreatedRun {
    info: CreatedRunInfo,
}

#[derive(Deserialize)]
struct CreatedRunInfo {
    run_id: String,
    artifact_uri: Option<String>,
}

#[derive(Debug, Serialize)]
struct KeyValue {
    key: String,
    value: String,
}

#[derive(Debug, Serialize)]
struct Metric {
    key: String,
    value: f64,
    timestamp: i64,
    step: i64,
}

/// The body of one `runs/log-batch` call, within MLflow's limits.
#[derive(Debug, Default)]
struct LogBatch {
    params: Vec<KeyValue>,
    tags: Vec<KeyValue>,
    metrics: Vec<Metric>,
    bytes: usize,
}

impl LogBatch {
    fn len(&self) -> usize {
        self.params.len() + self.tags.len() + self.metrics.len()
    }
}

enum Entry {
    Param(KeyValue),
    Tag(KeyValue),
    Metric(Metric),
}

/// Sanitizes, deduplicates and truncates the run's params, tags and metrics and cuts them into
/// log-batch calls that MLflow accepts.
fn build_batches(run: &RunRecord) -> Vec<LogBatch> {
    let timestamp = run.end_time.timestamp_millis();
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    for (key, value) in &run.params {
        if let Some(key) = unique_key("param", key, &mut seen) {
            let value = truncate_chars("param", &key, value, MAX_PARAM_VALUE_CHARS);
            entries.push(Entry::Param(KeyValue { key, value }));
        }
    }
    seen.clear();
    for (key, value) in &run.tags {
        if let Some(key) = unique_key("tag", key, &mut seen) {
            let value = truncate_chars("tag", &key, value, MAX_TAG_VALUE_CHARS);
            entries.push(Entry::Tag(KeyValue { key, value }));
        }
    }
    seen.clear();
    for &(ref key, value) in &run.metrics {
        if !value.is_finite() {
            tracing::debug!(metric = %key, value, "skipping non-finite metric: MLflow rejects NaN and infinities");
            continue;
        }
        if let Some(key) = unique_key("metric", key, &mut seen) {
            entries.push(Entry::Metric(Metric { key, value, timestamp, step: 0 }));
        }
    }

    let mut batches = Vec::new();
    let mut current = LogBatch::default();
    for entry in entries {
        let size = match &entry {
            Entry::Param(kv) | Entry::Tag(kv) => serde_json::to_string(kv).map_or(0, |s| s.len()),
            Entry::Metric(m) => serde_json::to_string(m).map_or(0, |s| s.len()),
        } + 1;
        let full = current.len() >= MAX_ENTITIES_PER_BATCH
            || current.bytes + size > MAX_BATCH_BYTES
            || match entry {
                Entry::Param(_) => current.params.len() >= MAX_PARAMS_TAGS_PER_BATCH,
                Entry::Tag(_) => current.tags.len() >= MAX_PARAMS_TAGS_PER_BATCH,
                Entry::Metric(_) => current.metrics.len() >= MAX_METRICS_PER_BATCH,
            };
        if full && current.len() > 0 {
            batches.push(std::mem::take(&mut current));
        }
        current.bytes += size;
        match entry {
            Entry::Param(kv) => current.params.push(kv),
            Entry::Tag(kv) => current.tags.push(kv),
            Entry::Metric(m) => current.metrics.push(m),
        }
    }
    if current.len() > 0 {
        batches.push(current);
    }
    batches
}

/// The sanitized key, or `None` (with a warning) when an earlier key of the same kind already
/// sanitized to it: MLflow rejects a batch with duplicate param keys, and a param can never be
/// changed once logged.
fn unique_key(kind: &str, raw: &str, seen: &mut HashSet<String>) -> Option<String> {
    let key = sanitize_key(raw);
    if key != raw {
        tracing::debug!(kind, raw, key = %key, "sanitized MLflow key");
    }
    if seen.insert(key.clone()) {
        Some(key)
    } else {
        tracing::warn!(kind, raw, key = %key, "dropping MLflow {kind}: its key collides with an earlier one");
        None
    }
}

/// Makes `raw` a valid MLflow param/metric/tag key: only ASCII alphanumerics and `_ - . space /`
/// (MLflow also allows `:` except on Windows servers), at most 250 characters, and a path that
/// `posixpath.normpath` leaves unchanged (no empty, `.` or `..` segments, no leading or trailing
/// `/`), since MLflow may store keys as file names.
fn sanitize_key(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .take(MAX_KEY_CHARS)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/') { c } else { '_' })
        .collect();
    let segments: Vec<&str> = mapped
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "." => "_",
            ".." => "__",
            s => s,
        })
        .collect();
    if segments.is_empty() { "_".into() } else { segments.join("/") }
}

fn truncate_chars(kind: &str, key: &str, value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        None => value.to_string(),
        Some((cut, _)) => {
            tracing::warn!(
                kind,
                key,
                chars = value.chars().count(),
                max,
                "truncating MLflow {kind} value to MLflow's limit"
            );
            value[..cut].to_string()
        }
    }
}

fn validate_artifact_name(name: &str) -> Result<(), MlflowError> {
    let bad = |message: &str| Err(MlflowError::ArtifactName { name: name.into(), message: message.into() });
    if name.is_empty() {
        return bad("empty");
    }
    if name.contains('\\') || name.contains('\0') {
        return bad("must not contain a backslash or NUL");
    }
    if name.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return bad("must be a relative path without empty, '.' or '..' segments");
    }
    Ok(())
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).as_deref() {
        Some("json") => "application/json",
        Some("yaml" | "yml") => "application/yaml",
        Some("txt" | "log") => "text/plain",
        Some("csv") => "text/csv",
        Some("html") => "text/html",
        _ => "application/octet-stream",
    }
}

fn parse<T: DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T, MlflowError> {
    serde_json::from_slice(body)
        .map_err(|e| MlflowError::BadResponse { endpoint: endpoint.into(), message: e.to_string() })
}

fn auth_from_env() -> Option<Auth> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(token) = var("MLFLOW_TRACKING_TOKEN") {
        return Some(Auth::Bearer(token));
    }
    match (var("MLFLOW_TRACKING_USERNAME"), var("MLFLOW_TRACKING_PASSWORD")) {
        (Some(user), Some(password)) => Some(Auth::Basic(user, password)),
        _ => None,
    }
}

/// A URL for messages: without userinfo, which may hold a password.
fn redact(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// reqwest's top-level message ("error sending request") hides the cause (refused, timed out).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        RunRecord {
            experiment: "v".into(),
            run_name: "r".into(),
            start_time: DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000).unwrap_or_default(),
            end_time: DateTime::<Utc>::from_timestamp_millis(1_700_000_001_000).unwrap_or_default(),
            succeeded: true,
            params: Vec::new(),
            metrics: Vec::new(),
            tags: Vec::new(),
            artifacts: Vec::new(),
        }
    }

    fn client(uri: &str) -> MlflowClient {
        let cfg = MlflowConfig { tracking_uri: Some(uri.into()), ..MlflowConfig::default() };
        MlflowClient::from_config(&cfg).expect("valid config").expect("tracking_uri set")
    }

    #[test]
    fn default_config() {
        let cfg = MlflowConfig::default();
        assert_eq!(cfg.tracking_uri, None);
        assert_eq!(cfg.experiment_prefix, "bhavstore/");
        assert_eq!(cfg.timeout_secs, 10);
        assert!(MlflowClient::from_config(&cfg).expect("ok").is_none());
        let blank = MlflowConfig { tracking_uri: Some("  ".into()), ..cfg };
        assert!(MlflowClient::from_config(&blank).expect("ok").is_none());
    }

    #[test]
    fn bad_config() {
        for uri in ["file:///tmp/mlruns", "databricks", "http://h:5000/?x=1", "not a url"] {
            let cfg = MlflowConfig { tracking_uri: Some(uri.into()), ..MlflowConfig::default() };
            assert!(matches!(MlflowClient::from_config(&cfg), Err(MlflowError::Config(_))), "{uri}");
        }
        let cfg = MlflowConfig { tracking_uri: Some("http://h".into()), timeout_secs: 0, ..MlflowConfig::default() };
        assert!(matches!(MlflowClient::from_config(&cfg), Err(MlflowError::Config(_))));
        let cfg = MlflowConfig { tracking_uri: Some("http://u:secret@h/?x".into()), ..MlflowConfig::default() };
        let err = MlflowClient::from_config(&cfg).expect_err("query").to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn config_yaml_denies_unknown_keys_and_defaults_the_rest() {
        let cfg: MlflowConfig = serde_norway::from_str("tracking_uri: http://x:5000\n").expect("parse");
        assert_eq!(cfg.tracking_uri.as_deref(), Some("http://x:5000"));
        assert_eq!(cfg.experiment_prefix, "bhavstore/");
        assert!(serde_norway::from_str::<MlflowConfig>("trackinguri: x\n").is_err());
    }

    #[test]
    fn keys_are_sanitized_to_mlflow_rules() {
        assert_eq!(sanitize_key("rows_loaded"), "rows_loaded");
        assert_eq!(sanitize_key("a b/c-d.e"), "a b/c-d.e");
        assert_eq!(sanitize_key("p@50:x"), "p_50_x");
        assert_eq!(sanitize_key("/lead//trail/"), "lead/trail");
        assert_eq!(sanitize_key("a/./b/../c"), "a/_/b/__/c");
        assert_eq!(sanitize_key(""), "_");
        assert_eq!(sanitize_key("."), "_");
        assert_eq!(sanitize_key("//"), "_");
        assert_eq!(sanitize_key("जोड़"), "____");
        assert_eq!(sanitize_key(&"k".repeat(300)).len(), MAX_KEY_CHARS);
    }

    #[test]
    fn values_are_truncated_by_characters() {
        let long = "é".repeat(MAX_PARAM_VALUE_CHARS + 5);
        let mut run = record();
        run.params.push(("p".into(), long));
        run.tags.push(("t".into(), "x".repeat(MAX_TAG_VALUE_CHARS + 1)));
        let batches = build_batches(&run);
        assert_eq!(batches[0].params[0].value.chars().count(), MAX_PARAM_VALUE_CHARS);
        assert_eq!(batches[0].tags[0].value.len(), MAX_TAG_VALUE_CHARS);
    }

    #[test]
    fn batches_respect_mlflow_limits() {
        let mut run = record();
        run.params = (0..250).map(|i| (format!("p{i}"), "x".repeat(MAX_PARAM_VALUE_CHARS))).collect();
        run.tags = (0..150).map(|i| (format!("t{i}"), "v".into())).collect();
        run.metrics = (0..2500).map(|i| (format!("m{i}"), f64::from(i))).collect();
        run.metrics.push(("nan".into(), f64::NAN));
        run.metrics.push(("inf".into(), f64::INFINITY));
        run.params.push(("p0".into(), "dup".into()));
        let batches = build_batches(&run);
        for b in &batches {
            assert!(b.params.len() <= MAX_PARAMS_TAGS_PER_BATCH);
            assert!(b.tags.len() <= MAX_PARAMS_TAGS_PER_BATCH);
            assert!(b.metrics.len() <= MAX_METRICS_PER_BATCH);
            assert!(b.len() <= MAX_ENTITIES_PER_BATCH);
            let body = json!({"run_id": "0123456789abcdef0123456789abcdef", "params": b.params, "tags": b.tags, "metrics": b.metrics});
            assert!(body.to_string().len() < 1_000_000);
        }
        assert_eq!(batches.iter().map(|b| b.params.len()).sum::<usize>(), 250);
        assert_eq!(batches.iter().map(|b| b.tags.len()).sum::<usize>(), 150);
        assert_eq!(batches.iter().map(|b| b.metrics.len()).sum::<usize>(), 2500);
        assert!(batches.iter().flat_map(|b| &b.params).any(|p| p.key == "p0" && p.value != "dup"));
        assert!(
            batches.iter().flat_map(|b| &b.metrics).all(|m| m.value.is_finite() && m.timestamp == 1_700_000_001_000)
        );
    }

    #[test]
    fn no_batches_for_an_empty_run() {
        assert!(build_batches(&record()).is_empty());
    }

    #[test]
    fn artifact_names() {
        for ok in ["manifest.json", "reports/a b.txt"] {
            assert!(validate_artifact_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "a/../b", "./a", "a//b", "a/", "a\\b"] {
            assert!(validate_artifact_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn artifact_root_mirrors_the_python_client() {
        let c = client("http://127.0.0.1:5000");
        let root = c.artifact_root("mlflow-artifacts:/1/abc/artifacts").expect("proxied");
        assert_eq!(root.as_str(), "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts");
        assert!(c.artifact_root("file:///tmp/mlruns/1/abc/artifacts").is_none());
        assert!(c.artifact_root("s3://bucket/1/abc/artifacts").is_none());

        let c = client("https://u:p@mlflow.example/prefix/");
        let root = c.artifact_root("mlflow-artifacts:/1/abc/artifacts").expect("proxied");
        assert_eq!(
            root.as_str(),
            "https://u:p@mlflow.example/prefix/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts"
        );
        let root = c.artifact_root("mlflow-artifacts://other:8080/x/1/abc/artifacts").expect("proxied");
        assert_eq!(root.as_str(), "https://other:8080/prefix/api/2.0/mlflow-artifacts/artifacts/x/1/abc/artifacts");
        assert_eq!(c.api_url("runs/create").as_str(), "https://u:p@mlflow.example/prefix/api/2.0/mlflow/runs/create");
    }
}
