//! The command line as a user meets it: help, configuration precedence, errors that name what
//! is wrong, and query output formats.

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::fake_bse::{FakeBse, Route};
use bhavstore_e2e::real_data::real_data_dir;
use bhavstore_e2e::storage_roots::Root;

#[test]
fn help_lists_every_command() {
    let o = run(bhavstore().arg("--help"));
    assert!(o.status.success());
    let out = stdout(&o);
    for c in ["ingest", "backfill", "import", "query", "--storage", "--config", "BHAVSTORE_"] {
        assert!(out.contains(c), "--help lacks {c}: {out}");
    }
    let o = run(bhavstore().args(["backfill", "--help"]));
    for c in ["--from", "--to", "--days", "--jobs", "--source-url", "--refetch"] {
        assert!(stdout(&o).contains(c), "backfill --help lacks {c}");
    }
}

#[test]
fn unknown_yaml_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bhavstore.yaml");
    std::fs::write(&cfg, "storage:\n  url: ./data\nsource:\n  retires: 3\n").unwrap();
    let o = run(bhavstore().arg("--config").arg(&cfg).args(["query", "select 1"]));
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("retires") && err.contains("bhavstore.yaml"), "{err}");
}

/// defaults < YAML < BHAVSTORE_* < flags, observed through where data lands and where it is
/// fetched from.
#[test]
fn configuration_precedence() {
    let Some(dir) = real_data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (yaml_root, env_root, flag_root) = (tmp.path().join("yaml"), tmp.path().join("env"), tmp.path().join("flag"));
    let good = FakeBse::start();
    good.set("EQ050115_CSV.ZIP", Route::File(std::fs::read(dir.join("legacy-eq-14col/2015/EQ050115.CSV")).unwrap()));
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("storage:\n  url: {}\nsource:\n  base_url: http://127.0.0.1:9\n  retries: 0\n", yaml_root.display()),
    )
    .unwrap();
    let ingest = || {
        let mut c = bhavstore();
        c.arg("--config").arg(&cfg).args(["ingest", "--date", "2015-01-05"]);
        c
    };
    // YAML storage, env source URL.
    let o = run(ingest().env("BHAVSTORE_SOURCE_URL", good.url()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(yaml_root.join("parquet/bse/equity/trade_date=2015-01-05/bhavcopy.parquet").is_file());
    // Env storage beats YAML.
    let o = run(ingest().env("BHAVSTORE_SOURCE_URL", good.url()).env("BHAVSTORE_STORAGE", &env_root));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(env_root.join("parquet/bse/equity/trade_date=2015-01-05/bhavcopy.parquet").is_file());
    // Flags beat env: --storage and --source-url.
    let mut c = ingest();
    c.env("BHAVSTORE_STORAGE", &env_root).env("BHAVSTORE_SOURCE_URL", "http://127.0.0.1:9");
    c.arg("--source-url").arg(good.url()).arg("--storage").arg(format!("file://{}", flag_root.display()));
    let o = run(&mut c);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(flag_root.join("parquet/bse/equity/trade_date=2015-01-05/bhavcopy.parquet").is_file());
    // And with only the YAML's unreachable source, the error says so.
    let o = run(&mut ingest());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot reach http://127.0.0.1:9/"), "{}", stderr(&o));
}

#[test]
fn bad_values_are_refused_with_the_name() {
    let o = run(bhavstore().env("BHAVSTORE_BACKFILL_JOBS", "lots").args(["query", "select 1"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("BHAVSTORE_BACKFILL_JOBS"), "{}", stderr(&o));
    let o = run(bhavstore().args(["--storage", "ftp://x/y", "query", "select 1"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("supported schemes are file:// and s3://"), "{}", stderr(&o));
    let o = run(bhavstore().args(["backfill", "--from", "2015-02-10"]));
    assert_eq!(o.status.code(), Some(2), "--from needs --to");
}

#[test]
fn query_output_formats_and_sql_errors() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    root.import([dir.join("legacy-eq-14col/2015/EQ050115.CSV")]);
    let q = |fmt: &str, sql: &str| {
        let mut c = bhavstore();
        root.apply(&mut c);
        run(c.args(["query", "--format", fmt, sql]))
    };
    let sql =
        "select scrip_code, name, close, trade_date from bhavcopy where scrip_code in (500002, 500003) order by 1";
    let o = q("csv", sql);
    assert_eq!(
        stdout(&o),
        "scrip_code,name,close,trade_date\n500002,ABB LTD.,1285.3,2015-01-05\n500003,AEGIS LOGIS,442.65,2015-01-05\n"
    );
    let o = q("json", sql);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["scrip_code"], 500002);
    assert_eq!(v[1]["close"], 442.65);
    assert_eq!(v[1]["trade_date"], "2015-01-05");
    let o = q("table", sql);
    assert!(stdout(&o).contains("| 500002     | ABB LTD.    | 1285.3 | 2015-01-05 |"), "{}", stdout(&o));
    assert!(stdout(&o).contains("(2 rows)"));
    let o = q("table", "select no_such_column from bhavcopy");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no_such_column"), "{}", stderr(&o));
    // Columns the issue requires, with their types.
    let o = q(
        "csv",
        "select column_name, data_type from information_schema.columns where table_name = 'bhavcopy' order by ordinal_position",
    );
    let out = stdout(&o);
    for want in [
        "trade_date,Date32",
        "scrip_code,Int32",
        "isin,Utf8",
        "symbol,Utf8",
        "name,Utf8",
        "sc_group,Utf8",
        "sc_type,Utf8",
        "open,Float64",
        "high,Float64",
        "low,Float64",
        "close,Float64",
        "last,Float64",
        "prev_close,Float64",
        "volume,Int64",
        "turnover,Float64",
        "trades,Int64",
        "ex_flag,Utf8",
        "source_format,Utf8",
        "raw_sha256,Utf8",
    ] {
        assert!(out.contains(want), "missing {want} in {out}");
    }
    assert!(out.lines().nth(1).unwrap().starts_with("trade_date,"), "trade_date comes first: {out}");
}

/// A store describes itself: after `import` and `materialize`, `query` against the storage root
/// from a directory without `feature_defs/` sees the published views (from the store's
/// registry) and their history; `features` reports a local definition that differs from what
/// the store published.
#[test]
fn a_store_serves_its_published_views_from_any_directory() {
    let Some(dir) = real_data_dir() else { return };
    let files = bhavstore_e2e::real_data::files_2015(&dir.join("legacy-eq-14col/2015"));
    let root = Root::local();
    let repo_defs = bhavstore_e2e::serve::feature_defs();
    root.import(&files[..8]);
    let mut c = bhavstore();
    root.apply(&mut c);
    let o = run(c.arg("--feature-defs").arg(&repo_defs).arg("materialize"));
    assert!(o.status.success(), "{}", stderr(&o));

    let elsewhere = tempfile::tempdir().unwrap();
    let query = |sql: &str| {
        let mut c = bhavstore();
        root.apply(&mut c);
        let o = run(c.current_dir(elsewhere.path()).args(["query", "--format", "csv", sql]));
        assert!(o.status.success(), "{sql}: {}", stderr(&o));
        stdout(&o)
    };
    let from_repo = {
        let mut c = bhavstore();
        root.apply(&mut c);
        stdout(&run(c.arg("--feature-defs").arg(&repo_defs).args([
            "query",
            "--format",
            "csv",
            "select count(*) n, sum(sma_5) s from price_features",
        ])))
    };
    let from_store = query("select count(*) n, sum(sma_5) s from price_features");
    assert_eq!(from_store, from_repo, "the store's definitions read the same published state");
    assert!(from_store.lines().nth(1).is_some_and(|l| !l.starts_with("0,")), "{from_store}");
    let versions = query("select view, is_current from bhavstore_versions order by view");
    assert!(versions.contains("price_features,true") && versions.contains("volatility_features,true"), "{versions}");
    // The live form of a view comes from the stored definition too.
    let live = query("select count(*) n from \"price_features@live\"");
    assert_eq!(live.lines().nth(1), from_store.lines().nth(1).map(|l| l.split(',').next().unwrap()));

    // Training sets through `query`: the spine and the view both come from the catalog (before
    // this change `query` lost them while planning features_asof).
    let asof = query(
        "select count(*) n, count(sma_5) known from features_asof('price_features', \
         'select scrip_code, cast(trade_date as timestamp) + interval ''12 hours'' from bhavcopy where is_equity')",
    );
    let equity_rows = query("select count(*) from bhavcopy where is_equity");
    let (n, known) = asof.lines().nth(1).and_then(|l| l.split_once(',')).expect("one row");
    assert_eq!(Some(n), equity_rows.lines().nth(1), "one training row per spine row: {asof}");
    assert!(known.parse::<u64>().is_ok_and(|k| k > 0), "{asof}");

    // A local edit is reported, not silently taken for what the store serves.
    let local = tempfile::tempdir().unwrap();
    for f in ["price_features.sql", "price_features.yaml", "volatility_features.sql", "volatility_features.yaml"] {
        std::fs::copy(repo_defs.join(f), local.path().join(f)).unwrap();
    }
    let sql = std::fs::read_to_string(local.path().join("price_features.sql")).unwrap();
    std::fs::write(
        local.path().join("price_features.sql"),
        sql.replace("sma(close * adj_factor, 5)", "sma(close * adj_factor, 7)"),
    )
    .unwrap();
    let mut c = bhavstore();
    root.apply(&mut c);
    let o = run(c.arg("--feature-defs").arg(local.path()).arg("features"));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("DIFFERS from the store's newest published version"), "{out}");
    assert!(out.contains("1 local definitions differ"), "{out}");
    assert!(out.contains("store: published as v"), "volatility_features is unchanged: {out}");
}
