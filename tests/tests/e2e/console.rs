//! The web console (`/ui`) in headless Chromium (Debian's `chromium`, driven by playwright-core
//! from `tests/clients/console/console.mjs`) against a server on the real 2015 files: two
//! versions of `price_features` (an older definition with a different window, then the
//! repository's), three incremental runs of the current one (so quality has a history), and a
//! token. Every page must render real data without a console error or a failed request, and a
//! PNG of each page is saved to `$CARGO_TARGET_DIR/console-screenshots/` (printed).

use std::path::{Path, PathBuf};
use std::process::Command;

use bhavstore_e2e::bin::{stderr, stdout};
use bhavstore_e2e::real_data::{files_2015, real_data_dir};
use bhavstore_e2e::serve::{Serve, feature_defs};
use bhavstore_e2e::storage_roots::Root;
use serde_json::Value;

const TOKEN: &str = "console-token";

fn client_dir() -> PathBuf {
    bhavstore_e2e::crate_dir().join("clients/console")
}

/// Where the screenshots go: `$CARGO_TARGET_DIR/console-screenshots`, or beside the test binary's
/// target folder.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or_else(|| {
        // target/{profile}/deps/e2e-...: three levels up is the target folder.
        std::env::current_exe().ok().and_then(|p| p.ancestors().nth(3).map(Path::to_path_buf))
    });
    target.unwrap_or_else(std::env::temp_dir).join("console-screenshots")
}

/// A copy of the repository's definitions whose `price_features` computes `sma_50` over 40
/// rows: another version of the view, for the diff.
fn older_defs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for e in std::fs::read_dir(feature_defs()).expect("feature_defs").flatten() {
        std::fs::copy(e.path(), dir.path().join(e.file_name())).expect("copy");
    }
    let sql = dir.path().join("price_features.sql");
    let text = std::fs::read_to_string(&sql).expect("sql");
    let from = "sma(close * adj_factor, 50) OVER w / adj_factor AS sma_50";
    assert!(text.contains(from), "price_features.sql changed; update this test's edit");
    std::fs::write(&sql, text.replace(from, "sma(close * adj_factor, 40) OVER w / adj_factor AS sma_50"))
        .expect("write");
    dir
}

#[test]
fn console_pages_render_real_data_in_headless_chromium() {
    let Some(dir) = real_data_dir() else { return };
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "/usr/bin/chromium is missing: run scripts/install-deps (apt chromium)"
    );
    assert!(
        client_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run scripts/install-deps (npm ci in tests/clients/console)"
    );
    let files = files_2015(&dir.join("legacy-eq-14col/2015"));
    let root = Root::local();
    root.import(&files[..30]);
    let older = older_defs();
    let _ = root.run_ok(older.path(), &["materialize"]);
    let _ = root.run_ok(&feature_defs(), &["materialize"]);
    // Two more incremental runs: quality figures over three trade dates.
    root.import(&files[30..45]);
    let _ = root.run_ok(&feature_defs(), &["materialize"]);
    root.import(&files[45..60]);
    let _ = root.run_ok(&feature_defs(), &["materialize"]);

    let cfg = tempfile::tempdir().expect("tmp");
    let cfg_file = cfg.path().join("bhavstore.yaml");
    std::fs::write(&cfg_file, format!("server:\n  tokens: [{{token: {TOKEN}, roles: [write]}}]\n")).expect("config");
    let server = Serve::start(&root, Some(&cfg_file), &[]);
    let base = format!("http://{}", server.http);

    // The data endpoints take the same token as the API; the page itself holds no data.
    let unauth = get(&format!("{base}/ui/api/views"), None);
    assert_eq!(unauth.0, 401, "{}", unauth.1);
    let page = get(&format!("{base}/ui"), None);
    assert_eq!(page.0, 200);
    assert!(page.1.contains("/ui/app.js"), "{}", page.1);
    let bad = get(&format!("{base}/ui/api/definition?view=../x&version=v1"), Some(TOKEN));
    assert_eq!(bad.0, 400, "{}", bad.1);

    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let o = Command::new("node")
        .arg("console.mjs")
        .current_dir(client_dir())
        .env("CONSOLE_BASE", &base)
        .env("CONSOLE_TOKEN", TOKEN)
        .env("CONSOLE_SCREENSHOTS", &shots)
        .env("CONSOLE_ENTITY", "511064")
        .output()
        .expect("node (scripts/install-deps installs nodejs)");
    assert!(o.status.success(), "console.mjs: {}\n{}", stderr(&o), stdout(&o));
    let r: Value = serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    eprintln!("console screenshots: {}", shots.display());
    assert!(r["error"].is_null(), "the driver failed: {}\n{r:#}", r["error"].as_str().unwrap_or_default());
    assert_eq!(r["consoleErrors"], Value::Array(vec![]), "console errors: {r:#}");
    assert_eq!(r["failedRequests"], Value::Array(vec![]), "failed requests: {r:#}");
    assert_eq!(r["externalRequests"], Value::Array(vec![]), "the console fetched from elsewhere: {r:#}");
    assert!(r["csp"].as_str().is_some_and(|c| c.contains("script-src 'self'")), "{r:#}");
    assert!(r["loginPrompt"].as_str().is_some_and(|t| t.contains("token")), "{r:#}");

    // Views: the list, the current definition's SQL and YAML, two versions and their diff.
    let views: Vec<&str> = r["views"].as_array().expect("views").iter().filter_map(Value::as_str).collect();
    assert!(views.contains(&"price_features") && views.contains(&"volatility_features"), "{views:?}");
    assert!(r["sql"].as_str().is_some_and(|s| s.contains("sma(close * adj_factor, 50)")), "{r:#}");
    assert!(r["yaml"].as_str().is_some_and(|s| s.contains("name: price_features")), "{r:#}");
    assert_eq!(r["versions"].as_array().map(Vec::len), Some(2), "{r:#}");
    let sql_diff = &r["diff"][0];
    assert!(
        sql_diff["removed"].as_array().is_some_and(|l| l.iter().any(|x| x.as_str().is_some_and(|s| s.contains("40)"))))
            && sql_diff["added"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x.as_str().is_some_and(|s| s.contains("50)")))),
        "the SQL diff shows the window change: {r:#}"
    );
    assert_eq!(r["diff"][1]["changed"], 0, "the YAML is the same: {r:#}");

    // Runs: every materialization, succeeded (three views × four runs, at least).
    let runs = r["runs"].as_array().expect("runs");
    assert!(runs.len() >= 8, "{runs:?}");
    assert!(runs.iter().all(|x| x["status"] != "failed"), "{runs:?}");
    assert!(runs.iter().filter(|x| x["status"] == "succeeded").count() >= 8, "{runs:?}");

    // Quality: every feature of price_features, PSI and NULL-rate charts over three dates.
    let quality = r["quality"].as_array().expect("quality");
    assert_eq!(quality.len(), 14, "{quality:?}");
    for q in quality {
        assert_eq!(q["charts"], 2, "{q}");
        // Three dates of NULL rate; PSI where the feature had enough values (sma_50 not early on).
        assert!(q["points"].as_u64().is_some_and(|n| (4..=6).contains(&n)), "{q}");
        assert!(q["lines"].as_u64() >= Some(1), "{q}");
    }

    // Series: 511064 split 10:1 on 2015-03-11, so raw and adjusted closes differ; sma_20 has a
    // point for every session from its 20th on; a clicked point shows its raw files.
    let points = r["seriesPoints"].as_u64().expect("points");
    assert!((30..=60).contains(&points), "{r:#}");
    assert_eq!(r["pricePolylines"], 2, "{r:#}");
    assert!(r["seriesHeading"].as_str().is_some_and(|h| h.contains("adjusted differs")), "{r:#}");
    let date = r["clickedDate"].as_str().expect("clicked");
    assert!(r["lineageHeading"].as_str().is_some_and(|h| h.contains(date) && h.contains("511064")), "{r:#}");
    let inputs = r["lineageInputs"].as_array().expect("lineage inputs");
    assert!(inputs.len() >= 20, "sma_20 reads at least 20 sessions: {inputs:?}");
    assert_eq!(inputs[0][0], date, "{inputs:?}");
    let key = inputs[0][1].as_str().expect("raw key");
    assert!(key.starts_with("raw/bse/equity/") && key.to_ascii_uppercase().ends_with(".CSV"), "{key}");

    // Live: values pushed after subscribing appear on the page.
    let live = &r["live"];
    assert_eq!(live["configured"], true, "{r:#}");
    assert_eq!(live["pushed"], serde_json::json!([200, 200, 200, 200, 200]), "{r:#}");
    assert!(live["count"].as_str().is_some_and(|c| c.starts_with("5 ")), "{r:#}");
    assert_eq!(live["close"], "104", "{r:#}");

    let shots_made: Vec<&str> = r["screenshots"].as_array().expect("shots").iter().filter_map(Value::as_str).collect();
    assert_eq!(shots_made.len(), 5, "{shots_made:?}");
    for s in shots_made {
        let len = std::fs::metadata(s).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{s} is {len} bytes");
    }
}

/// A GET; `(status, body)`.
fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut r = reqwest::Client::new().get(url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    })
}
