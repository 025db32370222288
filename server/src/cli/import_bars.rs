//! `bhavstore import-bars`: history files of one-minute bars into `intraday_bars`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bhavstore_intraday::{Intraday, IntradayConfig, input};
use bhavstore_storage::Storage;

use super::CliError;
use super::args::ImportBarsArgs;
use crate::config::Config;

/// Refusals printed per file; the rest are in `intraday_quarantine`.
const SHOWN: usize = 10;

/// `SYMBOL` of `{SYMBOL}_{YYYY-MM-DD}_1min.csv`.
fn symbol_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix("_1min.csv")?;
    let (symbol, date) = stem.rsplit_once('_')?;
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    (!symbol.is_empty()).then(|| symbol.to_string())
}

fn csv_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")) {
                csv_files(&e, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

pub(super) async fn run(config: &Config, storage: &Storage, args: &ImportBarsArgs) -> Result<ExitCode, CliError> {
    if let Some(i) = &args.instrument
        && !input::valid_instrument(i)
    {
        return Err(CliError::Usage(format!("--instrument {i:?} is not EXCHANGE:SYMBOL (e.g. NSE:TCS, BSE:500325)")));
    }
    if !args.exchange.chars().all(|c| c.is_ascii_uppercase()) || args.exchange.is_empty() {
        return Err(CliError::Usage(format!("--exchange {:?} must be upper-case letters, e.g. NSE", args.exchange)));
    }
    let mut files = Vec::new();
    for p in &args.paths {
        csv_files(p, &mut files).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?;
    }
    // The bars only: streaming views are computed by the server when it starts.
    let cfg = IntradayConfig { snapshot_interval_secs: 0, ..config.intraday.clone() };
    let intraday = Intraday::open(storage, &cfg, &[]).await?;
    let (mut stored, mut refused, mut failed, mut skipped) = (0usize, 0usize, 0usize, 0usize);
    for f in &files {
        let instrument = match (&args.instrument, symbol_of(f)) {
            (Some(i), _) => i.clone(),
            (None, Some(sym)) => format!("{}:{sym}", args.exchange),
            (None, None) => {
                println!(
                    "{}: skipped: no instrument (name it SYMBOL_YYYY-MM-DD_1min.csv or pass --instrument)",
                    f.display()
                );
                skipped += 1;
                continue;
            }
        };
        if !input::valid_instrument(&instrument) {
            println!("{}: skipped: {instrument:?} is not EXCHANGE:SYMBOL", f.display());
            skipped += 1;
            continue;
        }
        let text = match std::fs::read(f) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                println!("{}: error: {e}", f.display());
                failed += 1;
                continue;
            }
        };
        let parsed = input::from_csv(&text, &instrument, chrono::Utc::now().timestamp_micros());
        let lines: Vec<(i64, String)> = parsed.rejected.iter().map(|r| (r.index, r.reason.clone())).collect();
        let o = intraday.push(parsed).await?;
        println!(
            "{}: {instrument}: {} bars stored ({} new, {} corrections, {} repeats), {} refused",
            f.display(),
            o.accepted,
            o.new,
            o.corrections,
            o.duplicates,
            lines.len()
        );
        for (line, why) in lines.iter().take(SHOWN) {
            println!("  line {line}: {why}");
        }
        if lines.len() > SHOWN {
            println!("  ... {} more in intraday_quarantine", lines.len() - SHOWN);
        }
        stored += o.accepted;
        refused += lines.len();
    }
    intraday.snapshot().await?;
    println!(
        "imported {} files into {}: {stored} bars stored, {refused} refused (kept in intraday_quarantine), {failed} files failed, {skipped} skipped",
        files.len(),
        storage.display()
    );
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
