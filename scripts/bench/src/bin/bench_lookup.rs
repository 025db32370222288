//! `bench-lookup`: load generator and like-for-like check for online feature lookups over REST,
//! against bhavstore (`GET /feature-store/lookup`, `POST /feature-store/lookup/batch`) and a
//! Feast feature server (`POST /get-online-features`).
//!
//! Subcommands:
//!
//! * `check` — for `--samples` random securities, asks both servers for every feature and
//!   compares the answers: same value (bit for bit, NULL for NULL) and same event time. Exits
//!   non-zero on any difference.
//! * `load` — sends lookups of random securities (and random features) from one list, either
//!   **open loop** at a fixed request rate (`--rate`: request `k` is due at `start + k / rate`
//!   and is sent then whether or not earlier ones have finished) or **closed loop** with a fixed
//!   number of connections each sending its next request when the previous answer is read
//!   (`--concurrency`: the server's throughput at that concurrency). Latency runs from the request
//!   being sent to its whole body being read; open loop also records it from the due time (which
//!   includes any wait for a free in-flight slot of the generator) and how late requests were
//!   sent. Requests due (open loop) or started (closed loop) during `--warmup` are not counted.
//!   The request sequence depends only on `--seed`, so both servers get the same requests.
//!
//! Results are one JSON object per run (`--out`) and a one-line summary on stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bhavstore_bench::rng::SplitMix64;
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Benchmark online feature lookups over REST: bhavstore vs Feast.
#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Compare both servers' answers for random securities.
    Check(CheckArgs),
    /// Send lookups to one server at a fixed rate or concurrency and report latencies.
    Load(LoadArgs),
}

/// What both subcommands share: the request mix.
#[derive(Debug, clap::Args)]
struct Common {
    /// File with the scrip codes to ask for, one per line (both servers hold all of them).
    #[arg(long)]
    securities: PathBuf,
    /// The feature view (bhavstore `feature_view`, Feast feature view name).
    #[arg(long, default_value = "price_features")]
    view: String,
    /// Features to draw from, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    features: Vec<String>,
    /// bhavstore's `timestamp` (RFC 3339): the as-of time of every bhavstore lookup. Feast's
    /// online store holds only the newest value, so this should be after the last session.
    #[arg(long)]
    timestamp: String,
    /// PRNG seed of the request sequence.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the result (JSON) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    #[command(flatten)]
    common: Common,
    /// bhavstore's base URL.
    #[arg(long)]
    bhavstore: String,
    /// Feast's base URL.
    #[arg(long)]
    feast: String,
    /// Securities to compare.
    #[arg(long, default_value_t = 50)]
    samples: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Bhavstore,
    Feast,
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    #[command(flatten)]
    common: Common,
    /// Which API `--url` speaks.
    #[arg(long, value_enum)]
    target: Target,
    /// The server's base URL.
    #[arg(long)]
    url: String,
    /// Open loop: requests per second.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: connections, each with one request in flight.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Features per request (1: bhavstore's GET lookup; more: its batch endpoint).
    #[arg(long, default_value_t = 1)]
    features_per_request: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Seconds of warm-up, not counted.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Open loop: most requests in flight at once (a due request waits for a slot).
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Per-request timeout in seconds (counted as an error).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Worker threads of the generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A label for the result.
    #[arg(long, default_value = "")]
    label: String,
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let threads = match &args.command {
        Cmd::Load(l) => l.threads.max(1),
        Cmd::Check(_) => 1,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    runtime.block_on(async move {
        match args.command {
            Cmd::Check(c) => check(c).await,
            Cmd::Load(l) => load(l).await,
        }
    })
}

fn read_securities(path: &Path) -> Result<Vec<i64>, BoxError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let codes = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse::<i64>().map_err(|e| format!("{}: {l:?}: {e}", path.display())))
        .collect::<Result<Vec<_>, _>>()?;
    if codes.is_empty() {
        return Err(format!("{}: no securities", path.display()).into());
    }
    Ok(codes)
}

fn client(timeout: Duration) -> Result<reqwest::Client, BoxError> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()?)
}

/// One lookup: a security and its features.
#[derive(Debug, Clone)]
struct Lookup {
    scrip_code: i64,
    features: Vec<usize>,
}

/// The request sequence: securities and features drawn uniformly (distinct features within a
/// request).
struct Mix {
    rng: SplitMix64,
    securities: Arc<Vec<i64>>,
    n_features: usize,
    per_request: usize,
}

impl Mix {
    fn next(&mut self) -> Lookup {
        let scrip_code = self.securities[self.rng.below(self.securities.len() as u64) as usize];
        let mut pool: Vec<usize> = (0..self.n_features).collect();
        let mut features = Vec::with_capacity(self.per_request);
        for i in 0..self.per_request.min(self.n_features) {
            let j = i + self.rng.below((self.n_features - i) as u64) as usize;
            pool.swap(i, j);
            features.push(pool[i]);
        }
        Lookup { scrip_code, features }
    }
}

/// Builds the HTTP request of a lookup for one server.
#[derive(Debug, Clone)]
struct RequestBuilder {
    target: Target,
    base: String,
    view: String,
    features: Arc<Vec<String>>,
    timestamp: String,
}

impl RequestBuilder {
    fn build(&self, client: &reqwest::Client, l: &Lookup) -> reqwest::RequestBuilder {
        match self.target {
            Target::Bhavstore if l.features.len() == 1 => client.get(format!(
                "{}/feature-store/lookup?entity_id={}&feature_view={}&feature_name={}&timestamp={}",
                self.base, l.scrip_code, self.view, self.features[l.features[0]], self.timestamp
            )),
            Target::Bhavstore => {
                let body = json!({
                    "entity_ids": [l.scrip_code],
                    "feature_view": self.view,
                    "feature_names": l.features.iter().map(|&i| &self.features[i]).collect::<Vec<_>>(),
                    "timestamp": self.timestamp,
                });
                client
                    .post(format!("{}/feature-store/lookup/batch", self.base))
                    .header("content-type", "application/json")
                    .body(body.to_string())
            }
            Target::Feast => {
                let body = json!({
                    "features": l.features.iter().map(|&i| format!("{}:{}", self.view, self.features[i])).collect::<Vec<_>>(),
                    "entities": {"scrip_code": [l.scrip_code]},
                });
                client
                    .post(format!("{}/get-online-features", self.base))
                    .header("content-type", "application/json")
                    .body(body.to_string())
            }
        }
    }
}

/// Sends a request and reads the whole body; `Err` is the error kind.
async fn send(req: reqwest::RequestBuilder) -> Result<(), String> {
    let resp = req.send().await.map_err(|e| error_kind(&e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| error_kind(&e))?;
    if !status.is_success() {
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.pointer("/error/code").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        return Err(format!("http_{}{}{code}", status.as_u16(), if code.is_empty() { "" } else { "_" }));
    }
    Ok(())
}

fn error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body".into()
    } else {
        "request".into()
    }
}

/// One measured request.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Sent, relative to the run's start.
    sent: Duration,
    /// Sent to body read.
    latency: Duration,
    /// Due time to body read (open loop).
    from_due: Duration,
    /// Sent minus due (open loop).
    lag: Duration,
    /// Finished, relative to the run's start.
    done: Duration,
    ok: bool,
}

async fn load(a: LoadArgs) -> Result<(), BoxError> {
    let securities = Arc::new(read_securities(&a.common.securities)?);
    let features = Arc::new(a.common.features.clone());
    if a.features_per_request == 0 || a.features_per_request > features.len() {
        return Err(format!("--features-per-request must be 1..={}", features.len()).into());
    }
    let client = client(Duration::from_secs_f64(a.timeout))?;
    let builder = RequestBuilder {
        target: a.target,
        base: a.url.trim_end_matches('/').to_string(),
        view: a.common.view.clone(),
        features: Arc::clone(&features),
        timestamp: a.common.timestamp.clone(),
    };
    let warmup = Duration::from_secs_f64(a.warmup);
    let total = warmup + Duration::from_secs_f64(a.duration);
    let (samples, errors, mode) = match (a.rate, a.concurrency) {
        (Some(rate), None) if rate > 0.0 => {
            let mix = Mix {
                rng: SplitMix64::new(a.common.seed),
                securities: Arc::clone(&securities),
                n_features: features.len(),
                per_request: a.features_per_request,
            };
            let (s, e) = open_loop(&client, &builder, mix, rate, total, a.max_in_flight).await;
            (s, e, json!({"mode": "open", "rate": rate, "max_in_flight": a.max_in_flight}))
        }
        (None, Some(c)) if c > 0 => {
            let (s, e) = closed_loop(&client, &builder, &securities, features.len(), &a, c, total).await;
            (s, e, json!({"mode": "closed", "concurrency": c}))
        }
        _ => return Err("give one of --rate R (> 0) or --concurrency C (> 0)".into()),
    };
    let result = summarize(&a, mode, &samples, &errors, warmup);
    println!(
        "{:<9} {:<28} ok {:>7}  err {:>5}  {:>8.1} req/s  p50 {:>8.3} ms  p90 {:>8.3}  p99 {:>8.3}  max {:>8.3}",
        format!("{:?}", a.target).to_lowercase(),
        a.label,
        result["ok"].as_u64().unwrap_or(0),
        result["errors"].as_u64().unwrap_or(0),
        result["throughput_rps"].as_f64().unwrap_or(0.0),
        result["latency_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
        result["latency_ms"]["p90"].as_f64().unwrap_or(f64::NAN),
        result["latency_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
        result["latency_ms"]["max"].as_f64().unwrap_or(f64::NAN),
    );
    if let Some(out) = &a.common.out {
        std::fs::write(out, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(())
}

/// Errors of requests that count (after the warm-up), by kind.
type Errors = std::collections::BTreeMap<String, u64>;

async fn open_loop(
    client: &reqwest::Client,
    builder: &RequestBuilder,
    mut mix: Mix,
    rate: f64,
    total: Duration,
    max_in_flight: usize,
) -> (Vec<Sample>, Vec<(Duration, String)>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Sample, Option<String>)>();
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let n_total = (total.as_secs_f64() * rate).floor() as u64;
    let collector = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut errors = Vec::new();
        while let Some((s, e)) = rx.recv().await {
            if let Some(e) = e {
                // Keyed by due time, as the warm-up cut in `summarize`.
                errors.push((s.sent.saturating_sub(s.lag), e));
            }
            samples.push(s);
        }
        (samples, errors)
    });
    for k in 0..n_total {
        let due = interval.mul_f64(k as f64);
        let due_at = start + due;
        if due_at > Instant::now() {
            tokio::time::sleep_until(due_at.into()).await;
        }
        let lookup = mix.next();
        let req = builder.build(client, &lookup);
        let tx = tx.clone();
        let slots = Arc::clone(&slots);
        tokio::spawn(async move {
            let Ok(_permit) = slots.acquire_owned().await else { return };
            let sent_at = Instant::now();
            let r = send(req).await;
            let done_at = Instant::now();
            let sample = Sample {
                sent: sent_at - start,
                latency: done_at - sent_at,
                from_due: done_at.saturating_duration_since(due_at),
                lag: sent_at.saturating_duration_since(due_at),
                done: done_at - start,
                ok: r.is_ok(),
            };
            let _ = tx.send((sample, r.err()));
        });
    }
    drop(tx);
    collector.await.unwrap_or_default()
}

async fn closed_loop(
    client: &reqwest::Client,
    builder: &RequestBuilder,
    securities: &Arc<Vec<i64>>,
    n_features: usize,
    a: &LoadArgs,
    concurrency: usize,
    total: Duration,
) -> (Vec<Sample>, Vec<(Duration, String)>) {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let mut mix = Mix {
            rng: SplitMix64::stream(a.common.seed, w as u64),
            securities: Arc::clone(securities),
            n_features,
            per_request: a.features_per_request,
        };
        let client = client.clone();
        let builder = builder.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = Vec::new();
            loop {
                let sent_at = Instant::now();
                if sent_at - start >= total {
                    break;
                }
                let req = builder.build(&client, &mix.next());
                let r = send(req).await;
                let done_at = Instant::now();
                let latency = done_at - sent_at;
                if let Err(e) = r.as_ref() {
                    errors.push((sent_at - start, e.clone()));
                }
                samples.push(Sample {
                    sent: sent_at - start,
                    latency,
                    from_due: latency,
                    lag: Duration::ZERO,
                    done: done_at - start,
                    ok: r.is_ok(),
                });
            }
            (samples, errors)
        }));
    }
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        if let Ok((s, e)) = t.await {
            samples.extend(s);
            errors.extend(e);
        }
    }
    (samples, errors)
}

fn percentiles(mut v: Vec<Duration>) -> Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_unstable();
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    // Nearest rank: the smallest value with at least q of the samples at or below it.
    let at = |q: f64| ms(v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]);
    let mean = v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64;
    json!({
        "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
        "max": ms(v[v.len() - 1]), "mean": (mean * 1e6).round() / 1e3,
    })
}

fn summarize(a: &LoadArgs, mode: Value, samples: &[Sample], errors: &[(Duration, String)], warmup: Duration) -> Value {
    // A request counts when it was due (open loop) or sent (closed loop) after the warm-up.
    let counted = |s: &Sample| s.sent.saturating_sub(s.lag) >= warmup;
    let measured: Vec<&Sample> = samples.iter().filter(|s| counted(s)).collect();
    let ok: Vec<&Sample> = measured.iter().copied().filter(|s| s.ok).collect();
    let mut errs = Errors::new();
    for (counted_at, kind) in errors {
        if *counted_at >= warmup {
            *errs.entry(kind.clone()).or_default() += 1;
        }
    }
    let n_err = measured.len() - ok.len();
    // Throughput: answers of counted requests over the time from the end of the warm-up to
    // the last of them.
    let last_done = measured.iter().map(|s| s.done).max().unwrap_or(warmup);
    let span = last_done.saturating_sub(warmup).as_secs_f64();
    let throughput = if span > 0.0 { ok.len() as f64 / span } else { 0.0 };
    json!({
        "target": format!("{:?}", a.target).to_lowercase(),
        "label": a.label,
        "url": a.url,
        "load": mode,
        "features_per_request": a.features_per_request,
        "features": a.common.features,
        "securities": a.common.securities,
        "timestamp": a.common.timestamp,
        "seed": a.common.seed,
        "warmup_s": a.warmup,
        "duration_s": a.duration,
        "generator_threads": a.threads,
        "requests": measured.len(),
        "ok": ok.len(),
        "errors": n_err,
        "error_kinds": errs,
        "measured_span_s": (span * 1e3).round() / 1e3,
        "throughput_rps": (throughput * 10.0).round() / 10.0,
        "latency_ms": percentiles(ok.iter().map(|s| s.latency).collect()),
        "latency_from_due_ms": percentiles(ok.iter().map(|s| s.from_due).collect()),
        "send_lag_ms": percentiles(measured.iter().map(|s| s.lag).collect()),
    })
}

/// A value as both servers print it: a JSON number or null.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Val {
    Null,
    Num(f64),
}

impl Val {
    fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(Self::Null),
            Value::Number(n) => n.as_f64().map(Self::Num).ok_or_else(|| format!("not an f64: {n}")),
            other => Err(format!("not a number: {other}")),
        }
    }

    fn same(self, other: Self) -> bool {
        match (self, other) {
            (Self::Null, Self::Null) => true,
            (Self::Num(a), Self::Num(b)) => a.to_bits() == b.to_bits() || (a == 0.0 && b == 0.0),
            _ => false,
        }
    }
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> Result<Value, BoxError> {
    let resp = client.post(url).header("content-type", "application/json").body(body.to_string()).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        return Err(format!("{url}: {status}: {text}").into());
    }
    Ok(serde_json::from_str(&text)?)
}

/// bhavstore's values of every feature of `scrip_code` and their event time.
async fn bhavstore_values(
    client: &reqwest::Client,
    base: &str,
    c: &Common,
    scrip_code: i64,
) -> Result<(Vec<Val>, String), BoxError> {
    let body = json!({"entity_ids": [scrip_code], "feature_view": c.view, "feature_names": c.features, "timestamp": c.timestamp});
    let v = post_json(client, &format!("{base}/feature-store/lookup/batch"), &body).await?;
    let entry = v.pointer("/results/0").ok_or("bhavstore: no results[0]")?;
    if let Some(e) = entry.get("error") {
        return Err(format!("bhavstore: {scrip_code}: {e}").into());
    }
    let mut out = Vec::new();
    let mut time = String::new();
    for f in &c.features {
        let fv = entry.pointer(&format!("/features/{f}")).ok_or_else(|| format!("bhavstore: no {f}"))?;
        out.push(Val::from_json(&fv["value"])?);
        time = fv["timestamp"].as_str().unwrap_or_default().to_string();
    }
    Ok((out, time))
}

/// Feast's values of every feature of `scrip_code`, their statuses and event times.
async fn feast_values(
    client: &reqwest::Client,
    base: &str,
    c: &Common,
    scrip_code: i64,
) -> Result<(Vec<Val>, Vec<String>, Vec<String>), BoxError> {
    let refs: Vec<String> = c.features.iter().map(|f| format!("{}:{f}", c.view)).collect();
    let body = json!({"features": refs, "entities": {"scrip_code": [scrip_code]}});
    let v = post_json(client, &format!("{base}/get-online-features"), &body).await?;
    let names: Vec<String> = v
        .pointer("/metadata/feature_names")
        .and_then(Value::as_array)
        .ok_or("feast: no metadata.feature_names")?
        .iter()
        .map(|n| n.as_str().unwrap_or_default().to_string())
        .collect();
    let results = v.get("results").and_then(Value::as_array).ok_or("feast: no results")?;
    let (mut vals, mut statuses, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for f in &c.features {
        let full = format!("{}__{f}", c.view);
        let i = names
            .iter()
            .position(|n| n == f || *n == full)
            .ok_or_else(|| format!("feast: no feature {f} in {names:?}"))?;
        let r = &results[i];
        vals.push(Val::from_json(&r["values"][0])?);
        statuses.push(r["statuses"][0].as_str().unwrap_or_default().to_string());
        times.push(r["event_timestamps"][0].as_str().unwrap_or_default().to_string());
    }
    Ok((vals, statuses, times))
}

/// Same instant written two ways (`2005-12-16T10:00:00Z`, `2005-12-16T10:00:00+00:00`).
fn same_instant(a: &str, b: &str) -> bool {
    match (chrono::DateTime::parse_from_rfc3339(a), chrono::DateTime::parse_from_rfc3339(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

async fn check(a: CheckArgs) -> Result<(), BoxError> {
    let c = &a.common;
    let securities = read_securities(&c.securities)?;
    let client = client(Duration::from_secs(30))?;
    let (bh, fe) = (a.bhavstore.trim_end_matches('/'), a.feast.trim_end_matches('/'));
    let mut rng = SplitMix64::new(c.seed ^ 0xC0FF_EE00);
    let mut pool = securities.clone();
    let n = a.samples.min(pool.len());
    for i in 0..n {
        let j = i + rng.below((pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    let (mut values, mut nulls, mut mismatches) = (0usize, 0usize, Vec::new());
    for &code in &pool[..n] {
        let (bv, bt) = bhavstore_values(&client, bh, c, code).await?;
        let (fv, fs, ft) = feast_values(&client, fe, c, code).await?;
        for (k, f) in c.features.iter().enumerate() {
            values += 1;
            if bv[k] == Val::Null {
                nulls += 1;
            }
            let time_ok = same_instant(&bt, &ft[k]) || (fv[k] == Val::Null && bv[k] == Val::Null);
            if !bv[k].same(fv[k]) || !time_ok {
                mismatches.push(json!({
                    "scrip_code": code, "feature": f,
                    "bhavstore": format!("{:?}", bv[k]), "bhavstore_time": bt,
                    "feast": format!("{:?}", fv[k]), "feast_status": fs[k], "feast_time": ft[k],
                }));
            }
        }
    }
    let result = json!({
        "securities_compared": n,
        "features": c.features,
        "values_compared": values,
        "null_values": nulls,
        "mismatches": mismatches.len(),
        "first_mismatches": mismatches.iter().take(20).collect::<Vec<_>>(),
        "timestamp": c.timestamp,
    });
    println!(
        "check: {n} securities x {} features = {values} values ({nulls} NULL in bhavstore): {} mismatches",
        c.features.len(),
        mismatches.len()
    );
    for m in mismatches.iter().take(5) {
        println!("  {m}");
    }
    if let Some(out) = &c.out {
        std::fs::write(out, serde_json::to_string_pretty(&result)?)?;
    }
    if mismatches.is_empty() { Ok(()) } else { Err(format!("{} values differ", mismatches.len()).into()) }
}
