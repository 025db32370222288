//! Every real BSE file under `../shared/data/bse-real` through the ingestion path: counts add
//! up, dates come out right for each format, values match the CSV text, and the defective
//! inputs give the errors they should.

use std::collections::HashMap;
use std::path::Path;

use bhavstore_e2e::real_data::{count_data_lines, files_under, real_data_dir};
use bhavstore_e2e::storage_roots::Root;
use bhavstore_ingest::{IngestError, Ingested, Ingestor, Provenance};
use bytes::Bytes;
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int32Type, Int64Type};

fn prov(path: &Path) -> Provenance {
    Provenance {
        kind: "import".into(),
        source: path.display().to_string(),
        fetched_at: chrono::Utc::now(),
        http_status: None,
        content_type: None,
    }
}

async fn ingest_file(ing: &Ingestor, path: &Path) -> Result<Ingested, IngestError> {
    let bytes = Bytes::from(std::fs::read(path).expect("read"));
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    ing.ingest_bytes(&name, bytes, prov(path), None).await
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Values of one day as stored, by scrip code: (open, close, prev_close, volume, ex_flag).
type DayRows = HashMap<i32, (f64, f64, Option<f64>, Option<i64>, Option<String>)>;

async fn stored_day(ctx: &datafusion::prelude::SessionContext, day: NaiveDate) -> DayRows {
    let sql = format!(
        "select scrip_code, open, close, prev_close, volume, ex_flag from bhavcopy where trade_date = DATE '{day}'"
    );
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let mut out = HashMap::new();
    for b in batches {
        let code = b.column(0).as_primitive::<Int32Type>();
        let open = b.column(1).as_primitive::<Float64Type>();
        let close = b.column(2).as_primitive::<Float64Type>();
        let prev = b.column(3).as_primitive::<Float64Type>();
        let vol = b.column(4).as_primitive::<Int64Type>();
        let flag = b.column(5).as_string::<i32>();
        for i in 0..b.num_rows() {
            out.insert(
                code.value(i),
                (
                    open.value(i),
                    close.value(i),
                    (!prev.is_null(i)).then(|| prev.value(i)),
                    (!vol.is_null(i)).then(|| vol.value(i)),
                    (!flag.is_null(i)).then(|| flag.value(i).to_string()),
                ),
            );
        }
    }
    out
}

/// Checks every 97th data line of a legacy CSV against the stored row, reading the CSV text
/// with a naive split (lines with quotes are skipped: the naive split cannot read them).
fn spot_check_legacy(csv: &[u8], rows: &DayRows, file: &Path) -> usize {
    let text = String::from_utf8_lossy(csv);
    let mut checked = 0;
    for line in text.split('\n').skip(1).step_by(97) {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.contains('"') {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 14 {
            continue;
        }
        let code: i32 = f[0].trim().parse().unwrap();
        let (open, close, prev, vol, flag) =
            rows.get(&code).unwrap_or_else(|| panic!("{}: scrip {code} missing", file.display()));
        assert_eq!(*open, f[4].parse::<f64>().unwrap(), "{} {code} OPEN", file.display());
        assert_eq!(*close, f[7].parse::<f64>().unwrap(), "{} {code} CLOSE", file.display());
        let want_prev: f64 = f[9].parse().unwrap();
        assert_eq!(prev.unwrap_or(0.0), want_prev, "{} {code} PREVCLOSE", file.display());
        assert_eq!(vol.unwrap(), f[11].parse::<i64>().unwrap(), "{} {code} NO_OF_SHRS", file.display());
        let want_flag = f[13].trim();
        assert_eq!(flag.as_deref().unwrap_or(""), want_flag, "{} {code} TDCLOINDI", file.display());
        checked += 1;
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_bse_file_loads_with_counts_that_add_up() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    let storage = root.open();
    let ing = Ingestor::new(storage.clone());
    let ctx = bhavstore_lake::session(&storage).unwrap();

    let mut legacy_days = 0;
    let mut spot_checked = 0;
    for sub in ["legacy-eq-14col/2015", "legacy-eq-14col/other"] {
        for path in files_under(&dir.join(sub)) {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let want_date = bhavstore_formats::file_name::date_from_file_name(&name).unwrap();
            let Ingested::Loaded { report, .. } = ingest_file(&ing, &path).await.unwrap() else {
                panic!("{} was not loaded", path.display())
            };
            assert_eq!(report.trade_date, want_date, "{}", path.display());
            assert_eq!(report.source_format, "bse_eq_legacy14");
            assert_eq!(report.data_lines, count_data_lines(&bytes), "{}", path.display());
            assert_eq!(report.rows_loaded + report.rows_quarantined, report.data_lines, "{}", path.display());
            assert_eq!(report.rows_quarantined, 0, "{}: clean BSE file had quarantined lines", path.display());
            let rows = stored_day(&ctx, want_date).await;
            assert_eq!(rows.len() as u64, report.rows_loaded);
            spot_checked += spot_check_legacy(&bytes, &rows, &path);
            legacy_days += 1;
        }
    }
    assert_eq!(legacy_days, 73);
    assert!(spot_checked > 73 * 20, "only {spot_checked} spot checks ran");

    // Known facts from the data README: a split on 2015-03-11 with an unadjusted PREVCLOSE.
    let rows = stored_day(&ctx, date("2015-03-11")).await;
    let (_, close, prev, _, flag) = rows.get(&511_064).unwrap();
    assert_eq!((*close, *prev, flag.as_deref()), (48.60, Some(478.30), Some("SS")));

    // EQ_ISINCODE: the date comes from TRADING_DATE and the ISIN is kept.
    for (file, day) in [("EQ_ISINCODE_030521.CSV", "2021-05-03"), ("EQ_ISINCODE_060122.CSV", "2022-01-06")] {
        let path = dir.join("legacy-eq-isincode-18col").join(file);
        let bytes = std::fs::read(&path).unwrap();
        let Ingested::Loaded { report, .. } = ingest_file(&ing, &path).await.unwrap() else { panic!() };
        assert_eq!(report.trade_date, date(day));
        assert_eq!(report.source_format, "bse_eq_isincode18");
        assert_eq!(report.rows_loaded + report.rows_quarantined, count_data_lines(&bytes));
        assert_eq!(report.rows_quarantined, 0);
    }
    // UDiFF has no SC_TYPE: `is_equity` comes from the ISIN there. The 18-column files carry both,
    // so they check the ISIN rule against BSE's own SC_TYPE on every row.
    let mut agreed = 0;
    for file in ["EQ_ISINCODE_030521.CSV", "EQ_ISINCODE_060122.CSV"] {
        let text = std::fs::read_to_string(dir.join("legacy-eq-isincode-18col").join(file)).unwrap();
        for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            let q = f[3].trim() == "Q";
            assert_eq!(bhavstore_formats::equity_by_isin(f[14]), q, "{file}: {line}");
            agreed += 1;
        }
    }
    assert!(agreed > 7000);
    let isin = ctx
        .sql("select isin, close from bhavcopy where trade_date = DATE '2021-05-03' and scrip_code = 500002")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(isin[0].column(0).as_string::<i32>().value(0), "INE117A01022");
    assert_eq!(isin[0].column(1).as_primitive::<Float64Type>().value(0), 1393.45);

    // UDiFF: 4,784 rows, date from TradDt, symbol and ISIN present.
    let udiff = dir.join("udiff/BhavCopy_BSE_CM_0_0_0_20250825_F_0000.CSV");
    let Ingested::Loaded { report, .. } = ingest_file(&ing, &udiff).await.unwrap() else { panic!() };
    assert_eq!((report.trade_date, report.rows_loaded, report.rows_quarantined), (date("2025-08-25"), 4784, 0));
    assert_eq!(report.source_format, "bse_cm_udiff");
    let b = ctx
        .sql("select symbol, isin, open, close, prev_close, volume, trades, turnover, sc_group, sc_type, name from bhavcopy where trade_date = DATE '2025-08-25' and scrip_code = 500002")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    // The CSV line: 2025-08-25,...,STK,500002,INE117A01022,ABB,A,,,,,ABB INDIA LIMITED,5110.45,5110.45,5046.00,5101.35,5103.70,5060.85,,5100.50,,,28910,147139595.00,618,...
    let r = &b[0];
    assert_eq!(r.column(0).as_string::<i32>().value(0), "ABB");
    assert_eq!(r.column(1).as_string::<i32>().value(0), "INE117A01022");
    assert_eq!(r.column(2).as_primitive::<Float64Type>().value(0), 5110.45);
    assert_eq!(r.column(3).as_primitive::<Float64Type>().value(0), 5101.35);
    assert_eq!(r.column(4).as_primitive::<Float64Type>().value(0), 5060.85);
    assert_eq!(r.column(5).as_primitive::<Int64Type>().value(0), 28910);
    assert_eq!(r.column(6).as_primitive::<Int64Type>().value(0), 618);
    assert_eq!(r.column(7).as_primitive::<Float64Type>().value(0), 147_139_595.0);
    assert_eq!(r.column(8).as_string::<i32>().value(0), "A");
    assert_eq!(r.column(9).as_string::<i32>().value(0), "STK");
    assert_eq!(r.column(10).as_string::<i32>().value(0), "ABB INDIA LIMITED");

    // The same file with CR CR LF line ends gives the same rows, and as it is the same day with
    // different bytes it becomes a new revision.
    let crcrlf = dir.join("defects/BhavCopy_20250825.crcrlf.csv");
    let before = ctx
        .sql("select scrip_code, open, high, low, close, last, prev_close, volume, turnover, trades, source_line from bhavcopy where trade_date = DATE '2025-08-25' order by scrip_code")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let Ingested::Loaded { report, superseded } = ingest_file(&ing, &crcrlf).await.unwrap() else { panic!() };
    assert!(superseded.is_some(), "different bytes for a stored day must be a new revision");
    assert_eq!((report.rows_loaded, report.rows_quarantined), (4784, 0));
    let after = ctx
        .sql("select scrip_code, open, high, low, close, last, prev_close, volume, turnover, trades, source_line from bhavcopy where trade_date = DATE '2025-08-25' order by scrip_code")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(before, after, "CR CR LF must parse to exactly the rows of the CRLF file");

    // BSE's own zip: the member's date, the same rows as the unzipped copy of that day.
    let zip = dir.join("zip/EQ280619_CSV.ZIP");
    let res = ingest_file(&ing, &zip).await.unwrap();
    assert!(
        matches!(&res, Ingested::Loaded { report, .. } if report.trade_date == date("2019-06-28") && report.source_name == "EQ280619.CSV"),
        "{res:?}"
    );

    // The excerpts: names carry YYYYMMDD, the UDiFF content its own date.
    for (file, day, n) in
        [("bse_bhavcopy_legacy_20240101.csv", "2024-01-01", 3), ("bse_bhavcopy_udiff_20240708.csv", "2024-07-08", 3)]
    {
        let Ingested::Loaded { report, .. } = ingest_file(&ing, &dir.join("excerpts").join(file)).await.unwrap() else {
            panic!()
        };
        assert_eq!((report.trade_date, report.rows_loaded), (date(day), n), "{file}");
    }

    // Sessions in the catalog: 67 + 6 + 2 + 1 + 2 (2019-06-28 is in both `other` and `zip`).
    let b = ctx.sql("select count(distinct trade_date) from bhavcopy").await.unwrap().collect().await.unwrap();
    assert_eq!(b[0].column(0).as_primitive::<Int64Type>().value(0), 67 + 6 + 2 + 1 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defective_inputs_give_clear_errors_and_lose_nothing() {
    let Some(dir) = real_data_dir() else { return };
    let root = Root::local();
    let storage = root.open();
    let ing = Ingestor::new(storage.clone());
    let ctx = bhavstore_lake::session(&storage).unwrap();

    // BSE's 2021-12-29 file with two records fused on one line: that line is quarantined with
    // its number and the reason; the other lines load.
    let fused = dir.join("defects/EQ291221_merged_records.CSV");
    let bytes = std::fs::read(&fused).unwrap();
    let Ingested::Loaded { report, .. } = ingest_file(&ing, &fused).await.unwrap() else { panic!() };
    assert_eq!(report.trade_date, date("2021-12-29"));
    assert_eq!(report.rows_quarantined, 1);
    assert_eq!(report.rows_loaded + report.rows_quarantined, count_data_lines(&bytes));
    let q = ctx
        .sql("select trade_date, line_number, raw_line, reason, raw_sha256 from bhavcopy_quarantine")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(q.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let fused_line_no =
        String::from_utf8_lossy(&bytes).split('\n').position(|l| l.starts_with("531358,")).unwrap() as u64 + 1;
    assert_eq!(q[0].column(1).as_primitive::<datafusion::arrow::datatypes::UInt64Type>().value(0), fused_line_no);
    assert!(q[0].column(2).as_string::<i32>().value(0).starts_with("531358,CHOICE INT."));
    assert!(q[0].column(3).as_string::<i32>().value(0).contains("27 fields, expected 14"));
    assert_eq!(q[0].column(4).as_string::<i32>().value(0), report.raw_sha256);
    let rows = stored_day(&ctx, date("2021-12-29")).await;
    assert!(rows.contains_key(&531_352) && rows.contains_key(&531_360) && !rows.contains_key(&531_358));

    // The firewall page saved under a .ZIP name: a clear error, the bytes kept.
    let waf = dir.join("defects/EQ180823_CSV.ZIP.waf-block.html");
    let err = ingest_file(&ing, &waf).await.unwrap_err().to_string();
    assert!(err.contains("firewall") && err.contains("kept at rejected/bse/equity/2023-08-18/"), "{err}");

    // A UDiFF file re-saved by a spreadsheet: refused as a whole, saying why.
    let resaved = dir.join("defects/BhavCopy_20250826.spreadsheet-resaved.csv");
    let err = ingest_file(&ing, &resaved).await.unwrap_err().to_string();
    assert!(err.contains("re-saved by a spreadsheet") && err.contains("26-08-2025"), "{err}");
    assert!(err.contains("kept at rejected/"), "{err}");

    // NSE's bhavcopy is not BSE's: the error names the header it saw.
    for path in files_under(&dir.join("nse-legacy")) {
        let err = ingest_file(&ing, &path).await.unwrap_err().to_string();
        assert!(err.contains("unknown header") && err.contains("SYMBOL,SERIES"), "{}: {err}", path.display());
    }

    // Nothing rejected reached the table; every rejected body is kept with its reason.
    let days = ctx.sql("select distinct trade_date from bhavcopy").await.unwrap().collect().await.unwrap();
    assert_eq!(days.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let kept = storage.list("rejected/bse/equity").await.unwrap();
    let metas = kept.iter().filter(|k| k.ends_with("/_meta.json")).count();
    assert_eq!(metas, 2 + 12, "{kept:?}");
}
