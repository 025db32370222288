//! The real BSE files under `../shared/data/bse-real` (never copied into this repository).

use std::path::PathBuf;

/// The folder of real files, or `None` (with a message saying the test is skipped) if absent.
/// `BHAVSTORE_REAL_DATA` overrides the location.
#[must_use]
pub fn real_data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BHAVSTORE_REAL_DATA")
        .map_or_else(|| crate::crate_dir().join("../../shared/data/bse-real"), PathBuf::from);
    if dir.join("README.md").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: real BSE files not found at {} (they live in ../shared/data/bse-real beside the project root; set BHAVSTORE_REAL_DATA to point elsewhere)",
            dir.display()
        );
        None
    }
}

/// Every file below `dir`, sorted.
#[must_use]
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() { stack.push(p) } else { out.push(p) }
            }
        }
    }
    out.sort();
    out
}

/// Independent count of data lines: non-empty lines after the header, splitting on LF and
/// stripping CRs (so it agrees with any of LF, CRLF, CR CR LF files).
#[must_use]
pub fn count_data_lines(bytes: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(bytes);
    text.split('\n').skip(1).filter(|l| !l.trim_matches('\r').trim().is_empty()).count() as u64
}

/// The legacy `EQ{DDMMYY}.CSV` files of a folder, in trade-date order (their names do not sort
/// by date).
#[must_use]
pub fn files_2015(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("folder of bhavcopies").flatten().map(|e| e.path()).collect();
    v.sort_by_key(|p| {
        let n = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        n.get(2..8).map(|d| (d[4..6].to_string(), d[2..4].to_string(), d[0..2].to_string())).unwrap_or_default()
    });
    v
}

/// The real NSE one-minute bars (`../shared/data/intraday-real/nse-1min`), or `None` (with a
/// message saying the test is skipped). `BHAVSTORE_INTRADAY_DATA` overrides the location.
#[must_use]
pub fn intraday_bars_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BHAVSTORE_INTRADAY_DATA")
        .map_or_else(|| crate::crate_dir().join("../../shared/data/intraday-real/nse-1min"), PathBuf::from);
    if dir.join("TCS_2026-07-14_1min.csv").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: real intraday bars not found at {} (they live in ../shared/data/intraday-real/nse-1min beside the project root; set BHAVSTORE_INTRADAY_DATA to point elsewhere)",
            dir.display()
        );
        None
    }
}

/// The bar files of `dir` (`{SYMBOL}_{DATE}_1min.csv`), sorted, with their symbols.
#[must_use]
pub fn bar_files(dir: &std::path::Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let stem = name.strip_suffix("_1min.csv")?;
                    let (sym, _) = stem.rsplit_once('_')?;
                    Some((sym.to_string(), e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
