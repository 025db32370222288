//! `scripts/stack`: the local stack (SeaweedFS as S3, `mlflow server`, `bhavstore serve` with a
//! generated config) brought up and down as the README's quick start does, each service checked
//! through its own interface: REST with the generated token, psql with the generated password,
//! MLflow's REST API, a signed S3 listing of the bucket.
//!
//! Needs `weed`, `mlflow`, `psql` and `curl` (`scripts/install-deps`) and the real 2015 files;
//! skips with a message without them (outside CI).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bhavstore_e2e::bin::{bhavstore_bin, stderr, stdout};
use bhavstore_e2e::real_data::{files_2015, real_data_dir};
use serde_json::Value;

fn script() -> PathBuf {
    bhavstore_e2e::crate_dir().join("../scripts/stack")
}

/// `scripts/stack ARGS --dir DIR` without the caller's `BHAVSTORE_*`/`AWS_*`/`PG*`, killed (and
/// failed) after `limit`.
fn stack(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let mut c = Command::new(script());
    c.args(args).arg("--dir").arg(dir);
    for (k, _) in std::env::vars() {
        if (k.starts_with("BHAVSTORE_") || k.starts_with("AWS_") || k.starts_with("PG")) && k != "BHAVSTORE_BIN" {
            c.env_remove(k);
        }
    }
    let child = c
        .env("BHAVSTORE_BIN", bhavstore_bin())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/stack");
    let id = child.id();
    // The script's output is read to its end by wait_with_output; a watchdog ends a hung script.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").arg("-KILL").arg(id.to_string()).status();
        }
    });
    let out = child.wait_with_output().expect("scripts/stack output");
    let _ = tx.send(());
    let _ = watchdog.join();
    out
}

/// Stops the stack when the test ends, also when it fails.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let out = stack(&self.0, &["down", "--timeout", "10"], Duration::from_secs(120));
        if !out.status.success() {
            eprintln!("scripts/stack down failed:\n{}\n{}", stdout(&out), stderr(&out));
        }
    }
}

fn tool_missing(tool: &str) -> bool {
    let found =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()));
    if !found {
        assert!(std::env::var_os("CI").is_none(), "`{tool}` is not on PATH under CI: scripts/install-deps installs it");
        eprintln!("SKIPPED: `{tool}` is not on PATH (scripts/install-deps installs it)");
    }
    !found
}

/// `export NAME=value` / `export NAME='value'` lines of credentials.env.
fn read_env_file(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// The pids recorded in `DIR/run/*.pid`.
fn recorded_pids(dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("run")).expect("run dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(service) = name.strip_suffix(".pid") {
            let text = std::fs::read_to_string(e.path()).expect("pid file");
            let pid = text.split_whitespace().next().and_then(|p| p.parse().ok()).expect("pid");
            out.push((service.to_string(), pid));
        }
    }
    out.sort();
    out
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name; a zombie has exited.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Every live process whose process group is `pgid` (a service and its children).
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() != Some(&"Z") && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

fn psql(env: &HashMap<String, String>, password: &str, sql: &str) -> Output {
    let mut c = Command::new("psql");
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") {
            c.env_remove(k);
        }
    }
    for k in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE"] {
        c.env(k, &env[k]);
    }
    c.env("PGPASSWORD", password).env("PGCONNECT_TIMEOUT", "10");
    c.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]).output().expect("run psql")
}

/// A SigV4-signed GET with curl, as the S3 client of the stack's credentials.
fn s3_get(env: &HashMap<String, String>, path_and_query: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
        .arg(format!("{}:{}", env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]))
        .arg(format!("{}{path_and_query}", env["AWS_ENDPOINT_URL"]))
        .output()
        .expect("run curl");
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A 200 answer's JSON body.
async fn json(resp: reqwest::Response) -> Value {
    let (url, status) = (resp.url().clone(), resp.status());
    let body = resp.text().await.expect("body");
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_up_serves_imported_files_through_every_service_and_down_stops_them() {
    if ["weed", "mlflow", "psql", "curl", "setsid"].iter().any(|t| tool_missing(t)) {
        return;
    }
    let Some(data) = real_data_dir() else { return };
    let files = files_2015(&data.join("legacy-eq-14col/2015"));
    assert!(files.len() >= 9, "expected the 2015 files in {}", data.display());

    // Two --import arguments: a folder of eight sessions and one more file.
    let tmp = tempfile::Builder::new().prefix("bhavstore-stack-test-").tempdir().expect("tempdir");
    let dir = tmp.path().join("stack");
    let folder = tmp.path().join("bhavcopies");
    std::fs::create_dir_all(&folder).expect("folder");
    for f in &files[..8] {
        std::fs::copy(f, folder.join(f.file_name().expect("name"))).expect("copy");
    }
    let imported: Vec<String> =
        files[..9].iter().map(|f| f.file_name().expect("name").to_string_lossy().into_owned()).collect();
    let rest_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();

    let _down = Down(dir.clone());
    let started = Instant::now();
    let up = stack(
        &dir,
        &[
            "up",
            "--free-ports",
            "--rest-port",
            &rest_port.to_string(),
            "--no-schedule",
            "--timeout",
            "120",
            "--import",
            folder.to_str().expect("utf-8 path"),
            "--import",
            files[8].to_str().expect("utf-8 path"),
        ],
        Duration::from_secs(400),
    );
    let up_secs = started.elapsed().as_secs_f64();
    assert!(up.status.success(), "scripts/stack up failed:\n{}\n{}", stdout(&up), stderr(&up));
    eprintln!("scripts/stack up (with import and materialize) took {up_secs:.1} s");
    assert!(stdout(&up).contains("bhavstore stack up"), "{}", stdout(&up));
    assert!(stderr(&up).contains(&format!("bhavstore binary: {}", bhavstore_bin().display())), "{}", stderr(&up));

    // Secrets are generated and kept private.
    for f in ["credentials.env", "bhavstore.yaml"] {
        let mode = std::fs::metadata(dir.join(f)).expect(f).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
    }
    let env = read_env_file(&dir.join("credentials.env"));
    let rest = &env["BHAVSTACK_REST"];
    assert_eq!(rest, &format!("http://127.0.0.1:{rest_port}"), "--rest-port is used");
    let token = &env["BHAVSTACK_TOKEN"];
    assert!(token.len() >= 24, "generated token: {token:?}");
    assert!(stdout(&up).contains(token.as_str()), "up prints the credentials");
    // `scripts/stack env` prints the same lines.
    let printed = stack(&dir, &["env"], Duration::from_secs(30));
    assert!(printed.status.success(), "{}", stderr(&printed));
    assert!(stdout(&printed).contains(&format!("export BHAVSTACK_TOKEN='{token}'")), "{}", stdout(&printed));

    // REST: healthy with the token, serving the materialized views; the token is required.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let resp = http.get(format!("{rest}/health")).bearer_auth(token).send().await.expect("GET /health");
    assert_eq!(resp.status(), 200);
    let health = json(resp).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["storage"], "s3://market/bhavstore", "{health}");
    let views = health["views"].as_array().expect("views");
    let pf = views.iter().find(|v| v["view"] == "price_features").unwrap_or_else(|| panic!("{health}"));
    assert!(pf["rows"].as_u64().is_some_and(|r| r > 10_000), "{health}");
    assert_eq!(http.get(format!("{rest}/metrics")).send().await.expect("GET /metrics").status(), 401);
    assert_eq!(http.get(format!("{rest}/metrics")).bearer_auth(token).send().await.expect("GET").status(), 200);

    // Postgres: psql with the generated password reads price_features, one session per file.
    let out = psql(&env, &env["PGPASSWORD"], "select count(*), count(distinct trade_date) from price_features");
    assert!(out.status.success(), "psql: {}", stderr(&out));
    let row = stdout(&out);
    let (rows, dates) = row.trim().split_once('|').unwrap_or_else(|| panic!("psql printed {row:?}"));
    assert!(rows.parse::<u64>().is_ok_and(|r| r > 10_000), "{row}");
    assert_eq!(dates.parse::<usize>().ok(), Some(imported.len()), "{row}");
    let wrong = psql(&env, "not-the-password", "select 1");
    assert!(!wrong.status.success() && stderr(&wrong).contains("password authentication failed"), "{}", stderr(&wrong));

    // MLflow: the materialization of price_features was logged as a finished run.
    let mlflow = &env["MLFLOW_TRACKING_URI"];
    let exp = json(
        http.get(format!("{mlflow}/api/2.0/mlflow/experiments/get-by-name?experiment_name=bhavstore%2Fprice_features"))
            .send()
            .await
            .expect("get-by-name"),
    )
    .await;
    let exp_id = exp["experiment"]["experiment_id"].as_str().unwrap_or_else(|| panic!("{exp}")).to_string();
    let found = json(
        http.post(format!("{mlflow}/api/2.0/mlflow/runs/search"))
            .header("content-type", "application/json")
            .body(serde_json::json!({"experiment_ids": [exp_id]}).to_string())
            .send()
            .await
            .expect("runs/search"),
    )
    .await;
    let runs = found["runs"].as_array().unwrap_or_else(|| panic!("{found}"));
    assert_eq!(runs.len(), 1, "{found}");
    assert_eq!(runs[0]["info"]["status"], "FINISHED", "{found}");
    let params = runs[0]["data"]["params"].as_array().expect("params");
    assert!(params.iter().any(|p| p["key"] == "view" && p["value"] == "price_features"), "{found}");

    // S3: the bucket holds the raw bytes of every imported file.
    let (code, listing) = s3_get(&env, "/market?list-type=2&prefix=bhavstore%2Fraw%2Fbse%2Fequity%2F2015%2F");
    assert_eq!(code, 200, "{listing}");
    for name in &imported {
        assert!(listing.contains(&format!("/{name}</Key>")), "{name} not in the bucket:\n{listing}");
    }

    // Idempotent: a second `up` finds everything running and changes nothing.
    let pids = recorded_pids(&dir);
    assert_eq!(pids.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["bhavstore", "mlflow", "seaweedfs"]);
    let again = stack(&dir, &["up"], Duration::from_secs(120));
    assert!(again.status.success(), "{}\n{}", stdout(&again), stderr(&again));
    assert!(stdout(&again).contains("already running"), "{}", stdout(&again));
    assert_eq!(recorded_pids(&dir), pids);
    let status = stack(&dir, &["status"], Duration::from_secs(60));
    assert_eq!(status.status.code(), Some(0), "{}\n{}", stdout(&status), stderr(&status));
    assert_eq!(stdout(&status).matches("healthy").count(), 3, "{}", stdout(&status));

    // MLflow runs its uvicorn workers as children: they belong to its process group.
    let mlflow_pid = pids.iter().find(|(s, _)| s == "mlflow").map(|(_, p)| *p).expect("mlflow pid");
    let mlflow_group = group_members(mlflow_pid);
    assert!(mlflow_group.len() >= 2, "mlflow server and its workers: {mlflow_group:?}");

    // Down: every process (and MLflow's workers) is gone, and status says so.
    let started = Instant::now();
    let down = stack(&dir, &["down"], Duration::from_secs(120));
    let down_secs = started.elapsed().as_secs_f64();
    assert!(down.status.success(), "{}\n{}", stdout(&down), stderr(&down));
    eprintln!("scripts/stack down took {down_secs:.1} s:\n{}", stderr(&down));
    for (service, pid) in &pids {
        assert!(!alive(*pid), "{service} (pid {pid}) still runs after down");
        assert!(group_members(*pid).is_empty(), "{service}'s process group {pid} still has members");
    }
    for pid in mlflow_group {
        assert!(!alive(pid), "MLflow process {pid} still runs after down");
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", rest_port)).is_err(), "REST still answers");
    let status = stack(&dir, &["status"], Duration::from_secs(60));
    assert_eq!(status.status.code(), Some(3), "{}\n{}", stdout(&status), stderr(&status));
    assert!(dir.join("credentials.env").is_file(), "down keeps the data and credentials");
}
