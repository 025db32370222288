//! `bhavstore serve` runs its schedule by itself: with a cron firing every few seconds it
//! downloads the day's bhavcopy from a fake BSE on 127.0.0.1, materializes every view, and
//! stops cleanly on SIGTERM.

use std::process::Stdio;
use std::time::{Duration, Instant};

use bhavstore_e2e::bin::{bhavstore, run, stderr, stdout};
use bhavstore_e2e::fake_bse::{FakeBse, Route};
use bhavstore_e2e::storage_roots::Root;
use bhavstore_e2e::synthetic::Market;
use chrono::{Datelike, Days, FixedOffset, Utc};

#[test]
fn serve_ingests_and_materializes_on_schedule_and_stops_on_sigterm() {
    let bse = FakeBse::start();
    // The job ingests the fire time's date in India; serve that day and the next (in case the
    // test runs across midnight IST). The synthetic CSV is in the legacy layout, which carries
    // no date of its own, under today's UDiFF file name.
    let ist = FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("offset");
    let today = Utc::now().with_timezone(&ist).date_naive();
    let mut market = Market::new(30, 1, 3);
    let (_, csv) = market.session(0);
    for d in [today, today + Days::new(1)] {
        bse.set(&format!("BhavCopy_BSE_CM_0_0_0_{}_F_0000.CSV", d.format("%Y%m%d")), Route::File(csv.clone()));
    }
    // After each new session the schedule downloads the corporate actions of the 30 days around
    // it, a month at a time, from BSE's API (the fake answers every month with one dividend of
    // the synthetic scrip 500000, ex today).
    let actions = format!(
        "Security Code,Security Name,Company Name,Ex Date,Purpose,Record Date,BC Start Date, BC End Date\t,ND Start Date,ND End Date,Actual Payment Date\n\
         500000,SYNTH,Synthetic Ltd,{ex},Final Dividend - Rs. - 2.5000,{ex},-,-,-,-,-\n",
        ex = today.format("%d %b %Y")
    );
    let mut months = 0;
    for fire in [today, today + Days::new(1)] {
        let (from, to) = (fire - Days::new(30), fire + Days::new(30));
        let mut start = from;
        while start <= to {
            let next_month = chrono::NaiveDate::from_ymd_opt(start.year(), start.month(), 1)
                .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
                .expect("month");
            let end = (next_month - Days::new(1)).min(to);
            bse.set(
                &format!(
                    "/BseIndiaAPI/api/CorpactCSVDownload/w?scripcode=&Fdate={}&TDate={}&Purposecode=&strSearch=S&ddlindustrys=&ddlcategorys=E&segment=0",
                    start.format("%Y%m%d"),
                    end.format("%Y%m%d")
                ),
                Route::File(actions.clone().into_bytes()),
            );
            months += 1;
            start = end + Days::new(1);
        }
    }
    assert!(months >= 4);

    let root = Root::local();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bhavstore.yaml");
    std::fs::write(
        &config,
        "server:\n  http_addr: 127.0.0.1:0\n  pg_addr: 127.0.0.1:0\n  flight_addr: 127.0.0.1:0\nschedule:\n  timezone: Asia/Kolkata\n  jobs:\n    - name: every-3s\n      cron: \"*/3 * * * * *\"\n      retry_every: 1s\n      retry_until: \"23:59\"\n",
    )
    .expect("config");
    let defs = bhavstore_e2e::crate_dir().join("../feature_defs");
    let mut serve = bhavstore();
    root.apply(&mut serve);
    let mut child = serve
        .arg("--config")
        .arg(&config)
        .arg("--feature-defs")
        .arg(&defs)
        .args(["serve", "--source-url", &bse.url()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");

    let query = |sql: &str| {
        let mut c = bhavstore();
        root.apply(&mut c);
        let o = run(c.arg("--feature-defs").arg(&defs).args(["query", "--format", "csv", sql]));
        assert!(o.status.success(), "{sql}: {}", stderr(&o));
        stdout(&o)
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let runs = query(
            "select count(*) from bhavstore_runs where status = 'succeeded' and mode = 'full' \
             and view in ('price_features', 'volatility_features')",
        );
        if runs.lines().nth(1) == Some("2") {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().expect("wait").is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().expect("serve output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(done, "the scheduled job did not materialize both views in time:\n{log}");
    assert!(out.status.success(), "serve must exit 0 on SIGTERM: {:?}\n{log}", out.status);
    assert!(log.contains("next_fire"), "start-up logs the next fire time:\n{log}");
    assert!(log.contains("bhavstore serve stopped"), "{log}");
    assert!(bse.total_hits() >= 1);
    let days = query("select distinct trade_date from bhavcopy");
    assert!(days.contains(&today.to_string()) || days.contains(&(today + Days::new(1)).to_string()), "{days}");
    let ingests =
        query("select mode, rows from bhavstore_runs where kind = 'ingest' and status = 'succeeded' order by run_id");
    assert!(ingests.lines().nth(1).is_some_and(|l| l.starts_with("loaded,") && !l.ends_with(",0")), "{ingests}");
    let rows = query("select count(*) from price_features");
    assert_ne!(rows.lines().nth(1), Some("0"), "{rows}");
    // The actions came in with the day, stored once whatever the number of months asked.
    let dividends = query("select count(*) from corporate_actions where scrip_code = 500000 and kind = 'dividend'");
    assert_eq!(dividends.lines().nth(1), Some("1"), "{dividends}\n{log}");
}
