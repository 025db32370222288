//! Issue 10, ingest and storage half: each attack of the issue replayed with inputs built at
//! test time from the real BSE files (`bhavstore_e2e::hostile`), and the fixed behaviour checked.
//!
//! - REST ingest reads only inside `server.import_roots`, follows no link, creates nothing, and
//!   never quotes a file's content.
//! - `import` skips links out of the tree and detects loops.
//! - A revision that loses rows is held, not loaded, until accepted; any stored revision can be
//!   made current again.
//! - A file named `_meta.json` cannot wedge its day; identical rejected bodies keep every record.
//! - REST run statuses are bounded.
//! - Zip bombs are refused whole, with bounded memory, and kept once.
//! - Implausible prices, thousands separators, UTF-16 and a frozen S3 endpoint give errors that
//!   say what they are.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::fake_bse::{FakeBse, Route};
use bhavstore_e2e::hostile::{
    self, SECRET, contains_bytes, files_with_bytes, first_lines, header_only, secret_file, symlink_tree, utf16le,
    with_field, zip_bomb, zip_of,
};
use bhavstore_e2e::real_data::real_data_dir;
use bhavstore_e2e::serve::Serve;
use bhavstore_e2e::storage_roots::Root;
use bhavstore_ingest::{IngestError, Ingested, Ingestor, Provenance};
use bhavstore_storage::Storage;
use bhavstore_storage::{S3Config, StorageConfig};
use bytes::Bytes;
use datafusion::arrow::array::AsArray;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const D0105: &str = "2015-01-05";

fn real(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join("legacy-eq-14col/2015").join(file)).expect("real file")
}

fn cli(root: &Root) -> Command {
    let mut c = bhavstore();
    root.apply(&mut c);
    c
}

fn query(root: &Root, sql: &str) -> String {
    let o = run(cli(root).args(["query", "--format", "csv", sql]));
    assert!(o.status.success(), "query failed: {}", stderr(&o));
    stdout(&o)
}

fn rows_on(root: &Root, day: &str) -> u64 {
    let out = query(root, &format!("select count(*) as n from bhavcopy where trade_date = DATE '{day}'"));
    out.lines().nth(1).and_then(|l| l.trim().parse().ok()).expect("a count")
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn prov(source: &str) -> Provenance {
    Provenance {
        kind: "import".into(),
        source: source.into(),
        fetched_at: chrono::Utc::now(),
        http_status: None,
        content_type: None,
    }
}

/// Writes `bytes` as `dir/name` (creating `dir`) and returns the path.
fn put_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}

// ---------------------------------------------------------------------------------------------
// REST helpers

struct Server {
    _serve: Serve,
    base: String,
}

fn serve(root: &Root, yaml: Option<&str>, env: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = yaml.map(|y| put_file(cfg_dir.path(), "bhavstore.yaml", y.as_bytes()));
    let s = Serve::start(root, cfg.as_deref(), env);
    let base = format!("http://{}", s.http);
    (Server { _serve: s, base }, cfg_dir)
}

fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    })
}

fn post_ingest(server: &Server, data_source: &str) -> (u16, Value) {
    let body = json!({"feature_view": "price_features", "data_source": data_source});
    send(
        reqwest::Client::new()
            .post(format!("{}/feature-store/ingest", server.base))
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
}

fn get_run(server: &Server, id: &str) -> (u16, Value) {
    send(reqwest::Client::new().get(format!("{}/feature-store/runs/{id}", server.base)))
}

/// Waits for a run to finish; returns its final status record.
fn wait_run(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, r) = get_run(server, id);
        if r["status"] != "running" {
            return r;
        }
        assert!(Instant::now() < deadline, "run {id} did not finish: {r}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The final message of an ingest request: from the answer, or from the run when it took long.
fn ingest_outcome(server: &Server, data_source: &str) -> (String, String) {
    let (s, body) = post_ingest(server, data_source);
    match s {
        200 => ("succeeded".into(), body["message"].as_str().unwrap_or_default().into()),
        422 => ("failed".into(), body["error"]["message"].as_str().unwrap_or_default().into()),
        202 => {
            let r = wait_run(server, body["run_id"].as_str().unwrap());
            (r["status"].as_str().unwrap().into(), r["message"].as_str().unwrap_or_default().into())
        }
        other => panic!("{data_source}: unexpected {other}: {body}"),
    }
}

fn assert_no_content_leak(what: &str, text: &str) {
    for leak in [SECRET, "hunter2", "root:x:0:0", "169.254.169.254"] {
        assert!(!text.contains(leak), "{what} leaks {leak:?}: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Item 5: REST ingest reads server files

#[test]
fn rest_ingest_refuses_file_and_s3_locations_without_import_roots() {
    let root = Root::local();
    let tmp = tempfile::tempdir().unwrap();
    let some_dir = tmp.path().join("some/dir");
    std::fs::create_dir_all(&some_dir).unwrap();
    secret_file(&some_dir.join(".env"));
    secret_file(&some_dir.join("keys.csv"));
    std::os::unix::fs::symlink("/etc/passwd", some_dir.join("EQ010216.CSV")).unwrap();
    let (server, _cfg) = serve(&root, None, &[]);

    let nowhere = tmp.path().join("x");
    for source in [
        format!("file://{}/", some_dir.display()),
        "file:///root/".to_string(),
        "file:///etc/".to_string(),
        format!("file://{}/a/b/c", nowhere.display()),
        "s3://other-bucket/x".to_string(),
    ] {
        let (s, body) = post_ingest(&server, &source);
        assert_eq!(s, 403, "{source}: {body}");
        assert_eq!(body["error"]["code"], "location_not_allowed", "{source}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("server.import_roots"), "the error names the key that enables it: {msg}");
        assert_no_content_leak(&source, &body.to_string());
    }
    assert!(!nowhere.exists(), "nothing is created for a refused location");
    // Nothing was read, so nothing was kept.
    let store = files_with_bytes(Path::new(root.url().trim_start_matches("file://")));
    assert!(store.iter().all(|(p, _)| !p.to_string_lossy().contains("rejected")), "{store:?}");
    assert!(store.iter().all(|(_, b)| !contains_bytes(b, SECRET.as_bytes())));
}

#[test]
fn rest_ingest_reads_only_inside_import_roots_and_follows_no_link() {
    let Some(data) = real_data_dir() else { return };
    let root = Root::local();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let inbox = base.join("in");
    std::fs::create_dir_all(inbox.join("2015")).unwrap();
    put_file(&inbox.join("2015"), "EQ050115.CSV", &real(&data, "EQ050115.CSV"));
    secret_file(&inbox.join("notes.csv"));
    // Outside the root: a credentials file and a sibling directory whose name extends the root's.
    let outside = base.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("creds.csv"), "OUTSIDE_ONLY_MARKER,a,b\n1,2,3\n").unwrap();
    std::fs::create_dir_all(base.join("incoming")).unwrap();
    put_file(&base.join("incoming"), "EQ020215.CSV", &real(&data, "EQ020215.CSV"));
    std::os::unix::fs::symlink("/etc/passwd", inbox.join("EQ010216.CSV")).unwrap();
    std::os::unix::fs::symlink(outside.join("creds.csv"), inbox.join("2015/EQ060115.CSV")).unwrap();
    std::os::unix::fs::symlink(&outside, inbox.join("linked")).unwrap();

    let yaml = format!("server:\n  import_roots: [\"file://{}/in/\"]\n", base.display());
    let (server, _cfg) = serve(&root, Some(&yaml), &[]);
    let at = |rest: &str| format!("file://{}{rest}", base.display());

    // The root itself: the good file loads, the links are skipped by name without being read,
    // and the file that is not a bhavcopy is refused by category, name and kept-at key only.
    let (status, msg) = ingest_outcome(&server, &at("/in"));
    assert_eq!(status, "failed", "notes.csv is not a bhavcopy: {msg}");
    assert!(msg.contains("notes.csv") && msg.contains("unknown header") && msg.contains("rejected/"), "{msg}");
    assert!(msg.contains("EQ010216.CSV (symbolic link; not followed)"), "{msg}");
    assert!(msg.contains("2015/EQ060115.CSV (symbolic link; not followed)"), "{msg}");
    assert!(msg.contains("linked (symbolic link; not followed)"), "{msg}");
    assert_no_content_leak("the ingest answer", &msg);
    assert_eq!(rows_on(&root, D0105), 3267);
    let stored = files_with_bytes(Path::new(root.url().trim_start_matches("file://")));
    let passwd = std::fs::read("/etc/passwd").unwrap();
    for (p, b) in &stored {
        assert!(!contains_bytes(b, b"OUTSIDE_ONLY_MARKER"), "{} holds a file from outside the root", p.display());
        assert!(passwd.len() < 16 || !contains_bytes(b, &passwd[..16]), "{} holds /etc/passwd", p.display());
    }

    // Refused before any work: outside the root (a sibling sharing its prefix), tricks, links
    // on the way, and paths that do not exist (which are not created).
    for (source, status, code) in [
        (at("/incoming"), 403, "location_not_allowed"),
        (at("/in/../incoming"), 400, "bad_data_source"),
        (at("/in/%2e%2e/incoming"), 400, "bad_data_source"),
        (format!("file://localhost{}/in", base.display()), 400, "bad_data_source"),
        (at("/in/linked"), 403, "location_not_allowed"),
        (at("/in/linked/creds.csv"), 403, "location_not_allowed"),
        (at("/in/x/a/b/c"), 404, "location_not_found"),
        ("file:///etc/".to_string(), 403, "location_not_allowed"),
        ("s3://other-bucket/x".to_string(), 403, "location_not_allowed"),
    ] {
        let (s, body) = post_ingest(&server, &source);
        assert_eq!((s, body["error"]["code"].as_str()), (status, Some(code)), "{source}: {body}");
        assert_no_content_leak(&source, &body.to_string());
    }
    assert!(!inbox.join("x").exists(), "nothing is created");

    // A file inside the root by its own URL, through the same import path (already stored).
    let (status, msg) = ingest_outcome(&server, &at("/in/2015/EQ050115.CSV"));
    assert_eq!(status, "succeeded", "{msg}");
    assert!(msg.contains("1 files from") && msg.contains("1 unchanged"), "{msg}");
}

#[test]
fn rest_ingest_from_an_s3_import_root() {
    let Some(data) = real_data_dir() else { return };
    let Some(root) = Root::s3("rest-s3-root") else { return };
    let inbox_url = format!("{}-in", root.url());
    let inbox = Storage::open(&StorageConfig { url: inbox_url.clone(), s3: root.config().s3 }).unwrap();
    block_on(async {
        inbox.put("2015/EQ050115.CSV", Bytes::from(real(&data, "EQ050115.CSV"))).await.unwrap();
        inbox.put("README.txt", Bytes::from_static(b"not a bhavcopy")).await.unwrap();
    });
    let yaml = format!("server:\n  import_roots: [\"{inbox_url}\"]\n");
    let (server, _cfg) = serve(&root, Some(&yaml), &[]);
    let (status, msg) = ingest_outcome(&server, &format!("{inbox_url}/"));
    assert_eq!(status, "succeeded", "{msg}");
    assert!(msg.contains("3267 rows loaded") && msg.contains("README.txt (not a .csv, .zip or .json file)"), "{msg}");
    assert_eq!(rows_on(&root, D0105), 3267);
    for source in [format!("{}-other", root.url()), format!("{inbox_url}x"), "s3://other-bucket/x".to_string()] {
        let (s, body) = post_ingest(&server, &source);
        assert_eq!((s, body["error"]["code"].as_str()), (403, Some("location_not_allowed")), "{source}: {body}");
        assert_no_content_leak(&source, &body.to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Item 6: import follows symlinks

#[test]
fn import_skips_links_out_of_the_tree_and_detects_loops() {
    let Some(data) = real_data_dir() else { return };
    let root = Root::local();
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let shadow = secret_file(&outside.join("shadow"));
    let tree = symlink_tree(tmp.path(), &data.join("legacy-eq-14col/2015/EQ050115.CSV"), &shadow, &outside);

    // `x -> .` used to loop forever: the walk must end, quickly and small.
    let (o, peak_kb) = hostile::run_measured(cli(&root).arg("import").arg(&tree), Duration::from_secs(120));
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("EQ010216.CSV: skipped: symbolic link to a path outside the imported tree"), "{out}");
    assert!(out.contains("elsewhere: skipped: symbolic link to a path outside the imported tree"), "{out}");
    assert!(out.contains("loop: skipped: directory already walked"), "{out}");
    assert!(out.contains("imported 1 files") && out.contains("3267 rows loaded"), "{out}");
    assert!(peak_kb < 400_000, "peak RSS {peak_kb} kB");
    assert_no_content_leak("import output", &format!("{out}{}", stderr(&o)));
    let stored = files_with_bytes(Path::new(root.url().trim_start_matches("file://")));
    assert!(stored.iter().all(|(_, b)| !contains_bytes(b, SECRET.as_bytes())), "a file outside the tree was stored");

    // A path the user names is followed (their own choice), but its content is still never
    // printed: the refusal names no more than the kind of first line.
    let o = run(cli(&root).arg("import").arg(tree.join("EQ010216.CSV")));
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("unknown header") && out.contains("not shown"), "{out}");
    assert_no_content_leak("import output", &format!("{out}{}", stderr(&o)));
}

// ---------------------------------------------------------------------------------------------
// Item 7: a bad copy of a loaded day replaces it

#[test]
fn a_revision_that_loses_rows_is_held_until_accepted() {
    let Some(data) = real_data_dir() else { return };
    let root = Root::local();
    let tmp = tempfile::tempdir().unwrap();
    let good = real(&data, "EQ050115.CSV");
    let good_0202 = real(&data, "EQ020215.CSV");
    let good_path = put_file(&tmp.path().join("good"), "EQ050115.CSV", &good);
    let good_0202_path = put_file(&tmp.path().join("good"), "EQ020215.CSV", &good_0202);
    // 593 lines: the header and 592 rows.
    let cut = put_file(&tmp.path().join("cut"), "EQ050115.CSV", &first_lines(&good, 593));
    let empty = put_file(&tmp.path().join("empty"), "EQ020215.CSV", &header_only(&good_0202));
    let import = |p: &Path, extra: &[&str]| run(cli(&root).arg("import").args(extra).arg(p));

    assert!(import(&good_path, &[]).status.success());
    assert!(import(&good_0202_path, &[]).status.success());
    assert_eq!((rows_on(&root, D0105), rows_on(&root, "2015-02-02")), (3267, 3211));

    // The truncated copy: stored, held, not loaded; a warning with both counts; exit 1.
    let o = import(&cut, &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("WARNING") && out.contains("592 rows") && out.contains("3267 rows") && out.contains("held"),
        "{out}"
    );
    assert!(out.contains("--accept-revision") && out.contains("bhavstore revisions 2015-01-05 --use"), "{out}");
    assert_eq!(rows_on(&root, D0105), 3267);
    // The header-only copy: 0 rows, held too.
    let o = import(&empty, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("0 rows, 3211 fewer"), "{}", stdout(&o));
    assert_eq!(rows_on(&root, "2015-02-02"), 3211);

    // Both revisions are listed, with their counts and where they stand.
    let o = run(cli(&root).args(["revisions", D0105]));
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let line_of = |sha: &str| out.lines().find(|l| l.contains(sha)).unwrap_or_else(|| panic!("{sha} in {out}"));
    let (good_sha, cut_sha) = (sha256(&good), sha256(&first_lines(&good, 593)));
    assert!(line_of(&good_sha).contains("current") && line_of(&good_sha).contains(" 3267 "), "{out}");
    assert!(line_of(&cut_sha).contains("held") && line_of(&cut_sha).contains(" 592 "), "{out}");

    // The good original again: identical to the current revision, nothing changes.
    let o = import(&good_path, &[]);
    assert!(o.status.success() && stdout(&o).contains("unchanged"), "{}", stdout(&o));
    assert_eq!(rows_on(&root, D0105), 3267);

    // Accepting the truncated copy loads it, with a warning.
    let o = import(&cut, &["--accept-revision"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("loaded 592 rows") && out.contains("WARNING") && out.contains("fewer than the 3267"), "{out}");
    assert_eq!(rows_on(&root, D0105), 592);

    // Re-supplying the original does not switch back silently: it says where things stand.
    let o = import(&good_path, &[]);
    let out = stdout(&o);
    assert!(out.contains("already stored as revision") && out.contains("--use"), "{out}");
    assert_eq!(rows_on(&root, D0105), 592);

    // Making the original current again reloads it and appends to the change log.
    let storage = root.open();
    let loads = || block_on(storage.list("state/bse/equity/loads")).unwrap().len();
    let before = loads();
    let o = run(cli(&root).args(["revisions", D0105, "--use", &good_sha[..12]]));
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("is now current: 3267 rows loaded"), "{}", stdout(&o));
    assert_eq!(rows_on(&root, D0105), 3267);
    assert_eq!(loads(), before + 1, "materialization must see the switch");
    let o = run(cli(&root).args(["revisions", D0105, "--use", "ffff"]));
    assert!(!o.status.success() && stderr(&o).contains("no revision of 2015-01-05 matches"), "{}", stderr(&o));

    // The configuration policy loads held bytes supplied again.
    let o = run(cli(&root).env("BHAVSTORE_INGEST_ON_ROW_LOSS", "accept").arg("import").arg(&empty));
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!(rows_on(&root, "2015-02-02"), 0);
}

#[test]
fn downloads_and_backfills_report_a_held_revision() {
    let Some(data) = real_data_dir() else { return };
    let root = Root::local();
    let bse = FakeBse::start();
    let good = real(&data, "EQ050115.CSV");
    let cmd = || {
        let mut c = cli(&root);
        c.env("BHAVSTORE_SOURCE_URL", bse.url()).env("BHAVSTORE_SOURCE_REQUESTS_PER_SECOND", "50");
        c
    };
    bse.set("EQ050115_CSV.ZIP", Route::File(good.clone()));
    let o = run(cmd().args(["ingest", "--date", D0105]));
    assert!(o.status.success(), "{}", stderr(&o));

    bse.set("EQ050115_CSV.ZIP", Route::File(first_lines(&good, 593)));
    let o = run(cmd().args(["ingest", "--date", D0105]));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("WARNING") && stdout(&o).contains("592 rows"), "{}", stdout(&o));
    let o = run(cmd().args(["backfill", "--from", D0105, "--to", D0105, "--refetch"]));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("held (fewer rows):  1"), "{}", stdout(&o));
    assert!(stdout(&o).contains("fetched:            0"), "not reported as a success: {}", stdout(&o));
    assert_eq!(rows_on(&root, D0105), 3267);

    let o = run(cmd().args(["ingest", "--date", D0105, "--accept-revision"]));
    assert!(o.status.success() && stdout(&o).contains("loaded 592 rows"), "{}", stdout(&o));
    assert_eq!(rows_on(&root, D0105), 592);
}

// ---------------------------------------------------------------------------------------------
// Item 8: a file named `_meta.json` wedges its day

#[test]
fn a_file_named_like_a_meta_record_cannot_wedge_its_day() {
    let Some(data) = real_data_dir() else { return };
    let udiff = std::fs::read(data.join("udiff/BhavCopy_BSE_CM_0_0_0_20250825_F_0000.CSV")).unwrap();
    let revised = String::from_utf8(udiff.clone())
        .unwrap()
        .replacen(
            "ABB INDIA LIMITED,5110.45,5110.45,5046.00,5101.35",
            "ABB INDIA LIMITED,5110.45,5110.45,5046.00,5101.40",
            1,
        )
        .into_bytes();
    let day = "2025-08-25";
    for root in Root::all("meta-named") {
        let tmp = tempfile::tempdir().unwrap();
        for (i, body) in [&udiff, &revised].into_iter().enumerate() {
            let p = put_file(&tmp.path().join(i.to_string()), "_meta.json", body);
            let o = run(cli(&root).arg("import").arg(&p));
            assert!(o.status.success(), "[{}] {}{}", root.label(), stdout(&o), stderr(&o));
            assert!(stdout(&o).contains("2025-08-25 loaded 4784 rows"), "[{}] {}", root.label(), stdout(&o));
        }
        // The original under BSE's name: the same bytes as the first revision, nothing corrupt.
        let o = run(cli(&root).arg("import").arg(data.join("udiff/BhavCopy_BSE_CM_0_0_0_20250825_F_0000.CSV")));
        assert!(o.status.success(), "[{}] {}{}", root.label(), stdout(&o), stderr(&o));
        assert!(!stdout(&o).contains("corrupt"), "{}", stdout(&o));
        let keys = block_on(root.open().list("raw/bse/equity/2025/08/25")).unwrap();
        assert_eq!(keys.len(), 4, "[{}] two revisions, bytes and record each: {keys:?}", root.label());
        for k in keys.iter().filter(|k| k.ends_with("/_meta.json")) {
            let record: Value = serde_json::from_slice(&block_on(root.open().get(k)).unwrap().unwrap()).unwrap();
            assert!(
                record["sha256"].is_string() && !record["key"].as_str().unwrap().ends_with("/_meta.json"),
                "{record}"
            );
        }
        assert_eq!(rows_on(&root, day), 4784);
    }

    // A store written before the fix, wedged by such a file: it stays usable.
    let root = Root::local();
    let storage = root.open();
    block_on(
        storage.put("raw/bse/equity/2025/08/25/20250901T000000.000Z-deadbeefdeadbeef/_meta.json", Bytes::from(udiff)),
    )
    .unwrap();
    let o = run(cli(&root).arg("import").arg(data.join("udiff/BhavCopy_BSE_CM_0_0_0_20250825_F_0000.CSV")));
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(rows_on(&root, day), 4784);
}

// ---------------------------------------------------------------------------------------------
// Item 9: identical rejected bodies in the same millisecond

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_rejected_bodies_keep_every_provenance_record() {
    let Some(data) = real_data_dir() else { return };
    let nse = Bytes::from(std::fs::read(data.join("nse-legacy/01MAR2021.csv")).unwrap());
    for root in Root::all("rejects") {
        let ing = Ingestor::new(root.open());
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let (ing, nse) = (ing.clone(), nse.clone());
                tokio::spawn(async move {
                    ing.ingest_bytes("01MAR2021.csv", nse, prov(&format!("request-{i}")), None).await
                })
            })
            .collect();
        let mut kept = std::collections::BTreeSet::new();
        for t in tasks {
            match t.await.unwrap() {
                Err(IngestError::Rejected { kept_at, .. }) => {
                    assert!(kept.insert(kept_at), "[{}] a shared key", root.label())
                }
                other => panic!("[{}] {other:?}", root.label()),
            }
        }
        assert_eq!(kept.len(), 32);
        let storage = root.open();
        let metas: Vec<String> = storage
            .list("rejected/bse/equity")
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.ends_with("/_meta.json"))
            .collect();
        assert_eq!(metas.len(), 32, "[{}] {metas:?}", root.label());
        let mut sources = std::collections::BTreeSet::new();
        for k in &metas {
            let m: Value = serde_json::from_slice(&storage.get(k).await.unwrap().unwrap()).unwrap();
            sources.insert(m["provenance"]["source"].as_str().unwrap().to_string());
        }
        assert_eq!(sources.len(), 32, "[{}] every provenance record is kept", root.label());
    }
}

// ---------------------------------------------------------------------------------------------
// Item 10: run statuses never evicted

#[test]
fn rest_run_statuses_are_bounded() {
    let root = Root::local();
    let bse = FakeBse::start(); // every day: BSE's "no file" page, so each run fails fast
    let (server, _cfg) = serve(
        &root,
        Some("server:\n  limits:\n    max_run_statuses: 3\n"),
        &[("BHAVSTORE_SOURCE_URL", &bse.url()), ("BHAVSTORE_SOURCE_REQUESTS_PER_SECOND", "50")],
    );
    let mut ids = Vec::new();
    for _ in 0..8 {
        let (s, body) = post_ingest(&server, "2015-01-05");
        assert_eq!(s, 422, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("no bhavcopy"), "{body}");
        ids.push(body["run_id"].as_str().unwrap().to_string());
    }
    for id in &ids[..5] {
        let (s, body) = get_run(&server, id);
        assert_eq!((s, body["error"]["code"].as_str()), (404, Some("unknown_run")), "{id} was evicted: {body}");
    }
    for id in &ids[5..] {
        let (s, body) = get_run(&server, id);
        assert_eq!((s, body["status"].as_str()), (200, Some("failed")), "{id}: {body}");
    }
}

// ---------------------------------------------------------------------------------------------
// Item 12: zip bombs

#[test]
fn zip_bombs_are_refused_whole_with_bounded_memory() {
    let Some(data) = real_data_dir() else { return };
    let root = Root::local();
    let tmp = tempfile::tempdir().unwrap();
    let header = first_lines(&real(&data, "EQ050115.CSV"), 1);
    // The archive: a few MB holding 12 members of 250 MB.
    let bomb = zip_bomb(12, 250 << 20, &header);
    assert!(bomb.len() < 4 << 20, "{}", bomb.len());
    assert_eq!(hostile::zip_listing(&bomb).len(), 12);
    let path = put_file(tmp.path(), "bhavcopies.zip", &bomb);
    let (o, peak_kb) = hostile::run_measured(cli(&root).arg("import").arg(&path), Duration::from_secs(300));
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("decompression bomb"), "{out}");
    assert!(peak_kb < 400_000, "peak RSS {peak_kb} kB while refusing the bomb");
    let stored = files_with_bytes(Path::new(root.url().trim_start_matches("file://")));
    let kept: Vec<_> = stored.iter().filter(|(p, _)| p.to_string_lossy().contains("/rejected/")).collect();
    assert_eq!(kept.len(), 2, "the archive and its record: {kept:?}");
    assert!(kept.iter().any(|(_, b)| *b == bomb), "the archive's own bytes are kept");
    let total: usize = stored.iter().map(|(_, b)| b.len()).sum();
    assert!(total < bomb.len() + (1 << 20), "{total} bytes stored");
    assert!(stored.iter().all(|(p, _)| !p.to_string_lossy().contains("/raw/")));
}

#[test]
fn archive_limits_come_from_the_ingest_section() {
    let Some(data) = real_data_dir() else { return };
    let names = ["EQ020215.CSV", "EQ030215.CSV", "EQ040215.CSV", "EQ050215.CSV", "EQ060215.CSV"];
    let bodies: Vec<Vec<u8>> = names.iter().map(|n| real(&data, n)).collect();
    let members: Vec<(&str, &[u8])> = names.iter().copied().zip(bodies.iter().map(Vec::as_slice)).collect();
    let archive = zip_of(&members);
    let total: usize = bodies.iter().map(Vec::len).sum();
    assert!(total > 1 << 20, "{total}");
    let tmp = tempfile::tempdir().unwrap();
    let path = put_file(tmp.path(), "february.zip", &archive);
    let cfg = put_file(tmp.path(), "bhavstore.yaml", b"ingest:\n  max_archive_bytes: 1MiB\n");

    let tight = Root::local();
    let o = run(cli(&tight).arg("--config").arg(&cfg).arg("import").arg(&path));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("ingest.max_archive_bytes"), "{}", stdout(&o));
    assert_eq!(query(&tight, "select count(*) as n from bhavcopy"), "n\n0\n", "no member of a refused archive loads");

    // With the defaults the same archive is split into its five days, one member at a time.
    let roomy = Root::local();
    let o = run(cli(&roomy).arg("import").arg(&path));
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("february.zip!EQ060215.CSV: 2015-02-06 loaded"), "{}", stdout(&o));
    assert_eq!(query(&roomy, "select count(distinct trade_date) as n from bhavcopy"), "n\n5\n");
}

// ---------------------------------------------------------------------------------------------
// Smaller ones

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_values_utf16_and_thousands_separators_are_named() {
    let Some(data) = real_data_dir() else { return };
    let good = real(&data, "EQ050115.CSV");
    // CLOSE is field 7, OPEN field 4; lines 2.. are data.
    let mut bad = with_field(&good, 2, 7, "1e308");
    bad = with_field(&bad, 3, 7, "0");
    bad = with_field(&bad, 4, 7, "-0");
    bad = with_field(&bad, 5, 4, "-0");
    bad = with_field(&bad, 6, 4, "1,234.50");
    let root = Root::local();
    let ing = Ingestor::new(root.open());
    let Ingested::Loaded { report, .. } =
        ing.ingest_bytes("EQ050115.CSV", Bytes::from(bad.clone()), prov("t"), None).await.unwrap()
    else {
        panic!("not loaded")
    };
    assert_eq!((report.rows_loaded, report.rows_quarantined), (3262, 5));
    let ctx = bhavstore_lake::session(&root.open()).unwrap();
    let batches = ctx
        .sql("select line_number, reason from bhavcopy_quarantine order by line_number")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    for want in [
        "CLOSE \"1e308\" is implausibly large",
        "CLOSE is 0",
        "CLOSE \"-0\" is negative",
        "OPEN \"-0\" is negative",
        "thousands separator",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }
    assert!(!text.contains("fused"), "{text}");
    let b = ctx
        .sql("select count(*) from bhavcopy where isnan(close) or close <= 0 or close > 1e9 or open < 0")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let implausible = b[0].column(0).as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0);
    assert_eq!(implausible, 0, "no implausible price reached the table");

    // UTF-16, with and without a byte-order mark: the encoding is named, and what to do.
    for (bom, want) in [(true, "FF FE"), (false, "every other byte is NUL")] {
        let body = utf16le(&real(&data, "EQ020215.CSV"), bom);
        let err = ing.ingest_bytes("EQ020215.CSV", Bytes::from(body), prov("t"), None).await.unwrap_err().to_string();
        assert!(err.contains("UTF-16 little-endian") && err.contains(want) && err.contains("UTF-8"), "{err}");
        assert!(!err.contains("S\\0C") && !err.contains('\u{fffd}'), "no garbled header: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_s3_endpoint_times_out_with_a_clear_message() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let storage = Storage::open(&StorageConfig {
        url: "s3://frozen-bucket/root".into(),
        s3: S3Config {
            endpoint: Some(format!("http://{addr}")),
            region: Some("us-east-1".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            allow_http: Some(true),
            max_retries: Some(0),
            retry_timeout_secs: Some(1),
            timeout_secs: Some(2),
        },
    })
    .unwrap();
    let started = Instant::now();
    let err = storage.get("state/bse/equity/days/2015-01-05.json").await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(err.contains("timed out") && err.contains("did not answer within 2 s"), "{err}");
    assert!(err.contains("get state/bse/equity/days/2015-01-05.json") && err.contains(&addr.to_string()), "{err}");
}
