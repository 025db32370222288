//! Flight SQL and REST from the clients users reported them with: the ADBC Flight SQL driver with
//! `?` placeholders (its `paramstyle = 'qmark'`) and `executemany`, and Schemathesis checking
//! the REST API against its own `/openapi.json` with every check on.

use std::process::Command;

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::real_data::{files_2015, real_data_dir};
use bhavstore_e2e::serve::{Serve, feature_defs};
use bhavstore_e2e::storage_roots::Root;
use serde_json::Value;

const USER: &str = "quant";
const PASSWORD: &str = "s3cret-pa55";
const TOKEN: &str = "training-token-1";

/// A local root with the first 45 trade dates of 2015 imported and materialized, and a config
/// with a user and a token; `None` (the test skips, saying why) without the real files.
fn fixture() -> Option<(Root, tempfile::TempDir)> {
    let dir = real_data_dir()?;
    let files = files_2015(&dir.join("legacy-eq-14col/2015"));
    let root = Root::local();
    root.import(&files[..45.min(files.len())]);
    let o = {
        let mut c = bhavstore();
        root.apply(&mut c);
        run(c.arg("--feature-defs").arg(feature_defs()).arg("materialize"))
    };
    assert!(o.status.success(), "materialize: {}", stderr(&o));
    let cfg = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        cfg.path().join("bhavstore.yaml"),
        format!("server:\n  users:\n    - name: {USER}\n      password_env: TEST_PG_PASSWORD\n  tokens: [{TOKEN}]\n"),
    )
    .expect("config");
    Some((root, cfg))
}

fn start(root: &Root, cfg: &tempfile::TempDir) -> Serve {
    Serve::start(root, Some(&cfg.path().join("bhavstore.yaml")), &[("TEST_PG_PASSWORD", PASSWORD)])
}

fn client_script(path: &str) -> std::path::PathBuf {
    bhavstore_e2e::crate_dir().join("clients").join(path)
}

#[test]
fn adbc_qmark_placeholders_and_executemany_over_flight_sql() {
    let Some((root, cfg)) = fixture() else { return };
    let server = start(&root, &cfg);
    let script = client_script("flight/adbc_qmark.py");
    let o =
        Command::new("python3").arg(&script).args([server.flight.as_str(), USER, PASSWORD]).output().expect("python3");
    assert!(o.status.success(), "adbc_qmark.py: {}\n{}\nserver: {:?}", stderr(&o), stdout(&o), server.logs());
    let out = stdout(&o);
    let seen: Value =
        serde_json::from_str(out.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {out}"));
    // The script checks each point itself; the essentials again, so a failure reads here too.
    assert!(seen["qmark_rows"].as_u64().is_some_and(|n| n > 5), "{seen}");
    assert_eq!(seen["parameter_schema"], serde_json::json!(["$1:int32", "$2:date32[day]"]), "{seen}");
    assert_eq!(seen["executemany_query_rowcount"], 0, "{seen}");
    for key in ["executemany_write", "raw_statement_update", "raw_prepared_update"] {
        let text = seen[key].as_str().unwrap_or_default();
        assert!(text.contains("read-only"), "{key}: {text}");
    }
}

#[test]
fn rest_api_passes_schemathesis_with_every_check() {
    let Some((root, cfg)) = fixture() else { return };
    let server = start(&root, &cfg);
    let o = Command::new("bash")
        .arg(client_script("rest/schemathesis.sh"))
        .env("BHAVSTORE_HTTP", &server.http)
        .env("BHAVSTORE_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
        .output()
        .expect("bash");
    assert!(o.status.success(), "schemathesis: {}\n{}", stdout(&o), stderr(&o));
    // The exit status is the verdict; both runs (every operation but ingest, then ingest with
    // schema-violating requests) must have tested something.
    let out = stdout(&o);
    assert_eq!(out.matches(" generated, ").count(), 2, "{out}");
}
