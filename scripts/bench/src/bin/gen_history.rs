//! `gen-history`: writes a synthetic bhavcopy history as the canonical `bhavcopy` table, one
//! zstd Parquet file per session at `bhavstore_storage::paths::bhavcopy_file(date)` under `--root`.
//!
//! One thread steps the market (cheap, sequential per security so the output does not depend
//! on the thread count); `--jobs` threads encode and write the days (the expensive part).
//!
//! Every day written is also recorded in bhavstore's change log (`state/bse/equity/loads/`, via
//! `bhavstore_ingest::load::record_load`, with the sha256 of the Parquet bytes), as ingestion
//! does, so `bhavstore materialize` sees it. `--from-session`/`--to-session` write a slice of the
//! same deterministic history (the market is still stepped from the first session), e.g. to
//! append session N+1 to a root holding sessions 1..N of an `--sessions N+R` history.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bhavstore_bench::canonical_writer_properties;
use bhavstore_bench::history::{Market, Session};
use bhavstore_formats::SourceFormat;
use bhavstore_formats::canonical::rows_to_batch;
use bhavstore_ingest::load::record_load;
use bhavstore_storage::Storage;
use bhavstore_storage::StorageConfig;
use bhavstore_storage::paths;
use chrono::NaiveDate;
use clap::Parser;
use datafusion::parquet::arrow::ArrowWriter;
use sha2::{Digest, Sha256};

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
    /// First session to write, 1-based (earlier sessions are stepped but not written).
    #[arg(long, default_value_t = 1)]
    from_session: usize,
    /// Last session to write, 1-based inclusive (default: --sessions).
    #[arg(long)]
    to_session: Option<usize>,
    /// Do not record the days in the change log (`state/bse/equity/loads/`).
    #[arg(long)]
    no_record_loads: bool,
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
    let to_session = args.to_session.unwrap_or(args.sessions);
    if args.from_session < 1 || args.from_session > to_session || to_session > args.sessions {
        return Err(format!(
            "need 1 <= --from-session ({}) <= --to-session ({to_session}) <= --sessions ({})",
            args.from_session, args.sessions
        )
        .into());
    }
    let (first, last) = (market.days()[args.from_session - 1], market.days()[to_session - 1]);
    let slice = if (args.from_session, to_session) == (1, args.sessions) {
        String::new()
    } else {
        format!(", writing sessions {}..={to_session}", args.from_session)
    };
    eprintln!(
        "gen-history: {} securities ({} equity) x {} sessions{slice} ({first} .. {last}), seed {}, {jobs} writer threads -> {}",
        args.securities,
        market.equity_count(),
        args.sessions,
        args.seed,
        storage.display()
    );
    let record_loads = !args.no_record_loads;

    let started = Instant::now();
    let rows_written = Arc::new(AtomicU64::new(0));
    let bytes_written = Arc::new(AtomicU64::new(0));
    let days_written = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::sync_channel::<Session>(2 * jobs);
    let rx = Arc::new(Mutex::new(rx));

    let (skip, take) = (args.from_session - 1, to_session + 1 - args.from_session);
    let producer = std::thread::spawn(move || {
        for session in market.skip(skip).take(take) {
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
                    let sha256 = hex(&Sha256::digest(&data));
                    handle.block_on(async {
                        storage.put(&paths::bhavcopy_file(session.date), data.into()).await?;
                        if record_loads {
                            // Written after the data, as ingestion does.
                            record_load(&storage, session.date, &sha256).await?;
                        }
                        Ok::<_, BoxError>(())
                    })?;
                    rows_written.fetch_add(session.rows.len() as u64, Ordering::Relaxed);
                    bytes_written.fetch_add(len, Ordering::Relaxed);
                    days_written.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let total_days = take as u64;
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One session as a canonical Parquet file, with the ingestion writer's settings.
fn encode(session: &Session) -> Result<Vec<u8>, BoxError> {
    let batch = rows_to_batch(&session.rows, SourceFormat::LegacyIsin18.as_str(), &session.raw_sha256)?;
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(canonical_writer_properties(&batch)))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(buf)
}
