//! Storage behaviour on both backends: the local filesystem and a real S3 server (SeaweedFS).
//! Raw bytes are immutable, identical bytes are stored once, revisions accumulate, the table is
//! readable through the catalog, and a day ingested by another process shows up without a restart.

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::real_data::real_data_dir;
use bhavstore_e2e::storage_roots::Root;
use bhavstore_ingest::{Ingested, Ingestor, Provenance, raw};
use bhavstore_storage::Created;
use bytes::Bytes;
use chrono::NaiveDate;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;

fn prov() -> Provenance {
    Provenance {
        kind: "import".into(),
        source: "test".into(),
        fetched_at: chrono::Utc::now(),
        http_status: None,
        content_type: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_puts_never_overwrite() {
    for root in Root::all("create-only") {
        let s = root.open();
        assert_eq!(
            s.put_create("x/one", Bytes::from_static(b"first")).await.unwrap(),
            Created::New,
            "[{}]",
            root.label()
        );
        assert_eq!(
            s.put_create("x/one", Bytes::from_static(b"second")).await.unwrap(),
            Created::AlreadyExisted,
            "[{}]",
            root.label()
        );
        assert_eq!(s.get("x/one").await.unwrap().unwrap(), Bytes::from_static(b"first"), "[{}]", root.label());
        assert_eq!(s.get("x/missing").await.unwrap(), None);
        assert_eq!(s.list("x").await.unwrap(), vec!["x/one".to_string()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_revisions_identical_bytes_once_newer_wins() {
    let Some(dir) = real_data_dir() else { return };
    let path = dir.join("legacy-eq-14col/2015/EQ050115.CSV");
    let original = Bytes::from(std::fs::read(&path).unwrap());
    let day = NaiveDate::from_ymd_opt(2015, 1, 5).unwrap();
    for root in Root::all("revisions") {
        let s = root.open();
        let ing = Ingestor::new(s.clone());
        let label = root.label();
        let first = ing.ingest_bytes("EQ050115.CSV", original.clone(), prov(), None).await.unwrap();
        assert!(matches!(first, Ingested::Loaded { superseded: None, .. }), "[{label}] {first:?}");
        let again = ing.ingest_bytes("EQ050115.CSV", original.clone(), prov(), None).await.unwrap();
        assert!(matches!(again, Ingested::Unchanged { older_than_latest: false, .. }), "[{label}] {again:?}");
        assert_eq!(raw::revisions(&s, day).await.unwrap().len(), 1, "[{label}]");

        // Different bytes for the same day: kept beside the first, and they win.
        let changed = Bytes::from(String::from_utf8_lossy(&original).replacen("1285.30,1286.90", "1285.35,1286.90", 1));
        let second = ing.ingest_bytes("EQ050115.CSV", changed.clone(), prov(), None).await.unwrap();
        assert!(matches!(&second, Ingested::Loaded { superseded: Some(_), .. }), "[{label}] {second:?}");
        let revs = raw::revisions(&s, day).await.unwrap();
        assert_eq!(revs.len(), 2, "[{label}]");
        assert_eq!(revs[0].sha256, raw::sha256_hex(&original));
        assert_eq!(revs[1].sha256, raw::sha256_hex(&changed));
        // Both raw objects are still byte for byte what came in.
        assert_eq!(s.get(&revs[0].key).await.unwrap().unwrap(), original, "[{label}]");
        assert_eq!(s.get(&revs[1].key).await.unwrap().unwrap(), changed, "[{label}]");
        assert_eq!(revs[1].size, changed.len() as u64);
        assert_eq!(revs[1].provenance.kind, "import");

        // The old bytes again: a no-op; the newer revision stays in force.
        let old = ing.ingest_bytes("EQ050115.CSV", original.clone(), prov(), None).await.unwrap();
        assert!(matches!(old, Ingested::Unchanged { older_than_latest: true, .. }), "[{label}] {old:?}");
        let ctx = bhavstore_lake::session(&s).unwrap();
        let b = ctx
            .sql("select close, raw_sha256 from bhavcopy where scrip_code = 500002")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            b[0].column(0).as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(0),
            1285.35,
            "[{label}]"
        );
        assert_eq!(b[0].column(1).as_string::<i32>().value(0), revs[1].sha256, "[{label}]");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_days_appear_without_a_new_session() {
    let Some(dir) = real_data_dir() else { return };
    for root in Root::all("live-catalog") {
        let s = root.open();
        let ctx = bhavstore_lake::session(&s).unwrap();
        let count = || async {
            let b = ctx.sql("select count(distinct trade_date) from bhavcopy").await.unwrap().collect().await.unwrap();
            b[0].column(0).as_primitive::<Int64Type>().value(0)
        };
        assert_eq!(count().await, 0, "[{}] empty storage is an empty table", root.label());
        // Another process ingests while this session stays open.
        let mut c = bhavstore();
        root.apply(&mut c);
        let o = run(c
            .arg("import")
            .arg(dir.join("legacy-eq-14col/2015/EQ050115.CSV"))
            .arg(dir.join("legacy-eq-14col/2015/EQ020215.CSV")));
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(count().await, 2, "[{}]", root.label());
    }
}

/// The acceptance check, on both backends, through the CLI as a user runs it.
#[test]
fn import_2015_set_shows_67_sessions() {
    let Some(dir) = real_data_dir() else { return };
    for root in Root::all("import-2015") {
        let mut c = bhavstore();
        root.apply(&mut c);
        let o = run(c.arg("import").arg(dir.join("legacy-eq-14col/2015")));
        assert!(o.status.success(), "[{}] {}", root.label(), stderr(&o));
        assert!(stdout(&o).contains("imported 67 files"), "{}", stdout(&o));
        assert!(stdout(&o).contains("0 quarantined, 0 files failed"), "{}", stdout(&o));

        let mut c = bhavstore();
        root.apply(&mut c);
        let o = run(c.args([
            "query",
            "--format",
            "csv",
            "select trade_date, count(*) as n from bhavcopy group by 1 order by 1",
        ]));
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1 + 67, "[{}] {out}", root.label());
        assert_eq!(lines[1], "2015-01-05,3267");
        assert!(lines.iter().any(|l| l.starts_with("2015-02-28,")), "the Saturday budget session");
        assert!(lines[67].starts_with("2015-05-11,"));

        // Importing the same folder again changes nothing.
        let mut c = bhavstore();
        root.apply(&mut c);
        let o = run(c.arg("import").arg(dir.join("legacy-eq-14col/2015")));
        assert!(stdout(&o).contains("0 rows loaded"), "{}", stdout(&o));
        assert_eq!(stdout(&o).matches(" unchanged (identical bytes").count(), 67, "{}", stdout(&o));
    }
}

/// A filter on `trade_date` reads only that day's file: the partition is pruned from the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trade_date_filters_prune_partitions() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    let s = root.open();
    let ing = Ingestor::new(s.clone());
    for f in ["EQ020215.CSV", "EQ030215.CSV", "EQ040215.CSV"] {
        let p = dir.join("legacy-eq-14col/2015").join(f);
        ing.ingest_bytes(f, Bytes::from(std::fs::read(&p).unwrap()), prov(), None).await.unwrap();
    }
    let ctx = bhavstore_lake::session(&s).unwrap();
    let plan = ctx
        .sql("explain analyze select sum(close) from bhavcopy where trade_date = DATE '2015-02-03'")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan).unwrap().to_string();
    assert_eq!(text.matches("bhavcopy.parquet").count(), 1, "{text}");
    assert!(text.contains("trade_date=2015-02-03/bhavcopy.parquet"), "{text}");
}
