//! Feature views over the real 2015 bhavcopies, checked against an independent computation
//! (`scripts/crosscheck/features_reference.py`: pandas/numpy straight from the CSV files), plus
//! the loader's errors for broken definitions.

use std::path::{Path, PathBuf};
use std::process::Command;

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::real_data::real_data_dir;
use bhavstore_e2e::storage_roots::Root;

fn repo() -> PathBuf {
    bhavstore_e2e::crate_dir().join("..")
}

fn feature_defs() -> PathBuf {
    repo().join("feature_defs")
}

fn query_to_file(root: &Root, sql: &str, out: &Path) {
    let mut c = bhavstore();
    root.apply(&mut c);
    c.arg("--feature-defs").arg(feature_defs());
    let o = run(c.args(["query", "--format", "csv", sql]));
    assert!(o.status.success(), "{sql}: {}", stderr(&o));
    std::fs::write(out, &o.stdout).unwrap();
}

#[test]
fn views_over_real_2015_data_match_an_independent_computation() {
    let Some(dir) = real_data_dir() else { return };
    let set = dir.join("legacy-eq-14col/2015");
    let root = Root::local();
    root.import([&set]);

    let tmp = tempfile::tempdir().unwrap();
    let (price, vol) = (tmp.path().join("price.csv"), tmp.path().join("vol.csv"));
    let factors = tmp.path().join("factors.csv");
    query_to_file(&root, "select * from price_features", &price);
    query_to_file(&root, "select * from volatility_features", &vol);
    // The split and bonus factors bhavstore applies (inferred from the 2015 flags and jumps):
    // the reference applies them its own way, back-adjusting as of each day.
    query_to_file(
        &root,
        "select scrip_code, ex_session, price_factor from corporate_actions \
         where applied and kind in ('split', 'bonus', 'consolidation')",
        &factors,
    );
    let o = Command::new("python3")
        .arg(repo().join("scripts/crosscheck/features_reference.py"))
        .arg("--bse-dir")
        .arg(&set)
        .arg("--price")
        .arg(&price)
        .arg("--volatility")
        .arg(&vol)
        .arg("--factors")
        .arg(&factors)
        .output()
        .expect("python3 runs (scripts/install-deps installs pandas)");
    let out = stdout(&o);
    assert!(o.status.success(), "independent reference disagrees:\n{out}\n{}", stderr(&o));
    assert!(out.contains("price_features: 198437 rows"), "{out}");
    let adjusted: usize = out
        .split("adjusted as of each day: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(adjusted >= 20, "the 2015 splits and bonuses are cross-checked, not none: {out}");
    assert!(out.contains("OK: "), "{out}");
}

#[test]
fn the_issue_example_prints_reliance_series() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    root.import([dir.join("legacy-eq-14col/2015")]);
    let mut c = bhavstore();
    root.apply(&mut c);
    c.arg("--feature-defs").arg(feature_defs());
    let o = run(c.args([
        "query",
        "--format",
        "csv",
        "select * from price_features where scrip_code = 500325 order by trade_date",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 67, "RELIANCE traded every session: {out}");
    assert!(lines[0].starts_with("scrip_code,trade_date,close,return_1d,log_return_1d,sma_5,"));
    // First row: no previous session, so every look-back feature is NULL (empty in CSV).
    assert!(lines[1].starts_with("500325,2015-01-05,"), "{}", lines[1]);
    let first: Vec<&str> = lines[1].split(',').collect();
    assert!(first[3..].iter().filter(|v| v.is_empty()).count() >= 12, "{}", lines[1]);
}

fn with_defs(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn features_error(defs: &tempfile::TempDir) -> String {
    let root = Root::local();
    let mut c = bhavstore();
    root.apply(&mut c);
    c.arg("--feature-defs").arg(defs.path()).arg("features");
    let o = run(&mut c);
    assert!(!o.status.success(), "broken definitions must fail: {}", stdout(&o));
    stderr(&o)
}

const GOOD_YAML: &str = "name: v\ndescription: d\nentity: scrip_code\nevent_time: trade_date\nttl: 5d\nowner: me\nfeatures:\n  - name: sma_2\n    description: x\n";
const GOOD_SQL: &str = "SELECT scrip_code, trade_date,\n  sma(close, 2) OVER (PARTITION BY scrip_code ORDER BY trade_date) AS sma_2\nFROM bhavcopy\n";

#[test]
fn broken_definitions_fail_with_file_and_line() {
    let ok = with_defs(&[("v.yaml", GOOD_YAML), ("v.sql", GOOD_SQL)]);
    let root = Root::local();
    let mut c = bhavstore();
    root.apply(&mut c);
    let o = run(c.arg("--feature-defs").arg(ok.path()).arg("features"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 feature views"), "{}", stdout(&o));

    let e = features_error(&with_defs(&[
        ("v.yaml", &GOOD_YAML.replace("ttl: 5d", "ttl: 5d\ncolour: red")),
        ("v.sql", GOOD_SQL),
    ]));
    assert!(e.contains("v.yaml") && e.contains("colour") && e.contains("line 6"), "{e}");

    let e = features_error(&with_defs(&[
        ("v.yaml", GOOD_YAML),
        ("v.sql", "SELECT scrip_code, trade_date,\n  sma(close 2) AS sma_2\nFROM bhavcopy\n"),
    ]));
    assert!(e.contains("v.sql:2"), "parse error with its line: {e}");

    let e = features_error(&with_defs(&[("v.yaml", GOOD_YAML), ("v.sql", &GOOD_SQL.replace("close", "closing"))]));
    assert!(e.contains("v.sql:2") && e.contains("closing"), "plan error with its line: {e}");

    let e = features_error(&with_defs(&[
        ("v.yaml", &format!("{GOOD_YAML}  - name: ema_9\n    description: y\n")),
        ("v.sql", GOOD_SQL),
    ]));
    assert!(e.contains("v.yaml:10") && e.contains("ema_9") && e.contains("does not produce it"), "{e}");

    let e = features_error(&with_defs(&[
        ("v.yaml", &GOOD_YAML.replace("event_time: trade_date", "event_time: ts")),
        ("v.sql", GOOD_SQL),
    ]));
    assert!(e.contains("v.yaml:4") && e.contains("\"ts\""), "{e}");

    let e = features_error(&with_defs(&[("v.yaml", GOOD_YAML)]));
    assert!(e.contains("no SQL for view"), "{e}");

    let e = features_error(&with_defs(&[("v.yaml", GOOD_YAML), ("v.sql", GOOD_SQL), ("w.sql", GOOD_SQL)]));
    assert!(e.contains("w.sql") && e.contains("no YAML"), "{e}");

    let e = features_error(&with_defs(&[
        ("v.yaml", GOOD_YAML),
        ("v.sql", &GOOD_SQL.replace("sma(close, 2)", "sma(close, 0)")),
    ]));
    assert!(e.contains("sma") && e.contains("v.sql"), "bad window argument: {e}");

    // The YAML's price basis and window unit name the table the SQL must read.
    for (yaml, table) in [
        ("prices: adjusted", "bhavcopy_adjusted"),
        ("window_unit: session", "bhavcopy_sessions"),
        ("prices: total_return\nwindow_unit: session", "bhavcopy_total_return_sessions"),
    ] {
        let e = features_error(&with_defs(&[
            ("v.yaml", &GOOD_YAML.replace("owner: me", &format!("owner: me\n{yaml}"))),
            ("v.sql", GOOD_SQL),
        ]));
        assert!(e.contains("v.yaml") && e.contains(&format!("the SQL must read {table}, but it reads")), "{yaml}: {e}");
    }
    let ok = with_defs(&[
        ("v.yaml", &GOOD_YAML.replace("owner: me", "owner: me\nprices: adjusted")),
        ("v.sql", &GOOD_SQL.replace("FROM bhavcopy", "FROM bhavcopy_adjusted")),
    ]);
    let mut c = bhavstore();
    root.apply(&mut c);
    let o = run(c.arg("--feature-defs").arg(ok.path()).arg("features"));
    assert!(stdout(&o).contains("prices: adjusted (reads bhavcopy_adjusted)"), "{}{}", stdout(&o), stderr(&o));
}
