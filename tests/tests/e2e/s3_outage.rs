//! Materialization against a real S3 server (a private SeaweedFS) that is stopped in the middle
//! of a run and started again: the run fails promptly with an object-store error instead of
//! hanging, readers never see a half-published version, the dead run's lock is taken over, and
//! the next run's data equal a clean run's.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::real_data::{files_2015, real_data_dir};
use bhavstore_e2e::seaweed::Seaweed;
use bhavstore_e2e::storage_roots::Root;
use bhavstore_lake::manifest;
use bhavstore_storage::paths;

const VIEW: &str = "price_features";
/// How long a run may take to give up once its object store is gone.
const FAIL_WITHIN: Duration = Duration::from_secs(120);

fn feature_defs() -> PathBuf {
    bhavstore_e2e::crate_dir().join("../feature_defs")
}

/// A `bhavstore` command on `root`; on S3 with short retries, so a dead server fails a request in
/// seconds instead of object_store's default three minutes.
fn command(root: &Root) -> std::process::Command {
    let mut c = bhavstore();
    root.apply(&mut c);
    c.arg("--feature-defs").arg(feature_defs());
    if matches!(root, Root::S3 { .. }) {
        c.env("BHAVSTORE_S3_MAX_RETRIES", "2").env("BHAVSTORE_S3_RETRY_TIMEOUT_SECS", "5");
    }
    c
}

fn ok(root: &Root, args: &[&str]) -> String {
    let o = run(command(root).args(args));
    assert!(o.status.success(), "{} {args:?}: {}\n{}", root.label(), stdout(&o), stderr(&o));
    stdout(&o)
}

fn csv(root: &Root, sql: &str) -> String {
    let out = ok(root, &["query", "--format", "csv", sql]);
    assert!(out.lines().count() > 1, "{sql}: no rows");
    out
}

fn ordered() -> String {
    format!("select * from {VIEW} order by scrip_code, trade_date")
}

fn count(root: &Root) -> u64 {
    let out = csv(root, &format!("select count(*) from {VIEW}"));
    out.lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("count: {out}"))
}

/// `(status, mode)` of every run of the view, oldest first.
fn runs(root: &Root) -> Vec<(String, String)> {
    csv(root, &format!("select status, mode from bhavstore_runs where view = '{VIEW}' order by run_id"))
        .lines()
        .skip(1)
        .map(|l| {
            let (s, m) = l.split_once(',').unwrap_or((l, ""));
            (s.to_string(), m.to_string())
        })
        .collect()
}

/// A `materialize` process paused at a failpoint, its output collected as it comes.
struct Paused {
    child: Child,
    out: std::thread::JoinHandle<Vec<u8>>,
    err: Arc<Mutex<Vec<u8>>>,
    err_reader: std::thread::JoinHandle<()>,
}

impl Paused {
    fn spawn(root: &Root, point: &str, resume: &Path) -> Self {
        let mut c = command(root);
        c.args(["materialize", VIEW])
            .env("BHAVSTORE_FAILPOINT", point)
            .env("BHAVSTORE_FAILPOINT_RESUME", resume)
            // The run's own view of the failure, not only the final message.
            .env("RUST_LOG", "warn,bhavstore=info");
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn materialize");
        let mut out_pipe = child.stdout.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out_pipe.read_to_end(&mut v);
            v
        });
        let mut err_pipe = child.stderr.take().unwrap();
        let err = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let marker = format!("FAILPOINT {point} reached");
        let sink = Arc::clone(&err);
        let err_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut told = false;
            loop {
                let n = match err_pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut all = sink.lock().unwrap();
                all.extend_from_slice(&buf[..n]);
                if !told && String::from_utf8_lossy(&all).contains(&marker) {
                    told = true;
                    let _ = tx.send(());
                }
            }
        });
        let mut me = Self { child, out, err, err_reader };
        if rx.recv_timeout(Duration::from_secs(600)).is_err() {
            let _ = me.child.kill();
            let _ = me.child.wait();
            panic!("materialize never reached {point}: {}", me.stderr_so_far());
        }
        me
    }

    fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Waits up to `limit` for the process; kills it and fails the test if it does not end.
    fn finish(mut self, limit: Duration) -> (ExitStatus, Duration, String, String) {
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("materialize did not end within {limit:?} of the S3 server stopping: {}", self.stderr_so_far());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let took = t0.elapsed();
        let Self { out, err, err_reader, .. } = self;
        let out = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
        let _ = err_reader.join();
        let err = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
        (status, took, out, err)
    }
}

/// Whether the view's lock object exists.
fn lock_left(root: &Root) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let storage = root.open();
    rt.block_on(storage.get(&paths::view_lock(VIEW))).unwrap().is_some()
}

/// After a successful run: no data file that the latest manifest does
/// not refer to (the stopped run's orphans were cleaned up).
fn assert_tidy(root: &Root, version: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let storage = root.open();
    rt.block_on(async {
        let latest = manifest::latest(&storage, VIEW, version).await.unwrap().expect("a manifest");
        let dir = paths::data_dir(VIEW, version);
        for key in storage.list(&dir).await.unwrap() {
            let run = paths::run_of_file(&dir, &key).unwrap_or_default();
            assert!(latest.referenced_runs.contains(&run), "orphan {key} left behind");
        }
    });
}

/// Whether `materialize` output reports a finished run of `mode` (quality warnings such as PSI
/// drift on a short history still mean the run succeeded).
fn done(out: &str, mode: &str) -> bool {
    out.contains(&format!(": succeeded ({mode})")) || out.contains(&format!(": warning ({mode})"))
}

fn version_of(materialize_out: &str) -> String {
    materialize_out
        .split('@')
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap_or_else(|| panic!("no version in {materialize_out:?}"))
        .to_string()
}

/// One outage: 45 sessions materialized, 22 more imported, a run paused at `point`, the S3
/// server stopped under it, then restarted.
fn outage_at(s3: &mut Seaweed, files: &[PathBuf], expected: &str, point: &str) {
    let t0 = Instant::now();
    let root = s3.root(&format!("outage-{point}"));
    ok(&root, &[&["import"][..], &files[..45].iter().map(|p| p.to_str().unwrap()).collect::<Vec<_>>()].concat());
    let first = ok(&root, &["materialize", VIEW]);
    assert!(done(&first, "full"), "{first}");
    let version = version_of(&first);
    let before = count(&root);
    ok(&root, &[&["import"][..], &files[45..].iter().map(|p| p.to_str().unwrap()).collect::<Vec<_>>()].concat());

    let flag = tempfile::tempdir().unwrap();
    let resume = flag.path().join("go");
    let paused = Paused::spawn(&root, point, &resume);
    s3.stop();
    std::fs::write(&resume, b"").unwrap();
    let (status, took, out, err) = paused.finish(FAIL_WITHIN);
    eprintln!("{point}: the run ended {status} {:.1} s after the S3 server stopped\n{out}{err}", took.as_secs_f64());
    assert!(!err.contains("panicked"), "{point}: the run panicked: {err}");
    if point == "published" {
        // Its manifest is out, so the run did its work; what it could not write afterwards
        // (quality figures, its record) is reported as a warning.
        assert!(status.success(), "{point}: a published run is not a failure: {out}{err}");
        assert!(out.contains(": warning (incremental)"), "{point}: {out}");
    } else {
        assert!(!status.success(), "{point}: a run whose object store vanished cannot succeed: {out}");
        assert_eq!(status.code(), Some(1), "{point}: a failure, not a crash or a usage error: {out}{err}");
        assert!(out.contains(&format!("{VIEW}: failed:")), "{point}: the view's failure is reported: {out}");
    }
    assert!(out.to_lowercase().contains("object store"), "{point}: the error names the object store: {out}");

    s3.start_again();
    let after = count(&root);
    if point == "published" {
        assert_ne!(before, after, "{point}: the published state is visible");
        assert_eq!(csv(&root, &ordered()), expected, "{point}: the published state is complete");
    } else {
        assert_eq!(before, after, "{point}: readers still see the previous state, whole");
    }

    assert!(lock_left(&root), "{point}: the stopped run could not delete its lock object");
    let o = run(command(&root).args(["materialize", VIEW]));
    let next = stdout(&o);
    assert!(o.status.success(), "{point}: the run after the outage: {next}\n{}", stderr(&o));
    assert!(
        stderr(&o).contains("taking over the lock of a run whose process is gone"),
        "{point}: the dead run's lock is taken over: {}",
        stderr(&o)
    );
    let want = if point == "published" { "none" } else { "incremental" };
    assert!(done(&next, want), "{point}: expected a {want} run: {next}");
    assert_eq!(csv(&root, &ordered()), expected, "{point}: data after the outage equal a clean run's");
    assert!(!lock_left(&root), "{point}: the lock object was released");
    assert_tidy(&root, &version);

    let runs = runs(&root);
    assert_eq!(runs.len(), 3, "{point}: {runs:?}");
    let good = |r: &(String, String)| matches!(r.0.as_str(), "succeeded" | "warning");
    assert!(good(&runs[0]) && runs[0].1 == "full", "{point}: {runs:?}");
    if point == "published" {
        // Its record never got past `running`; read back, it is completed from its manifest.
        assert!(good(&runs[1]) && runs[1].1 == "incremental", "{point}: the stopped run shows: {runs:?}");
    } else {
        assert!(matches!(runs[1].0.as_str(), "failed" | "abandoned"), "{point}: the stopped run shows: {runs:?}");
    }
    assert!(good(&runs[2]) && runs[2].1 == want, "{point}: {runs:?}");
    eprintln!("{point}: outage scenario done in {:.1} s; runs {runs:?}", t0.elapsed().as_secs_f64());
}

#[test]
fn materialization_survives_the_s3_server_stopping_mid_run() {
    let Some(dir) = real_data_dir() else { return };
    let folder = dir.join("legacy-eq-14col/2015");
    if !folder.is_dir() {
        eprintln!("SKIPPED: {} is missing", folder.display());
        return;
    }
    let files = files_2015(&folder);
    assert_eq!(files.len(), 67);
    let Some(mut s3) = Seaweed::start() else { return };

    let clean = Root::local();
    ok(&clean, &[&["import"][..], &files.iter().map(|p| p.to_str().unwrap()).collect::<Vec<_>>()].concat());
    ok(&clean, &["materialize", VIEW]);
    let expected = csv(&clean, &ordered());
    assert_eq!(expected.lines().count(), 198_437 + 1);

    outage_at(&mut s3, &files, &expected, "data_written");
    outage_at(&mut s3, &files, &expected, "published");
}
