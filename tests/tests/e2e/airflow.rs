//! The Airflow integration (`integrations/airflow`): `airflow dags test bhavstore_daily DATE`
//! (Airflow 3 in its own venv, a SQLite metadata database, no scheduler) against a live
//! `bhavstore serve` whose "BSE" is the fake one serving a real 2015 bhavcopy, then a check
//! that the run landed: the day's rows in `bhavcopy`, a materialization run of that day in
//! `bhavstore_runs`, the online store serving it, the MLflow link pointing at that run; and a
//! run whose materialization ends `warning` fails the quality gate and the DAG run.
//!
//! Airflow comes from `scripts/install-deps` (`$HOME/.cache/bhavstore-airflow`,
//! `BHAVSTORE_AIRFLOW_VENV` overrides); without it these tests skip, except under CI.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bhavstore_e2e::bin::{run, stderr, stdout};
use bhavstore_e2e::fake_bse::{FakeBse, Route};
use bhavstore_e2e::real_data::{count_data_lines, files_2015, real_data_dir};
use bhavstore_e2e::serve::{Serve, feature_defs};
use bhavstore_e2e::storage_roots::Root;
use serde_json::Value;

const TOKEN: &str = "airflow-test-token";

/// The venv's `airflow`, or `None` (with a message) when it is not installed, outside CI.
fn airflow_venv() -> Option<PathBuf> {
    let venv = std::env::var_os("BHAVSTORE_AIRFLOW_VENV").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/bhavstore-airflow"),
        PathBuf::from,
    );
    if venv.join("bin/airflow").is_file() {
        return Some(venv);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "Airflow is not installed at {} under CI: scripts/install-deps must install it",
        venv.display()
    );
    eprintln!("SKIPPED: Airflow not installed at {} (run scripts/install-deps)", venv.display());
    None
}

fn integration_dir() -> PathBuf {
    bhavstore_e2e::crate_dir().join("../integrations/airflow")
}

/// BSE's zip of a legacy `EQ{DDMMYY}.CSV` file, and the name BSE gives it.
fn legacy_zip(file: &Path) -> (String, Vec<u8>) {
    let member = file.file_name().unwrap().to_string_lossy().to_string();
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        w.start_file(member.as_str(), opts).unwrap();
        w.write_all(&std::fs::read(file).unwrap()).unwrap();
        w.finish().unwrap();
    }
    (format!("{}_CSV.ZIP", &member[..8]), buf.into_inner())
}

/// `YYYY-MM-DD` of a legacy `EQ{DDMMYY}.CSV` file.
fn trade_date(file: &Path) -> String {
    let n = file.file_name().unwrap().to_string_lossy().to_string();
    format!("20{}-{}-{}", &n[6..8], &n[4..6], &n[2..4])
}

/// Sends a request on a throwaway runtime; (status, body as JSON, Null when it is not JSON).
fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

/// The status of a GET, or `None` when nothing answers.
fn health(url: &str) -> Option<u16> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async { reqwest::get(url).await.ok().map(|r| r.status().as_u16()) })
}

/// A `mlflow server` (SQLite backend) in its own process group, stopped on drop.
struct Mlflow {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Mlflow {
    /// Starts one, or `None` when MLflow is not installed (outside CI).
    fn start() -> Option<Self> {
        if !Command::new("mlflow").arg("--version").output().is_ok_and(|o| o.status.success()) {
            assert!(std::env::var_os("CI").is_none(), "mlflow is not installed under CI");
            eprintln!("SKIPPED (MLflow part): mlflow not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("mlflow.log")).unwrap();
        let child = Command::new("mlflow")
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.path().join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.path().join("artifacts"))
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn mlflow server");
        let mut me = Self { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            assert!(matches!(me.child.try_wait(), Ok(None)), "mlflow server exited while starting");
            if health(&format!("{}/health", me.url)) == Some(200) {
                return Some(me);
            }
            assert!(Instant::now() < deadline, "mlflow server not healthy after 90 s");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        // `mlflow server` runs uvicorn as a child: stop the whole group.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

/// A storage root with the first `preloaded` 2015 days imported and materialized, a fake BSE
/// serving the next day, and `bhavstore serve` (with a token) fetching from it.
struct Fixture {
    root: Root,
    _bse: FakeBse,
    serve: Serve,
    _cfg: tempfile::TempDir,
    /// The day the fake BSE serves.
    file: PathBuf,
    date: String,
}

impl Fixture {
    fn start(dir: &Path, preloaded: usize, extra_config: &str) -> Self {
        let files = files_2015(&dir.join("legacy-eq-14col/2015"));
        let root = Root::local();
        root.import(&files[..preloaded]);
        let _ = root.run_ok(&feature_defs(), &["materialize", "price_features"]);
        let file = files[preloaded].clone();
        let bse = FakeBse::start();
        let (name, bytes) = legacy_zip(&file);
        bse.set(&name, Route::File(bytes));
        let cfg = tempfile::tempdir().unwrap();
        let cfg_file = cfg.path().join("bhavstore.yaml");
        std::fs::write(&cfg_file, format!("server:\n  tokens: [{TOKEN}]\n{extra_config}")).unwrap();
        let url = bse.url();
        let serve = Serve::start(
            &root,
            Some(&cfg_file),
            &[
                ("BHAVSTORE_SOURCE_URL", url.as_str()),
                ("BHAVSTORE_SOURCE_BACKOFF_INITIAL_MS", "20"),
                ("BHAVSTORE_SOURCE_BACKOFF_MAX_MS", "100"),
            ],
        );
        let date = trade_date(&file);
        Self { root, _bse: bse, serve, _cfg: cfg, file, date }
    }

    fn query(&self, sql: &str) -> String {
        self.root.run_ok(&feature_defs(), &["query", "--format", "csv", sql])
    }
}

/// What one `airflow dags test` left: its exit, output, and the metadata database's view.
struct DagTest {
    success: bool,
    output: String,
    /// `dag_run.state` of the runs.
    dag_runs: Vec<String>,
    /// task id -> state.
    tasks: Value,
    /// task id -> return value (XCom).
    xcom: Value,
}

/// `airflow db migrate` and `airflow dags test bhavstore_daily {date}` in a fresh
/// `AIRFLOW_HOME`, with the connections pointing at `serve` (and MLflow).
fn dags_test(venv: &Path, serve: &Serve, date: &str, mlflow: Option<&Mlflow>) -> DagTest {
    let home = tempfile::tempdir().unwrap();
    let (host, port) = serve.http.rsplit_once(':').unwrap();
    let conn =
        serde_json::json!({"conn_type": "http", "host": host, "port": port.parse::<u16>().unwrap(), "password": TOKEN});
    let cmd = |args: &[&str]| {
        let mut c = Command::new(venv.join("bin/airflow"));
        c.args(args)
            .env("AIRFLOW_HOME", home.path())
            .env("AIRFLOW__CORE__DAGS_FOLDER", integration_dir().join("dags"))
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .env("PYTHONPATH", integration_dir())
            .env("AIRFLOW_CONN_BHAVSTORE_DEFAULT", conn.to_string())
            .env_remove("AIRFLOW_CONN_MLFLOW_DEFAULT")
            .stdin(Stdio::null());
        if let Some(m) = mlflow {
            let (h, p) = m.url.trim_start_matches("http://").rsplit_once(':').unwrap();
            c.env(
                "AIRFLOW_CONN_MLFLOW_DEFAULT",
                serde_json::json!({"conn_type": "http", "host": h, "port": p.parse::<u16>().unwrap()}).to_string(),
            );
        }
        c
    };
    let started = Instant::now();
    let o = run(&mut cmd(&["db", "migrate"]));
    assert!(o.status.success(), "airflow db migrate: {}\n{}", stdout(&o), stderr(&o));
    eprintln!("airflow db migrate: {:.1} s", started.elapsed().as_secs_f64());

    // Bounded: a task that keeps retrying must not hang the suite.
    let log_path = home.path().join("dags-test.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let started = Instant::now();
    let mut child = cmd(&["dags", "test", "bhavstore_daily", date])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn airflow dags test");
    let deadline = started + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(status.is_some(), "airflow dags test did not finish in 300 s:\n{output}");
    eprintln!("airflow dags test {date}: {:.1} s", started.elapsed().as_secs_f64());

    // The metadata database, read with the venv's Python (sqlite3 is in its standard library).
    let script = r#"
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
runs = [r[0] for r in c.execute("select state from dag_run where dag_id = 'bhavstore_daily'")]
tasks = dict(c.execute("select task_id, state from task_instance where dag_id = 'bhavstore_daily'"))
xcom = {}
for task, value in c.execute("select task_id, value from xcom where dag_id = 'bhavstore_daily' and key = 'return_value'"):
    xcom[task] = json.loads(value) if isinstance(value, (str, bytes)) else value
print(json.dumps({"dag_runs": runs, "tasks": tasks, "xcom": xcom}))
"#;
    let o = run(Command::new(venv.join("bin/python")).arg("-c").arg(script).arg(home.path().join("airflow.db")));
    assert!(o.status.success(), "reading airflow.db: {}", stderr(&o));
    let db: Value = serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    DagTest {
        success: status.is_some_and(|s| s.success()),
        output,
        dag_runs: db["dag_runs"].as_array().unwrap().iter().map(|s| s.as_str().unwrap_or("").to_string()).collect(),
        tasks: db["tasks"].clone(),
        xcom: db["xcom"].clone(),
    }
}

#[test]
fn airflow_daily_dag_ingests_the_day_and_the_run_lands() {
    let Some(dir) = real_data_dir() else { return };
    let Some(venv) = airflow_venv() else { return };
    let mlflow = Mlflow::start();
    let extra = mlflow.as_ref().map(|m| format!("mlflow:\n  tracking_uri: {}\n", m.url)).unwrap_or_default();
    // 21 sessions stored (through the Saturday budget session of 2015-02-28); BSE has Monday
    // 2015-03-02.
    let fx = Fixture::start(&dir, 21, &extra);
    assert_eq!(fx.date, "2015-03-02");

    let t = dags_test(&venv, &fx.serve, &fx.date, mlflow.as_ref());
    assert!(t.success, "airflow dags test failed:\n{}", t.output);
    assert_eq!(t.dag_runs, ["success"], "{}", t.output);
    for task in ["ingest", "wait_for_run", "materialize", "quality_gate"] {
        assert_eq!(t.tasks[task], "success", "{task}: {}\n{}", t.tasks, t.output);
    }
    assert_eq!(t.tasks["mlflow_link"], if mlflow.is_some() { "success" } else { "skipped" }, "{}", t.tasks);

    // The day's rows are in bhavcopy, exactly the file's.
    let expected = count_data_lines(&std::fs::read(&fx.file).unwrap());
    assert_eq!(
        fx.query(&format!("select count(*) as n from bhavcopy where trade_date = DATE '{}'", fx.date)),
        format!("n\n{expected}\n")
    );
    // The materialization the DAG reported is the view's newest run, of that day, published.
    let m = &t.xcom["materialize"];
    assert_eq!(
        (m["view"].as_str(), m["status"].as_str(), m["mode"].as_str()),
        (Some("price_features"), Some("succeeded"), Some("incremental")),
        "{m}"
    );
    let run_id = m["run_id"].as_str().expect("materialization run id");
    assert_eq!(
        fx.query(
            "select run_id, status, max_trade_date, manifest_seq is not null as published from bhavstore_runs \
             where view = 'price_features' and kind = 'materialize' order by started_at desc limit 1"
        ),
        format!("run_id,status,max_trade_date,published\n{run_id},succeeded,{},true\n", fx.date)
    );
    assert_eq!(
        fx.query(&format!(
            "select count(*) > 0 as has_rows from \"price_features@{run_id}\" where trade_date = DATE '{}'",
            fx.date
        )),
        "has_rows\ntrue\n"
    );
    assert_eq!(t.xcom["wait_for_run"]["status"], "succeeded");
    assert_eq!(t.xcom["wait_for_run"]["run_id"], t.xcom["ingest"], "the sensor waited for the ingest's run");

    // The online store serves the day (through the same token the DAG used).
    let (s, body) = send(
        reqwest::Client::new()
            .get(format!(
                "http://{}/feature-store/lookup?entity_id=500002&feature_name=close&timestamp=2015-03-03T00:00:00Z",
                fx.serve.http
            ))
            .bearer_auth(TOKEN),
    );
    assert_eq!((s, body["trade_date"].as_str()), (200, Some(fx.date.as_str())), "{body}");

    // The MLflow link names the run bhavstore logged for that materialization.
    if let Some(m) = &mlflow {
        let link = t.xcom["mlflow_link"].as_str().unwrap_or_else(|| panic!("no link: {}\n{}", t.xcom, t.output));
        let prefix = format!("{}/#/experiments/", m.url);
        let rest = link.strip_prefix(&prefix).unwrap_or_else(|| panic!("{link}"));
        let (_experiment, mlflow_run) = rest.split_once("/runs/").unwrap_or_else(|| panic!("{link}"));
        let (s, body) =
            send(reqwest::Client::new().get(format!("{}/api/2.0/mlflow/runs/get?run_id={mlflow_run}", m.url)));
        assert_eq!(s, 200, "{body}");
        let tags = body["run"]["data"]["tags"].as_array().unwrap();
        assert!(tags.iter().any(|t| t["key"] == "bhavstore.run_id" && t["value"] == run_id), "{body}");
    }
}

#[test]
fn airflow_quality_warning_fails_the_gate_and_the_dag_run() {
    let Some(dir) = real_data_dir() else { return };
    let Some(venv) = airflow_venv() else { return };
    // A NULL rate above 0 on the newest session is a warning: with 22 sessions stored, sma_50
    // is NULL for every security, so the run ends `warning` (its data is still published).
    let fx = Fixture::start(&dir, 22, "materialize:\n  quality:\n    max_null_rate: 0.0\n");
    assert_eq!(fx.date, "2015-03-03");

    let t = dags_test(&venv, &fx.serve, &fx.date, None);
    assert!(!t.success, "airflow dags test passed despite the warning:\n{}", t.output);
    assert_eq!(t.dag_runs, ["failed"], "{}", t.output);
    for task in ["ingest", "wait_for_run", "materialize"] {
        assert_eq!(t.tasks[task], "success", "{task}: {}\n{}", t.tasks, t.output);
    }
    assert_eq!(t.tasks["quality_gate"], "failed", "{}", t.tasks);
    assert_eq!(t.tasks["mlflow_link"], "skipped", "no MLflow configured: {}", t.tasks);
    assert_eq!(t.xcom["materialize"]["status"], "warning", "{}", t.xcom);
    assert!(t.output.contains("quality gate: price_features@"), "{}", t.output);

    // The data landed all the same, in a run recorded as `warning`.
    let run_id = t.xcom["materialize"]["run_id"].as_str().unwrap();
    assert_eq!(
        fx.query(&format!("select status, max_trade_date from bhavstore_runs where run_id = '{run_id}'")),
        format!("status,max_trade_date\nwarning,{}\n", fx.date)
    );
}
