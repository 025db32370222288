//! `bhavstore serve` against a hostile or careless client (issue "Safe to depend on"): each test
//! reproduces an attack that once crashed, starved or bloated the server, and checks the fixed
//! behaviour, ending with the server still answering a REST lookup.
//!
//! * statements nested thousands deep, over Postgres, Flight `GetFlightInfo` and a forged `DoGet`
//!   ticket, are refused with SQLSTATE 54001 / `INVALID_ARGUMENT` instead of overflowing a stack;
//! * a runaway cross join stays inside the memory caps, and stops on a cancel request, on
//!   `statement_timeout`, on a gRPC deadline and when its client goes away;
//! * portals and cursors without a row limit stream instead of holding the whole result;
//! * floods of idle connections are refused at the caps and closed at the login timeout, a
//!   process out of file descriptors backs off instead of spinning, and REST keeps answering;
//! * Flight uploads and parameters are bounded while they arrive, typed by name, and private to
//!   their connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use arrow_flight::Ticket;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandStatementIngest, ProstMessageExt, TicketStatementQuery};
use bhavstore_e2e::bin::{bhavstore, run, stderr};
use bhavstore_e2e::real_data::{files_2015, real_data_dir};
use bhavstore_e2e::serve::{Serve, feature_defs};
use bhavstore_e2e::storage_roots::Root;
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use prost::Message;
use serde_json::Value;
use std::sync::Arc;

const USER: &str = "quant";
const PASSWORD: &str = "s3cret-pa55";

/// Limits small enough to reach in a test.
// Not a `\`-continued literal: that would strip the indentation YAML needs.
const LIMITS: &str = "  limits:
    query_memory_total: 384MiB
    query_memory: 256MiB
    spill_disk: 256MiB
    statement_timeout_secs: 120
    max_expression_depth: 500
    max_pg_connections: 12
    max_flight_connections: 12
    max_http_connections: 48
    max_connections_per_user: 4
    login_timeout_secs: 2
    upload_bytes_per_session: 48MiB
    upload_bytes_total: 64MiB
    max_parameter_rows: 20000
";

/// A local store with the first `sessions` 2015 bhavcopies imported and materialized, and a
/// config with a user (`auth`) or none, and [`LIMITS`].
fn fixture(sessions: usize, auth: bool) -> Option<(Root, tempfile::TempDir)> {
    let dir = real_data_dir()?;
    let files = files_2015(&dir.join("legacy-eq-14col/2015"));
    let root = Root::local();
    root.import(&files[..sessions]);
    let mut c = bhavstore();
    root.apply(&mut c);
    let o = run(c.arg("--feature-defs").arg(feature_defs()).arg("materialize"));
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = tempfile::tempdir().expect("tempdir");
    let users = if auth {
        format!("  users:\n    - name: {USER}\n      password_env: TEST_PG_PASSWORD\n")
    } else {
        String::new()
    };
    std::fs::write(cfg.path().join("bhavstore.yaml"), format!("server:\n{users}{LIMITS}")).expect("config");
    Some((root, cfg))
}

fn start(root: &Root, cfg: &tempfile::TempDir) -> Serve {
    Serve::start(root, Some(&cfg.path().join("bhavstore.yaml")), &[("TEST_PG_PASSWORD", PASSWORD)])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

async fn pg(server: &Serve, user: Option<&str>) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (host, port) = server.pg_host_port();
    let login = match user {
        Some(u) => format!("user={u} password={PASSWORD}"),
        None => "user=anyone".to_string(),
    };
    let (client, conn) = tokio_postgres::connect(
        &format!("host={host} port={port} {login} dbname=bhavstore connect_timeout=10"),
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(client)
}

/// The server's message (a `DbError` displays only as "db error").
fn pg_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

/// The plain Flight client, for calls that need their own metadata (deadlines, headers).
async fn raw_flight(
    server: &Serve,
) -> arrow_flight::flight_service_client::FlightServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.flight))
        .expect("endpoint")
        .connect()
        .await
        .expect("flight connects");
    arrow_flight::flight_service_client::FlightServiceClient::new(channel)
}

/// Replaces `from` with `to` in the fixture's config; returns its path.
fn edit_config(cfg: &tempfile::TempDir, from: &str, to: &str) -> std::path::PathBuf {
    let path = cfg.path().join("bhavstore.yaml");
    let text = std::fs::read_to_string(&path).expect("config");
    assert!(text.contains(from), "the fixture's config has {from:?}");
    std::fs::write(&path, text.replace(from, to)).expect("config");
    path
}

async fn flight(server: &Serve) -> FlightSqlServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.flight))
        .expect("endpoint")
        .connect()
        .await
        .expect("flight connects");
    FlightSqlServiceClient::new(channel)
}

/// A REST lookup of a value the store holds; the proof that the server still serves.
fn assert_rest_answers(server: &Serve) {
    let url = format!(
        "http://{}/feature-store/lookup?entity_id=500325&feature_name=close&timestamp=2015-01-08T20:00:00%2B05:30",
        server.http
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (status, body) = rt.block_on(async {
        let r = reqwest::Client::new().get(&url).timeout(Duration::from_secs(20)).send().await.expect("REST answers");
        (r.status().as_u16(), r.text().await.expect("body"))
    });
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(v["value"].as_f64().is_some_and(|c| c > 0.0), "{body}");
}

/// `select 1+1+...+1` with `n` terms over a column, so nothing folds it away.
fn chain(n: usize) -> String {
    format!("select {} from bhavcopy limit 1", vec!["scrip_code"; n].join("+"))
}

#[test]
fn statements_nested_thousands_deep_are_refused_not_crashing() {
    let Some((root, cfg)) = fixture(5, true) else { return };
    let mut server = start(&root, &cfg);
    let rt = runtime();
    rt.block_on(async {
        let client = pg(&server, Some(USER)).await.expect("login");
        for n in [2_000, 3_000, 50_000] {
            let sql = chain(n);
            let e = client.simple_query(&sql).await.expect_err("too deep");
            assert_eq!(sqlstate(&e), "54001", "{n} terms, simple protocol: {e}");
            let e = client.prepare(&sql).await.expect_err("too deep");
            assert_eq!(sqlstate(&e), "54001", "{n} terms, extended protocol: {e}");
        }
        // Deep parentheses, long OR chains and COPY of a deep query: the same refusal.
        let parens = format!("select {}1{}", "(".repeat(5_000), ")".repeat(5_000));
        assert_eq!(sqlstate(&client.simple_query(&parens).await.expect_err("parens")), "54001");
        let ors = format!("select 1 from bhavcopy where {}", vec!["scrip_code = 1"; 3_000].join(" or "));
        assert_eq!(sqlstate(&client.simple_query(&ors).await.expect_err("ors")), "54001");
        let copy = format!("copy ({}) to stdout", chain(3_000));
        assert_eq!(sqlstate(&client.simple_query(&copy).await.expect_err("copy")), "54001");
        // A statement longer than max_statement_bytes (1 MiB by default).
        let long = format!("select '{}'", "x".repeat(1_100_000));
        assert_eq!(sqlstate(&client.simple_query(&long).await.expect_err("long")), "54000");
        // Just under the limit it plans and runs: the limit, not luck, keeps the stack safe.
        let rows = client.query(&chain(400), &[]).await.expect("400 terms run");
        assert_eq!(rows.len(), 1);
        let ok = client.simple_query("select 1").await.expect("the session is still usable");
        assert!(!ok.is_empty());

        let mut f = flight(&server).await;
        f.handshake(USER, PASSWORD).await.expect("handshake");
        let e = f.execute(chain(3_000), None).await.expect_err("GetFlightInfo too deep");
        let text = e.to_string().to_lowercase();
        assert!(text.contains("invalid argument") && text.contains("too complex"), "{e}");
        let e = f.prepare(chain(3_000), None).await.expect_err("prepare too deep");
        assert!(e.to_string().contains("too complex"), "{e}");
        // A forged ticket carrying a deep statement.
        let handle = serde_json::json!({ "sql": chain(50_000) }).to_string();
        let ticket = TicketStatementQuery { statement_handle: handle.into() };
        let e = match f.do_get(Ticket::new(ticket.as_any().encode_to_vec())).await {
            Ok(s) => s.try_collect::<Vec<_>>().await.expect_err("forged ticket"),
            Err(e) => e,
        };
        assert!(e.to_string().contains("too complex"), "{e}");
        let batches = {
            let info = f.execute("select 1 as one".into(), None).await.expect("flight still works");
            let t = info.endpoint[0].ticket.clone().expect("ticket");
            f.do_get(t).await.expect("do_get").try_collect::<Vec<_>>().await.expect("batches")
        };
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
    });
    assert!(server.is_running(), "the server survived");
    assert_rest_answers(&server);
}

/// Samples the server's RSS every 100 ms until `stop`; returns the largest.
fn watch_memory(server: &Serve, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<u64> {
    let pid = server.pid();
    std::thread::spawn(move || {
        let mut max = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let rss = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024;
            max = max.max(rss);
            std::thread::sleep(Duration::from_millis(100));
        }
        max
    })
}

/// The query from the report: a cross join sorted, which spills until the spill cap.
const RUNAWAY: &str = "select * from bhavcopy a, bhavcopy b order by a.close";
/// A query that holds almost no memory but would run for hours: what timeouts and cancels stop.
const SPIN: &str = "select count(*) from generate_series(1, 10000000000000) t where value % 7 = 3";

#[test]
fn runaway_queries_stay_in_memory_and_stop_on_cancel_timeout_deadline_and_disconnect() {
    let Some((root, cfg)) = fixture(5, true) else { return };
    let mut server = start(&root, &cfg);
    let (baseline, _) = server.memory();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_memory(&server, std::sync::Arc::clone(&stop));
    let rt = runtime();
    rt.block_on(async {
        // statement_timeout, as psql users set it.
        let client = pg(&server, Some(USER)).await.expect("login");
        client.simple_query("SET statement_timeout = 2000").await.expect("set");
        let started = Instant::now();
        let e = client.simple_query(SPIN).await.expect_err("times out");
        assert_eq!(sqlstate(&e), "57014", "{e}");
        assert!(pg_message(&e).contains("statement timeout"), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(60), "stopped near its timeout: {:?}", started.elapsed());
        // The session goes on.
        client.simple_query("SET statement_timeout = 0").await.expect("reset");
        assert!(!client.simple_query("select 1").await.expect("usable").is_empty());

        // A cancel request (what Ctrl-C in psql sends), while the sort runs.
        let token = client.cancel_token();
        let running = tokio::spawn(async move { client.query(SPIN, &[]).await.map(|r| r.len()) });
        tokio::time::sleep(Duration::from_secs(2)).await;
        token.cancel_query(tokio_postgres::NoTls).await.expect("cancel request sent");
        let e = tokio::time::timeout(Duration::from_secs(60), running)
            .await
            .expect("the canceled statement ends")
            .expect("task")
            .expect_err("canceled");
        assert_eq!(sqlstate(&e), "57014", "{e}");
        assert!(pg_message(&e).contains("user request"), "{e:?}");

        // The client goes away mid-query: the server stops the query (it says so) and its CPU
        // use falls back.
        // The task owns the socket: aborting it closes the connection as a killed psql would.
        let (host, port) = server.pg_host_port();
        let (doomed, conn) = tokio_postgres::connect(
            &format!("host={host} port={port} user={USER} password={PASSWORD} dbname=bhavstore"),
            tokio_postgres::NoTls,
        )
        .await
        .expect("login");
        let handle = tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                _ = doomed.simple_query(SPIN) => {}
            }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        handle.abort();
        let _ = handle.await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logs = server.logs();
            if logs.iter().any(|l| l.contains("statement interrupted") && l.contains("ClientGone")) {
                break;
            }
            assert!(Instant::now() < deadline, "the server noticed the client leaving:\n{}", logs.join("\n"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let cpu = server.cpu_seconds();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let busy = server.cpu_seconds() - cpu;
        assert!(busy < 1.5, "the abandoned query still burns CPU: {busy:.2} s in 3 s");

        // gRPC deadline on Flight.
        let mut f = flight(&server).await;
        f.handshake(USER, PASSWORD).await.expect("handshake");
        let info = f.execute(SPIN.into(), None).await.expect("plans");
        let ticket = info.endpoint[0].ticket.clone().expect("ticket");
        let mut request = tonic::Request::new(ticket);
        request.set_timeout(Duration::from_secs(2));
        let mut raw = raw_flight(&server).await;
        let token = f.token().cloned().expect("session token");
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        let started = Instant::now();
        let outcome = match raw.do_get(request).await {
            Ok(r) => r.into_inner().try_collect::<Vec<_>>().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let e = outcome.expect_err("deadline");
        assert!(matches!(e.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled), "{e}");
        assert!(started.elapsed() < Duration::from_secs(60));

        // The sort spills, and stops at the spill-disk cap with a message naming it. Under CPU
        // contention (the suite runs tests in parallel) one of the query's two sort partitions can
        // fail to reserve merge memory from the per-query pool before the spill cap is reached:
        // then it is 53200 naming the memory limit. Either way a configured limit stops it.
        let client = pg(&server, Some(USER)).await.expect("login");
        let e = client.simple_query(RUNAWAY).await.expect_err("over the spill cap");
        match sqlstate(&e).as_str() {
            "53100" => assert!(pg_message(&e).contains("server.limits.spill_disk"), "{e:?}"),
            "53200" => assert!(pg_message(&e).contains("server.limits"), "{e:?}"),
            other => panic!("a runaway sort must stop at a configured limit, got {other}: {e:?}"),
        }

        // What cannot spill fails with 53200 when it passes the per-query cap; others go on.
        let e = client
            .simple_query("select array_agg(a.name) from bhavcopy a, bhavcopy b")
            .await
            .expect_err("over the query memory cap");
        assert!(["53200", "53100"].contains(&sqlstate(&e).as_str()), "{e}");
        assert!(pg_message(&e).contains("server.limits"), "{e:?}");
        assert!(!client.simple_query("select count(*) from bhavcopy").await.expect("others carry on").is_empty());

        // A join whose build side passes the cap takes DataFusion's spilling fallback, which can
        // panic inside the engine (DataFusion 55): an error for the statement, not a lost session.
        let e = client
            .simple_query("select count(*) from bhavcopy a, bhavcopy b, bhavcopy c where a.close + b.close > c.close")
            .await
            .expect_err("over the caps");
        assert!(["53200", "53100", "XX000"].contains(&sqlstate(&e).as_str()), "{e:?}");
        assert!(!client.simple_query("select 1").await.expect("the session survives").is_empty());
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = watcher.join().expect("watcher");
    // The pools cap what queries hold (384 MiB here); the rest is the server itself.
    let cap = baseline + (384 << 20) + (512 << 20);
    assert!(peak < cap, "server RSS peaked at {} MiB (baseline {} MiB)", peak >> 20, baseline >> 20);
    assert!(server.is_running());
    assert_rest_answers(&server);
}

#[test]
fn portals_and_cursors_stream_rows_instead_of_holding_them() {
    let Some((root, cfg)) = fixture(5, true) else { return };
    let server = start(&root, &cfg);
    let rt = runtime();
    // About 1.6 million rows (five sessions of ~3,200 rows, 100 times over).
    let big = "select a.* from bhavcopy a, (select scrip_code from bhavcopy limit 100) b";
    rt.block_on(async {
        let client = pg(&server, Some(USER)).await.expect("login");
        let expected: i64 =
            client.query_one(&format!("select count(*) from ({big})"), &[]).await.expect("count").get(0);
        assert!(expected > 1_000_000, "{expected}");
        let (before, _) = server.memory();
        // tokio-postgres `query_raw`: one portal without a row limit, read row by row.
        let stream = client.query_raw(big, std::iter::empty::<i32>()).await.expect("portal");
        futures::pin_mut!(stream);
        let (mut n, mut peak) = (0_i64, 0_u64);
        while let Some(row) = stream.try_next().await.expect("row") {
            assert!(row.len() > 10);
            n += 1;
            if n % 100_000 == 0 {
                peak = peak.max(server.memory().0);
                // A slow reader: the server must wait, not buffer.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert_eq!(n, expected);
        let grew = peak.saturating_sub(before);
        assert!(grew < 160 << 20, "streaming {n} rows grew the server by {} MiB", grew >> 20);

        // A cursor fetched all at once streams too.
        client.batch_execute(&format!("BEGIN; DECLARE big CURSOR FOR {big}")).await.expect("declare");
        let (before, _) = server.memory();
        let stream = client.query_raw("FETCH ALL FROM big", std::iter::empty::<i32>()).await.expect("fetch");
        futures::pin_mut!(stream);
        let (mut m, mut peak) = (0_i64, 0_u64);
        while stream.try_next().await.expect("row").is_some() {
            m += 1;
            if m % 100_000 == 0 {
                peak = peak.max(server.memory().0);
            }
        }
        assert_eq!(m, expected);
        let grew = peak.saturating_sub(before);
        assert!(grew < 160 << 20, "FETCH ALL of {m} rows grew the server by {} MiB", grew >> 20);
        client.batch_execute("CLOSE big; COMMIT").await.expect("close");

        // A portal with a row limit still suspends and resumes (psycopg/JDBC fetch sizes).
        let rows = client.query("select scrip_code from bhavcopy order by scrip_code limit 5", &[]).await.expect("q");
        assert_eq!(rows.len(), 5);
    });
    assert_rest_answers(&server);
}

/// Opens `n` raw TCP connections that never say anything.
fn idle_connections(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(5)).ok())
        .collect()
}

/// Whether the server has closed `s` (reads EOF or an error within `within`).
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            // A refusal message before the close.
            Ok(_) => {}
        }
    }
}

#[test]
fn connection_floods_are_capped_and_timed_out_while_rest_keeps_answering() {
    let Some((root, cfg)) = fixture(5, true) else { return };
    let mut server = start(&root, &cfg);
    let rt = runtime();

    // Postgres: 200 silent connections; the cap (12) admits some, the rest are refused at
    // once with 53300, and a real client meanwhile is told the same.
    let mut flood = idle_connections(&server.pg, 200);
    assert!(flood.len() > 100, "the kernel accepted the flood");
    assert_rest_answers(&server);
    rt.block_on(async {
        let e = pg(&server, Some(USER)).await.expect_err("full");
        assert_eq!(sqlstate(&e), "53300", "{e}");
    });
    // Silent connections are closed at the login timeout (2 s), freeing the slots.
    let mut closed = 0;
    for s in flood.iter_mut().take(30) {
        if closed_by_server(s, Duration::from_secs(10)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 30, "every silent connection was closed");
    drop(flood);
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(async {
        // Per user: four sessions of one user, the fifth is refused before it is ready.
        let mut open = Vec::new();
        for _ in 0..4 {
            open.push(pg(&server, Some(USER)).await.expect("login under the per-user cap"));
        }
        let e = pg(&server, Some(USER)).await.expect_err("fifth session of one user");
        assert_eq!(sqlstate(&e), "53300", "{e}");
        assert!(pg_message(&e).contains("max_connections_per_user"), "{e:?}");
        drop(open);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let c = pg(&server, Some(USER)).await.expect("a slot is free again");
        assert!(!c.simple_query("select 1").await.expect("query").is_empty());
    });

    // REST: over its cap a connection gets a 503 JSON answer; silent ones are closed.
    let mut flood = idle_connections(&server.http, 100);
    let mut refused = TcpStream::connect(&server.http).expect("connect");
    refused.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").expect("write");
    refused.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut answer = String::new();
    let _ = refused.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("max_http_connections"), "{answer}");
    assert!(closed_by_server(&mut flood[0], Duration::from_secs(10)), "silent REST connections time out");
    drop(flood);

    // Flight: the same flood; afterwards a client connects and queries.
    let flood = idle_connections(&server.flight, 100);
    std::thread::sleep(Duration::from_secs(3));
    drop(flood);
    rt.block_on(async {
        let mut f = flight(&server).await;
        f.handshake(USER, PASSWORD).await.expect("handshake after the flood");
    });
    assert!(server.is_running());
    assert_rest_answers(&server);
    let refusals = server.logs().iter().filter(|l| l.contains("connection limit reached")).count();
    assert!((1..=10).contains(&refusals), "refusals are logged, rate-limited: {refusals} lines");
}

#[test]
fn out_of_file_descriptors_backs_off_instead_of_spinning() {
    let Some((root, cfg)) = fixture(2, false) else { return };
    // Caps above what 200 descriptors allow: accept itself fails with EMFILE.
    let path = edit_config(&cfg, "max_pg_connections: 12", "max_pg_connections: 1000");
    let mut server = Serve::start_with(&root, Some(&path), &[], Some(200));
    let flood = idle_connections(&server.pg, 400);
    std::thread::sleep(Duration::from_secs(1));
    let cpu = server.cpu_seconds();
    std::thread::sleep(Duration::from_secs(1));
    let busy = server.cpu_seconds() - cpu;
    assert!(busy < 0.5, "the accept loop spins: {busy:.2} s of CPU in 1 s");
    let logs = server.logs();
    let errors = logs.iter().filter(|l| l.contains("accepting connections failed")).count();
    assert!((1..=3).contains(&errors), "accept errors are logged, rate-limited: {errors} lines");
    drop(flood);
    // Login timeout frees descriptors; the server serves again.
    std::thread::sleep(Duration::from_secs(4));
    assert!(server.is_running());
    let rt = runtime();
    rt.block_on(async {
        let c = pg(&server, None).await.expect("connects after the flood");
        assert!(!c.simple_query("select 1").await.expect("query").is_empty());
    });
}

fn spine(rows: usize, offset: i64) -> RecordBatch {
    let schema =
        Schema::new(vec![Field::new("entity", DataType::Int64, false), Field::new("note", DataType::Utf8, false)]);
    let ids = Int64Array::from_iter_values((0..rows as i64).map(|i| i + offset));
    let notes = StringArray::from_iter_values((0..rows).map(|i| format!("row {i:>40}")));
    RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ids), Arc::new(notes)]).expect("batch")
}

async fn upload(
    f: &mut FlightSqlServiceClient<tonic::transport::Channel>,
    table: &str,
    batches: Vec<RecordBatch>,
) -> Result<i64, arrow_flight::error::FlightError> {
    let cmd = CommandStatementIngest {
        table_definition_options: None,
        table: table.to_string(),
        schema: None,
        catalog: None,
        temporary: true,
        transaction_id: None,
        options: Default::default(),
    };
    let stream = futures::stream::iter(batches.into_iter().map(Ok));
    f.execute_ingest(cmd, stream).await
}

#[test]
fn flight_uploads_and_parameters_are_bounded_typed_and_private() {
    let Some((root, cfg)) = fixture(2, false) else { return };
    let server = start(&root, &cfg);
    let rt = runtime();
    rt.block_on(async {
        // Per connection without authentication: another connection does not see an upload.
        let mut a = flight(&server).await;
        let n = upload(&mut a, "spine", vec![spine(1000, 0)]).await.expect("upload");
        assert_eq!(n, 1000);
        let info = a.execute("select count(*) as n from temp.public.spine".into(), None).await.expect("own upload");
        assert!(!info.endpoint.is_empty());
        let mut b = flight(&server).await;
        let e = b.execute("select count(*) from temp.public.spine".into(), None).await.expect_err("private");
        assert!(e.to_string().contains("not found") || e.to_string().contains("NotFound"), "{e}");

        // Over the per-session cap (48 MiB): refused while arriving, the server's memory with it.
        let (before, _) = server.memory();
        let many: Vec<RecordBatch> = (0..400).map(|i| spine(50_000, i * 50_000)).collect();
        let e = upload(&mut b, "huge", many).await.expect_err("over the session cap");
        assert!(e.to_string().contains("upload_bytes_per_session"), "{e}");
        let (after, _) = server.memory();
        assert!(
            after.saturating_sub(before) < 200 << 20,
            "refused uploads are not held: +{} MiB",
            (after - before) >> 20
        );
        // Two connections, each under its cap, together over the server's (64 MiB).
        let mut c = flight(&server).await;
        let mut d = flight(&server).await;
        // About 36-42 MiB each (16 batches of ~2.3-2.6 MiB): under the session cap, two over the total.
        let part = || (0..16).map(|i| spine(40_000, i * 40_000)).collect::<Vec<_>>();
        let first = upload(&mut c, "s1", part()).await;
        let second = upload(&mut d, "s2", part()).await;
        let refused = [first, second].into_iter().filter_map(Result::err).collect::<Vec<_>>();
        assert_eq!(refused.len(), 1, "exactly one upload passes the server cap: {refused:?}");
        assert!(refused[0].to_string().contains("upload_bytes_total"), "{}", refused[0]);
        // Closing a connection gives its uploads back: now the other one fits.
        drop(c);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut e2 = flight(&server).await;
        upload(&mut e2, "s3", part()).await.expect("the closed connection's uploads were released");

        // Prepared statements: parameters are checked by name and bound fast.
        let mut p = flight(&server).await;
        let mut stmt = p
            .prepare("select scrip_code, close from bhavcopy where scrip_code = $1 and trade_date >= $2".into(), None)
            .await
            .expect("prepare");
        let params = |cols: Vec<(&str, Arc<dyn Array>)>| {
            let schema =
                Schema::new(cols.iter().map(|(n, c)| Field::new(*n, c.data_type().clone(), true)).collect::<Vec<_>>());
            RecordBatch::try_new(Arc::new(schema), cols.into_iter().map(|(_, c)| c).collect()).expect("params")
        };
        stmt.set_parameters(params(vec![
            ("$1", Arc::new(StringArray::from(vec!["not a code"]))),
            ("$2", Arc::new(StringArray::from(vec!["2015-01-01"]))),
        ]))
        .expect("set");
        let e = stmt.execute().await.expect_err("wrong type");
        assert!(
            e.to_string().to_lowercase().contains("invalid argument") && e.to_string().contains("parameter $1"),
            "{e}"
        );
        stmt.set_parameters(params(vec![
            ("$1", Arc::new(Int64Array::from(vec![500325]))),
            ("$2", Arc::new(StringArray::from(vec!["2015-01-01"]))),
            ("$3", Arc::new(Int64Array::from(vec![1]))),
        ]))
        .expect("set");
        let e = stmt.execute().await.expect_err("extra parameter");
        assert!(e.to_string().contains("2 parameter(s) ($1, $2) but 3"), "{e}");
        // 10,000 rows of parameters bind as one statement.
        let codes: Vec<i64> = (0..10_000).map(|i| [500325, 500002, 532540][i % 3]).collect();
        stmt.set_parameters(params(vec![
            ("$1", Arc::new(Int64Array::from(codes))),
            ("$2", Arc::new(StringArray::from(vec!["2015-01-01"; 10_000]))),
        ]))
        .expect("set");
        let started = Instant::now();
        let info = stmt.execute().await.expect("execute");
        let t = info.endpoint[0].ticket.clone().expect("ticket");
        let batches: Vec<RecordBatch> = p.do_get(t).await.expect("get").try_collect().await.expect("rows");
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 10_000 * 2, "one row per code and session, for every parameter row");
        eprintln!("10,000 parameter rows: {:?}", started.elapsed());
    });
    assert_rest_answers(&server);
}

#[test]
fn lowercase_bearer_scheme_is_accepted() {
    let Some((root, cfg)) = fixture(1, false) else { return };
    let path = edit_config(&cfg, "server:\n", "server:\n  tokens: [tok-123]\n");
    let server = Serve::start(&root, Some(&path), &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        for (header, want) in
            [("bearer tok-123", 200), ("BEARER tok-123", 200), ("Bearer tok-123", 200), ("bearer nope", 401)]
        {
            let r = reqwest::Client::new()
                .get(format!("http://{}/metrics", server.http))
                .header("authorization", header)
                .send()
                .await
                .expect("request");
            assert_eq!(r.status().as_u16(), want, "{header}");
        }
        let mut raw = raw_flight(&server).await;
        let command = arrow_flight::sql::CommandGetCatalogs {}.as_any().encode_to_vec();
        let descriptor = arrow_flight::FlightDescriptor::new_cmd(command);
        let mut request = tonic::Request::new(descriptor);
        request.metadata_mut().insert("authorization", "bearer tok-123".parse().expect("header"));
        raw.get_flight_info(request).await.expect("lowercase bearer accepted by Flight");
    });
}
