//! Every object-store key bhavstore reads or writes is built here and nowhere else.
//!
//! Keys are relative to the storage root (the `--storage` URL); [`crate::storage::Storage`]
//! prefixes them. Layout:
//!
//! ```text
//! raw/bse/equity/{YYYY}/{MM}/{DD}/{revision}/{original file name}   raw bytes, immutable
//! raw/bse/equity/{YYYY}/{MM}/{DD}/{revision}/_meta.json              provenance of those bytes
//! rejected/bse/equity/{YYYY-MM-DD|undated}/{revision}/{file name}     bodies that did not parse
//! parquet/bse/equity/trade_date={YYYY-MM-DD}/bhavcopy.parquet         canonical table, one file a day
//! quarantine/bse/equity/trade_date={YYYY-MM-DD}/quarantine.parquet    refused lines of that day
//! state/bse/equity/days/{YYYY-MM-DD}.json                             what is known about a day
//! ```
//!
//! A revision is `{stored_at as YYYYMMDDTHHMMSS.fffZ}-{sha256[..16]}`, so revisions of a day sort
//! in the order they were stored and the newest is the last.

use chrono::{DateTime, NaiveDate, Utc};

/// Prefix of raw equity bhavcopies.
pub const RAW_EQUITY: &str = "raw/bse/equity";
/// Prefix of rejected bodies.
pub const REJECTED_EQUITY: &str = "rejected/bse/equity";
/// Root of the `bhavcopy` table.
pub const BHAVCOPY_TABLE: &str = "parquet/bse/equity";
/// Root of the `bhavcopy_quarantine` table.
pub const QUARANTINE_TABLE: &str = "quarantine/bse/equity";
/// Prefix of per-day state records.
pub const DAY_STATE: &str = "state/bse/equity/days";
/// Name of the provenance record beside each raw revision.
pub const META_FILE: &str = "_meta.json";

/// Folder holding every raw revision of one trade date.
#[must_use]
pub fn raw_day_dir(date: NaiveDate) -> String {
    format!("{RAW_EQUITY}/{}", date.format("%Y/%m/%d"))
}

/// Revision name for bytes with `sha256` stored at `stored_at`.
#[must_use]
pub fn revision_name(stored_at: DateTime<Utc>, sha256: &str) -> String {
    format!("{}-{}", stored_at.format("%Y%m%dT%H%M%S%.3fZ"), &sha256[..16.min(sha256.len())])
}

/// Key of a raw file within a revision.
#[must_use]
pub fn raw_object(date: NaiveDate, revision: &str, file_name: &str) -> String {
    format!("{}/{revision}/{}", raw_day_dir(date), sanitize(file_name))
}

/// Key of the provenance record of a raw revision.
#[must_use]
pub fn raw_meta(date: NaiveDate, revision: &str) -> String {
    format!("{}/{revision}/{META_FILE}", raw_day_dir(date))
}

/// Key of a rejected body; `date` is `None` when not even the date could be told.
#[must_use]
pub fn rejected_object(date: Option<NaiveDate>, revision: &str, file_name: &str) -> String {
    let day = date.map_or_else(|| "undated".to_string(), |d| d.format("%Y-%m-%d").to_string());
    format!("{REJECTED_EQUITY}/{day}/{revision}/{}", sanitize(file_name))
}

/// Key of a rejected body's provenance record.
#[must_use]
pub fn rejected_meta(date: Option<NaiveDate>, revision: &str) -> String {
    rejected_object(date, revision, META_FILE)
}

/// Partition folder of one day of the `bhavcopy` table.
#[must_use]
pub fn bhavcopy_partition(date: NaiveDate) -> String {
    format!("{BHAVCOPY_TABLE}/trade_date={}", date.format("%Y-%m-%d"))
}

/// The single Parquet file of one day of the `bhavcopy` table.
#[must_use]
pub fn bhavcopy_file(date: NaiveDate) -> String {
    format!("{}/bhavcopy.parquet", bhavcopy_partition(date))
}

/// The quarantine Parquet file of one day.
#[must_use]
pub fn quarantine_file(date: NaiveDate) -> String {
    format!("{QUARANTINE_TABLE}/trade_date={}/quarantine.parquet", date.format("%Y-%m-%d"))
}

/// The state record of one day.
#[must_use]
pub fn day_state(date: NaiveDate) -> String {
    format!("{DAY_STATE}/{}.json", date.format("%Y-%m-%d"))
}

/// Parses the date back out of a day-state key.
#[must_use]
pub fn date_of_day_state(key: &str) -> Option<NaiveDate> {
    let name = key.rsplit('/').next()?.strip_suffix(".json")?;
    NaiveDate::parse_from_str(name, "%Y-%m-%d").ok()
}

/// File names become one key segment: no separators, no leading dots, nothing odd.
fn sanitize(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let cleaned: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() { "unnamed".into() } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_scheme() {
        let d = NaiveDate::from_ymd_opt(2015, 1, 5).unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-27T03:04:05.678Z").unwrap().with_timezone(&Utc);
        let rev = revision_name(at, "abcdef0123456789ffff");
        assert_eq!(rev, "20261127T030405.678Z-abcdef0123456789");
        assert_eq!(raw_object(d, &rev, "EQ050115.CSV"), format!("raw/bse/equity/2015/01/05/{rev}/EQ050115.CSV"));
        assert_eq!(bhavcopy_file(d), "parquet/bse/equity/trade_date=2015-01-05/bhavcopy.parquet");
        assert_eq!(rejected_object(None, &rev, "../x y.zip"), format!("rejected/bse/equity/undated/{rev}/x_y.zip"));
        assert_eq!(date_of_day_state(&day_state(d)), Some(d));
    }
}
