//! `bhavstore serve` from the clients users use: psql, tokio-postgres and psycopg over the
//! Postgres wire protocol, the ADBC Flight SQL driver, pyarrow.flight and arrow-flight's Rust
//! client over Flight SQL, and reqwest over REST. They must all read the same `price_features`
//! values; logins are checked; nothing a client sends can change data or touch the server's
//! files; training sets match a brute-force as-of scan.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use arrow_flight::sql::client::FlightSqlServiceClient;
use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::real_data::{files_2015, real_data_dir};
use bhavstore_e2e::serve::{Serve, feature_defs};
use bhavstore_e2e::storage_roots::Root;
use chrono::{DateTime, Days, NaiveDate, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use futures::TryStreamExt;
use serde_json::Value;

const USER: &str = "quant";
const PASSWORD: &str = "s3cret-pa55";
const TOKEN: &str = "training-token-1";

fn cli(root: &Root, args: &[&str]) -> String {
    let mut c = bhavstore();
    root.apply(&mut c);
    let o = run(c.arg("--feature-defs").arg(feature_defs()).args(args));
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// A local root with the 2015 files (all but the last `hold_back`) imported and materialized,
/// and a config with a user, a token and a 1 s refresh.
fn fixture(hold_back: usize) -> Option<(Root, tempfile::TempDir, Vec<std::path::PathBuf>)> {
    let dir = real_data_dir()?;
    let files = files_2015(&dir.join("legacy-eq-14col/2015"));
    let root = Root::local();
    let keep = files.len() - hold_back;
    root.import(&files[..keep]);
    cli(&root, &["materialize"]);
    let cfg = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        cfg.path().join("bhavstore.yaml"),
        format!(
            "server:\n  users:\n    - name: {USER}\n      password_env: TEST_PG_PASSWORD\n  tokens: [{TOKEN}]\n  refresh_secs: 1\n"
        ),
    )
    .expect("config");
    Some((root, cfg, files[keep..].to_vec()))
}

fn start(root: &Root, cfg: &tempfile::TempDir) -> Serve {
    // The password reaches the server through the environment, as `password_env` intends.
    Serve::start(root, Some(&cfg.path().join("bhavstore.yaml")), &[("TEST_PG_PASSWORD", PASSWORD)])
}

fn python(script: &str, args: &[&str]) -> Value {
    let path = bhavstore_e2e::crate_dir().join("py").join(script);
    let o = Command::new("python3").arg(&path).args(args).output().expect("python3");
    assert!(o.status.success(), "{script}: {}\n{}", stderr(&o), stdout(&o));
    let out = stdout(&o);
    serde_json::from_str(out.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{script}: {e}: {out}"))
}

fn psql(server: &Serve, password: &str, command: &str) -> std::process::Output {
    let (host, port) = server.pg_host_port();
    Command::new("psql")
        .args(["-h", &host, "-p", &port.to_string(), "-U", USER, "-d", "bhavstore", "-X", "-A", "-F", ",", "-c"])
        .arg(command)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql (scripts/install-deps installs postgresql-client)")
}

async fn pg_client(server: &Serve) -> tokio_postgres::Client {
    let (host, port) = server.pg_host_port();
    let (client, conn) = tokio_postgres::connect(
        &format!("host={host} port={port} user={USER} password={PASSWORD} dbname=bhavstore"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("tokio-postgres connects with SCRAM");
    tokio::spawn(conn);
    client
}

async fn flight_client(server: &Serve) -> FlightSqlServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.flight))
        .expect("endpoint")
        .connect()
        .await
        .expect("flight connects");
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake(USER, PASSWORD).await.expect("handshake with basic credentials");
    client
}

async fn flight_query(client: &mut FlightSqlServiceClient<tonic::transport::Channel>, sql: &str) -> Vec<RecordBatch> {
    let info = client.execute(sql.to_string(), None).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    for ep in info.endpoint {
        let ticket = ep.ticket.expect("ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        out.extend(stream.try_collect::<Vec<_>>().await.expect("batches"));
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

const VALUES_SQL: &str = "SELECT scrip_code, trade_date, close, sma_20, ema_12, rsi_14 FROM price_features \
     WHERE scrip_code IN (500002, 500325, 532540) AND trade_date >= DATE '2015-04-01' ORDER BY scrip_code, trade_date";

/// (scrip_code, trade_date) -> [close, sma_20, ema_12, rsi_14] as bit patterns (NaN-free; None = NULL).
type Values = HashMap<(i64, String), Vec<Option<u64>>>;

/// A float the Python clients print as `repr` text (exact; JSON numbers may be parsed 1 ulp off).
fn exact(v: &Value) -> Option<u64> {
    v.as_str().map(|s| s.parse::<f64>().expect("float text").to_bits())
}

fn from_json_rows(rows: &Value) -> Values {
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let key =
                (r["scrip_code"].as_i64().expect("scrip_code"), r["trade_date"].as_str().expect("date").to_string());
            let v = ["close", "sma_20", "ema_12", "rsi_14"].iter().map(|c| exact(&r[*c])).collect();
            (key, v)
        })
        .collect()
}

#[test]
fn psql_postgres_drivers_flight_and_rest_read_the_same_values() {
    let Some((root, cfg, _)) = fixture(0) else { return };
    let server = start(&root, &cfg);
    let rt = runtime();

    // psql: the catalog commands BI users start with, and a query.
    let o = psql(&server, PASSWORD, "\\dt");
    assert!(o.status.success(), "{}", stderr(&o));
    let dt = stdout(&o);
    assert!(dt.contains("public,price_features,table") && dt.contains("public,volatility_features,table"), "{dt}");
    let o = psql(&server, PASSWORD, "\\d price_features");
    assert!(o.status.success(), "{}", stderr(&o));
    let d = stdout(&o);
    for col in ["scrip_code,integer", "trade_date,date", "sma_20,double precision", "rsi_14,double precision"] {
        assert!(d.contains(col), "{col} in {d}");
    }
    let o = psql(&server, PASSWORD, VALUES_SQL);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let mut psql_values = Values::new();
    for line in text.lines().skip(1).filter(|l| l.contains(',') && !l.starts_with('(')) {
        let c: Vec<&str> = line.split(',').collect();
        let num = |s: &str| (!s.is_empty()).then(|| s.parse::<f64>().expect("float").to_bits());
        psql_values
            .insert((c[0].parse().expect("code"), c[1].to_string()), vec![num(c[2]), num(c[3]), num(c[4]), num(c[5])]);
    }
    assert!(psql_values.len() > 60, "{text}");
    let o = psql(&server, "wrong", "SELECT 1");
    assert!(!o.status.success(), "a wrong password must not log in");
    assert!(stderr(&o).contains("authentication failed"), "{}", stderr(&o));

    // tokio-postgres: simple and extended protocol, parameters bound server-side.
    let (pg_values, count) = rt.block_on(async {
        let client = pg_client(&server).await;
        let simple = client.simple_query("SELECT count(*) FROM price_features").await.expect("simple query");
        let count: i64 = simple
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().expect("count")),
                _ => None,
            })
            .expect("a row");
        let stmt = client
            .prepare("SELECT scrip_code, trade_date, close, sma_20, ema_12, rsi_14 FROM price_features WHERE scrip_code = $1 AND trade_date >= $2 ORDER BY trade_date")
            .await
            .expect("prepare");
        let mut values = Values::new();
        for code in [500002_i32, 500325, 532540] {
            let from = NaiveDate::from_ymd_opt(2015, 4, 1).expect("date");
            for r in client.query(&stmt, &[&code, &from]).await.expect("bound query") {
                let f = |i: usize| r.get::<_, Option<f64>>(i).map(f64::to_bits);
                values.insert(
                    (i64::from(r.get::<_, i32>(0)), r.get::<_, NaiveDate>(1).to_string()),
                    vec![f(2), f(3), f(4), f(5)],
                );
            }
        }
        (values, count)
    });
    assert_eq!(pg_values, psql_values, "tokio-postgres (binary, extended) and psql (text, simple) agree");

    // psycopg: SCRAM, server-side binding, a named cursor over the whole view, COPY, SQLSTATEs.
    let (host, port) = server.pg_host_port();
    let py = python(
        "pg_client.py",
        &[
            &host,
            &port.to_string(),
            USER,
            PASSWORD,
            VALUES_SQL,
            "SELECT scrip_code, trade_date, close FROM price_features WHERE scrip_code = %s ORDER BY trade_date DESC LIMIT 3",
            "500325",
        ],
    );
    assert_eq!(from_json_rows(&py["rows"]), psql_values, "psycopg agrees");
    assert_eq!(py["param_rows"].as_array().map(Vec::len), Some(3));
    assert_eq!(py["named_cursor_columns"], serde_json::json!(["scrip_code", "trade_date", "close"]));
    assert_eq!(py["named_cursor_rows"].as_i64(), Some(count), "a named cursor streams every row");
    let copy = py["copy_csv"].as_str().expect("copy");
    assert!(copy.starts_with("scrip_code,trade_date,close\n") && copy.lines().count() == 6, "{copy}");
    let errors = &py["errors"];
    for (name, state) in [
        ("undefined_table", "42P01"),
        ("undefined_column", "42703"),
        ("syntax", "42601"),
        ("create_table", "25006"),
        ("insert", "25006"),
        ("copy_to_file", "25006"),
        ("external_table", "25006"),
        ("engine_setting", "42501"),
    ] {
        assert_eq!(errors[name]["sqlstate"], state, "{name}: {}", errors[name]);
        let msg = errors[name]["message"].as_str().unwrap_or_default();
        assert!(!msg.contains("src/") && !msg.contains("panicked"), "{name}: no internals in {msg}");
    }
    assert!(py["bad_password"].as_str().is_some_and(|s| s.contains("authentication failed")), "{}", py["bad_password"]);

    // Flight SQL: ADBC, pyarrow.flight, and the Rust client.
    let fl = python(
        "flight_client.py",
        &[
            &server.flight,
            USER,
            PASSWORD,
            VALUES_SQL,
            "SELECT scrip_code, trade_date, close FROM price_features WHERE scrip_code = $1 ORDER BY trade_date DESC LIMIT 3",
            "500325",
        ],
    );
    assert_eq!(from_json_rows(&fl["adbc_rows"]), psql_values, "ADBC agrees");
    assert_eq!(from_json_rows(&fl["pyarrow_rows"]), psql_values, "pyarrow.flight agrees");
    assert_eq!(fl["adbc_schema"]["trade_date"], "date32[day]");
    let types = &fl["column_types"];
    assert_eq!(types["bhavcopy"]["symbol"], "string", "strings arrive as Utf8, not Utf8View: {types}");
    assert_eq!(types["bhavcopy"]["isin"], "string");
    assert_eq!(types["bhavstore_runs"]["status"], "string");
    assert!(types["volatility_features"].as_object().is_some_and(|m| m.len() > 5), "{types}");
    assert_eq!(fl["pyarrow_schema_matches_info"], true, "DoGet streams the schema GetFlightInfo announced");
    assert_eq!(
        fl["adbc_param_rows"].as_array().map(|r| r.iter().map(|x| x["trade_date"].clone()).collect::<Vec<_>>()),
        py["param_rows"].as_array().map(|r| r.iter().map(|x| x["trade_date"].clone()).collect::<Vec<_>>()),
        "a prepared statement with a bound parameter"
    );
    let public = fl["objects"][0]["schemas"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["schema"] == "public"))
        .expect("ADBC get_objects lists the public schema");
    assert!(
        public["tables"]["price_features"].as_array().is_some_and(|c| c.contains(&Value::from("sma_20"))),
        "{public}"
    );
    assert!(public["tables"]["bhavcopy"].as_array().is_some_and(|c| c.len() > 10));
    assert_eq!(fl["info"]["vendor_name"], "bhavstore");
    assert!(fl["adbc_ddl"].as_str().is_some_and(|s| s.contains("read-only")), "{}", fl["adbc_ddl"]);
    assert_eq!(fl["bad_password"], "FlightUnauthenticatedError");
    assert_eq!(fl["anonymous"], "FlightUnauthenticatedError");

    let rust_values = rt.block_on(async {
        let mut client = flight_client(&server).await;
        let batches = flight_query(&mut client, VALUES_SQL).await;
        let mut v = Values::new();
        for b in &batches {
            let dates = datafusion::arrow::compute::cast(b.column(1), &datafusion::arrow::datatypes::DataType::Utf8)
                .expect("date text");
            let codes = datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Int64)
                .expect("codes");
            for r in 0..b.num_rows() {
                let f = |c: usize| {
                    let a = b.column(c).as_primitive::<Float64Type>();
                    (!a.is_null(r)).then(|| a.value(r).to_bits())
                };
                v.insert(
                    (codes.as_primitive::<Int64Type>().value(r), dates.as_string::<i32>().value(r).to_string()),
                    vec![f(2), f(3), f(4), f(5)],
                );
            }
        }
        v
    });
    assert_eq!(rust_values, psql_values, "arrow-flight's Rust client agrees");

    // REST: the online store serves the same number once the last session is available (the
    // files were imported long after their days: 18:00 IST, 12:30 UTC).
    let (last_date, last_sma) = psql_values
        .iter()
        .filter(|((code, _), _)| *code == 500325)
        .max_by_key(|((_, d), _)| d.clone())
        .map(|((_, d), v)| (d.clone(), v[1]))
        .expect("500325 rows");
    let url = format!(
        "http://{}/feature-store/lookup?entity_id=500325&feature_name=sma_20&timestamp={last_date}T13:00:00Z",
        server.http
    );
    let body: Value = rt.block_on(async {
        let text =
            reqwest::Client::new().get(url).bearer_auth(TOKEN).send().await.expect("rest").text().await.expect("body");
        serde_json::from_str::<Value>(&text).expect("json")
    });
    assert_eq!(body["value"].as_f64().map(f64::to_bits), last_sma, "{body}");
}

/// Queries DBeaver, Metabase (both through pgJDBC) and Grafana (Go) send when they connect and
/// browse the schema, replayed in the simple and the extended protocol.
const BI_STARTUP: &[(&str, &str)] = &[
    // Superset and every SQLAlchemy-based tool: the dialect's connect and inspection queries.
    ("superset", "select pg_catalog.version()"),
    ("superset", "select current_schema()"),
    ("superset", "show standard_conforming_strings"),
    ("superset", "show transaction isolation level"),
    (
        "superset",
        "SELECT pg_catalog.pg_namespace.nspname FROM pg_catalog.pg_namespace WHERE pg_catalog.pg_namespace.nspname NOT LIKE 'pg/_%' ESCAPE '/' ORDER BY pg_catalog.pg_namespace.nspname",
    ),
    (
        "superset",
        "SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace WHERE pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p']) AND pg_catalog.pg_class.relpersistence != 't' AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'",
    ),
    ("grafana", "SELECT current_setting('server_version_num')::int / 100 AS version"),
    // pgJDBC's DatabaseMetaData.getSQLKeywords, which DBeaver calls on connect.
    (
        "dbeaver",
        "select string_agg(word, ',') from pg_catalog.pg_get_keywords() where word <> ALL ('{a,an,and,any,are,as,asc,at,authorization,between,both,but,by,case,cast,check,collate,column,constraint,create,cross,current_date,current_time,current_timestamp,default,deferrable,desc,distinct,do,else,end,except,false,fetch,for,foreign,from,full,grant,group,having,in,initially,inner,intersect,into,is,join,lateral,leading,left,like,limit,localtime,localtimestamp,natural,no,not,null,offset,on,only,or,order,outer,overlaps,primary,references,right,select,session_user,similar,some,table,then,to,trailing,true,union,unique,user,using,when,where,with}'::text[])",
    ),
    ("dbeaver", "SELECT current_user, session_user, current_database()"),
    ("dbeaver", "SET extra_float_digits = 3"),
    ("dbeaver", "SET application_name = 'DBeaver 25.1.5 - Main <bhavstore>'"),
    ("dbeaver", "SELECT current_schema(),session_user"),
    ("dbeaver", "SELECT version()"),
    ("dbeaver", "SHOW search_path"),
    ("dbeaver", "SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='bhavstore'"),
    ("dbeaver", "SELECT * FROM pg_catalog.pg_settings where name='standard_conforming_strings'"),
    (
        "dbeaver",
        "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname",
    ),
    (
        "dbeaver",
        "SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.relpartbound is not null then 1 else 0 end as is_partition FROM pg_catalog.pg_class c LEFT OUTER JOIN pg_catalog.pg_inherits i ON i.inhrelid=c.oid LEFT OUTER JOIN pg_catalog.pg_class t ON t.oid=i.inhparent LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.reltoastrelid LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass WHERE c.relnamespace=2200 AND c.relkind not in ('i','I','c')",
    ),
    ("dbeaver", "SELECT * FROM pg_catalog.pg_enum WHERE 1<>1 LIMIT 1"),
    (
        "dbeaver",
        "SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description FROM pg_catalog.pg_type t LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid WHERE t.typname IS NOT NULL AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C')",
    ),
    ("metabase", "SET extra_float_digits = 2"),
    ("metabase", "SET application_name = 'Metabase v0.55.1'"),
    ("metabase", "SHOW TRANSACTION ISOLATION LEVEL"),
    ("metabase", "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED"),
    (
        "metabase",
        "SELECT nspname AS \"TABLE_SCHEM\", current_database() AS \"TABLE_CATALOG\" FROM pg_catalog.pg_namespace WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_' OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_' OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_')) ORDER BY \"TABLE_SCHEM\"",
    ),
    (
        "metabase",
        "SELECT \"n\".\"nspname\" AS \"schema\", \"c\".\"relname\" AS \"name\", CASE \"c\".\"relkind\" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS \"type\", \"d\".\"description\" AS \"description\" FROM \"pg_catalog\".\"pg_class\" AS \"c\" INNER JOIN \"pg_catalog\".\"pg_namespace\" AS \"n\" ON \"c\".\"relnamespace\" = \"n\".\"oid\" LEFT JOIN \"pg_catalog\".\"pg_description\" AS \"d\" ON (\"c\".\"oid\" = \"d\".\"objoid\") AND (\"d\".\"objsubid\" = 0) WHERE (\"n\".\"nspname\" !~ '^pg_') AND (\"n\".\"nspname\" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND (\"n\".\"nspname\" IN ('public')) ORDER BY \"type\" ASC, \"schema\" ASC, \"name\" ASC",
    ),
    (
        "metabase",
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'price_features' ORDER BY ordinal_position",
    ),
    ("metabase", "show timezone"),
    ("grafana", "SELECT 1"),
    ("grafana", "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"),
    ("grafana", "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'price_features'"),
    (
        "grafana",
        "SELECT trade_date AS \"time\", avg(close) AS \"close\" FROM price_features WHERE trade_date BETWEEN '2015-04-01' AND '2015-04-30' GROUP BY 1 ORDER BY 1",
    ),
];

#[test]
fn bi_tool_startup_queries_run_in_both_protocols() {
    let Some((root, cfg, _)) = fixture(40) else { return };
    let server = start(&root, &cfg);
    runtime().block_on(async {
        let client = pg_client(&server).await;
        let mut failures = Vec::new();
        for (tool, sql) in BI_STARTUP {
            if let Err(e) = client.simple_query(sql).await {
                failures.push(format!("{tool} (simple): {sql}\n  -> {e:?}"));
            }
            // pgJDBC sends statements through the extended protocol (Parse/Bind/Execute).
            if !sql.starts_with("SET")
                && let Err(e) = client.query(*sql, &[]).await
            {
                failures.push(format!("{tool} (extended): {sql}\n  -> {e:?}"));
            }
        }
        assert!(failures.is_empty(), "{} startup queries failed:\n{}", failures.len(), failures.join("\n"));
    });
}

#[test]
fn no_client_can_write_or_read_server_files() {
    let Some((root, cfg, _)) = fixture(40) else { return };
    let server = start(&root, &cfg);
    let scratch = tempfile::tempdir().expect("tempdir");
    let target = scratch.path().join("written-by-a-client.csv");
    let target = target.display().to_string();
    let attacks = [
        "SELECT * FROM '/etc/passwd'".to_string(),
        "CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".to_string(),
        format!("COPY (SELECT 1 AS x) TO '{target}'"),
        format!("COPY price_features TO '{target}' STORED AS CSV"),
        format!("CREATE EXTERNAL TABLE out (x INT) STORED AS CSV LOCATION '{target}'"),
        "CREATE TABLE stolen AS SELECT * FROM price_features".to_string(),
        "SELECT 1 INTO scratch_table".to_string(),
        "INSERT INTO price_features (scrip_code) VALUES (1)".to_string(),
        "DELETE FROM bhavcopy".to_string(),
        "DROP TABLE price_features".to_string(),
        "CREATE VIEW v AS SELECT 1".to_string(),
        "SET datafusion.catalog.information_schema = false".to_string(),
    ];
    let rt = runtime();
    rt.block_on(async {
        let client = pg_client(&server).await;
        for sql in &attacks {
            let simple = client.simple_query(sql).await;
            assert!(simple.is_err(), "simple protocol accepted {sql}");
            let e = simple.err().and_then(|e| e.as_db_error().cloned()).expect("a database error");
            assert!(!e.message().contains("root:"), "{sql} leaked file content: {}", e.message());
            let extended = client.query(sql.as_str(), &[]).await;
            assert!(extended.is_err(), "extended protocol accepted {sql}");
        }
        // The session still works and nothing changed.
        let n: i64 = client.query_one("SELECT count(*) FROM price_features", &[]).await.expect("count").get(0);
        assert!(n > 0);
        let rows = client.query("SELECT table_name FROM information_schema.tables WHERE table_name IN ('stolen','scratch_table','v','pw','out')", &[]).await.expect("tables");
        assert!(rows.is_empty(), "no table was created");

        let mut flight = flight_client(&server).await;
        for sql in &attacks {
            let r = flight.execute(sql.clone(), None).await;
            assert!(r.is_err(), "Flight statement accepted {sql}");
            let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!msg.contains("root:"), "{sql} leaked file content: {msg}");
            assert!(flight.prepare(sql.clone(), None).await.is_err(), "Flight prepared statement accepted {sql}");
        }
    });
    assert!(!Path::new(&target).exists(), "a client wrote {target}");
    // REST parameters are values, never SQL.
    let url = format!(
        "http://{}/feature-store/lookup?entity_id=500325%27%3B%20DROP%20TABLE%20price_features%3B--&feature_name=sma_20",
        server.http
    );
    let status = rt.block_on(async {
        reqwest::Client::new().get(url).bearer_auth(TOKEN).send().await.expect("rest").status().as_u16()
    });
    assert_eq!(status, 404, "an entity id that looks like SQL is just an unknown entity");
    let o = psql(&server, PASSWORD, "SELECT count(*) FROM price_features");
    assert!(o.status.success() && !stdout(&o).contains(",0\n"), "{}", stdout(&o));
}

#[test]
fn training_sets_match_a_brute_force_as_of_scan_over_sql_and_flight_uploads() {
    let Some((root, cfg, _)) = fixture(0) else { return };
    // Brute force side: every (scrip_code, trade_date, sma_20) of the materialized view.
    let csv = cli(&root, &["query", "--format", "csv", "SELECT scrip_code, trade_date, sma_20 FROM price_features"]);
    let mut series: HashMap<i64, Vec<(NaiveDate, String)>> = HashMap::new();
    for line in csv.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        series.entry(c[0].parse().expect("code")).or_default().push((c[1].parse().expect("date"), c[2].to_string()));
    }
    for v in series.values_mut() {
        v.sort();
    }
    // A spine: sampled securities at instants around the 15:30 IST (10:00 UTC) close, weekends,
    // after the ttl (5d), before the history, and an unknown security.
    let mut spine: Vec<(i64, DateTime<Utc>)> = Vec::new();
    let mut codes: Vec<i64> = series.keys().copied().collect();
    codes.sort_unstable();
    for (i, code) in codes.iter().step_by(97).enumerate() {
        let rows = &series[code];
        for (j, (d, _)) in rows.iter().enumerate().step_by(11) {
            let (h, m) = [(3, 0), (9, 59), (10, 0), (15, 45)][(i + j) % 4];
            spine.push((*code, d.and_hms_opt(h, m, 0).expect("time").and_utc()));
        }
        let last = rows.last().map(|r| r.0).expect("rows");
        spine.push((*code, (last + Days::new(9)).and_hms_opt(12, 0, 0).expect("t").and_utc()));
    }
    spine.push((codes[0], NaiveDate::from_ymd_opt(2014, 6, 1).expect("d").and_hms_opt(12, 0, 0).expect("t").and_utc()));
    spine.push((1, NaiveDate::from_ymd_opt(2015, 3, 2).expect("d").and_hms_opt(12, 0, 0).expect("t").and_utc()));
    assert!(spine.len() > 150, "{}", spine.len());
    let expected: Vec<(Option<String>, Option<String>)> = spine
        .iter()
        .map(|(code, at)| {
            // The default rule, available: the files were imported long after their days, so
            // each day counts as published at 18:00 IST (12:30 UTC).
            let cutoff = if at.time() >= chrono::NaiveTime::from_hms_opt(12, 30, 0).expect("t") {
                at.date_naive()
            } else {
                at.date_naive() - Days::new(1)
            };
            let found = series.get(code).and_then(|r| r.iter().rev().find(|(d, _)| *d <= cutoff));
            match found {
                Some((d, v)) if *at - d.and_hms_opt(10, 0, 0).expect("t").and_utc() <= chrono::Duration::days(5) => {
                    (Some(d.to_string()), (!v.is_empty()).then(|| v.clone()))
                }
                _ => (None, None),
            }
        })
        .collect();

    let values =
        spine.iter().map(|(c, t)| format!("({c}, TIMESTAMP '{}')", t.format("%Y-%m-%d %H:%M:%S"))).collect::<Vec<_>>();
    let spine_sql = format!("SELECT * FROM (VALUES {}) AS s(entity, ts)", values.join(", "));
    let sql = format!(
        "SELECT entity, ts, feature_trade_date, sma_20 FROM features_asof('price_features', '{}')",
        spine_sql.replace('\'', "''")
    );
    let server = start(&root, &cfg);
    let rt = runtime();
    let got = rt.block_on(async {
        let client = pg_client(&server).await;
        client.query(sql.as_str(), &[]).await.expect("features_asof over Postgres")
    });
    assert_eq!(got.len(), spine.len(), "one row per spine row");
    let mut matched = 0;
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.get::<_, Option<i64>>(0), Some(spine[i].0), "spine order kept");
        let date = r.get::<_, Option<NaiveDate>>(2).map(|d| d.to_string());
        let value = r.get::<_, Option<f64>>(3).map(f64::to_bits);
        assert_eq!(date, expected[i].0, "row {i}: {:?}", spine[i]);
        assert_eq!(value, expected[i].1.as_deref().map(|v| v.parse::<f64>().expect("f").to_bits()), "row {i}");
        matched += usize::from(date.is_some());
    }
    assert!(matched > 100 && matched < spine.len(), "both matched and unmatched rows: {matched}");

    // The same spine uploaded over Flight (ADBC bulk ingest into the session's temp catalog).
    let spine_json =
        serde_json::to_string(&spine.iter().map(|(c, t)| serde_json::json!([c, t.to_rfc3339()])).collect::<Vec<_>>())
            .expect("json");
    let spine_file = cfg.path().join("spine.json");
    std::fs::write(&spine_file, spine_json).expect("spine");
    let fl = python("flight_training.py", &[&server.flight, USER, PASSWORD, &spine_file.display().to_string()]);
    let rows = fl["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), spine.len());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["feature_trade_date"].as_str().map(str::to_string), expected[i].0, "flight row {i}");
        assert_eq!(
            exact(&r["sma_20"]),
            expected[i].1.as_deref().map(|v| v.parse::<f64>().expect("f").to_bits()),
            "flight row {i}"
        );
    }
    assert!(
        fl["other_session"].as_str().is_some_and(|s| s.contains("not found")),
        "uploads are per session: {}",
        fl["other_session"]
    );
    assert!(fl["persistent"].as_str().is_some_and(|s| s.contains("read-only")), "{}", fl["persistent"]);
}

#[test]
fn sql_clients_see_new_publications_without_reconnecting() {
    let Some((root, cfg, held)) = fixture(3) else { return };
    let server = start(&root, &cfg);
    let rt = runtime();
    rt.block_on(async {
        let client = pg_client(&server).await;
        let before: NaiveDate =
            client.query_one("SELECT max(trade_date) FROM price_features", &[]).await.expect("max").get(0);
        root.import(&held);
        cli(&root, &["materialize"]);
        let mut after = before;
        for _ in 0..60 {
            after = client.query_one("SELECT max(trade_date) FROM price_features", &[]).await.expect("max").get(0);
            if after > before {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        assert!(after > before, "the same session sees the new manifest ({before} -> {after})");
        let mut flight = flight_client(&server).await;
        let b = flight_query(&mut flight, "SELECT CAST(max(trade_date) AS VARCHAR) AS d FROM price_features").await;
        assert_eq!(b[0].column(0).as_string::<i32>().value(0), after.to_string(), "Flight reads the same state");
    });
}

/// What REST's `/health` says the online store serves of `price_features`: (generation, newest
/// trade date).
async fn rest_state(http: &reqwest::Client, server: &Serve) -> (u64, String) {
    let body: Value = serde_json::from_str(
        &http.get(format!("http://{}/health", server.http)).send().await.expect("health").text().await.expect("body"),
    )
    .expect("json");
    let view = body["views"].as_array().expect("views").iter().find(|v| v["view"] == "price_features").cloned();
    let newest = view.and_then(|v| v["newest_trade_date"].as_str().map(str::to_string)).expect("price_features held");
    (body["generation"].as_u64().expect("generation"), newest)
}

/// One publication moves Postgres, Flight and REST together: while other processes ingest and
/// publish, a reader asks REST, then Postgres and Flight, then REST again. Whenever the two REST
/// answers name the same publication, the SQL answers between them must come from it too.
#[test]
fn one_publication_moves_every_protocol_together() {
    let Some((root, cfg, held)) = fixture(4) else { return };
    let server = start(&root, &cfg);
    let rt = runtime();
    std::thread::scope(|scope| {
        let publishing = scope.spawn(|| {
            for file in &held {
                root.import([file]);
                cli(&root, &["materialize"]);
                std::thread::sleep(std::time::Duration::from_millis(700));
            }
        });
        rt.block_on(async {
            let http = reqwest::Client::new();
            let client = pg_client(&server).await;
            let mut flight = flight_client(&server).await;
            let sql = "SELECT CAST(max(trade_date) AS VARCHAR) AS d FROM price_features";
            let (mut agreed, mut states) = (0, std::collections::BTreeSet::new());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
            loop {
                let done = publishing.is_finished();
                let (g1, r1) = rest_state(&http, &server).await;
                let pg: String = client.query_one(sql, &[]).await.expect("postgres").get(0);
                let b = flight_query(&mut flight, sql).await;
                let fl = b[0].column(0).as_string::<i32>().value(0).to_string();
                let (g2, r2) = rest_state(&http, &server).await;
                if g1 == g2 {
                    assert_eq!(pg, r1, "Postgres read another publication than REST (generation {g1})");
                    assert_eq!(fl, r1, "Flight read another publication than REST (generation {g1})");
                    agreed += 1;
                }
                states.insert(r2);
                // After the last publication, wait until the server has switched to it.
                if done && states.len() > held.len() && g1 == g2 {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "publications not seen: {states:?}");
            }
            assert!(agreed > 10, "only {agreed} bracketed reads");
            assert!(states.len() > held.len(), "every publication was served: {states:?}");
        });
        publishing.join().expect("publisher thread");
    });
}

#[test]
fn tls_for_postgres_and_flight() {
    let Some((root, cfg, _)) = fixture(50) else { return };
    let (cert, key) = (cfg.path().join("cert.pem"), cfg.path().join("key.pem"));
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", stderr(&o));
    let yaml = cfg.path().join("bhavstore.yaml");
    let mut text = std::fs::read_to_string(&yaml).expect("config");
    text = text
        .replace("server:\n", &format!("server:\n  tls:\n    cert: {}\n    key: {}\n", cert.display(), key.display()));
    std::fs::write(&yaml, text).expect("config");
    let server = start(&root, &cfg);

    // psql negotiates TLS; verify-ca checks our certificate.
    let (host, port) = server.pg_host_port();
    let conn = format!(
        "host={host} port={port} user={USER} dbname=bhavstore sslmode=verify-ca sslrootcert={}",
        cert.display()
    );
    let o = Command::new("psql")
        .arg(&conn)
        .args(["-X", "-A", "-t", "-c", "SELECT count(*) > 0 FROM price_features"])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("psql");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "t");

    // Flight over grpc+tls with the certificate as the root.
    let script = format!(
        "import pyarrow.flight as fl\n\
         c = fl.FlightClient('grpc+tls://{addr}', tls_root_certs=open('{cert}','rb').read())\n\
         h = c.authenticate_basic_token('{USER}', '{PASSWORD}')\n\
         print('handshake', h[0].decode())\n\
         try:\n    fl.FlightClient('grpc://{addr}').authenticate_basic_token('{USER}', '{PASSWORD}')\n    print('plaintext accepted')\n\
         except fl.FlightError as e:\n    print('plaintext refused')\n",
        addr = server.flight,
        cert = cert.display()
    );
    let o = Command::new("python3").args(["-c", &script]).output().expect("python3");
    let out = stdout(&o);
    assert!(o.status.success(), "{}{out}", stderr(&o));
    assert!(out.contains("handshake authorization"), "{out}");
    assert!(out.contains("plaintext refused"), "{out}");
}
