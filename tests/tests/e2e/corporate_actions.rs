//! Corporate actions and the trading calendar, end to end: the real action exports import
//! completely; the real 2015 bhavcopies' ex-date flags reconcile with the prices; adjusted
//! features have no fake crash at any split or bonus; a late action is a revision; the
//! calendar knows sessions, holidays and the coming year; downloads go through the fake BSE.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::fake_bse::{FakeBse, Route};
use bhavstore_e2e::real_data::{files_2015, real_data_dir};
use bhavstore_e2e::storage_roots::Root;

fn repo() -> PathBuf {
    bhavstore_e2e::crate_dir().join("..")
}

/// The real corporate-action exports, or `None` with a message saying the test is skipped.
fn actions_dir() -> Option<PathBuf> {
    let dir = real_data_dir()?.join("../corporate-actions-real");
    if dir.join("README.md").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: real corporate-action files not found at {}", dir.display());
        None
    }
}

fn cli(root: &Root, args: &[&str]) -> std::process::Output {
    let mut c = bhavstore();
    root.apply(&mut c);
    c.arg("--feature-defs").arg(repo().join("feature_defs"));
    run(c.args(args))
}

fn ok(root: &Root, args: &[&str]) -> String {
    root.run_ok(&repo().join("feature_defs"), args)
}

/// Rows of a query as maps of column to text (CSV output).
fn rows(root: &Root, sql: &str) -> Vec<BTreeMap<String, String>> {
    let out = ok(root, &["query", "--format", "csv", sql]);
    let mut lines = out.lines();
    let header: Vec<String> = lines.next().unwrap_or_default().split(',').map(str::to_string).collect();
    lines.map(|l| header.iter().cloned().zip(l.split(',').map(str::to_string)).collect::<BTreeMap<_, _>>()).collect()
}

fn num(r: &BTreeMap<String, String>, c: &str) -> f64 {
    r[c].parse().unwrap_or_else(|_| panic!("{c} = {:?} in {r:?}", r[c]))
}

fn import_2015(root: &Root) -> Vec<PathBuf> {
    let dir = real_data_dir().expect("checked by the caller");
    let files = files_2015(&dir.join("legacy-eq-14col/2015"));
    assert_eq!(files.len(), 67);
    root.import(&files);
    files
}

#[test]
fn real_action_exports_import_completely_by_content() {
    let Some(dir) = actions_dir() else { return };
    let root = Root::local();
    let mut files: Vec<PathBuf> = ["bse", "nse"]
        .iter()
        .flat_map(|d| std::fs::read_dir(dir.join(d)).unwrap().flatten().map(|e| e.path()))
        .filter(|p| !p.to_string_lossy().contains("list_of_scrips"))
        .collect();
    files.sort();
    let args: Vec<String> =
        std::iter::once("import".to_string()).chain(files.iter().map(|p| p.display().to_string())).collect();
    let out = ok(&root, &args.iter().map(String::as_str).collect::<Vec<_>>());
    for f in &files {
        let name = f.display().to_string();
        let line = out.lines().find(|l| l.starts_with(&name)).unwrap_or_else(|| panic!("{name} not reported: {out}"));
        assert!(line.contains("corporate_actions ("), "{line}");
        assert!(!line.contains("refused"), "{line}");
    }
    // Every kind the exports hold is counted; BSE's January 2016 month is the example in the README.
    let by_kind = rows(
        &root,
        "select source_format, kind, count(*) as n from corporate_actions where origin = 'reported' \
         group by source_format, kind order by source_format, kind",
    );
    let count = |fmt: &str, kind: &str| {
        by_kind.iter().find(|r| r["source_format"] == fmt && r["kind"] == kind).map_or(0.0, |r| num(r, "n"))
    };
    for fmt in ["bse_ca_csv", "bse_ca_json", "nse_ca_csv", "nse_ca_json"] {
        assert!(by_kind.iter().any(|r| r["source_format"] == fmt), "{fmt} missing: {by_kind:?}");
    }
    assert!(count("bse_ca_csv", "dividend") > 1000.0, "{by_kind:?}");
    assert!(count("bse_ca_csv", "split") >= 32.0 && count("bse_ca_csv", "bonus") >= 46.0, "{by_kind:?}");
    assert!(count("nse_ca_csv", "split") > 100.0 && count("nse_ca_csv", "bonus") > 100.0, "{by_kind:?}");
    // The raw bytes are kept, byte for byte, under their sha256.
    let storage = root.open();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys = rt.block_on(storage.list("raw/reference/corporate_actions")).unwrap();
    let sample = dir.join("bse/bse_ca_2016-01.csv");
    let bytes = std::fs::read(&sample).unwrap();
    let kept = keys.iter().find(|k| k.ends_with("bse_ca_2016-01.csv")).expect("raw kept");
    assert_eq!(rt.block_on(storage.get(kept)).unwrap().unwrap().as_ref(), bytes.as_slice());
    // A second import of the same bytes stores nothing new.
    let again = ok(&root, &["import", &sample.display().to_string()]);
    assert!(again.contains("identical bytes already stored"), "{again}");
    assert_eq!(rt.block_on(storage.list("raw/reference/corporate_actions")).unwrap().len(), keys.len());
    // The README's examples.
    let greenply = rows(
        &root,
        "select price_factor, ex_date from corporate_actions where symbol = 'GREENPLY' and kind = 'split' \
         and source_format = 'bse_ca_csv'",
    );
    assert_eq!(greenply.len(), 1, "{greenply:?}");
    assert_eq!(num(&greenply[0], "price_factor"), 5.0);
    assert_eq!(greenply[0]["ex_date"], "2016-01-06");
}

#[test]
fn the_2015_flags_reconcile_and_adjusted_returns_have_no_fake_crash() {
    let Some(_) = real_data_dir() else { return };
    let root = Root::local();
    import_2015(&root);
    // 511064 on 2015-03-11: 478.30 -> 48.60, a 10:1 split flagged SS; TECHM 532755 on
    // 2015-03-19: a 10 -> 5 split and a 1:1 bonus flagged only XB, 2800.15 -> 685.80.
    let inferred = rows(
        &root,
        "select scrip_code, ex_session, kind, price_factor, origin from corporate_actions \
         where scrip_code in (511064, 532755) order by scrip_code",
    );
    assert_eq!(inferred.len(), 2, "{inferred:?}");
    assert_eq!((inferred[0]["ex_session"].as_str(), num(&inferred[0], "price_factor")), ("2015-03-11", 10.0));
    assert_eq!((inferred[1]["ex_session"].as_str(), num(&inferred[1], "price_factor")), ("2015-03-19", 4.0));
    assert!(inferred.iter().all(|r| r["origin"] == "inferred"), "no action list covers 2015: {inferred:?}");

    // Every SS / XB flag: either an inferred action whose adjusted return is an ordinary move
    // while the raw one is not, or a check saying why nothing was inferred.
    let flagged = rows(
        &root,
        "with raw as (select scrip_code, trade_date, trim(ex_flag) as flag, \
           close / lag(close) over (partition by scrip_code order by trade_date) - 1 as raw_return \
           from bhavcopy where is_equity) \
         select r.scrip_code, r.trade_date, r.flag, r.raw_return, p.return_1d, \
           (select count(*) from corporate_actions a where a.scrip_code = r.scrip_code \
              and a.ex_session = r.trade_date and a.applied) as actions, \
           (select count(*) from corporate_action_checks c where c.scrip_code = r.scrip_code \
              and c.trade_date = r.trade_date) as checks \
         from raw r join price_features p on p.scrip_code = r.scrip_code and p.trade_date = r.trade_date \
         where r.flag in ('SS', 'XB') order by r.trade_date, r.scrip_code",
    );
    assert!(flagged.len() >= 35, "the README counts 27 SS and 13 XB flags: {}", flagged.len());
    let mut adjusted = 0;
    for r in &flagged {
        let (actions, checks) = (num(r, "actions"), num(r, "checks"));
        assert!(actions + checks >= 1.0, "flag neither reconciled nor checked: {r:?}");
        if r["return_1d"].is_empty() {
            continue; // the scrip's first row in the data
        }
        let adj = num(r, "return_1d");
        assert!(adj.abs() < 0.25, "adjusted return_1d is not an ordinary move: {r:?}");
        if actions >= 1.0 {
            adjusted += 1;
            assert!(num(r, "raw_return").abs() > 0.25, "an action applied where the raw move was ordinary: {r:?}");
        }
    }
    assert!(adjusted >= 25, "{adjusted} flags adjusted: {flagged:?}");
    let checks = rows(&root, "select check, flag, count(*) as n from corporate_action_checks group by check, flag");
    assert!(
        checks.iter().any(|r| r["check"] == "flag_without_move" && r["flag"] == "SS"),
        "the SS flag without a split shows as a check: {checks:?}"
    );
    // A value on day t uses only what was effective by t: the day before the split, 511064's
    // sma_5 is the raw mean of its own five closes.
    let before = rows(
        &root,
        "select p.sma_5, (select avg(close) from (select close from bhavcopy where scrip_code = 511064 \
           and trade_date <= DATE '2015-03-10' order by trade_date desc limit 5)) as raw_mean \
         from price_features p where scrip_code = 511064 and trade_date = DATE '2015-03-10'",
    );
    assert_eq!(before.len(), 1);
    assert!((num(&before[0], "sma_5") - num(&before[0], "raw_mean")).abs() < 1e-9, "{before:?}");
    // On the ex-date, sma_5 is on the new basis (about a tenth of the day before).
    let after = rows(
        &root,
        "select close, sma_5 from price_features where scrip_code = 511064 and trade_date = DATE '2015-03-11'",
    );
    let ratio = num(&after[0], "sma_5") / num(&after[0], "close");
    assert!((0.8..1.25).contains(&ratio), "{after:?}");
    // bhavcopy_adjusted: prev_close on the ex-session is on the new basis.
    let prev = rows(
        &root,
        "select prev_close, adj_factor from bhavcopy_adjusted where scrip_code = 511064 and trade_date = DATE '2015-03-11'",
    );
    assert!((num(&prev[0], "prev_close") - 47.83).abs() < 1e-9 && num(&prev[0], "adj_factor") == 10.0, "{prev:?}");
}

/// A BSE corporate-actions export, in BSE's layout, with these rows (scrip, name, ex-date
/// `DD Mon YYYY`, purpose).
fn bse_export(rows: &[(u32, &str, &str, &str)]) -> String {
    let mut s = "Security Code,Security Name,Company Name,Ex Date,Purpose,Record Date,BC Start Date, BC End Date\t,ND Start Date,ND End Date,Actual Payment Date\n".to_string();
    for (code, name, ex, purpose) in rows {
        s.push_str(&format!("{code},{name},{name} Ltd,{ex},{purpose},{ex},-,-,-,-,-\n"));
    }
    s
}

#[test]
fn an_action_reported_after_its_ex_date_is_a_revision_from_that_date() {
    let Some(_) = real_data_dir() else { return };
    let root = Root::local();
    let dir = real_data_dir().expect("checked above");
    let files = files_2015(&dir.join("legacy-eq-14col/2015"));
    // Two published states, so a recompute has one that predates the late action to start from.
    root.import(&files[..40]);
    let first = ok(&root, &["materialize", "price_features"]);
    assert!(first.contains("(full)"), "{first}");
    root.import(&files[40..]);
    let more = ok(&root, &["materialize", "price_features"]);
    assert!(more.contains("(incremental)"), "{more}");
    let before = rows(
        &root,
        "select trade_date, close, sma_5, return_1d from price_features where scrip_code = 500325 order by trade_date",
    );

    // Reported later: a 1:1 bonus of RELIANCE (500325) on 2015-04-08, a date with no flag and
    // no jump. The export's range (April 2015) now counts as covered.
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("Corporate_Actions.csv");
    std::fs::write(&export, bse_export(&[(500325, "RELIANCE", "08 Apr 2015", "Bonus issue 1:1")])).unwrap();
    let out = ok(&root, &["import", &export.display().to_string()]);
    assert!(out.contains("1 bonus"), "{out}");
    let check = rows(&root, "select check from corporate_action_checks where scrip_code = 500325");
    assert!(check.iter().any(|r| r["check"] == "action_without_move"), "{check:?}");

    let second = ok(&root, &["materialize", "price_features"]);
    assert!(second.contains("(recompute)"), "{second}");
    let after = rows(
        &root,
        "select trade_date, close, sma_5, return_1d from price_features where scrip_code = 500325 order by trade_date",
    );
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        if b["trade_date"].as_str() < "2015-04-08" {
            assert_eq!(b, a, "a row before the ex-date changed");
        }
    }
    let ex = after.iter().position(|r| r["trade_date"] == "2015-04-08").expect("ex-date row");
    // On the ex-date the raw close is unchanged and the return is computed against half the
    // previous close: the bonus the export reports (the price did not move, so it is ~ +100%).
    assert_eq!(after[ex]["close"], before[ex]["close"]);
    assert!(num(&after[ex], "return_1d") > 0.9, "{:?}", after[ex]);

    // Incremental equals full: a fresh store given everything at once computes the same bits.
    let whole = Root::local();
    whole.import(&files);
    whole.import([&export]);
    ok(&whole, &["materialize", "--full", "price_features"]);
    let q = "select * from price_features order by scrip_code, trade_date";
    assert_eq!(ok(&root, &["query", "--format", "csv", q]), ok(&whole, &["query", "--format", "csv", q]));
}

#[test]
fn the_trading_calendar_has_sessions_holidays_and_the_coming_year() {
    let Some(_) = real_data_dir() else { return };
    let root = Root::local();
    import_2015(&root);
    // BSE's holiday list (its JSON API's layout) for the 2015 days the data skips.
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("holidays.json");
    std::fs::write(
        &list,
        holiday_json(&[("17 Feb 2015", "Mahashivratri"), ("06 Mar 2015", "Holi"), ("03 Apr 2015", "Good Friday")]),
    )
    .unwrap();
    let out = ok(&root, &["import", &list.display().to_string()]);
    assert!(out.contains("holidays (bse_holidays_json): 3 rows"), "{out}");
    let cal = rows(
        &root,
        "select date, status, special_session, description from trading_calendar where date between DATE '2015-02-16' and DATE '2015-03-02'",
    );
    let status = |d: &str| cal.iter().find(|r| r["date"] == d).map(|r| r["status"].clone());
    assert_eq!(status("2015-02-16").as_deref(), Some("session"));
    assert_eq!(status("2015-02-17").as_deref(), Some("holiday"));
    assert_eq!(status("2015-02-21"), None, "an ordinary Saturday is no day of the calendar");
    let budget = cal.iter().find(|r| r["date"] == "2015-02-28").expect("the Saturday budget session");
    assert_eq!((budget["status"].as_str(), budget["special_session"].as_str()), ("session", "true"));
    let sessions = rows(&root, "select count(*) as n from trading_calendar where status = 'session'");
    assert_eq!(num(&sessions[0], "n"), 67.0);
    let expected =
        rows(&root, "select count(*) as n, min(date) as first from trading_calendar where status = 'expected'");
    assert!(num(&expected[0], "n") > 240.0, "{expected:?}");
}

fn holiday_json(days: &[(&str, &str)]) -> String {
    let items: Vec<String> = days
        .iter()
        .enumerate()
        .map(|(i, (d, what))| format!(r#"{{"Sr_no":{},"TradingDate":"{d}","Day":"","Description":"{what}"}}"#, i + 1))
        .collect();
    format!(r#"{{"Table":[{}]}}"#, items.join(","))
}

#[test]
fn corporate_actions_and_holidays_download_from_bse_like_bhavcopies() {
    let Some(dir) = actions_dir() else { return };
    let fake = FakeBse::start();
    let january = std::fs::read(dir.join("bse/bse_ca_2016-01.csv")).unwrap();
    let path = |from: &str, to: &str| {
        format!(
            "/BseIndiaAPI/api/CorpactCSVDownload/w?scripcode=&Fdate={from}&TDate={to}&Purposecode=&strSearch=S&ddlindustrys=&ddlcategorys=E&segment=0"
        )
    };
    fake.set(&path("20160101", "20160131"), Route::File(january.clone()));
    // February: BSE answers its HTML page (no export): reported, nothing stored for it.
    fake.set(
        "/BseIndiaAPI/api/HolidayTrading/w?flag=Trading",
        Route::File(holiday_json(&[("26 Jan 2026", "Republic Day")]).into_bytes()),
    );
    let root = Root::local();
    let o =
        cli(&root, &["corporate-actions", "--from", "2016-01-01", "--to", "2016-02-29", "--source-url", &fake.url()]);
    let out = stdout(&o);
    assert!(!o.status.success(), "a month that failed fails the command: {out}");
    assert!(out.contains("2016-01-01 .. 2016-01-31: corporate_actions (bse_ca_csv): 24 rows"), "{out}");
    assert!(out.contains("2016-02-01 .. 2016-02-29: error:") && out.contains("HTML page"), "{out}");
    assert_eq!(fake.hits(&path("20160101", "20160131")), 1);
    let kept = rows(&root, "select count(*) as n from corporate_actions where origin = 'reported'");
    assert!(num(&kept[0], "n") >= 24.0, "{kept:?}");
    let storage = root.open();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let raw = rt.block_on(storage.list("raw/reference/corporate_actions")).unwrap();
    let body = raw.iter().find(|k| k.ends_with(".csv")).expect("raw bytes kept");
    assert_eq!(rt.block_on(storage.get(body)).unwrap().unwrap().as_ref(), january.as_slice());
    let meta = raw.iter().find(|k| k.ends_with("_meta.json")).expect("provenance kept");
    let meta = String::from_utf8(rt.block_on(storage.get(meta)).unwrap().unwrap().to_vec()).unwrap();
    assert!(meta.contains("CorpactCSVDownload") && meta.contains("\"http_status\": 200"), "{meta}");

    let h = ok(&root, &["holidays", "--source-url", &fake.url()]);
    assert!(h.contains("1 rows"), "{h}");
    let cal = rows(&root, "select status, description from trading_calendar where date = DATE '2026-01-26'");
    assert_eq!(cal.len(), 1);
    assert_eq!((cal[0]["status"].as_str(), cal[0]["description"].as_str()), ("holiday", "Republic Day"));
}

/// The reconciliation leaves the raw files untouched and can be repeated: a second import of
/// the same files publishes nothing new.
#[test]
fn reconciling_again_without_new_data_publishes_nothing() {
    let Some(_) = real_data_dir() else { return };
    let root = Root::local();
    let files = import_2015(&root);
    let storage = root.open();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let count = || rt.block_on(storage.list("derived/adjustments/manifests")).unwrap().len();
    let n = count();
    assert!(n >= 1);
    let again = ok(&root, &["import", &files[0].display().to_string()]);
    assert!(again.contains("(unchanged)"), "{again}");
    assert_eq!(count(), n);
}

fn http_get(url: &str) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let resp = reqwest::get(url).await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    })
}

/// The close of `scrip` in a raw legacy bhavcopy, at its 1-based `line` (header = 1).
fn raw_close(bytes: &[u8], line: u64, scrip: i64) -> f64 {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').map(str::trim).collect();
    let row: Vec<&str> = lines.nth(usize::try_from(line).unwrap() - 2).expect("line").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column");
    assert_eq!(row[col("SC_CODE")].trim().parse::<i64>().unwrap(), scrip, "the line names the scrip");
    row[col("CLOSE")].trim().parse().unwrap()
}

#[test]
fn availability_rules_and_lineage_over_sql_and_rest() {
    let Some(_) = real_data_dir() else { return };
    let root = Root::local();
    import_2015(&root);
    ok(&root, &["materialize"]);

    // The issue's example, over SQL: at 2015-03-10 16:00 IST the bhavcopy of the 10th is not yet
    // published (imported long after, so 18:00 IST counts), the close rule already has it.
    let spine = "SELECT * FROM (VALUES (500325, TIMESTAMP ''2015-03-10 10:30:00'')) AS s(entity, ts)";
    let asof = |rule: &str| {
        let extra = if rule.is_empty() { String::new() } else { format!(", '{rule}'") };
        rows(&root, &format!("select feature_trade_date from features_asof('price_features', '{spine}'{extra})"))
    };
    assert_eq!(asof("")[0]["feature_trade_date"], "2015-03-09");
    assert_eq!(asof("available")[0]["feature_trade_date"], "2015-03-09");
    assert_eq!(asof("close")[0]["feature_trade_date"], "2015-03-10");
    let bad = cli(&root, &["query", &format!("select * from features_asof('price_features', '{spine}', 'open')")]);
    assert!(!bad.status.success() && stderr(&bad).contains("use available (the default) or close"), "{}", stderr(&bad));
    let cal = rows(&root, "select available_at from trading_calendar where date = DATE '2015-03-10'");
    assert_eq!(cal[0]["available_at"], "2015-03-10T12:30:00Z");

    // Lineage over SQL: every trade date behind 511064's sma_5 on 2015-03-12, with its raw
    // object, and the split applied on 2015-03-11.
    let lineage = rows(&root, "select * from lineage('price_features', 511064, '2015-03-12') order by trade_date");
    assert!(lineage.len() >= 5, "{lineage:?}");
    assert!(
        lineage.iter().all(|r| !r["raw_key"].is_empty() && r["raw_key"].starts_with("raw/bse/equity/")),
        "{lineage:?}"
    );
    assert!(lineage.iter().all(|r| !r["manifest_seq"].is_empty() && !r["run_id"].is_empty()), "{lineage:?}");
    let split = lineage.iter().find(|r| r["trade_date"] == "2015-03-11").expect("ex-date row");
    assert!(
        split["corporate_actions"].contains("split factor 10") && split["corporate_actions"].contains("inferred"),
        "{split:?}"
    );
    // Recompute the value from exactly those raw files: the last five closes, the ones before
    // the split divided by its factor.
    let storage = root.open();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let last5 = &lineage[lineage.len() - 5..];
    let mut sum = 0.0;
    for r in last5 {
        let bytes = rt.block_on(storage.get(&r["raw_key"])).unwrap().expect("raw object");
        assert_eq!(bhavstore_storage::sha256_hex(&bytes), r["raw_sha256"], "the raw object is the one named");
        let close = raw_close(&bytes, r["source_line"].parse().unwrap(), 511064);
        sum += if r["trade_date"].as_str() < "2015-03-11" { close / 10.0 } else { close };
    }
    let value =
        rows(&root, "select sma_5 from price_features where scrip_code = 511064 and trade_date = DATE '2015-03-12'");
    let got = num(&value[0], "sma_5");
    assert!((got - sum / 5.0).abs() <= 1e-12 * got.abs(), "recomputed {} vs {got}", sum / 5.0);

    // The same over REST, and the lookup rules.
    let server = bhavstore_e2e::serve::Serve::start(&root, None, &[]);
    let base = format!("http://{}", server.http);
    let (s, body) =
        http_get(&format!("{base}/feature-store/lineage?feature_view=price_features&entity_id=511064&date=2015-03-12"));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["inputs"].as_array().map(Vec::len), Some(lineage.len()), "{body}");
    assert_eq!(body["prices"], "adjusted");
    assert_eq!(body["corporate_actions"][0]["ex_session"], "2015-03-11", "{body}");
    assert_eq!(body["manifest_seq"].to_string(), lineage[0]["manifest_seq"]);
    let (s, body) =
        http_get(&format!("{base}/feature-store/lineage?feature_view=nope&entity_id=511064&date=2015-03-12"));
    assert_eq!((s, body["error"]["code"].as_str()), (404, Some("unknown_view")), "{body}");
    let (s, body) =
        http_get(&format!("{base}/feature-store/lineage?feature_view=price_features&entity_id=511064&date=2014-01-01"));
    assert_eq!((s, body["error"]["code"].as_str()), (404, Some("no_value")), "{body}");
    let at = "2015-03-10T16:00:00%2B05:30";
    for (rule, day) in [("", "2015-03-09"), ("&rule=available", "2015-03-09"), ("&rule=close", "2015-03-10")] {
        let (s, body) =
            http_get(&format!("{base}/feature-store/lookup?entity_id=500325&feature_name=close&timestamp={at}{rule}"));
        assert_eq!((s, body["trade_date"].as_str()), (200, Some(day)), "{rule}: {body}");
    }
}

/// A view whose windows count exchange sessions: the last three sessions' closes, NULL unless
/// the security traded in all three.
const SESSION_VIEW_SQL: &str = "SELECT scrip_code, trade_date, close, sma_3 FROM (
    SELECT scrip_code, trade_date, close, traded, sma(close * adj_factor, 3) OVER w / adj_factor AS sma_3
    FROM bhavcopy_adjusted_sessions
    WHERE is_equity
    WINDOW w AS (PARTITION BY scrip_code ORDER BY trade_date)
) WHERE traded
";

const SESSION_VIEW_YAML: &str = "name: session_sma
description: Mean adjusted close of the last three exchange sessions; NULL when the security missed one.
entity: scrip_code
event_time: trade_date
ttl: 5d
owner: tests
prices: adjusted
window_unit: session
features:
  - name: close
    description: close
  - name: sma_3
    description: three-session mean
";

#[test]
fn session_windows_count_exchange_sessions_for_a_scrip_that_trades_one_session_in_five() {
    let Some(dir) = real_data_dir() else { return };
    let defs = tempfile::tempdir().unwrap();
    std::fs::write(defs.path().join("session_sma.sql"), SESSION_VIEW_SQL).unwrap();
    std::fs::write(defs.path().join("session_sma.yaml"), SESSION_VIEW_YAML).unwrap();
    let with_defs = |root: &Root, args: &[&str]| root.run_ok(defs.path(), args);
    let files = files_2015(&dir.join("legacy-eq-14col/2015"));
    let root = Root::local();
    root.import(&files);
    // An equity that traded in about one session in five.
    let thin = rows(
        &root,
        "select scrip_code, count(*) as n from bhavcopy where is_equity group by scrip_code \
         having count(*) between 10 and 16 order by scrip_code limit 1",
    );
    assert_eq!(thin.len(), 1, "the 2015 files hold thinly traded scrips");
    let scrip = &thin[0]["scrip_code"];
    let sessions: Vec<String> = rows(&root, "select date from trading_calendar where status = 'session' order by date")
        .iter()
        .map(|r| r["date"].clone())
        .collect();
    assert_eq!(sessions.len(), 67);
    let traded: BTreeMap<String, f64> = rows(
        &root,
        &format!("select trade_date, close * adj_factor as c from bhavcopy_adjusted where scrip_code = {scrip}"),
    )
    .iter()
    .map(|r| (r["trade_date"].clone(), num(r, "c")))
    .collect();

    let csv = with_defs(
        &root,
        &[
            "query",
            "--format",
            "csv",
            &format!("select trade_date, sma_3 from session_sma where scrip_code = {scrip} order by trade_date"),
        ],
    );
    let got: Vec<(String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let (d, v) = l.split_once(',').unwrap();
            (d.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(got.len(), traded.len(), "one output row per traded session, none for the gaps");
    let mut nulls = 0;
    for (d, v) in &got {
        let i = sessions.iter().position(|s| s == d).expect("a session");
        let last3: Option<Vec<f64>> = (i >= 2)
            .then(|| sessions[i - 2..=i].iter().map(|s| traded.get(s).copied()).collect::<Option<Vec<_>>>())
            .flatten();
        match last3 {
            Some(c) => {
                let want = c.iter().sum::<f64>() / 3.0;
                let v: f64 = v.parse().unwrap_or_else(|_| panic!("{d}: NULL where three sessions traded"));
                assert!((v - want).abs() <= 1e-9 * want.abs(), "{d}: {v} vs {want}");
            }
            None => {
                assert!(v.is_empty(), "{d}: {v} though the scrip missed one of the last three sessions");
                nulls += 1;
            }
        }
    }
    assert!(nulls > 0, "a thin scrip has session windows with gaps");

    // Incremental runs over the session table equal a full run.
    let pieces = Root::local();
    pieces.import(&files[..40]);
    assert!(with_defs(&pieces, &["materialize"]).contains("(full)"));
    pieces.import(&files[40..]);
    assert!(with_defs(&pieces, &["materialize"]).contains("(incremental)"));
    with_defs(&root, &["materialize", "--full"]);
    let all = "select * from session_sma order by scrip_code, trade_date";
    assert_eq!(
        with_defs(&pieces, &["query", "--format", "csv", all]),
        with_defs(&root, &["query", "--format", "csv", all])
    );
}

/// Every reconciled table as CSV rows, in the order stored.
fn reconciled(root: &Root) -> Vec<String> {
    ["corporate_actions", "corporate_action_checks", "adjustment_epochs"]
        .iter()
        .flat_map(|t| {
            let out = ok(root, &["query", "--format", "csv", &format!("select * from {t}")]);
            out.lines().map(|l| format!("{t}: {l}")).collect::<Vec<_>>()
        })
        .collect()
}

/// Rows of `got` and `want` the other lacks, for a readable failure.
fn same_rows(got: &[String], want: &[String], label: &str) {
    let only = |a: &[String], b: &[String]| a.iter().filter(|l| !b.contains(l)).cloned().collect::<Vec<_>>();
    let (extra, missing) = (only(got, want), only(want, got));
    assert!(
        extra.is_empty() && missing.is_empty() && got == want,
        "[{label}] extra: {extra:#?}\nmissing: {missing:#?}"
    );
}

/// The days the last reconciliation of a command read, from its log.
fn days_read(log: &str) -> u64 {
    let line =
        log.lines().rev().find(|l| l.contains("corporate actions: sessions read")).unwrap_or_else(|| panic!("{log}"));
    let days = line.split_whitespace().find_map(|w| w.strip_prefix("days=")).unwrap_or_else(|| panic!("{line}"));
    days.parse().unwrap()
}

#[test]
fn a_reconciliation_continued_day_by_day_equals_one_of_the_whole_history() {
    let (Some(data), Some(actions)) = (real_data_dir(), actions_dir()) else { return };
    let days = files_2015(&data.join("legacy-eq-14col/2015"));
    let tmp = tempfile::tempdir().unwrap();
    // A BSE list of many scrips (so it covers the market of its dates) with ex-dates early
    // (re-anchoring read days), late (still to come when it is imported) and between sessions,
    // and a real NSE list (its rows need the bhavcopies' ISINs and symbols).
    let bse = tmp.path().join("Corporate_Actions.csv");
    let mut rows = vec![
        (500325, "RELIANCE", "08 Apr 2015", "Bonus issue 1:1"),
        (500112, "SBIN", "14 Feb 2015", "Stock  Split From Rs.10/- to Rs.1/-"),
        (532540, "TCS", "07 Mar 2015", "Interim Dividend - Rs. - 5.0000"),
    ];
    let filler: Vec<(u32, String)> = (0..10).map(|i| (500_010 + i, format!("FILL{i}"))).collect();
    rows.extend(filler.iter().map(|(c, n)| (*c, n.as_str(), "20 Mar 2015", "Final Dividend - Rs. - 1.0000")));
    std::fs::write(&bse, bse_export(&rows)).unwrap();
    let exports = [bse.display().to_string(), actions.join("nse/nse_ca_2016-01.json").display().to_string()];
    let import = |root: &Root, paths: &[String]| {
        let mut args = vec!["import".to_string()];
        args.extend(paths.iter().cloned());
        let mut c = bhavstore();
        root.apply(&mut c);
        // The reconciliation says in its log what it read.
        let out = run(c.env("RUST_LOG", "warn,bhavstore_lake=info").args(&args));
        assert!(out.status.success(), "[{}] {}", root.label(), stderr(&out));
        stderr(&out)
    };
    let paths = |range: std::ops::Range<usize>| days[range].iter().map(|p| p.display().to_string()).collect::<Vec<_>>();

    // The whole history at once.
    let whole = Root::local();
    let mut all = paths(0..days.len());
    all.extend(exports.iter().cloned());
    import(&whole, &all);
    let expected = reconciled(&whole);
    for t in ["corporate_actions:", "corporate_action_checks:", "adjustment_epochs:"] {
        assert!(expected.iter().filter(|l| l.starts_with(t)).count() > 1, "{t} {expected:?}");
    }

    // A corrected file of a day already read (one more blank line: other bytes, same rows).
    let fixed = tmp.path().join(days[10].file_name().unwrap());
    let original = std::fs::read(&days[10]).unwrap();
    let mut bytes = original.clone();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&fixed, &bytes).unwrap();
    // Inferred actions of that day name the file they came from: now the corrected one.
    let (was, now) = (bhavstore_storage::sha256_hex(&original), bhavstore_storage::sha256_hex(&bytes));
    let corrected: Vec<String> = expected.iter().map(|l| l.replace(&was, &now)).collect();
    assert_ne!(corrected, expected, "the day has an inferred action");

    for root in Root::all("reconcile_continued") {
        let l = root.label();
        // Days, then action lists dated among them (read everything again: new anchors), then
        // later days a few at a time and one by one (continued from the kept sessions).
        import(&root, &paths(0..30));
        let log = import(&root, &exports);
        assert!(log.contains("reading the whole history"), "[{l}] {log}");
        let log = import(&root, &paths(30..50));
        assert_eq!(days_read(&log), 20, "[{l}] {log}");
        for n in 50..days.len() {
            let log = import(&root, &paths(n..n + 1));
            assert_eq!(days_read(&log), 1, "[{l}] day {n}: {log}");
        }
        same_rows(&reconciled(&root), &expected, l);
        let log = import(&root, &[fixed.display().to_string()]);
        assert!(log.contains("reading the whole history"), "[{l}] {log}");
        assert_eq!(days_read(&log), days.len() as u64, "[{l}] {log}");
        same_rows(&reconciled(&root), &corrected, l);
    }
}
