//! The Python client (`clients/python`, package `bhavstore`) against a live `bhavstore serve`
//! on the 2015 files: its own pytest suite (`clients/python/tests`), which checks every call
//! (training sets against SQL and an independent `merge_asof`, online features against REST,
//! `sql`, the registry, lineage, push and the live stream, wrong credentials, unknown features).

use std::process::Command;

use bhavstore_e2e::bin::{stderr, stdout};
use bhavstore_e2e::serve::Serve;
use bhavstore_e2e::storage_roots::Root;

const USER: &str = "quant";
const PASSWORD: &str = "s3cret-pa55";
const TOKEN: &str = "training-token-1";
const WRITE_TOKEN: &str = "writer-token-1";

#[test]
fn python_client_every_call_against_a_live_server() {
    let Some(root) = Root::local_2015_materialized() else { return };
    let cfg = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        cfg.path().join("bhavstore.yaml"),
        format!(
            "server:\n  users:\n    - name: {USER}\n      password_env: TEST_PG_PASSWORD\n  tokens:\n    - {TOKEN}\n    - {{ token: {WRITE_TOKEN}, roles: [write] }}\n"
        ),
    )
    .expect("config");
    let server = Serve::start(&root, Some(&cfg.path().join("bhavstore.yaml")), &[("TEST_PG_PASSWORD", PASSWORD)]);
    let tests = bhavstore_e2e::crate_dir().join("../clients/python/tests");
    let o = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"])
        .arg(&tests)
        .env("BHAVSTORE_FLIGHT", format!("grpc://{}", server.flight))
        .env("BHAVSTORE_HTTP", format!("http://{}", server.http))
        .env("BHAVSTORE_USER", USER)
        .env("BHAVSTORE_PASSWORD", PASSWORD)
        .env("BHAVSTORE_TOKEN", TOKEN)
        .env("BHAVSTORE_WRITE_TOKEN", WRITE_TOKEN)
        .output()
        .expect("python3 -m pytest (scripts/install-deps installs the client and pytest)");
    let out = stdout(&o);
    assert!(o.status.success(), "pytest:\n{out}\n{}", stderr(&o));
    // Every test ran: nothing skipped for want of a server feature.
    assert!(!out.contains("skipped"), "tests were skipped:\n{out}");
}
