//! `bhavstore_quality` against an independent computation from the raw 2015 files
//! (`scripts/crosscheck/quality_reference.py`), and thresholds turning a run into a warning.

use std::path::PathBuf;
use std::process::Command;

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::real_data::real_data_dir;
use bhavstore_e2e::storage_roots::Root;

fn repo() -> PathBuf {
    bhavstore_e2e::crate_dir().join("..")
}

fn cli(root: &Root, config: Option<&std::path::Path>, args: &[&str]) -> std::process::Output {
    let mut c = bhavstore();
    root.apply(&mut c);
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    c.arg("--feature-defs").arg(repo().join("feature_defs"));
    run(c.args(args))
}

#[test]
fn quality_figures_match_an_independent_computation() {
    let Some(dir) = real_data_dir() else { return };
    let set = dir.join("legacy-eq-14col/2015");
    let root = Root::local();
    root.import([&set]);
    let o = cli(&root, None, &["materialize", "price_features"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let q = cli(
        &root,
        None,
        &["query", "--format", "csv", "select * from bhavstore_quality where view = 'price_features'"],
    );
    assert!(q.status.success(), "{}", stderr(&q));
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("quality.csv");
    std::fs::write(&export, &q.stdout).unwrap();
    let f = cli(&root, None, &["query", "--format", "csv", "select * from price_features"]);
    assert!(f.status.success(), "{}", stderr(&f));
    let features = tmp.path().join("price.csv");
    std::fs::write(&features, &f.stdout).unwrap();
    assert_eq!(stdout(&q).lines().count(), 1 + 14 + 1, "one row per feature and one for the view");
    let o = Command::new("python3")
        .arg(repo().join("scripts/crosscheck/quality_reference.py"))
        .arg("--bse-dir")
        .arg(&set)
        .arg("--quality")
        .arg(&export)
        .arg("--features")
        .arg(&features)
        .output()
        .expect("python3 runs (scripts/install-deps installs pandas)");
    assert!(o.status.success(), "independent reference disagrees:\n{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("OK: 44 quality figures"), "{}", stdout(&o));
}

#[test]
fn crossing_a_threshold_makes_the_run_a_warning() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    root.import([dir.join("legacy-eq-14col/2015")]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bhavstore.yaml");
    std::fs::write(&cfg, "materialize:\n  quality:\n    max_psi: 0.05\n    max_null_rate: 0.1\n").unwrap();
    let o = cli(&root, Some(&cfg), &["materialize", "price_features"]);
    assert!(o.status.success(), "a warning is not a failure: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(": warning (full)"), "{out}");
    assert!(out.contains("warning: sma_50: NULL rate"), "{out}");
    assert!(out.contains("drift (PSI)"), "{out}");
    let runs = cli(&root, None, &["query", "--format", "csv", "select status, warnings from bhavstore_runs"]);
    let runs = stdout(&runs);
    assert!(runs.contains("warning,") && runs.contains("exceeds 0.05"), "{runs}");
}
