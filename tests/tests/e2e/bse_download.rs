//! `ingest` and `backfill` against a local server that behaves like BSE: files by URL pattern,
//! the HTML page for missing days, 403 without a browser User-Agent, slow answers, connections
//! cut mid-body, 503s, the firewall page, a file for the wrong day, and no server at all.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::fake_bse::{FakeBse, Route};
use bhavstore_e2e::real_data::real_data_dir;
use bhavstore_e2e::storage_roots::Root;

const UDIFF_0825: &str = "BhavCopy_BSE_CM_0_0_0_20250825_F_0000.CSV";

fn zip_of(member: &str, bytes: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        w.start_file(member, opts).unwrap();
        w.write_all(bytes).unwrap();
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn udiff_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("udiff").join(UDIFF_0825)).unwrap()
}

/// A `bhavstore` command against `root` and `bse`, quick to give up (tests must be fast).
fn cmd(root: &Root, bse: &FakeBse) -> std::process::Command {
    let mut c = bhavstore();
    root.apply(&mut c);
    c.env("BHAVSTORE_SOURCE_URL", bse.url())
        .env("BHAVSTORE_SOURCE_BACKOFF_INITIAL_MS", "20")
        .env("BHAVSTORE_SOURCE_BACKOFF_MAX_MS", "100")
        .env("BHAVSTORE_SOURCE_REQUESTS_PER_SECOND", "50");
    c
}

fn query(root: &Root, sql: &str) -> String {
    let mut c = bhavstore();
    root.apply(&mut c);
    let o = run(c.args(["query", "--format", "csv", sql]));
    assert!(o.status.success(), "query failed: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn ingest_udiff_day_then_identical_then_revised() {
    let Some(dir) = real_data_dir() else { return };
    for root in Root::all("ingest-udiff") {
        let bse = FakeBse::start();
        let body = udiff_bytes(&dir);
        bse.set(UDIFF_0825, Route::File(body.clone()));

        let o = run(cmd(&root, &bse).args(["ingest", "--date", "2025-08-25"]));
        assert!(o.status.success(), "[{}] {}", root.label(), stderr(&o));
        assert!(stdout(&o).contains("loaded 4784 rows, 0 quarantined, of 4784 data lines"), "{}", stdout(&o));
        assert_eq!(
            query(&root, "select count(*) as n from bhavcopy where trade_date = DATE '2025-08-25'"),
            "n\n4784\n"
        );

        // Identical bytes again: a no-op.
        let o = run(cmd(&root, &bse).args(["ingest", "--date", "2025-08-25"]));
        assert!(stdout(&o).contains("unchanged"), "{}", stdout(&o));
        let storage = root.open();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let raw = rt.block_on(storage.list("raw/bse/equity/2025/08/25")).unwrap();
        assert_eq!(raw.len(), 2, "one revision: bytes + meta: {raw:?}");

        // BSE re-publishes the day with one price corrected: a new revision, which wins.
        let text = String::from_utf8(body).unwrap();
        let revised = text.replacen(
            "ABB INDIA LIMITED,5110.45,5110.45,5046.00,5101.35",
            "ABB INDIA LIMITED,5110.45,5110.45,5046.00,5101.40",
            1,
        );
        assert_ne!(revised, text);
        bse.set(UDIFF_0825, Route::File(revised.into_bytes()));
        let o = run(cmd(&root, &bse).args(["ingest", "--date", "2025-08-25"]));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("now wins over sha256"), "{}", stdout(&o));
        assert_eq!(
            query(&root, "select close from bhavcopy where trade_date = DATE '2025-08-25' and scrip_code = 500002"),
            "close\n5101.4\n"
        );
        let raw = rt.block_on(storage.list("raw/bse/equity/2025/08/25")).unwrap();
        assert_eq!(raw.len(), 4, "both revisions kept: {raw:?}");
    }
}

#[test]
fn legacy_zip_day_and_isincode_fallback() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    let bse = FakeBse::start();
    // BSE's real zip for 2019-06-28, with a stray member added the way some zips arrive.
    bse.set("EQ280619_CSV.ZIP", Route::File(std::fs::read(dir.join("zip/EQ280619_CSV.ZIP")).unwrap()));
    let o = run(cmd(&root, &bse).args(["ingest", "--date", "2019-06-28"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("2019-06-28: loaded"), "{}", stdout(&o));

    // Only the EQ_ISINCODE zip exists for 2021-05-03: the fallback finds it.
    let isin = std::fs::read(dir.join("legacy-eq-isincode-18col/EQ_ISINCODE_030521.CSV")).unwrap();
    let mut z = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut z);
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("README.txt", opts).unwrap();
        w.write_all(b"stray member").unwrap();
        w.start_file("EQ_ISINCODE_030521.CSV", opts).unwrap();
        w.write_all(&isin).unwrap();
        w.finish().unwrap();
    }
    bse.set("EQ_ISINCODE_030521.zip", Route::File(z.into_inner()));
    let o = run(cmd(&root, &bse).args(["ingest", "--date", "2021-05-03"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(bse.hits("EQ030521_CSV.ZIP"), 1, "the plain zip is asked for first");
    assert_eq!(
        query(
            &root,
            "select trade_date, count(*) as n, min(isin) is not null as has_isin from bhavcopy group by 1 order by 1"
        ),
        "trade_date,n,has_isin\n2019-06-28,2907,false\n2021-05-03,3462,true\n"
    );
}

#[test]
fn holiday_page_is_no_file_not_data() {
    let root = Root::local();
    let bse = FakeBse::start();
    let o = run(cmd(&root, &bse).args(["ingest", "--date", "2025-08-27"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("no file published"), "{}", stdout(&o));
    let storage = root.open();
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(rt.block_on(storage.list("raw")).unwrap().is_empty(), "an HTML page is not data");
    assert!(rt.block_on(storage.list("parquet")).unwrap().is_empty());
    let state = rt.block_on(storage.get("state/bse/equity/days/2025-08-27.json")).unwrap().unwrap();
    assert!(String::from_utf8_lossy(&state).contains("no_file_published"));
}

#[test]
fn non_browser_user_agent_gets_403_and_a_clear_error() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    let bse = FakeBse::start();
    bse.set(UDIFF_0825, Route::File(udiff_bytes(&dir)));
    let o =
        run(cmd(&root, &bse).env("BHAVSTORE_SOURCE_USER_AGENT", "curl/8.5").args(["ingest", "--date", "2025-08-25"]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("firewall refused the download") && err.contains("User-Agent"), "{err}");
    // With the default browser-like headers the same request works.
    let o = run(cmd(&root, &bse).args(["ingest", "--date", "2025-08-25"]));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn firewall_page_with_200_is_an_error_and_is_kept() {
    let root = Root::local();
    let bse = FakeBse::start();
    bse.set("EQ180823_CSV.ZIP", Route::FirewallPage);
    let o = run(cmd(&root, &bse).args(["ingest", "--date", "2023-08-18"]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("firewall") && err.contains("kept at rejected/bse/equity/2023-08-18/"), "{err}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(rt.block_on(root.open().list("parquet")).unwrap().is_empty());
}

#[test]
fn slow_cut_and_busy_answers_are_retried() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    let bse = FakeBse::start();
    let day = |d: &str| std::fs::read(dir.join("legacy-eq-14col/2015").join(format!("EQ{d}.CSV"))).unwrap();
    bse.set("EQ020215_CSV.ZIP", Route::Slow(zip_of("EQ020215.CSV", &day("020215")), Duration::from_millis(700)));
    bse.set("EQ030215_CSV.ZIP", Route::CutMidBody(zip_of("EQ030215.CSV", &day("030215")), 2));
    bse.set("EQ040215_CSV.ZIP", Route::Unavailable(zip_of("EQ040215.CSV", &day("040215")), 2));
    let o = run(cmd(&root, &bse).args(["backfill", "--from", "2015-02-02", "--to", "2015-02-04", "--jobs", "3"]));
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("fetched:            3"), "{}", stdout(&o));
    assert_eq!(bse.hits("EQ030215_CSV.ZIP"), 3, "two cut bodies, then the whole file");
    assert_eq!(bse.hits("EQ040215_CSV.ZIP"), 3, "two 503s, then the file");
    assert_eq!(query(&root, "select count(distinct trade_date) as n from bhavcopy"), "n\n3\n");

    // An answer slower than the timeout is retried and then reported, not hung on.
    let root = Root::local();
    bse.set("EQ050215_CSV.ZIP", Route::Slow(zip_of("EQ050215.CSV", &day("050215")), Duration::from_secs(3)));
    let o = run(cmd(&root, &bse)
        .env("BHAVSTORE_SOURCE_TIMEOUT_SECS", "1")
        .env("BHAVSTORE_SOURCE_RETRIES", "1")
        .args(["ingest", "--date", "2015-02-05"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("gave up after 2 attempts"), "{}", stderr(&o));
}

#[test]
fn backfill_is_resumable_and_reports_every_day() {
    let Some(dir) = real_data_dir() else { return };
    for root in Root::all("backfill") {
        let bse = FakeBse::start();
        // 2015-02-02 .. 2015-02-15: ten sessions, two weekends. Serve all but 02-10 (made to
        // fail with a body that is not a bhavcopy) as BSE's zips.
        for f in std::fs::read_dir(dir.join("legacy-eq-14col/2015")).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let ddmmyy = &name[2..8];
            bse.set(&format!("EQ{ddmmyy}_CSV.ZIP"), Route::File(zip_of(&name, &std::fs::read(&p).unwrap())));
        }
        bse.set("EQ100215_CSV.ZIP", Route::File(b"PK\x03\x04 truncated garbage".to_vec()));
        let o = run(cmd(&root, &bse).args(["backfill", "--from", "2015-02-02", "--to", "2015-02-15", "--jobs", "4"]));
        let out = stdout(&o);
        assert!(!o.status.success(), "a failed day makes the run fail: {out}");
        assert!(out.contains("fetched:            9"), "{out}");
        assert!(out.contains("no file published:  4"), "{out}");
        assert!(out.contains("failed:             1"), "{out}");
        assert!(out.contains("2015-02-10: EQ100215_CSV.ZIP: not a bhavcopy"), "{out}");
        let hits_before = bse.total_hits();

        // Fix the day and run again: only the failed day is fetched; stored days are skipped and
        // weekends checked long after the fact are settled.
        let p = dir.join("legacy-eq-14col/2015/EQ100215.CSV");
        bse.set("EQ100215_CSV.ZIP", Route::File(zip_of("EQ100215.CSV", &std::fs::read(&p).unwrap())));
        let o = run(cmd(&root, &bse).args(["backfill", "--from", "2015-02-02", "--to", "2015-02-15"]));
        let out = stdout(&o);
        assert!(o.status.success(), "{out}\n{}", stderr(&o));
        assert!(out.contains("fetched:            1") && out.contains("already stored:     9"), "{out}");
        assert_eq!(bse.total_hits() - hits_before, 1, "only the failed day is asked again");
        assert_eq!(query(&root, "select count(distinct trade_date) as n from bhavcopy"), "n\n10\n");
    }
}

#[test]
fn wrong_day_from_bse_is_refused_and_kept() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    let bse = FakeBse::start();
    bse.set("BhavCopy_BSE_CM_0_0_0_20250826_F_0000.CSV", Route::File(udiff_bytes(&dir)));
    let o = run(cmd(&root, &bse).args(["ingest", "--date", "2025-08-26"]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("asked for 2025-08-26 but the file is for 2025-08-25") && err.contains("kept at rejected/"),
        "{err}"
    );
}

#[test]
fn unreachable_bse_is_said_plainly_and_stored_data_stays() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    root.import([dir.join("legacy-eq-14col/2015/EQ050115.CSV")]);

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = bhavstore();
    root.apply(&mut c);
    c.env("BHAVSTORE_SOURCE_URL", format!("http://127.0.0.1:{port}"))
        .env("BHAVSTORE_SOURCE_BACKOFF_INITIAL_MS", "10")
        .env("BHAVSTORE_SOURCE_RETRIES", "1");
    let o = run(c.args(["backfill", "--days", "5"]));
    let out = stdout(&o);
    assert!(o.status.success(), "offline is reported, not failed: {out}");
    assert!(out.contains("BSE could not be reached from this machine"), "{out}");
    assert!(out.contains("The 1 sessions already stored stay queryable"), "{out}");
    assert!(out.contains("bhavstore import"), "{out}");
    assert_eq!(query(&root, "select count(*) as n from bhavcopy"), "n\n3267\n");
}

/// SIGTERM (or Ctrl-C) during a backfill: days in flight finish, no new day starts, the summary
/// says it was interrupted, and the next run resumes.
#[test]
fn backfill_stops_cleanly_on_sigterm_and_resumes() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    let bse = FakeBse::start();
    for f in std::fs::read_dir(dir.join("legacy-eq-14col/2015")).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let body = zip_of(&name, &std::fs::read(&p).unwrap());
        bse.set(&format!("EQ{}_CSV.ZIP", &name[2..8]), Route::Slow(body, Duration::from_millis(400)));
    }
    let mut c = cmd(&root, &bse);
    c.args(["backfill", "--from", "2015-02-02", "--to", "2015-03-31", "--jobs", "1", "--skip-weekends"]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let out = stdout(&o);
    assert!(!o.status.success(), "an interrupted backfill is not a success: {out}");
    assert!(out.contains("interrupted by a signal"), "{out}\n{}", stderr(&o));
    let fetched: usize = out
        .lines()
        .find(|l| l.trim_start().starts_with("fetched:"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((1..30).contains(&fetched), "{out}");
    // Whatever was stored is whole and the rest follows on the next run.
    let o = run(cmd(&root, &bse).args([
        "backfill",
        "--from",
        "2015-02-02",
        "--to",
        "2015-03-31",
        "--jobs",
        "4",
        "--skip-weekends",
    ]));
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains(&format!("already stored:     {fetched}")), "{}", stdout(&o));
    assert_eq!(query(&root, "select count(distinct trade_date) as n from bhavcopy"), "n\n40\n");
}
