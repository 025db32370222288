//! The live rows of `intraday_features` equal the batch evaluation of the same SQL over the
//! stored bars, bit for bit, whatever order the bars arrive in, with corrections, repeats,
//! late bars and bars outside the regular session; and they survive a reopen.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::Float64Type;
use serde_json::{Value, json};

use bhavstore_intraday::{Intraday, IntradayConfig, input};
use bhavstore_storage::{Storage, StorageConfig};

fn defs() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join("../../../feature_defs")
}

/// A seeded walk: `days` sessions of 375 one-minute bars for each of `n` instruments, plus a
/// pre-open and a post-close bar each day.
fn rows(n: usize, days: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut seed: u64 = 42;
    let mut rnd = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 11) as f64) / ((1u64 << 53) as f64)
    };
    for i in 0..n {
        let mut price = 100.0 + 50.0 * i as f64;
        for d in 0..days {
            let date = format!("2026-07-{:02}", 14 + d);
            for m in std::iter::once(9 * 60 + 7).chain(9 * 60 + 15..15 * 60 + 30).chain(std::iter::once(15 * 60 + 40)) {
                let open = price;
                price = (price * (1.0 + (rnd() - 0.5) * 0.004) * 20.0).round() / 20.0;
                let high = open.max(price) + 0.05 * (rnd() * 4.0).floor();
                let low = open.min(price) - 0.05 * (rnd() * 4.0).floor();
                out.push(json!({
                    "instrument": format!("NSE:SYN{i}"),
                    "ts": format!("{date}T{:02}:{:02}:00+05:30", m / 60, m % 60),
                    "open": open, "high": high, "low": low, "close": price,
                    "volume": 1000 + (rnd() * 5000.0) as i64,
                }));
            }
        }
    }
    out
}

async fn open(storage: &Storage) -> Intraday {
    let views = bhavstore_features::load_dir(&defs()).expect("defs");
    let prepared = bhavstore_features::prepare(storage, &views).await.expect("prepare");
    // Two instruments per evaluation: three instruments take two turns.
    let cfg = IntradayConfig { snapshot_interval_secs: 0, compute_instruments: 2, ..IntradayConfig::default() };
    Intraday::open(storage, &cfg, &prepared).await.expect("open")
}

async fn batch(storage: &Storage) -> RecordBatch {
    let views = bhavstore_features::load_dir(&defs()).expect("defs");
    let ctx = bhavstore_lake::session(storage).expect("session");
    bhavstore_features::register_views(&ctx, &views).await.expect("register");
    let b = ctx.sql("SELECT * FROM intraday_features ORDER BY instrument, ts").await.unwrap().collect().await.unwrap();
    concat_batches(&b[0].schema(), &b).unwrap()
}

fn live(i: &Intraday) -> RecordBatch {
    let v = i.view("intraday_features").expect("live view");
    let b = v.batches();
    concat_batches(&v.schema(), &b).unwrap()
}

fn assert_same(live: &RecordBatch, batch: &RecordBatch) {
    assert_eq!(live.num_rows(), batch.num_rows(), "row counts");
    assert_eq!(live.schema().fields().len(), batch.schema().fields().len());
    for (f, (a, b)) in live.schema().fields().iter().zip(live.columns().iter().zip(batch.columns())) {
        if let (Some(a), Some(b)) = (a.as_primitive_opt::<Float64Type>(), b.as_primitive_opt::<Float64Type>()) {
            for i in 0..a.len() {
                assert_eq!(a.is_null(i), b.is_null(i), "{} row {i} NULL", f.name());
                if a.is_valid(i) {
                    assert_eq!(
                        a.value(i).to_bits(),
                        b.value(i).to_bits(),
                        "{} row {i}: {} vs {}",
                        f.name(),
                        a.value(i),
                        b.value(i)
                    );
                }
            }
        } else {
            assert_eq!(a.as_ref(), b.as_ref(), "{}", f.name());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_rows_equal_the_batch_evaluation_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let storage =
        Storage::open(&StorageConfig { url: dir.path().display().to_string(), ..StorageConfig::default() }).unwrap();
    let intraday = open(&storage).await;
    let mut all = rows(3, 3);
    // Hold back every 7th bar and send it late; push the rest in minute-sized chunks.
    let late: Vec<Value> = all.iter().step_by(7).cloned().collect();
    let mut k = 0;
    all.retain(|_| {
        k += 1;
        (k - 1) % 7 != 0
    });
    for chunk in all.chunks(50) {
        let o = intraday.push(input::from_json_rows(chunk, 0)).await.expect("push");
        assert!(o.rejected.is_empty(), "{:?}", o.rejected);
    }
    for chunk in late.chunks(40) {
        intraday.push(input::from_json_rows(chunk, 0)).await.expect("late push");
    }
    // A repeat is a no-op; a correction gets a new revision.
    let o = intraday.push(input::from_json_rows(&late[..5], 0)).await.unwrap();
    assert_eq!((o.duplicates, o.new, o.corrections), (5, 0, 0));
    let mut fix = late[20].clone();
    fix["close"] = json!(fix["high"].as_f64().unwrap());
    let o = intraday.push(input::from_json_rows(&[fix], 0)).await.unwrap();
    assert_eq!(o.corrections, 1);
    assert!(intraday.wait_computed(std::time::Duration::from_secs(60)).await);
    let l = live(&intraday);
    // 3 instruments × 3 days × 375 regular bars.
    assert_eq!(l.num_rows(), 3 * 3 * 375);
    let b = batch(&storage).await;
    assert_same(&l, &b);
    // Non-trivial: the window features have values.
    let ema = l.column_by_name("ema_20").unwrap().as_primitive::<Float64Type>();
    assert!(ema.null_count() < ema.len() / 10);
    // A reopen replays the log (no snapshot yet) and computes the same rows.
    drop(intraday);
    let again = open(&storage).await;
    assert_same(&live(&again), &b);
    // After a snapshot, the log segments are gone and a reopen still has everything.
    assert!(again.snapshot().await.unwrap().is_some());
    let third = open(&storage).await;
    assert_same(&live(&third), &b);
    assert_eq!(third.status().bars, 3 * 3 * 377);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_over_bars_that_cannot_run_live_is_left_to_sql() {
    let dir = tempfile::tempdir().unwrap();
    let repo_defs = defs();
    let defs = dir.path().join("defs");
    std::fs::create_dir(&defs).unwrap();
    for f in ["intraday_features.sql", "intraday_features.yaml"] {
        std::fs::copy(repo_defs.join(f), defs.join(f)).unwrap();
    }
    // Cumulative over the instrument's whole history: no bounded carry.
    std::fs::write(
        defs.join("total_volume.sql"),
        "SELECT instrument, ts, sum(volume) OVER (PARTITION BY instrument ORDER BY ts) AS total FROM intraday_bars",
    )
    .unwrap();
    std::fs::write(
        defs.join("total_volume.yaml"),
        "name: total_volume\ndescription: d\nentity: instrument\nevent_time: ts\nttl: 1d\nowner: o\nfeatures:\n  - {name: total, description: t}\n",
    )
    .unwrap();
    let storage = Storage::open(&StorageConfig {
        url: dir.path().join("root").display().to_string(),
        ..StorageConfig::default()
    })
    .unwrap();
    let views = bhavstore_features::load_dir(&defs).expect("defs");
    let prepared = bhavstore_features::prepare(&storage, &views).await.expect("prepare");
    let intraday = Intraday::open(&storage, &IntradayConfig::default(), &prepared).await.expect("open");
    let names: Vec<&str> = intraday.views().iter().map(|v| v.name()).collect();
    assert_eq!(names, ["intraday_features"]);
}
