//! Real-time intraday bars through a running server: the real NSE one-minute files pushed over
//! REST (shuffled within each minute, concurrently, and once strictly in order) and through
//! `import-bars`, served live by Postgres and lookups, checked against an independent pandas
//! computation and the batch materialization (bit for bit); corrections, late bars, repeats,
//! refusals and sessions; `kill -9` after acknowledgements on local disk and S3; the SSE
//! stream; who may push.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::real_data::{bar_files, intraday_bars_dir};
use bhavstore_e2e::serve::Serve;
use bhavstore_e2e::storage_roots::Root;
use serde_json::{Value, json};

fn defs() -> PathBuf {
    bhavstore_e2e::crate_dir().join("../feature_defs")
}

fn repo() -> PathBuf {
    bhavstore_e2e::crate_dir().join("..")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn cli(root: &Root, args: &[&str]) -> String {
    let mut c = bhavstore();
    root.apply(&mut c);
    let o = run(c.arg("--feature-defs").arg(defs()).args(args));
    assert!(o.status.success(), "{args:?}: {}\n{}", stderr(&o), stdout(&o));
    stdout(&o)
}

/// The rows of a bar file as push rows.
fn file_rows(instrument: &str, path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("bar file");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            let num = |i: usize| -> f64 { c[i].parse().expect("number") };
            json!({"instrument": instrument, "ts": c[0], "open": num(1), "high": num(2), "low": num(3),
                   "close": num(4), "volume": c[5].parse::<i64>().expect("volume")})
        })
        .collect()
}

fn all_rows(dir: &Path) -> Vec<Value> {
    bar_files(dir).iter().flat_map(|(sym, p)| file_rows(&format!("NSE:{sym}"), p)).collect()
}

async fn push(client: &reqwest::Client, base: &str, rows: &[Value], token: Option<&str>) -> (u16, Value) {
    let mut r = client
        .post(format!("{base}/feature-store/push"))
        .header("content-type", "application/json")
        .body(json!({"source": "intraday_bars", "rows": rows}).to_string());
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    // A refused connection or a reset (the server was killed) is status 0.
    let Ok(resp) = r.send().await else { return (0, Value::Null) };
    let status = resp.status().as_u16();
    match resp.text().await {
        Ok(text) => (status, serde_json::from_str(&text).unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

async fn push_ok(client: &reqwest::Client, base: &str, rows: &[Value]) -> Value {
    let (s, v) = push(client, base, rows, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "ok", "{v}");
    v
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let resp = client.get(url).send().await.expect("get");
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.expect("body")).unwrap_or(Value::Null))
}

/// Waits until every acknowledged push has been computed by the live views.
async fn wait_computed(client: &reqwest::Client, base: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, h) = get(client, &format!("{base}/health")).await;
        let i = &h["intraday"];
        if i["features_through_seq"].as_u64() >= i["durable_seq"].as_u64() {
            return h;
        }
        assert!(Instant::now() < until, "live views did not catch up: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A query's rows as CSV with a header, through psql and the server's `COPY ... TO STDOUT`.
fn export(server: &Serve, sql: &str) -> String {
    let (host, port) = server.pg_host_port();
    let o = Command::new("psql")
        .args(["-h", &host, "-p", &port.to_string(), "-U", "bhavstore", "-d", "bhavstore", "-X", "-q", "-c"])
        .arg(format!("COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)"))
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql (scripts/install-deps installs postgresql-client)");
    assert!(o.status.success(), "psql {sql}: {}", stderr(&o));
    stdout(&o)
}

const LIVE: &str = "SELECT * FROM intraday_features ORDER BY instrument, ts";

/// Runs the independent pandas computation over the bar files of `bars_dir` against `csv`.
fn reference(bars_dir: &Path, csv: &str, what: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let got = tmp.path().join(format!("{what}.csv"));
    std::fs::write(&got, csv).expect("write");
    let o = Command::new("python3")
        .arg(repo().join("scripts/crosscheck/intraday_reference.py"))
        .arg("--bars-dir")
        .arg(bars_dir)
        .args(["--exchange", "NSE", "--got"])
        .arg(&got)
        .output()
        .expect("python3 runs (scripts/install-deps installs pandas)");
    let out = stdout(&o);
    assert!(o.status.success(), "{what}: the independent reference disagrees:\n{out}\n{}", stderr(&o));
    assert!(out.contains("OK: "), "{out}");
}

/// Seconds since the epoch of a timestamp as the server's COPY writes it.
fn utc_seconds(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(&format!("{text}00"), "%Y-%m-%d %H:%M:%S%.f%z"))
        .unwrap_or_else(|e| panic!("timestamp {text}: {e}"))
        .timestamp()
}

/// A seeded shuffle.
fn shuffle<T>(v: &mut [T], seed: &mut u64) {
    for i in (1..v.len()).rev() {
        *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let j = usize::try_from((*seed >> 33) % (i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
}

/// (column name → value text) of the CSV row of `instrument` whose ts is `ts` (UTC text as COPY writes it).
fn csv_row(csv: &str, instrument: &str, ts_prefix: &str) -> HashMap<String, String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    for l in lines {
        let cells: Vec<&str> = l.split(',').collect();
        if cells[0] == instrument && cells[1].starts_with(ts_prefix) {
            return header.iter().zip(cells).map(|(h, c)| ((*h).to_string(), c.to_string())).collect();
        }
    }
    panic!("no row {instrument} {ts_prefix} in the export");
}

#[test]
fn real_bars_pushed_over_rest_are_served_live_equal_to_batch_and_to_an_independent_computation() {
    let Some(dir) = intraday_bars_dir() else { return };
    let rows = all_rows(&dir);
    assert_eq!(rows.len(), 15 * 375);
    let rt = rt();
    let client = reqwest::Client::new();

    // A: minute by minute, the bars of each minute in a shuffled order, each its own request, all
    // at once (so several pushes share a log write).
    let root_a = Root::local();
    let a = Serve::start(&root_a, None, &[]);
    let base_a = format!("http://{}", a.http);
    let mut minutes: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in &rows {
        minutes.entry(r["ts"].as_str().unwrap_or_default().to_string()).or_default().push(r.clone());
    }
    let mut seed = 7;
    let health = rt.block_on(async {
        for bars in minutes.values_mut() {
            shuffle(bars, &mut seed);
            let pushes = bars.iter().map(|b| push_ok(&client, &base_a, std::slice::from_ref(b)));
            for v in futures::future::join_all(pushes).await {
                assert_eq!(v["accepted"], 1, "{v}");
                assert!(v["durable_at"].is_string(), "{v}");
            }
        }
        wait_computed(&client, &base_a).await
    });
    assert_eq!(health["intraday"]["bars"], 5625, "{health}");
    let live_a = export(&a, LIVE);
    assert_eq!(live_a.lines().count(), 5626);
    reference(&dir, &live_a, "live-shuffled");

    // Lookups: a bar is visible from its end, never earlier, with the value SQL shows.
    rt.block_on(async {
        let url = |ts: &str, f: &str| {
            format!(
                "{base_a}/feature-store/lookup?entity_id=NSE:TCS&feature_name={f}&timestamp={}",
                ts.replace('+', "%2B")
            )
        };
        let (s, v) = get(&client, &url("2026-07-14T09:15:59+05:30", "vwap_session")).await;
        assert_eq!((s, v["error"]["code"].as_str()), (404, Some("no_value")), "{v}");
        for (at, bar_utc) in [
            ("2026-07-14T09:16:00+05:30", "2026-07-14 03:45:00"),
            ("2026-07-14T12:00:30+05:30", "2026-07-14 06:29:00"),
            ("2026-07-14T12:01:00+05:30", "2026-07-14 06:30:00"),
            ("2026-07-15T09:15:00+05:30", "2026-07-14 09:59:00"),
        ] {
            let row = csv_row(&live_a, "NSE:TCS", bar_utc);
            for f in ["vwap_session", "ema_20", "rsi_14", "realized_vol_30"] {
                let (s, v) = get(&client, &url(at, f)).await;
                assert_eq!(s, 200, "{at} {f}: {v}");
                let want: Option<f64> = row[f].parse().ok();
                assert_eq!(v["value"].as_f64(), want, "{at} {f}: {v}");
                assert_eq!(v["feature_view"], "intraday_features");
            }
        }
        // The batch endpoint: many instruments × features at one time; an unknown one says so.
        let resp = client
            .post(format!("{base_a}/feature-store/lookup/batch"))
            .header("content-type", "application/json")
            .body(
                json!({"entity_ids": ["NSE:TCS", "NSE:RELIANCE", "NSE:NOPE"], "feature_names": ["vwap_session", "close"],
                       "timestamp": "2026-07-14T12:00:30+05:30"})
                .to_string(),
            )
            .send()
            .await
            .expect("batch");
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("json");
        let results = v["results"].as_array().expect("results");
        for (i, sym) in ["NSE:TCS", "NSE:RELIANCE"].iter().enumerate() {
            let row = csv_row(&live_a, sym, "2026-07-14 06:29:00");
            let f = &results[i]["features"];
            assert_eq!(f["vwap_session"]["value"].as_f64(), row["vwap_session"].parse().ok(), "{v}");
            assert_eq!(f["close"]["value"].as_f64(), row["close"].parse().ok(), "{v}");
        }
        assert_eq!(results[2]["error"], "unknown_entity", "{v}");
    });

    // Training sets: features_asof with the same rule, over a spine 30 s after each bar of one
    // session (the bar just ended is visible, the one still running is not), plus probes.
    let spine: Vec<String> = (0..375)
        .map(|m| {
            let minute = 9 * 60 + 15 + m;
            format!("(''NSE:TCS'', ''2026-07-14T{:02}:{:02}:30+05:30'')", (minute + 1) / 60, (minute + 1) % 60)
        })
        .chain([
            "(''NSE:TCS'', ''2026-07-14T09:15:59+05:30'')".to_string(),
            "(''NSE:NOPE'', ''2026-07-14T12:00:00+05:30'')".to_string(),
        ])
        .collect();
    let asof = export(
        &a,
        &format!(
            "SELECT entity, feature_event_time, vwap_session, ema_20 FROM features_asof('intraday_features', 'SELECT * FROM (VALUES {})')",
            spine.join(", ")
        ),
    );
    let lines: Vec<&str> = asof.lines().skip(1).collect();
    assert_eq!(lines.len(), 377, "{asof}");
    let tcs_rows: Vec<&str> =
        live_a.lines().filter(|l| l.starts_with("NSE:TCS,") && l.contains(",2026-07-14,")).collect();
    assert_eq!(tcs_rows.len(), 375);
    let header: Vec<&str> = live_a.lines().next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column");
    for (got, want) in lines.iter().zip(&tcs_rows) {
        let (g, w): (Vec<&str>, Vec<&str>) = (got.split(',').collect(), want.split(',').collect());
        assert_eq!(g[0], "NSE:TCS");
        assert_eq!(utc_seconds(g[1]), utc_seconds(w[1]) + 60, "known at the bar's end: {got} / {want}");
        assert_eq!((g[2], g[3]), (w[col("vwap_session")], w[col("ema_20")]), "{got} / {want}");
    }
    assert_eq!(lines[375], "NSE:TCS,,,", "before the first bar ended: no value");
    assert_eq!(lines[376], "NSE:NOPE,,,");

    // The batch materialization of the same SQL over the stored bars, read through the same
    // client: byte for byte the live rows.
    let out = cli(&root_a, &["materialize", "intraday_features"]);
    let version = out
        .split("intraday_features@")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap_or_else(|| panic!("no version in {out}"))
        .to_string();
    let batch = export(&a, &format!("SELECT * FROM \"intraday_features@{version}\" ORDER BY instrument, ts"));
    assert_eq!(batch, live_a, "live rows differ from the batch materialization");

    // B: strictly in order, one request per file.
    let root_b = Root::local();
    let b = Serve::start(&root_b, None, &[]);
    let base_b = format!("http://{}", b.http);
    rt.block_on(async {
        for (sym, p) in bar_files(&dir) {
            let v = push_ok(&client, &base_b, &file_rows(&format!("NSE:{sym}"), &p)).await;
            assert_eq!(v["new"], 375, "{v}");
        }
        wait_computed(&client, &base_b).await;
    });
    assert_eq!(export(&b, LIVE), live_a, "pushing in order gives other values than shuffled");

    // C: import-bars, then a server computes the view at start.
    let root_c = Root::local();
    let out = cli(&root_c, &["import-bars", dir.to_str().unwrap_or_default()]);
    assert!(out.contains("5625 bars stored, 0 refused"), "{out}");
    assert!(out.contains("nse_udiff_bhavcopy_sample_2026-07.csv: skipped"), "{out}");
    let c = Serve::start(&root_c, None, &[]);
    assert_eq!(export(&c, LIVE), live_a, "bars imported from files give other values");
}

#[test]
fn corrections_late_bars_repeats_refusals_and_sessions() {
    let Some(dir) = intraday_bars_dir() else { return };
    let original = std::fs::read_to_string(dir.join("TCS_2026-07-14_1min.csv")).expect("file");
    // The bars as the desk finally knows them: the 10:00 close corrected, a pre-open and a
    // post-close bar added (not rows of the view). The reference reads this file.
    let fixed_dir = tempfile::tempdir().expect("tmp");
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    let i10 = lines.iter().position(|l| l.starts_with("2026-07-14 10:00:00")).expect("10:00 bar");
    let c: Vec<String> = lines[i10].split(',').map(str::to_string).collect();
    let corrected = format!("{},{},{},{},{},{}", c[0], c[1], c[2], c[3], c[2], c[5]);
    lines[i10] = corrected.clone();
    lines.insert(1, "2026-07-14 09:08:00+05:30,2180.0,2185.0,2179.0,2182.0,5000".into());
    lines.push("2026-07-14 15:35:00+05:30,2197.0,2197.0,2197.0,2197.0,700".into());
    std::fs::write(fixed_dir.path().join("TCS_2026-07-14_1min.csv"), lines.join("\n") + "\n").expect("write");

    let all = file_rows("NSE:TCS", &dir.join("TCS_2026-07-14_1min.csv"));
    let extra = file_rows("NSE:TCS", &fixed_dir.path().join("TCS_2026-07-14_1min.csv"));
    let (pre, post) = (extra[0].clone(), extra[extra.len() - 1].clone());
    let fix = file_rows("NSE:TCS", &fixed_dir.path().join("TCS_2026-07-14_1min.csv"))[i10].clone();
    assert_eq!(fix["ts"], "2026-07-14 10:00:00+05:30");
    let late: Vec<Value> =
        all.iter().filter(|r| r["ts"].as_str().is_some_and(|t| t.starts_with("2026-07-14 11:0"))).cloned().collect();
    assert_eq!(late.len(), 10);
    let early: Vec<Value> = all.iter().filter(|r| !late.contains(r)).cloned().collect();

    let root = Root::local();
    let s = Serve::start(&root, None, &[]);
    let base = format!("http://{}", s.http);
    let client = reqwest::Client::new();
    rt().block_on(async {
        let v = push_ok(&client, &base, &early).await;
        assert_eq!(v["new"], 365);
        push_ok(&client, &base, &[pre.clone(), post.clone()]).await;
        // Bars older than the newest: placed in order, the features after them recomputed.
        let v = push_ok(&client, &base, &late).await;
        assert_eq!((v["new"].as_u64(), v["corrections"].as_u64()), (Some(10), Some(0)), "{v}");
        // The same bar again: a no-op.
        let v = push_ok(&client, &base, &late[..1]).await;
        assert_eq!((v["duplicates"].as_u64(), v["new"].as_u64()), (Some(1), Some(0)), "{v}");
        // Other values for a stored bar: a correction, with a new revision.
        let v = push_ok(&client, &base, std::slice::from_ref(&fix)).await;
        assert_eq!(v["corrections"], 1, "{v}");
        // Every refusal reason, one by one; the valid row of the request is kept.
        let good = json!({"instrument": "NSE:TCS", "ts": "2026-07-15T09:15:00+05:30", "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 5});
        let with = |k: &str, val: Value| {
            let mut r = good.clone();
            r[k] = val;
            r
        };
        let mut no_close = good.clone();
        no_close.as_object_mut().map(|o| o.remove("close"));
        let bad = vec![
            with("low", json!(12.0)),
            with("open", json!(8.0)),
            with("close", json!(12.0)),
            with("volume", json!(-3)),
            with("ts", json!("14/07/2026 09:15")),
            with("venue", json!("X")),
            no_close,
            good.clone(),
        ];
        let (st, v) = push(&client, &base, &bad, None).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!((v["status"].as_str(), v["accepted"].as_u64()), (Some("partial"), Some(1)), "{v}");
        let reasons: Vec<(u64, String)> = v["rejected"]
            .as_array()
            .expect("rejected")
            .iter()
            .map(|r| (r["index"].as_u64().unwrap_or(99), r["reason"].as_str().unwrap_or_default().to_string()))
            .collect();
        let expect = ["low 12 > high 11", "open 8 is outside", "close 12 is outside", "negative volume", "unparseable time", "unknown field", "missing price close"];
        assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
        for (i, ((idx, why), want)) in reasons.iter().zip(expect).enumerate() {
            assert_eq!(*idx, i as u64);
            assert!(why.contains(want), "{why} / {want}");
        }
        // Only refusals: status rejected, 422.
        let (st, v) = push(&client, &base, &bad[..2], None).await;
        assert_eq!((st, v["status"].as_str()), (422, Some("rejected")), "{v}");
        // Malformed requests: 4xx with a JSON error, never a 500.
        for (body, ctype, want) in [
            ("{not json", "application/json", 400),
            ("{\"source\": \"bhavcopy\", \"rows\": [{}]}", "application/json", 400),
            ("{\"source\": \"intraday_bars\", \"rows\": []}", "application/json", 400),
            ("{\"source\": \"intraday_bars\", \"rows\": 5}", "application/json", 400),
            ("{\"source\": \"intraday_bars\", \"rows\": [], \"extra\": 1}", "application/json", 400),
            ("source=intraday_bars", "application/x-www-form-urlencoded", 415),
        ] {
            let resp = client
                .post(format!("{base}/feature-store/push"))
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .expect("post");
            let st = resp.status().as_u16();
            let v: Value = serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null);
            assert_eq!(st, want, "{body}: {v}");
            assert!(v["error"]["code"].is_string(), "{body}: {v}");
        }
        // The valid 2026-07-15 bar stays: the export below keeps to 2026-07-14, which the
        // reference file covers (rows of 07-14 cannot depend on a later bar).
        wait_computed(&client, &base).await;
    });
    let live =
        export(&s, "SELECT * FROM intraday_features WHERE trade_date = DATE '2026-07-14' ORDER BY instrument, ts");
    reference(fixed_dir.path(), &live, "corrected");
    let sessions = export(
        &s,
        "SELECT session, count(*) AS n FROM intraday_bars WHERE trade_date = DATE '2026-07-14' GROUP BY session ORDER BY session",
    );
    assert_eq!(sessions, "session,n\npost_close,1\npre_open,1\nregular,375\n");
    let rev = export(
        &s,
        "SELECT revision, close FROM intraday_bars WHERE ts = TIMESTAMP '2026-07-14 04:30:00' AND instrument = 'NSE:TCS'",
    );
    let got: Vec<&str> = rev.lines().nth(1).unwrap_or_default().split(',').collect();
    assert_eq!(got[0], "1", "{rev}");
    assert_eq!(got[1].parse::<f64>().ok(), fix["close"].as_f64(), "{rev}");
    let q = export(&s, "SELECT via, row_index, reason FROM intraday_quarantine ORDER BY received_at, row_index");
    assert_eq!(q.lines().count(), 1 + 7 + 2, "{q}");
    assert!(q.contains("rest,3,negative volume -3"), "{q}");

    // Materialization follows the intraday log: up to date until new bars arrive.
    assert!(cli(&root, &["materialize", "intraday_features"]).contains("succeeded (full)"));
    assert!(cli(&root, &["materialize", "intraday_features"]).contains("succeeded (none)"));
    rt().block_on(async {
        let mut more = fix.clone();
        more["ts"] = json!("2026-07-16T09:15:00+05:30");
        push_ok(&client, &base, &[more]).await;
    });
    let out = cli(&root, &["materialize", "intraday_features"]);
    assert!(out.contains("succeeded (full)") && out.contains("..2026-07-16"), "{out}");

    // A body over intraday.max_push_bytes: 413 with a JSON error.
    let cfg = tempfile::tempdir().expect("tmp");
    let path = cfg.path().join("bhavstore.yaml");
    std::fs::write(&path, "intraday:\n  max_push_bytes: 1KiB\n").expect("config");
    let small = Serve::start(&Root::local(), Some(&path), &[]);
    rt().block_on(async {
        let (st, v) = push(&client, &format!("http://{}", small.http), &all[..50], None).await;
        assert_eq!((st, v["error"]["code"].as_str()), (413, Some("body_too_large")), "{v}");
    });
}

/// Pushes bars of `instrument` from several threads until the server goes away; returns what
/// was acknowledged: (instrument, ts text) → close.
fn push_until_killed(
    base: &str,
    threads: usize,
    stop: &Arc<Mutex<bool>>,
) -> Vec<std::thread::JoinHandle<Vec<(String, String, f64)>>> {
    (0..threads)
        .map(|t| {
            let base = base.to_string();
            let stop = Arc::clone(stop);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
                let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
                let mut acked = Vec::new();
                let instrument = format!("NSE:KILL{t}");
                for i in 0.. {
                    if *stop.lock().expect("stop") {
                        break;
                    }
                    let rows: Vec<Value> = (0..20)
                        .map(|k| {
                            let m = i * 20 + k;
                            let (day, minute) = (14 + m / 375, 9 * 60 + 15 + m % 375);
                            let close = 100.0 + f64::from((m * 7 + t as i32) % 50);
                            json!({"instrument": instrument, "ts": format!("2026-07-{day:02}T{:02}:{:02}:00+05:30", minute / 60, minute % 60),
                                   "open": close, "high": close + 1.0, "low": close - 1.0, "close": close, "volume": 10 + m})
                        })
                        .collect();
                    match rt.block_on(push(&client, &base, &rows, None)) {
                        (200, v) if v["status"] == "ok" => {
                            for r in rows {
                                acked.push((instrument.clone(), r["ts"].as_str().unwrap_or_default().to_string(), r["close"].as_f64().unwrap_or(0.0)));
                            }
                        }
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect()
}

fn kill_loses_nothing_acknowledged(root: &Root) {
    let cfg = tempfile::tempdir().expect("tmp");
    let path = cfg.path().join("bhavstore.yaml");
    // Snapshots every second, so kills land before, during and after them.
    std::fs::write(&path, "intraday:\n  snapshot_interval_secs: 1\n").expect("config");
    let mut acked_total = Vec::new();
    for round in 0..2 {
        let server = Serve::start(root, Some(&path), &[]);
        let stop = Arc::new(Mutex::new(false));
        let workers = push_until_killed(&format!("http://{}", server.http), 4, &stop);
        std::thread::sleep(Duration::from_millis(2500 + 700 * round));
        // SIGKILL, while pushes are in flight.
        drop(server);
        *stop.lock().expect("stop") = true;
        for w in workers {
            acked_total.extend(w.join().expect("worker"));
        }
        assert!(!acked_total.is_empty(), "{}: nothing was acknowledged before the kill", root.label());
    }
    let server = Serve::start(root, Some(&path), &[]);
    let stored = export(&server, "SELECT instrument, ts, close FROM intraday_bars");
    let mut have: HashMap<(String, i64), f64> = HashMap::new();
    for l in stored.lines().skip(1) {
        let c: Vec<&str> = l.split(',').collect();
        let ts = utc_seconds(c[1]);
        have.insert((c[0].to_string(), ts), c[2].parse().expect("close"));
    }
    let mut missing = Vec::new();
    for (instrument, ts, close) in &acked_total {
        let t = chrono::DateTime::parse_from_rfc3339(ts).expect("ts").timestamp();
        match have.get(&(instrument.clone(), t)) {
            Some(c) if (c - close).abs() < 1e-9 => {}
            other => missing.push(format!("{instrument} {ts}: {other:?}")),
        }
    }
    assert!(
        missing.is_empty(),
        "{}: {} of {} acknowledged bars lost after kill -9: {:?}",
        root.label(),
        missing.len(),
        acked_total.len(),
        &missing[..missing.len().min(5)]
    );
    let regular = acked_total.iter().filter(|(_, ts, _)| {
        let hm = &ts[11..16];
        ("09:15".."15:30").contains(&hm)
    });
    let distinct: HashSet<(&String, &String)> = regular.map(|(i, t, _)| (i, t)).collect();
    let live = export(&server, "SELECT count(*) AS n FROM intraday_features");
    let n: usize = live.lines().nth(1).and_then(|l| l.parse().ok()).expect("count");
    assert!(
        n >= distinct.len(),
        "{}: live view has {n} rows for {} acknowledged regular bars",
        root.label(),
        distinct.len()
    );
    eprintln!("{}: {} acknowledged bars survived two kill -9s", root.label(), acked_total.len());
}

#[test]
fn kill_9_after_acknowledgement_loses_nothing_on_local_disk_and_s3() {
    for root in Root::all("intraday_kill") {
        kill_loses_nothing_acknowledged(&root);
    }
}

/// Reads SSE events (event name, data JSON) until `done` says so or the time is up.
async fn read_events(
    resp: reqwest::Response,
    limit: Duration,
    mut done: impl FnMut(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    use futures::StreamExt;
    let mut events = Vec::new();
    let mut buf = String::new();
    let mut stream = resp.bytes_stream();
    let until = tokio::time::Instant::now() + limit;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(until, stream.next()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if !name.is_empty() {
                events.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
        }
        if done(&events) {
            break;
        }
    }
    events
}

#[test]
fn the_stream_sends_every_update_and_drops_a_slow_consumer() {
    let cfg = tempfile::tempdir().expect("tmp");
    let path = cfg.path().join("bhavstore.yaml");
    std::fs::write(&path, "intraday:\n  stream_buffer: 16\n").expect("config");
    let s = Serve::start(&Root::local(), None, &[]);
    let base = format!("http://{}", s.http);
    // A second server whose subscribers may fall only 16 rows behind.
    let small = Serve::start(&Root::local(), Some(&path), &[]);
    let small_base = format!("http://{}", small.http);
    let client = reqwest::Client::new();
    let bar = |sym: &str, m: u32, close: f64| {
        json!({"instrument": sym, "ts": format!("2026-07-14T{:02}:{:02}:00+05:30", (555 + m) / 60, (555 + m) % 60),
               "open": close, "high": close + 1.0, "low": close - 1.0, "close": close, "volume": 100 + m})
    };
    rt().block_on(async {
        let (st, v) = get(&client, &format!("{base}/feature-store/stream?view=nope")).await;
        assert_eq!((st, v["error"]["code"].as_str()), (404, Some("unknown_view")), "{v}");
        let resp = client
            .get(format!("{base}/feature-store/stream?view=intraday_features&entity_id=NSE:S1"))
            .send()
            .await
            .expect("stream");
        assert_eq!(resp.status().as_u16(), 200);
        let reader = tokio::spawn(read_events(resp, Duration::from_secs(60), |e| {
            e.iter().filter(|(n, _)| n == "features").count() >= 30
        }));
        tokio::time::sleep(Duration::from_millis(300)).await;
        for m in 0..30 {
            push_ok(&client, &base, &[bar("NSE:S1", m, 100.0 + f64::from(m)), bar("NSE:S2", m, 50.0)]).await;
        }
        let events = reader.await.expect("reader");
        let features: Vec<&Value> = events.iter().filter(|(n, _)| n == "features").map(|(_, v)| v).collect();
        assert_eq!(events[0].0, "subscribed");
        assert!(features.iter().all(|v| v["entity_id"] == "NSE:S1"), "{features:?}");
        let ts: HashSet<&str> = features.iter().filter_map(|v| v["ts"].as_str()).collect();
        assert_eq!(ts.len(), 30, "every bar's row arrives: {ts:?}");
        let last = features.iter().find(|v| v["ts"] == "2026-07-14T04:14:00Z").expect("last bar");
        assert_eq!(last["values"]["close"], 129.0);
        assert_eq!(last["known_at"], "2026-07-14T04:15:00Z");

        // A subscriber that does not read is dropped once it falls 16 rows behind; the server
        // goes on.
        let slow = client
            .get(format!("{small_base}/feature-store/stream?view=intraday_features"))
            .send()
            .await
            .expect("stream");
        let many: Vec<Value> = (0..3000).map(|i| bar(&format!("NSE:F{i}"), 40, 10.0)).collect();
        push_ok(&client, &small_base, &many).await;
        wait_computed(&client, &small_base).await;
        let events = read_events(slow, Duration::from_secs(30), |e| e.iter().any(|(n, _)| n == "dropped")).await;
        let dropped = events.iter().find(|(n, _)| n == "dropped").expect("a dropped event");
        assert_eq!(dropped.1["reason"], "slow consumer", "{dropped:?}");
        let (st, _) = get(&client, &format!("{small_base}/health")).await;
        assert_eq!(st, 200);
    });
}

fn flight_ingest(server: &Serve, user: &str, password: &str, instrument: &str, n: usize, mode: &str) -> Value {
    let o = Command::new("python3")
        .arg(bhavstore_e2e::crate_dir().join("py/flight_ingest.py"))
        .args([&server.flight, user, password, instrument, &n.to_string(), mode])
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(stdout(&o).lines().last().unwrap_or_default()).expect("json")
}

#[test]
fn pushing_needs_the_write_role_and_flight_bulk_ingest_stores_bars() {
    // Without users or tokens (loopback only), anyone may push, over REST and Flight.
    let open = Serve::start(&Root::local(), None, &[]);
    let v = flight_ingest(&open, "-", "-", "NSE:ADBC", 200, "append");
    assert_eq!(v["rows"], 200, "{v}");
    assert_eq!(export(&open, "SELECT count(*) AS n FROM intraday_bars WHERE instrument = 'NSE:ADBC'"), "n\n200\n");
    assert_eq!(export(&open, "SELECT count(*) AS n FROM intraday_features WHERE instrument = 'NSE:ADBC'"), "n\n200\n");
    let v = flight_ingest(&open, "-", "-", "NSE:ADBC", 5, "replace");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("only appended")), "{v}");

    let cfg = tempfile::tempdir().expect("tmp");
    let path = cfg.path().join("bhavstore.yaml");
    std::fs::write(
        &path,
        "server:\n  tokens: [read-token, {token: write-token, roles: [write]}]\n  users:\n    - {name: reader, password: r-pw}\n    - {name: writer, password: w-pw, roles: [write]}\n",
    )
    .expect("config");
    let s = Serve::start(&Root::local(), Some(&path), &[]);
    let base = format!("http://{}", s.http);
    let client = reqwest::Client::new();
    let row = json!({"instrument": "NSE:AUTH", "ts": "2026-07-14T09:15:00+05:30", "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1});
    rt().block_on(async {
        let (st, v) = push(&client, &base, std::slice::from_ref(&row), None).await;
        assert_eq!((st, v["error"]["code"].as_str()), (401, Some("unauthorized")), "{v}");
        let (st, v) = push(&client, &base, std::slice::from_ref(&row), Some("read-token")).await;
        assert_eq!((st, v["error"]["code"].as_str()), (403, Some("write_role_required")), "{v}");
        let (st, v) = push(&client, &base, std::slice::from_ref(&row), Some("write-token")).await;
        assert_eq!((st, v["status"].as_str()), (200, Some("ok")), "{v}");
        // A read token still looks up (the bar the write token pushed).
        wait_computed(&client, &base).await;
        let resp = client
            .get(format!(
                "{base}/feature-store/lookup?entity_id=NSE:AUTH&feature_name=close&timestamp=2026-07-14T09:16:00%2B05:30"
            ))
            .bearer_auth("read-token")
            .send()
            .await
            .expect("lookup");
        let st = resp.status().as_u16();
        assert_eq!(st, 200, "{}", resp.text().await.unwrap_or_default());
    });
    let v = flight_ingest(&s, "reader", "r-pw", "NSE:AUTH", 3, "append");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("write role")), "{v}");
    let v = flight_ingest(&s, "writer", "w-pw", "NSE:AUTH", 3, "append");
    // The first of these repeats the REST bar's minute with other values: a correction.
    assert_eq!(v["rows"], 3, "{v}");
    let (host, port) = s.pg_host_port();
    let o = Command::new("psql")
        .args(["-h", &host, "-p", &port.to_string(), "-U", "reader", "-d", "bhavstore", "-X", "-A", "-t", "-c"])
        .arg("SELECT count(*), max(revision) FROM intraday_bars WHERE instrument = 'NSE:AUTH'")
        .env("PGPASSWORD", "r-pw")
        .output()
        .expect("psql");
    assert_eq!(stdout(&o).trim(), "3|1", "{}", stderr(&o));
}
