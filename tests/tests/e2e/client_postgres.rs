//! The Postgres clients people already use, each the way its users use it, against `bhavstore
//! serve` on the 2015 files: SQLAlchemy 2 (psycopg2 and psycopg dialects) with pandas and
//! polars, asyncpg pools and cursors, connectorx and the ADBC Postgres driver, psycopg 3's
//! named cursors, savepoints and binary COPY, pgcli's metadata, psql's meta-commands, pgJDBC's
//! `DatabaseMetaData`, node-postgres and postgres.js. The programs live in `tests/clients/`;
//! each prints `ok <check>` or `FAIL <check>: why` and exits non-zero on any failure, and can be
//! run by hand against any server (`BHAVSTORE_PG_*`).

use std::path::{Path, PathBuf};
use std::process::Command;

use bhavstore_e2e::bin::{stderr, stdout};
use bhavstore_e2e::serve::Serve;
use bhavstore_e2e::storage_roots::Root;

const USER: &str = "quant";
const PASSWORD: &str = "s3cret-pa55";

/// Every 2015 file imported and materialized, and a config with a login.
fn fixture() -> Option<(Root, tempfile::TempDir)> {
    let root = Root::local_2015_materialized()?;
    let cfg = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        cfg.path().join("bhavstore.yaml"),
        format!("server:\n  users:\n    - name: {USER}\n      password_env: TEST_PG_PASSWORD\n"),
    )
    .expect("config");
    Some((root, cfg))
}

fn clients_dir() -> PathBuf {
    bhavstore_e2e::crate_dir().join("clients")
}

/// Runs one client program against a fresh server and asserts it passed every check.
fn run_client(program: &str, args: &[&str], dir: &str) {
    let Some((root, cfg)) = fixture() else { return };
    let server = Serve::start(&root, Some(&cfg.path().join("bhavstore.yaml")), &[("TEST_PG_PASSWORD", PASSWORD)]);
    let (host, port) = server.pg_host_port();
    let o = Command::new(program)
        .args(args)
        .current_dir(clients_dir().join(dir))
        .env("BHAVSTORE_PG_HOST", &host)
        .env("BHAVSTORE_PG_PORT", port.to_string())
        .env("BHAVSTORE_PG_USER", USER)
        .env("BHAVSTORE_PG_PASSWORD", PASSWORD)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/install-deps installs the clients)"));
    let out = stdout(&o);
    let failed: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    let passed = out.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(
        o.status.success() && failed.is_empty() && passed > 0,
        "{program} {args:?}: {passed} passed, {} failed:\n{}\n{}",
        failed.len(),
        failed.join("\n"),
        stderr(&o)
    );
}

#[test]
fn python_clients_sqlalchemy_pandas_polars_asyncpg_psycopg_pgcli() {
    run_client("python3", &["pg_matrix.py"], "python");
}

/// The same SQLAlchemy, pandas and polars checks under SQLAlchemy 2.0 (the venv
/// `scripts/install-deps` makes beside the system's 2.1).
#[test]
fn python_clients_under_sqlalchemy_2_0() {
    let venv = std::env::var("BHAVSTORE_SA20_VENV").map_or_else(
        |_| Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cache/bhavstore-sa20"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} missing: run scripts/install-deps", python.display());
    let python = python.display().to_string();
    run_client(
        &python,
        &["pg_matrix.py", "sqlalchemy", "pandas", "polars_read_database_sqlalchemy", "version"],
        "python",
    );
}

#[test]
fn psql_meta_commands() {
    run_client("bash", &["meta_commands.sh"], "psql");
}

#[test]
fn jdbc_reads_and_database_metadata() {
    run_client("java", &["-cp", "/usr/share/java/postgresql.jar", "Matrix.java"], "jdbc");
}

#[test]
fn node_postgres_and_postgres_js() {
    run_client("node", &["matrix.mjs"], "node");
}
