//! The REST API of `bhavstore serve` with real HTTP (reqwest): the seed's two calls, point-in-time
//! semantics checked against a brute-force scan of the materialized table, error codes, batch
//! lookups, auth, and the online store following a new materialization.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::real_data::{files_2015, real_data_dir};
use bhavstore_e2e::serve::Serve;
use bhavstore_e2e::storage_roots::Root;
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde_json::Value;

fn defs() -> PathBuf {
    bhavstore_e2e::crate_dir().join("../feature_defs")
}

fn cli(root: &Root, args: &[&str]) -> String {
    let mut c = bhavstore();
    root.apply(&mut c);
    let o = run(c.arg("--feature-defs").arg(defs()).args(args));
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// A running `bhavstore serve` and its REST base URL.
struct Server {
    _serve: Serve,
    base: String,
}

fn serve(root: &Root, config: Option<&std::path::Path>) -> Server {
    let s = Serve::start(root, config, &[]);
    let base = format!("http://{}", s.http);
    Server { _serve: s, base }
}

/// Sends a request and reads the answer as JSON (Null when it is not JSON).
fn send(req: reqwest::RequestBuilder) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    })
}

fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let (s, text) = send(r);
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get_text(url: &str) -> String {
    send(reqwest::Client::new().get(url)).1
}

fn post(url: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(url).header("content-type", "application/json").body(body.to_string());
    let (s, text) = send(r);
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The text of a top-level numeric field of a JSON object (None for null).
fn raw_number(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    let t = rest[..end].trim();
    (t != "null").then(|| t.to_string())
}

/// (scrip_code) -> sorted (trade_date, sma_20 as text) from a CSV export: the brute-force side.
fn series(csv: &str) -> HashMap<i64, Vec<(NaiveDate, String)>> {
    let mut out: HashMap<i64, Vec<(NaiveDate, String)>> = HashMap::new();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (e, t, f) = (
        header.iter().position(|h| *h == "scrip_code").unwrap(),
        header.iter().position(|h| *h == "trade_date").unwrap(),
        header.iter().position(|h| *h == "sma_20").unwrap(),
    );
    for l in lines {
        let c: Vec<&str> = l.split(',').collect();
        out.entry(c[e].parse().unwrap())
            .or_default()
            .push((NaiveDate::parse_from_str(c[t], "%Y-%m-%d").unwrap(), c[f].to_string()));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

#[test]
fn lookups_follow_point_in_time_semantics_and_errors_have_stable_codes() {
    let Some(dir) = real_data_dir() else { return };
    let files = files_2015(&dir.join("legacy-eq-14col/2015"));
    let root = Root::local();
    root.import(&files[..60]);
    cli(&root, &["materialize"]);
    let truth =
        series(&cli(&root, &["query", "--format", "csv", "select scrip_code, trade_date, sma_20 from price_features"]));
    // REST ingest may read files only under a configured import root.
    let extra = tempfile::tempdir().unwrap();
    let cfg = tempfile::tempdir().unwrap();
    let cfg_file = cfg.path().join("bhavstore.yaml");
    std::fs::write(&cfg_file, format!("server:\n  import_roots: [\"file://{}\"]\n", extra.path().display())).unwrap();
    let server = serve(&root, Some(&cfg_file));
    let lookup = |entity: &str, feature: &str, ts: &str| {
        get(
            &format!("{}/feature-store/lookup?entity_id={entity}&feature_name={feature}&timestamp={ts}", server.base),
            None,
        )
    };

    // The seed's call, as written: at 17:30 IST the day's bhavcopy is not yet available (the
    // files were imported long after, so each day counts as published at 18:00 IST), so the
    // default rule answers with the previous session; the close rule with the day itself.
    let (status, body) = lookup("500002", "sma_20", "2015-04-10T12:00:00Z");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entity_id"], "500002");
    assert_eq!(body["feature_name"], "sma_20");
    assert_eq!(body["rule"], "available");
    assert_eq!(body["trade_date"], "2015-04-09", "{body}");
    assert_eq!(body["timestamp"], "2015-04-09T10:00:00Z", "event time: 15:30 IST close of the session");
    assert_eq!(body["available_at"], "2015-04-09T12:30:00Z", "18:00 IST publish time");
    let (status, body) = lookup("500002", "sma_20", "2015-04-10T12:00:00Z&rule=close");
    assert_eq!((status, body["trade_date"].as_str()), (200, Some("2015-04-10")), "{body}");
    let (status, body) = lookup("500002", "sma_20", "2015-04-10T12:00:00Z&rule=open");
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_rule")), "{body}");

    // Brute force: for sampled entities and times (before and after the close and the publish
    // time, weekends), the answer is the row with the latest close (rule close) or the latest
    // publication (rule available) at or before the time asked.
    let mut checked = 0;
    for (entity, rows) in truth.iter().take(40) {
        for (date, _) in rows.iter().step_by(7) {
            for (hh, mm, rule) in [
                (4, 30, "close"),
                (9, 59, "close"),
                (10, 0, "close"),
                (18, 0, "close"),
                (10, 0, "available"),
                (12, 29, "available"),
                (12, 30, "available"),
                (18, 0, "available"),
            ] {
                let at: DateTime<Utc> = date.and_hms_opt(hh, mm, 0).unwrap().and_utc();
                let known = if rule == "close" { (10, 0) } else { (12, 30) };
                let cutoff = if (hh, mm) >= known { *date } else { *date - Days::new(1) };
                let expected = rows.iter().rev().find(|(d, _)| *d <= cutoff);
                let url = format!(
                    "{}/feature-store/lookup?entity_id={entity}&feature_name=sma_20&rule={rule}&timestamp={}",
                    server.base,
                    at.to_rfc3339().replace('+', "%2B")
                );
                let (status, text) = send(reqwest::Client::new().get(url));
                let body: Value = serde_json::from_str(&text).unwrap();
                match expected {
                    Some((d, v)) if at - d.and_hms_opt(10, 0, 0).unwrap().and_utc() <= chrono::Duration::days(5) => {
                        assert_eq!(status, 200, "{entity} at {at}: {body}");
                        assert_eq!(body["trade_date"], d.to_string(), "{entity} at {at}");
                        // Compare the number as written (serde_json's default float parser may be
                        // one unit in the last place off; str::parse is exact).
                        let got = raw_number(&text, "value");
                        let parse = |t: &str| t.parse::<f64>().ok().map(f64::to_bits);
                        assert_eq!(got.as_deref().and_then(parse), parse(v), "{entity} at {at}: {text}");
                    }
                    Some(_) => assert_eq!(body["error"]["code"], "stale_value", "{entity} at {at}: {body}"),
                    None => assert!(
                        matches!(body["error"]["code"].as_str(), Some("no_value" | "before_online_history")),
                        "{entity} at {at}: {body}"
                    ),
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");

    // Errors: stable codes, never a 500.
    for (url, status, code) in [
        ("/feature-store/lookup?entity_id=500002&feature_name=nope", 404, "unknown_feature"),
        ("/feature-store/lookup?entity_id=999999999&feature_name=sma_20", 404, "unknown_entity"),
        ("/feature-store/lookup?entity_id=500002&feature_name=sma_20&timestamp=yesterday", 400, "bad_timestamp"),
        ("/feature-store/lookup?entity_id=500002&feature_name=sma_20&feature_view=nope", 404, "unknown_view"),
        ("/feature-store/lookup?feature_name=sma_20", 400, "bad_request"),
        (
            "/feature-store/lookup?entity_id=500002&feature_name=sma_20&timestamp=2030-01-01T00:00:00Z",
            404,
            "stale_value",
        ),
        ("/feature-store/lookup?entity_id=500002';drop table bhavcopy;--&feature_name=sma_20", 404, "unknown_entity"),
        ("/feature-store/runs/r-nope", 404, "unknown_run"),
        ("/nope", 404, "not_found"),
    ] {
        let (s, body) = get(&format!("{}{url}", server.base), None);
        assert_eq!((s, body["error"]["code"].as_str()), (status, Some(code)), "{url}: {body}");
    }

    // The seed's JSON body on GET.
    let (s, body) = send(
        reqwest::Client::new()
            .get(format!("{}/feature-store/lookup", server.base))
            .header("content-type", "application/json")
            .body(r#"{"entity_id": 500002, "feature_name": "rsi_14", "timestamp": "2015-04-10T12:00:00Z"}"#),
    );
    assert_eq!(s, 200, "{body}");

    // Batch: per-entity errors inline.
    let (s, body) = post(
        &format!("{}/feature-store/lookup/batch", server.base),
        &serde_json::json!({"entity_ids": ["500002", 500003, "NOSUCH"], "feature_names": ["sma_20", "ema_12"], "timestamp": "2015-04-10T12:00:00Z"}),
    );
    assert_eq!(s, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["features"]["sma_20"]["timestamp"], "2015-04-09T10:00:00Z", "rule available");
    assert_eq!(results[2]["error"], "unknown_entity");

    let (s, doc) = get(&format!("{}/openapi.json", server.base), None);
    assert_eq!(s, 200);
    assert!(doc["paths"]["/feature-store/lookup"].is_object());
    let metrics = get_text(&format!("{}/metrics", server.base));
    assert!(metrics.contains("bhavstore_lookups_total "), "{metrics}");

    // Ingest through the API: the remaining files from a file:// location, then the view is
    // materialized and the online store serves the new days.
    for f in &files[60..] {
        std::fs::copy(f, extra.path().join(f.file_name().unwrap())).unwrap();
    }
    let (s, body) = post(
        &format!("{}/feature-store/ingest", server.base),
        &serde_json::json!({"feature_view": "price_features", "data_source": format!("file://{}", extra.path().display()),
                             "features": ["sma_20"], "timestamp": "2015-05-11T20:00:00Z"}),
    );
    assert!(s == 200 || s == 202, "{body}");
    let run_id = body["run_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, r) = get(&format!("{}/feature-store/runs/{run_id}", server.base), None);
        if r["status"] == "succeeded" {
            break;
        }
        assert_ne!(r["status"], "failed", "{r}");
        assert!(Instant::now() < deadline, "ingest did not finish: {r}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (s, body) = lookup("500002", "sma_20", "2015-05-11T13:00:00Z");
    assert_eq!((s, body["trade_date"].as_str()), (200, Some("2015-05-11")), "{body}");
    let (s, body) = post(
        &format!("{}/feature-store/ingest", server.base),
        &serde_json::json!({"feature_view": "price_features", "data_source": "last tuesday"}),
    );
    assert_eq!((s, body["error"]["code"].as_str()), (400, Some("bad_data_source")), "{body}");
}

#[test]
fn tokens_guard_everything_but_health() {
    let Some(dir) = real_data_dir() else { return };
    let files = files_2015(&dir.join("legacy-eq-14col/2015"));
    let root = Root::local();
    root.import(&files[..25]);
    cli(&root, &["materialize", "price_features"]);
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("bhavstore.yaml");
    std::fs::write(&cfg, "server:\n  tokens: [s3cret-token]\n").unwrap();
    let server = serve(&root, Some(&cfg));
    let url = format!(
        "{}/feature-store/lookup?entity_id=500002&feature_name=close&timestamp=2015-02-10T12:00:00Z",
        server.base
    );
    let (s, body) = get(&url, None);
    assert_eq!((s, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(get(&url, Some("wrong")).0, 401);
    assert_eq!(get(&url, Some("s3cret-token")).0, 200);
    assert_eq!(get(&format!("{}/health", server.base), None).0, 200);
}
