//! `gen-history`: writes a synthetic bhavcopy history as the canonical `bhavcopy` table, one
//! zstd Parquet file per session at `bhavstore::paths::bhavcopy_file(date)` under `--root`.
//!
//! One thread steps the market (cheap, sequential per security so the output does not depend
//! on the thread count); `--jobs` threads encode and write the days (the expensive part).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bhavstore::config::StorageConfig;
use bhavstore::formats::SourceFormat;
use bhavstore::formats::canonical::rows_to_batch;
use bhavstore::paths;
use bhavstore::storage::Storage;
use bhavstore_bench::canonical_writer_properties;
use bhavstore_bench::history::{Market, Session};
use chrono::NaiveDate;
use clap::Parser;
use datafusion::parquet::arrow::ArrowWriter;

/// Generate a seeded synthetic bhavcopy history in bhavstore's canonical Parquet layout.
#[derive(Debug, Parser)]
struct Args {
    /// Storage root (a local directory; created if missing).
    #[arg(long)]
    root: PathBuf,
    /// Number of securities in the universe.
    #[arg(long, default_value_t = 5000)]
    securities: usize,
    /// Number of sessions (weekdays from --start).
    #[arg(long, default_value_t = 5000)]
    sessions: usize,
    /// PRNG seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First session (or the first weekday after it).
    #[arg(long, default_value = "2005-01-03")]
    start: NaiveDate,
    /// Encoder/writer threads (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.root)?;
    let root = std::fs::canonicalize(&args.root)?;
    let storage = Storage::open(&StorageConfig { url: format!("file://{}", root.display()), s3: Default::default() })?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)).max(1);

    let market = Market::new(args.securities, args.sessions, args.seed, args.start);
    let (first, last) = match market.days() {
        [] => return Err("--sessions must be at least 1".into()),
        days => (days[0], days[days.len() - 1]),
    };
    eprintln!(
        "gen-history: {} securities ({} equity) x {} sessions ({first} .. {last}), seed {}, {jobs} writer threads -> {}",
        args.securities,
        market.equity_count(),
        args.sessions,
        args.seed,
        storage.display()
    );

    let started = Instant::now();
    let rows_written = Arc::new(AtomicU64::new(0));
    let bytes_written = Arc::new(AtomicU64::new(0));
    let days_written = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::sync_channel::<Session>(2 * jobs);
    let rx = Arc::new(Mutex::new(rx));

    let producer = std::thread::spawn(move || {
        for session in market {
            if tx.send(session).is_err() {
                break;
            }
        }
    });
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let rx = Arc::clone(&rx);
            let storage = storage.clone();
            let handle = runtime.handle().clone();
            let (rows_written, bytes_written, days_written) =
                (Arc::clone(&rows_written), Arc::clone(&bytes_written), Arc::clone(&days_written));
            std::thread::spawn(move || -> Result<(), BoxError> {
                loop {
                    let next = rx.lock().map_err(|_| "channel lock poisoned")?.recv();
                    let Ok(session) = next else { return Ok(()) };
                    let data = encode(&session)?;
                    let len = data.len() as u64;
                    handle.block_on(storage.put(&paths::bhavcopy_file(session.date), data.into()))?;
                    rows_written.fetch_add(session.rows.len() as u64, Ordering::Relaxed);
                    bytes_written.fetch_add(len, Ordering::Relaxed);
                    days_written.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let total_days = args.sessions as u64;
    let mut last_report = Instant::now();
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let days = days_written.load(Ordering::Relaxed);
            let rows = rows_written.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "  {days}/{total_days} days ({:.0}%), {rows} rows, {:.1} s, {:.0} rows/s",
                100.0 * days as f64 / total_days as f64,
                secs,
                rows as f64 / secs
            );
        }
    }
    producer.join().map_err(|_| "market thread panicked")?;
    for w in workers {
        w.join().map_err(|_| "writer thread panicked")??;
    }
    let secs = started.elapsed().as_secs_f64();
    let rows = rows_written.load(Ordering::Relaxed);
    let bytes = bytes_written.load(Ordering::Relaxed);
    println!(
        "gen-history: wrote {rows} rows in {} files ({:.1} MiB) in {secs:.1} s ({:.0} rows/s)",
        days_written.load(Ordering::Relaxed),
        bytes as f64 / (1024.0 * 1024.0),
        rows as f64 / secs
    );
    Ok(())
}

/// One session as a canonical Parquet file, with the ingestion writer's settings.
fn encode(session: &Session) -> Result<Vec<u8>, BoxError> {
    let batch = rows_to_batch(&session.rows, SourceFormat::LegacyIsin18.as_str(), &session.raw_sha256)?;
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(canonical_writer_properties()))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(buf)
}
