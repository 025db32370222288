//! bhavstore's MLflow client against a real `mlflow server` (sqlite backend, local artifact
//! proxy), checked independently through MLflow's own REST API. Tested with MLflow 3.17.2.
//!
//! `mlflow` comes from `scripts/install-deps`; without it these tests skip, except under CI
//! where a missing MLflow must not pass silently.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bhavstore_mlflow::{MlflowClient, MlflowConfig, MlflowError, RunRecord};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// A `mlflow server` in its own process group, stopped (with its uvicorn workers) on drop.
struct MlflowServer {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl MlflowServer {
    /// Starts a server on a free port, or `None` when MLflow is not installed (outside CI).
    /// With `proxy_artifacts` (the `mlflow server` default) artifacts go through the server;
    /// without, runs get a plain `file://` artifact URI the client cannot upload to.
    async fn start(proxy_artifacts: bool) -> Option<Self> {
        match Command::new("mlflow").arg("--version").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("`mlflow --version` failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "mlflow is not installed under CI: scripts/install-deps must install it"
                );
                eprintln!("SKIPPED: mlflow not installed (pip install mlflow)");
                return None;
            }
            Err(e) => panic!("cannot run mlflow: {e}"),
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = dir.path().join("mlflow.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let started = Instant::now();
        let mut cmd = Command::new("mlflow");
        cmd.args(["server", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.path().join("mlflow.db").display()));
        if proxy_artifacts {
            cmd.arg("--artifacts-destination").arg(dir.path().join("artifacts"));
        } else {
            cmd.arg("--no-serve-artifacts")
                .arg("--default-artifact-root")
                .arg(format!("file://{}", dir.path().join("mlruns").display()));
        }
        let child = cmd
            // The background job runner (a huey consumer) only slows startup on a small machine.
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            // `mlflow server` runs uvicorn as a child, which forks workers: stop them as a group.
            .process_group(0)
            .spawn()
            .expect("spawn mlflow server");
        let mut server = Self { child, url: format!("http://127.0.0.1:{port}"), log, _dir: dir };

        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
        let deadline = started + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("mlflow server exited with {status} while starting:\n{}", server.log_tail());
            }
            if let Ok(r) = http.get(format!("{}/health", server.url)).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "mlflow server not healthy after 90 s:\n{}", server.log_tail());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        eprintln!("mlflow server up at {} after {:.1} s", server.url, started.elapsed().as_secs_f64());
        Some(server)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn config(&self) -> MlflowConfig {
        MlflowConfig {
            tracking_uri: Some(self.url.clone()),
            experiment_prefix: "bhavstore-test/".into(),
            timeout_secs: 30,
        }
    }

    fn client(&self) -> MlflowClient {
        MlflowClient::from_config(&self.config()).expect("config").expect("tracking_uri is set")
    }

    async fn get_json(&self, path_and_query: &str) -> Value {
        let url = format!("{}{path_and_query}", self.url);
        let resp = reqwest::get(&url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status();
        let body = resp.text().await.expect("body");
        assert_eq!(status, 200, "GET {url}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
    }

    async fn run(&self, run_id: &str) -> Value {
        self.get_json(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}")).await["run"].clone()
    }

    async fn experiment_id(&self, name: &str) -> String {
        let q = url_encode(name);
        let v = self.get_json(&format!("/api/2.0/mlflow/experiments/get-by-name?experiment_name={q}")).await;
        v["experiment"]["experiment_id"].as_str().expect("experiment_id").to_string()
    }

    /// How many experiments carry exactly this name, through MLflow's search.
    async fn experiments_named(&self, name: &str) -> usize {
        let filter = url_encode(&format!("name = '{name}'"));
        let v = self.get_json(&format!("/api/2.0/mlflow/experiments/search?max_results=100&filter={filter}")).await;
        v["experiments"].as_array().map_or(0, Vec::len)
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        let pgid = self.child.id();
        signal_group("TERM", pgid);
        // Wait for the leader to become a zombie without reaping it: while it is unreaped its id
        // cannot be reused, so the KILL below can only reach this server's stragglers.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && !is_zombie_or_gone(pgid) {
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group("KILL", pgid);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal_group(signal: &str, pgid: u32) {
    let _ =
        Command::new("kill").arg(format!("-{signal}")).arg("--").arg(format!("-{pgid}")).stderr(Stdio::null()).status();
}

fn is_zombie_or_gone(pid: u32) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) {
        // The state follows the parenthesised command name, which may itself contain ") ".
        Ok(stat) => stat.rsplit_once(") ").is_none_or(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ms(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t).expect("timestamp")
}

fn record(experiment: &str, run_name: &str) -> RunRecord {
    RunRecord {
        experiment: experiment.into(),
        run_name: run_name.into(),
        start_time: ms(1_735_779_600_000),
        end_time: ms(1_735_779_642_500),
        succeeded: true,
        params: Vec::new(),
        metrics: Vec::new(),
        tags: Vec::new(),
        artifacts: Vec::new(),
    }
}

/// `[{"key": k, "value": v}, …]` as pairs.
fn pairs(list: &Value) -> Vec<(String, Value)> {
    list.as_array()
        .map(|a| a.iter().map(|e| (e["key"].as_str().expect("key").to_string(), e["value"].clone())).collect())
        .unwrap_or_default()
}

fn value_of<'a>(list: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    list.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_a_run_with_params_metrics_tags_and_artifact() {
    let Some(server) = MlflowServer::start(true).await else { return };
    let client = server.client();
    let manifest = Bytes::from_static(b"{\"view\":\"daily_returns\",\"rows\":1234,\"files\":[\"part-0.parquet\"]}\n");
    let mut run = record("daily_returns", "20250102T013000Z-7f3a");
    run.params = vec![
        ("view".into(), "daily_returns".into()),
        ("as_of".into(), "2025-01-02".into()),
        ("window@days".into(), "20".into()),
    ];
    run.metrics = vec![
        ("rows".into(), 1234.0),
        ("null_fraction".into(), 0.125),
        ("duration_s".into(), 42.5),
        ("ratio".into(), f64::NAN),
    ];
    run.tags = vec![("bhavstore.view".into(), "daily_returns".into()), ("trigger".into(), "schedule".into())];
    run.artifacts = vec![("manifest.json".into(), manifest.clone())];

    let run_id = client.log_run(&run).await.expect("log_run");

    let got = server.run(&run_id).await;
    let info = &got["info"];
    assert_eq!(info["status"], "FINISHED", "{got:#}");
    assert_eq!(info["run_name"], "20250102T013000Z-7f3a");
    assert_eq!(info["start_time"], 1_735_779_600_000_i64);
    assert_eq!(info["end_time"], 1_735_779_642_500_i64);
    assert_eq!(
        info["experiment_id"].as_str().expect("experiment_id"),
        server.experiment_id("bhavstore-test/daily_returns").await
    );

    let params = pairs(&got["data"]["params"]);
    assert_eq!(params.len(), 3, "{params:?}");
    assert_eq!(value_of(&params, "view").expect("view"), "daily_returns");
    assert_eq!(value_of(&params, "as_of").expect("as_of"), "2025-01-02");
    assert_eq!(value_of(&params, "window_days").expect("sanitized key"), "20");

    let metrics = pairs(&got["data"]["metrics"]);
    assert_eq!(metrics.len(), 3, "NaN is skipped: {metrics:?}");
    assert_eq!(value_of(&metrics, "rows").and_then(Value::as_f64), Some(1234.0));
    assert_eq!(value_of(&metrics, "null_fraction").and_then(Value::as_f64), Some(0.125));
    assert_eq!(value_of(&metrics, "duration_s").and_then(Value::as_f64), Some(42.5));
    let timestamps: Vec<&Value> =
        got["data"]["metrics"].as_array().expect("metrics").iter().map(|m| &m["timestamp"]).collect();
    assert!(timestamps.iter().all(|t| **t == 1_735_779_642_500_i64), "{timestamps:?}");

    let tags = pairs(&got["data"]["tags"]);
    assert_eq!(value_of(&tags, "mlflow.runName").expect("runName tag"), "20250102T013000Z-7f3a");
    assert_eq!(value_of(&tags, "bhavstore.view").expect("tag"), "daily_returns");
    assert_eq!(value_of(&tags, "trigger").expect("tag"), "schedule");

    let listed = server.get_json(&format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}")).await;
    let files = listed["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{listed:#}");
    assert_eq!(files[0]["path"], "manifest.json");
    assert_eq!(files[0]["file_size"], manifest.len());

    let artifact_uri = info["artifact_uri"].as_str().expect("artifact_uri");
    let path = artifact_uri.strip_prefix("mlflow-artifacts:/").expect("proxied artifact URI");
    let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}/manifest.json", server.url);
    let resp = reqwest::get(&url).await.expect("GET artifact");
    assert_eq!(resp.status(), 200, "{url}");
    assert_eq!(resp.bytes().await.expect("artifact bytes"), manifest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_runs_reuse_the_experiment() {
    let Some(server) = MlflowServer::start(true).await else { return };
    let client = server.client();

    let first = client.log_run(&record("prices", "run-1")).await.expect("first run");
    // A failed bhavstore run, with more params and metrics than one log-batch call may carry.
    let mut second = record("prices", "run-2");
    second.succeeded = false;
    second.params = (0..250).map(|i| (format!("p{i:03}"), format!("value {i}"))).collect();
    second.metrics = (0..1500).map(|i| (format!("m{i:04}"), f64::from(i) / 4.0)).collect();
    second.tags = (0..150).map(|i| (format!("t{i:03}"), i.to_string())).collect();
    let second = client.log_run(&second).await.expect("second run");
    assert_ne!(first, second);

    let (a, b) = (server.run(&first).await, server.run(&second).await);
    assert_eq!(a["info"]["experiment_id"], b["info"]["experiment_id"]);
    assert_eq!(a["info"]["status"], "FINISHED");
    assert_eq!(b["info"]["status"], "FAILED");
    assert_eq!(server.experiments_named("bhavstore-test/prices").await, 1);
    let params = pairs(&b["data"]["params"]);
    assert_eq!(params.len(), 250);
    assert_eq!(value_of(&params, "p249").expect("last param"), "value 249");
    let metrics = pairs(&b["data"]["metrics"]);
    assert_eq!(metrics.len(), 1500);
    assert_eq!(value_of(&metrics, "m1499").and_then(Value::as_f64), Some(374.75));
    // 150 of ours plus mlflow.runName and mlflow.source.name (and whatever else MLflow adds).
    assert_eq!(pairs(&b["data"]["tags"]).iter().filter(|(k, _)| k.starts_with('t')).count(), 150);

    // Two processes logging the first runs of a new view at once both end in one experiment,
    // whichever of them creates it.
    let (rx, ry) = (record("volumes", "x"), record("volumes", "y"));
    let (x, y) = tokio::join!(client.log_run(&rx), client.log_run(&ry));
    let (x, y) = (x.expect("run x"), y.expect("run y"));
    let (x, y) = (server.run(&x).await, server.run(&y).await);
    assert_eq!(x["info"]["experiment_id"], y["info"]["experiment_id"]);
    assert_eq!(server.experiments_named("bhavstore-test/volumes").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unproxied_artifact_store_skips_artifacts_but_logs_the_run() {
    let Some(server) = MlflowServer::start(false).await else { return };
    let mut run = record("no_proxy", "run-1");
    run.params = vec![("view".into(), "no_proxy".into())];
    run.metrics = vec![("rows".into(), 7.0)];
    run.artifacts = vec![("manifest.json".into(), Bytes::from_static(b"{}"))];
    let run_id = server.client().log_run(&run).await.expect("artifacts are skipped, not an error");
    let got = server.run(&run_id).await;
    assert_eq!(got["info"]["status"], "FINISHED", "{got:#}");
    let artifact_uri = got["info"]["artifact_uri"].as_str().expect("artifact_uri");
    assert!(artifact_uri.starts_with("file://"), "{artifact_uri}");
    assert_eq!(value_of(&pairs(&got["data"]["params"]), "view").expect("param"), "no_proxy");
    assert_eq!(value_of(&pairs(&got["data"]["metrics"]), "rows").and_then(Value::as_f64), Some(7.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_fails_promptly() {
    let cfg = |url: String| MlflowConfig { tracking_uri: Some(url), timeout_secs: 2, ..MlflowConfig::default() };

    // Nothing listens: refused at once.
    let closed = free_port();
    let client = MlflowClient::from_config(&cfg(format!("http://127.0.0.1:{closed}"))).expect("config").expect("set");
    let started = Instant::now();
    let err = client.log_run(&record("v", "r")).await.expect_err("closed port");
    assert!(matches!(err, MlflowError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());

    // Something accepts connections but never answers: the per-request timeout ends it.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = black_hole.local_addr().expect("addr").port();
    let client = MlflowClient::from_config(&cfg(format!("http://127.0.0.1:{port}"))).expect("config").expect("set");
    let started = Instant::now();
    let err = client.log_run(&record("v", "r")).await.expect_err("silent server");
    assert!(matches!(err, MlflowError::Unreachable { .. }), "{err}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(6), "took {took:?}: {err}");
    drop(black_hole);
}

/// `bhavstore materialize` with MLflow configured logs one run per view; with MLflow down the
/// materialization still succeeds and only warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_logs_each_view_run_and_survives_mlflow_being_down() {
    use bhavstore_e2e::bin::{bhavstore, stderr, stdout};
    use bhavstore_e2e::real_data::real_data_dir;
    use bhavstore_e2e::storage_roots::Root;
    let Some(data) = real_data_dir() else { return };
    let Some(server) = MlflowServer::start(true).await else { return };
    let root = Root::local();
    let defs = bhavstore_e2e::crate_dir().join("../feature_defs");
    let files = bhavstore_e2e::real_data::files_2015(&data.join("legacy-eq-14col/2015"));
    root.import(&files[..10]);

    let materialize = |uri: &str| {
        let mut c = bhavstore();
        root.apply(&mut c);
        c.arg("--feature-defs").arg(&defs).arg("materialize").env("BHAVSTORE_MLFLOW_TRACKING_URI", uri);
        c.output().expect("materialize")
    };
    let out = materialize(&server.url);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let run_id = stdout(&out)
        .lines()
        .find(|l| l.starts_with("price_features@"))
        .and_then(|l| l.split("run ").nth(1))
        .and_then(|r| r.split(' ').next())
        .expect("run id in output")
        .to_string();

    let exp = server.experiment_id("bhavstore/price_features").await;
    let body = serde_json::json!({"experiment_ids": [exp], "filter": format!("attributes.run_name = '{run_id}'")});
    let text = reqwest::Client::new()
        .post(format!("{}/api/2.0/mlflow/runs/search", server.url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("runs/search")
        .text()
        .await
        .expect("body");
    let found: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let runs = found["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{found}");
    let mlflow_run = server.run(runs[0]["info"]["run_id"].as_str().expect("id")).await;
    assert_eq!(mlflow_run["info"]["status"], "FINISHED");
    let params = pairs(&mlflow_run["data"]["params"]);
    assert_eq!(value_of(&params, "view").and_then(Value::as_str), Some("price_features"));
    assert!(value_of(&params, "version").and_then(Value::as_str).is_some_and(|v| v.starts_with('v')));
    assert_eq!(value_of(&params, "mode").and_then(Value::as_str), Some("full"));
    let metrics = pairs(&mlflow_run["data"]["metrics"]);
    assert!(value_of(&metrics, "rows").and_then(Value::as_f64).is_some_and(|r| r > 10_000.0), "{metrics:?}");
    assert!(value_of(&metrics, "sma_20.null_rate").is_some(), "{metrics:?}");
    let tags = pairs(&mlflow_run["data"]["tags"]);
    assert!(value_of(&tags, "definition_hash").and_then(Value::as_str).is_some_and(|h| h.len() == 64));
    let artifacts = server
        .get_json(&format!("/api/2.0/mlflow/artifacts/list?run_id={}", runs[0]["info"]["run_id"].as_str().unwrap()))
        .await;
    assert!(artifacts.to_string().contains("manifest.json"), "{artifacts}");

    // MLflow unreachable: the run is kept, a warning says why.
    root.import(&files[10..12]);
    let out = materialize(&format!("http://127.0.0.1:{}", free_port()));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("(incremental)"), "{}", stdout(&out));
    assert!(stderr(&out).contains("MLflow logging failed"), "{}", stderr(&out));
}
