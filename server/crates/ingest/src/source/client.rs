//! The HTTP client for BSE: browser-like headers, timeouts, retries with exponential backoff and
//! jitter, a shared rate limit, and classification of what came back by its content.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tracing::{debug, warn};
use url::Url;

use super::rate_limit::RateLimiter;
use super::urls::{Candidate, candidates};
use crate::config::SourceConfig;
use bhavstore_formats::{BodyKind, classify};

/// A body that was downloaded, whatever it turns out to be.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Full URL requested.
    pub url: String,
    /// BSE's file name for it.
    pub file_name: String,
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` header, if sent.
    pub content_type: Option<String>,
    /// When the body finished arriving.
    pub fetched_at: DateTime<Utc>,
    /// The bytes, exactly as received.
    pub bytes: Bytes,
}

/// What BSE answered for a day.
#[derive(Debug, Clone)]
pub enum FetchOutcome {
    /// A body that is not BSE's HTML page: the caller parses it (and keeps it if it does not).
    File(Fetched),
    /// BSE answered with its HTML page (or 404) for every candidate: no file for that day.
    NoFile {
        /// URLs tried.
        urls: Vec<String>,
    },
    /// BSE's firewall refused the request (403 or its block page). The body is kept.
    Blocked(Fetched),
}

/// Failures to get an answer at all.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No connection could be made (DNS, refused, unreachable) even after retries.
    #[error(
        "cannot reach {base}: {message}. No route to BSE from this machine? Stored data stays available; files you already have can be loaded with `bhavstore import`"
    )]
    Unreachable {
        /// The base URL.
        base: String,
        /// The last error.
        message: String,
    },
    /// Transient failures (timeouts, cut connections, 5xx, 429) outlasted the retries.
    #[error("{url}: gave up after {attempts} attempts: {message}")]
    GaveUp {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// A status that retrying will not fix.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Why one attempt failed, and whether another might succeed.
enum Attempt {
    Retry(String, Option<Duration>),
    Connect(String),
    Fatal(FetchError),
}

/// Client for BSE's download site.
#[derive(Debug, Clone)]
pub struct BseClient {
    http: reqwest::Client,
    base: Url,
    cfg: SourceConfig,
    limiter: Arc<RateLimiter>,
}

impl BseClient {
    /// Builds a client; `cfg.base_url` replaces `https://www.bseindia.com`.
    pub fn new(cfg: &SourceConfig) -> Result<Self, FetchError> {
        let base =
            Url::parse(&cfg.base_url).map_err(|e| FetchError::Client(format!("base URL {}: {e}", cfg.base_url)))?;
        let mut headers = HeaderMap::new();
        let mut set = |k: header::HeaderName, v: &str| {
            if let Ok(v) = HeaderValue::from_str(v) {
                headers.insert(k, v);
            }
        };
        // BSE answers 403 or its firewall page to clients that do not look like a browser.
        set(header::ACCEPT, "text/html,application/xhtml+xml,application/xml;q=0.9,application/zip,text/csv,*/*;q=0.8");
        set(header::ACCEPT_LANGUAGE, "en-US,en;q=0.9");
        set(header::REFERER, "https://www.bseindia.com/");
        set(header::ORIGIN, "https://www.bseindia.com");
        let http = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .default_headers(headers)
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Self { http, base, cfg: cfg.clone(), limiter: Arc::new(RateLimiter::new(cfg.requests_per_second)) })
    }

    /// The base URL, for messages.
    #[must_use]
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Fetches the bhavcopy of one trade date, trying each of BSE's URLs for it in turn.
    pub async fn fetch_day(&self, date: NaiveDate) -> Result<FetchOutcome, FetchError> {
        let mut tried = Vec::new();
        for cand in candidates(date, self.cfg.isincode_fallback) {
            let fetched = self.get(&cand).await?;
            tried.push(fetched.url.clone());
            if fetched.status == StatusCode::FORBIDDEN.as_u16() {
                return Ok(FetchOutcome::Blocked(fetched));
            }
            if fetched.status == StatusCode::NOT_FOUND.as_u16() {
                debug!(url = %fetched.url, "404, trying the next URL");
                continue;
            }
            if !(200..300).contains(&fetched.status) {
                return Err(FetchError::Status { url: fetched.url, status: fetched.status });
            }
            match classify(&fetched.bytes) {
                BodyKind::NoFilePage => {
                    debug!(url = %fetched.url, bytes = fetched.bytes.len(), "HTML page instead of a file");
                }
                BodyKind::FirewallBlock => return Ok(FetchOutcome::Blocked(fetched)),
                _ => return Ok(FetchOutcome::File(fetched)),
            }
        }
        Ok(FetchOutcome::NoFile { urls: tried })
    }

    /// Fetches `path_and_query` (starting with `/`) from BSE's API host ([`SourceConfig::api_base`]),
    /// with the same browser headers, rate limit and retries as bhavcopies. The body is not
    /// classified: the caller knows what it asked for.
    pub async fn fetch_api(&self, path_and_query: &str, file_name: &str) -> Result<Fetched, FetchError> {
        let api = self.cfg.api_base();
        let base = Url::parse(&api).map_err(|e| FetchError::Client(format!("API base URL {api}: {e}")))?;
        let url = Url::parse(&format!("{}{path_and_query}", base.as_str().trim_end_matches('/')))
            .map_err(|e| FetchError::Client(e.to_string()))?;
        self.get_url(url, file_name).await
    }

    async fn get(&self, cand: &Candidate) -> Result<Fetched, FetchError> {
        let url = self.base.join(cand.path.trim_start_matches('/')).map_err(|e| FetchError::Client(e.to_string()))?;
        let url = if self.base.path().ends_with('/') || self.base.path().is_empty() {
            url
        } else {
            // A base with a path but no trailing slash (`http://mirror/bse`) keeps its path.
            Url::parse(&format!("{}{}", self.base.as_str().trim_end_matches('/'), cand.path))
                .map_err(|e| FetchError::Client(e.to_string()))?
        };
        self.get_url(url, &cand.file_name).await
    }

    async fn get_url(&self, url: Url, file_name: &str) -> Result<Fetched, FetchError> {
        let attempts = self.cfg.retries + 1;
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                let delay = self.backoff(attempt);
                warn!(%url, attempt, of = attempts, delay_ms = delay.as_millis() as u64, error = %last, "retrying");
                tokio::time::sleep(delay).await;
            }
            self.limiter.acquire().await;
            match self.attempt(&url, file_name).await {
                Ok(f) => {
                    debug!(url = %f.url, status = f.status, bytes = f.bytes.len(), "fetched");
                    return Ok(f);
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(msg, retry_after)) => {
                    last = msg;
                    if let Some(d) = retry_after {
                        tokio::time::sleep(d.min(Duration::from_millis(self.cfg.backoff_max_ms))).await;
                    }
                }
                Err(Attempt::Connect(msg)) => {
                    // A name that does not resolve will not resolve in a second either: offline
                    // machines learn that at once instead of after every retry.
                    let dns = msg.contains("dns error");
                    last = msg;
                    if dns || attempt + 1 == attempts {
                        return Err(FetchError::Unreachable { base: self.base.to_string(), message: last });
                    }
                }
            }
        }
        Err(FetchError::GaveUp { url: url.to_string(), attempts, message: last })
    }

    async fn attempt(&self, url: &Url, file_name: &str) -> Result<Fetched, Attempt> {
        let resp = self.http.get(url.clone()).send().await.map_err(|e| classify_error(&e))?;
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Attempt::Retry(format!("HTTP {status}"), retry_after));
        }
        let content_type = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(String::from);
        let expected_len = resp.content_length();
        let bytes = resp.bytes().await.map_err(|e| classify_error(&e))?;
        if let Some(n) = expected_len
            && n != bytes.len() as u64
        {
            return Err(Attempt::Retry(format!("body cut short: {} of {n} bytes", bytes.len()), None));
        }
        Ok(Fetched {
            url: url.to_string(),
            file_name: file_name.to_string(),
            status: status.as_u16(),
            content_type,
            fetched_at: Utc::now(),
            bytes,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.cfg.backoff_initial_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let capped = base.min(self.cfg.backoff_max_ms).max(1);
        // Jitter in [capped/2, capped] so concurrent jobs do not retry in lockstep.
        let jittered = rand::rng().random_range(capped / 2..=capped);
        Duration::from_millis(jittered)
    }
}

fn classify_error(e: &reqwest::Error) -> Attempt {
    let msg = error_chain(e);
    if e.is_connect() {
        Attempt::Connect(msg)
    } else if e.is_timeout() || e.is_body() || e.is_decode() || e.is_request() {
        Attempt::Retry(msg, None)
    } else if e.is_builder() || e.is_redirect() {
        Attempt::Fatal(FetchError::Client(msg))
    } else {
        Attempt::Retry(msg, None)
    }
}

/// reqwest's top-level message is vague ("error sending request"); the sources say why.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
