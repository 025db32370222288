//! Every object-store key bhavstore reads or writes is built here and nowhere else.
//!
//! Keys are relative to the storage root (the `--storage` URL); [`crate::Storage`]
//! prefixes them. Layout:
//!
//! ```text
//! raw/bse/equity/{YYYY}/{MM}/{DD}/{revision}/{original file name}   raw bytes, immutable
//! raw/bse/equity/{YYYY}/{MM}/{DD}/{revision}/_meta.json              provenance of those bytes
//! rejected/bse/equity/{YYYY-MM-DD|undated}/{revision}-{nonce}/{file name}  bodies that did not parse
//! rejected/bse/equity/{YYYY-MM-DD|undated}/{revision}-{nonce}/_meta.json   why, and where from
//! parquet/bse/equity/trade_date={YYYY-MM-DD}/bhavcopy.parquet         canonical table, one file a day
//! quarantine/bse/equity/trade_date={YYYY-MM-DD}/quarantine.parquet    refused lines of that day
//! state/bse/equity/days/{YYYY-MM-DD}.json                             what is known about a day
//! state/bse/equity/loads/{loaded_at}_{YYYY-MM-DD}_{sha256}.json       change log: one per canonical load
//! features/{view}/_versions/{version}.json                            a version's definition, create-only
//! features/{view}/_lock.json                                          held while a run of the view is going
//! features/{view}/_lock_takeover/{stale run_id}.{n}.json              who may remove a dead run's lock (create-only)
//! features/{view}/{version}/manifests/{seq:010}.json                  published states, create-only
//! features/{view}/{version}/data/{run_id}/part-{n:04}.parquet         feature rows written by a run
//! features/{view}/{version}/state/{run_id}/tail.parquet               last rows per entity, for the next run
//! system/runs/{run_id}.json                                           run records (`bhavstore_runs`)
//! system/quality/{run_id}.json                                        quality figures (`bhavstore_quality`)
//! intraday/wal/{seq:020}.arrow                                        write-ahead log: one segment per group commit, create-only
//! intraday/snapshots/{seq:020}.json                                   snapshot manifest: bars and quarantine through WAL seq, create-only
//! intraday/bars/trade_date={YYYY-MM-DD}/bars-{seq:020}.parquet        every bar of a day as of snapshot seq
//! intraday/quarantine/quarantine-{seq:020}.parquet                    refused bars first made durable before snapshot seq
//! raw/reference/{kind}/{revision}/{original file name}               corporate-action exports and holiday lists, immutable
//! raw/reference/{kind}/{revision}/_meta.json                          provenance of those bytes
//! parquet/reference/{kind}/{revision}.parquet                         their canonical rows, one file per raw revision
//! parquet/reference/{kind}/{revision}.{from}_{to}.coverage.json       a date range a downloaded list was asked for
//! derived/adjustments/manifests/{seq:010}.json                        one reconciliation of actions and prices, create-only
//! derived/adjustments/{seq:010}-{hash16}/{table}.parquet              its actions, checks and adjustment epochs, create-only
//! ```
//!
//! Intraday bars are durable once their WAL segment exists; a snapshot manifest names the day
//! files that hold every bar through its WAL seq, and segments up to it may then be removed.
//!
//! Readers find feature data only through manifests: a file under `data/` that no manifest names
//! is an orphan of a failed run, invisible and removed by the next run.
//!
//! A revision is `{stored_at as YYYYMMDDTHHMMSS.fffZ}-{sha256[..16]}`, so revisions of a day sort
//! in the order they were stored and the newest is the last. A rejected body's folder adds a
//! random nonce, so two identical bodies refused in the same millisecond never share a folder.
//!
//! Inside a revision folder, names starting with `_` belong to bhavstore (`_meta.json`); a file's
//! own name never starts with `_` or `.` once it is a key segment (see [`file_segment`]), so no
//! input file, whatever it is called, can land on a record's key.

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
/// Prefix of the canonical-load change log.
pub const LOADS: &str = "state/bse/equity/loads";
/// Root of materialized feature views.
pub const FEATURES: &str = "features";
/// Prefix of run records.
pub const RUNS: &str = "system/runs";
/// Prefix of quality records.
pub const QUALITY: &str = "system/quality";
/// Write-ahead log of intraday bars.
pub const INTRADAY_WAL: &str = "intraday/wal";
/// Snapshot manifests of intraday bars.
pub const INTRADAY_SNAPSHOTS: &str = "intraday/snapshots";
/// Root of the snapshotted `intraday_bars` day files.
pub const INTRADAY_BARS: &str = "intraday/bars";
/// Root of the snapshotted intraday quarantine files.
pub const INTRADAY_QUARANTINE: &str = "intraday/quarantine";
/// Prefix of raw reference files (corporate-action exports, holiday lists).
pub const RAW_REFERENCE: &str = "raw/reference";
/// Root of the canonical rows of reference files.
pub const REFERENCE_TABLE: &str = "parquet/reference";
/// Root of the reconciliations of corporate actions with the prices.
pub const ADJUSTMENTS: &str = "derived/adjustments";
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

/// Folder name of a rejected body: its revision name plus a nonce that makes it unique.
#[must_use]
pub fn rejected_revision_name(stored_at: DateTime<Utc>, sha256: &str, nonce: u32) -> String {
    format!("{}-{nonce:08x}", revision_name(stored_at, sha256))
}

/// Key of a raw file within a revision.
#[must_use]
pub fn raw_object(date: NaiveDate, revision: &str, file_name: &str) -> String {
    format!("{}/{revision}/{}", raw_day_dir(date), file_segment(file_name))
}

/// Key of the provenance record of a raw revision.
#[must_use]
pub fn raw_meta(date: NaiveDate, revision: &str) -> String {
    format!("{}/{revision}/{META_FILE}", raw_day_dir(date))
}

/// Key of a rejected body; `date` is `None` when not even the date could be told.
#[must_use]
pub fn rejected_object(date: Option<NaiveDate>, revision: &str, file_name: &str) -> String {
    format!("{}/{revision}/{}", rejected_day_dir(date), file_segment(file_name))
}

fn rejected_day_dir(date: Option<NaiveDate>) -> String {
    let day = date.map_or_else(|| "undated".to_string(), |d| d.format("%Y-%m-%d").to_string());
    format!("{REJECTED_EQUITY}/{day}")
}

/// Key of a rejected body's provenance record.
#[must_use]
pub fn rejected_meta(date: Option<NaiveDate>, revision: &str) -> String {
    format!("{}/{revision}/{META_FILE}", rejected_day_dir(date))
}

/// Partition folder of one day of the `bhavcopy` table.
#[must_use]
pub fn bhavcopy_partition(date: NaiveDate) -> String {
    format!("{BHAVCOPY_TABLE}/trade_date={}", date.format("%Y-%m-%d"))
}

/// The trade date of a key inside a day partition (`…/trade_date=YYYY-MM-DD/…`).
#[must_use]
pub fn trade_date_of(key: &str) -> Option<NaiveDate> {
    key.split('/')
        .find_map(|part| part.strip_prefix("trade_date="))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
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

/// Change-log entry of one canonical load. Keys sort by load time, so a reader resumes with a
/// listing that starts after the last key it consumed.
#[must_use]
pub fn load_entry(loaded_at: DateTime<Utc>, date: NaiveDate, sha256: &str) -> String {
    format!("{LOADS}/{}_{}_{sha256}.json", loaded_at.format("%Y%m%dT%H%M%S%.6fZ"), date.format("%Y-%m-%d"))
}

/// Trade date and sha256 of a change-log key.
#[must_use]
pub fn parse_load_entry(key: &str) -> Option<(NaiveDate, String)> {
    let name = key.rsplit('/').next()?.strip_suffix(".json")?;
    let mut parts = name.split('_');
    let _at = parts.next()?;
    let date = NaiveDate::parse_from_str(parts.next()?, "%Y-%m-%d").ok()?;
    let sha = parts.next()?;
    Some((date, sha.to_string()))
}

/// Folder of a view's version records.
#[must_use]
pub fn versions_dir(view: &str) -> String {
    format!("{FEATURES}/{view}/_versions")
}

/// Folder of every feature view's records; one sub-folder per view.
#[must_use]
pub fn views_dir() -> &'static str {
    FEATURES
}

/// Definition record of one version.
#[must_use]
pub fn version_record(view: &str, version: &str) -> String {
    format!("{}/{version}.json", versions_dir(view))
}

/// Version id of a version-record key.
#[must_use]
pub fn version_of_record(key: &str) -> Option<String> {
    key.rsplit('/').next()?.strip_suffix(".json").map(str::to_string)
}

/// The lock object of a view.
#[must_use]
pub fn view_lock(view: &str) -> String {
    format!("{FEATURES}/{view}/_lock.json")
}

/// Folder of a view's lock-takeover markers.
#[must_use]
pub fn view_lock_takeovers(view: &str) -> String {
    format!("{FEATURES}/{view}/_lock_takeover")
}

/// The marker whose creator (and only it) may delete the stale lock left by run
/// `stale_run_id`. `level` counts takers that died before finishing the takeover.
#[must_use]
pub fn view_lock_takeover(view: &str, stale_run_id: &str, level: u32) -> String {
    format!("{}/{}.{level}.json", view_lock_takeovers(view), file_segment(stale_run_id))
}

/// Folder of a version's manifests.
#[must_use]
pub fn manifests_dir(view: &str, version: &str) -> String {
    format!("{FEATURES}/{view}/{version}/manifests")
}

/// Manifest number `seq` of a version.
#[must_use]
pub fn manifest(view: &str, version: &str, seq: u64) -> String {
    format!("{}/{seq:010}.json", manifests_dir(view, version))
}

/// Sequence number of a manifest key.
#[must_use]
pub fn seq_of_manifest(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.strip_suffix(".json")?.parse().ok()
}

/// Folder of the data files of a version.
#[must_use]
pub fn data_dir(view: &str, version: &str) -> String {
    format!("{FEATURES}/{view}/{version}/data")
}

/// One data file of a run.
#[must_use]
pub fn data_file(view: &str, version: &str, run_id: &str, part: usize) -> String {
    format!("{}/{run_id}/part-{part:04}.parquet", data_dir(view, version))
}

/// One data file of a run, for one calendar year of a partition's rows.
#[must_use]
pub fn data_file_year(view: &str, version: &str, run_id: &str, part: usize, year: i32) -> String {
    format!("{}/{run_id}/part-{part:04}-{year}.parquet", data_dir(view, version))
}

/// Folder of the carried state (tails) of a version.
#[must_use]
pub fn state_dir(view: &str, version: &str) -> String {
    format!("{FEATURES}/{view}/{version}/state")
}

/// The tail a run leaves for the next one.
#[must_use]
pub fn tail_file(view: &str, version: &str, run_id: &str) -> String {
    format!("{}/{run_id}/tail.parquet", state_dir(view, version))
}

/// The states of a run's resumed recursive calls (`ema`, `rsi`, `wilder_mean`), saved beside its
/// tail for the next run.
#[must_use]
pub fn recursions_file(view: &str, version: &str, run_id: &str) -> String {
    format!("{}/{run_id}/recursions.parquet", state_dir(view, version))
}

/// Run id of a key under `data/` or `state/` of a version.
#[must_use]
pub fn run_of_file(dir: &str, key: &str) -> Option<String> {
    key.strip_prefix(dir)?.trim_start_matches('/').split('/').next().map(str::to_string)
}

/// Run record.
#[must_use]
pub fn run_record(run_id: &str) -> String {
    format!("{RUNS}/{run_id}.json")
}

/// Quality record of a run.
#[must_use]
pub fn quality_record(run_id: &str) -> String {
    format!("{QUALITY}/{run_id}.json")
}

/// A file name as one key segment: no separators, nothing odd, and never a leading `.` or `_`,
/// which keeps hidden files out and keeps every name off bhavstore's own `_`-records.
#[must_use]
pub fn file_segment(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let cleaned: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    let cleaned = cleaned.trim_start_matches(['.', '_']).to_string();
    if cleaned.is_empty() { "unnamed".into() } else { cleaned }
}

/// WAL segment `seq` of intraday bars (sequence numbers sort as keys).
#[must_use]
pub fn intraday_wal_segment(seq: u64) -> String {
    format!("{INTRADAY_WAL}/{seq:020}.arrow")
}

/// Snapshot manifest through WAL `seq`.
#[must_use]
pub fn intraday_snapshot(seq: u64) -> String {
    format!("{INTRADAY_SNAPSHOTS}/{seq:020}.json")
}

/// Every bar of `date` as of snapshot `seq`.
#[must_use]
pub fn intraday_bars_file(date: NaiveDate, seq: u64) -> String {
    format!("{INTRADAY_BARS}/trade_date={}/bars-{seq:020}.parquet", date.format("%Y-%m-%d"))
}

/// Refused bars first snapshotted at `seq`.
#[must_use]
pub fn intraday_quarantine_file(seq: u64) -> String {
    format!("{INTRADAY_QUARANTINE}/quarantine-{seq:020}.parquet")
}

/// The sequence number in a WAL segment or snapshot manifest key.
#[must_use]
pub fn seq_of_intraday_key(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?;
    name.split('.').next()?.parse().ok()
}

/// Folder of every raw revision of one kind of reference file (`corporate_actions`, `holidays`).
#[must_use]
pub fn raw_reference_dir(kind: &str) -> String {
    format!("{RAW_REFERENCE}/{kind}")
}

/// Key of a raw reference file within its revision.
#[must_use]
pub fn raw_reference_object(kind: &str, revision: &str, file_name: &str) -> String {
    format!("{RAW_REFERENCE}/{kind}/{revision}/{}", file_segment(file_name))
}

/// Key of the provenance record of a raw reference revision.
#[must_use]
pub fn raw_reference_meta(kind: &str, revision: &str) -> String {
    format!("{RAW_REFERENCE}/{kind}/{revision}/{META_FILE}")
}

/// Folder of the canonical rows of one kind of reference file.
#[must_use]
pub fn reference_table_dir(kind: &str) -> String {
    format!("{REFERENCE_TABLE}/{kind}")
}

/// Key of the canonical rows of one raw reference revision.
#[must_use]
pub fn reference_rows(kind: &str, revision: &str) -> String {
    format!("{REFERENCE_TABLE}/{kind}/{revision}.parquet")
}

/// Key of one date range a downloaded reference revision covers (an action list asked for a
/// range covers all of it, even the days without an action). Identical answers for different
/// ranges (months without an action) are one revision with several ranges.
#[must_use]
pub fn reference_coverage(kind: &str, revision: &str, from: NaiveDate, to: NaiveDate) -> String {
    format!("{REFERENCE_TABLE}/{kind}/{revision}.{}_{}.coverage.json", from.format("%Y%m%d"), to.format("%Y%m%d"))
}

/// Folder of the reconciliation manifests.
#[must_use]
pub fn adjustments_manifests() -> String {
    format!("{ADJUSTMENTS}/manifests")
}

/// Key of reconciliation manifest `seq`.
#[must_use]
pub fn adjustments_manifest(seq: u64) -> String {
    format!("{ADJUSTMENTS}/manifests/{seq:010}.json")
}

/// Key of one table (`actions`, `checks`, `epochs`) of reconciliation `seq` with content hash
/// `hash`: unique per content, so racing reconciliations never overwrite each other's files.
#[must_use]
pub fn adjustments_file(seq: u64, hash: &str, table: &str) -> String {
    format!("{ADJUSTMENTS}/{seq:010}-{hash}/{table}.parquet")
}

/// Key of one file (`sessions`, `identifiers`) a reconciliation carries for the next one; `hash`
/// is of its bytes, so a reconciliation that loses its seq never overwrites the winner's.
#[must_use]
pub fn adjustments_carried_file(seq: u64, hash: &str, table: &str) -> String {
    format!("{ADJUSTMENTS}/{seq:010}-carried-{hash}/{table}.parquet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intraday_keys_sort_and_parse_back() {
        assert_eq!(intraday_wal_segment(7), "intraday/wal/00000000000000000007.arrow");
        assert_eq!(seq_of_intraday_key(&intraday_wal_segment(7)), Some(7));
        assert_eq!(seq_of_intraday_key(&intraday_snapshot(12)), Some(12));
        assert!(intraday_wal_segment(9) < intraday_wal_segment(10));
        let d = NaiveDate::from_ymd_opt(2026, 7, 14).unwrap();
        assert_eq!(intraday_bars_file(d, 3), "intraday/bars/trade_date=2026-07-14/bars-00000000000000000003.parquet");
    }

    #[test]
    fn key_scheme() {
        let d = NaiveDate::from_ymd_opt(2015, 1, 5).unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-27T03:04:05.678Z").unwrap().with_timezone(&Utc);
        let rev = revision_name(at, "abcdef0123456789ffff");
        assert_eq!(rev, "20261127T030405.678Z-abcdef0123456789");
        assert_eq!(raw_object(d, &rev, "EQ050115.CSV"), format!("raw/bse/equity/2015/01/05/{rev}/EQ050115.CSV"));
        assert_eq!(bhavcopy_file(d), "parquet/bse/equity/trade_date=2015-01-05/bhavcopy.parquet");
        assert_eq!(trade_date_of(&bhavcopy_file(d)), Some(d));
        assert_eq!(trade_date_of("parquet/bse/equity/trade_date=2015-01-05/"), Some(d));
        assert_eq!(trade_date_of("parquet/bse/equity/x.parquet"), None);
        assert_eq!(rejected_object(None, &rev, "../x y.zip"), format!("rejected/bse/equity/undated/{rev}/x_y.zip"));
        assert_eq!(date_of_day_state(&day_state(d)), Some(d));
        let load = load_entry(at, d, "ff00");
        assert_eq!(load, "state/bse/equity/loads/20261127T030405.678000Z_2015-01-05_ff00.json");
        assert_eq!(parse_load_entry(&load), Some((d, "ff00".to_string())));
        assert_eq!(seq_of_manifest(&manifest("v", "v1", 12)), Some(12));
        let dir = data_dir("v", "v1");
        assert_eq!(run_of_file(&dir, &data_file("v", "v1", "r1", 0)).as_deref(), Some("r1"));
    }

    #[test]
    fn no_file_name_lands_on_a_record_key() {
        let d = NaiveDate::from_ymd_opt(2015, 1, 5).unwrap();
        let rev = "20261127T030405.678Z-abcdef0123456789";
        for name in ["_meta.json", "__meta.json", "._meta.json", "x/_meta.json", "..\\_meta.json", "_", "", "._", "/"] {
            assert_ne!(raw_object(d, rev, name), raw_meta(d, rev), "{name:?}");
            assert_ne!(rejected_object(Some(d), rev, name), rejected_meta(Some(d), rev), "{name:?}");
            assert_ne!(rejected_object(None, rev, name), rejected_meta(None, rev), "{name:?}");
            let seg = file_segment(name);
            assert!(!seg.starts_with(['_', '.']) && !seg.is_empty(), "{name:?} -> {seg:?}");
        }
        assert_eq!(raw_object(d, rev, "_meta.json"), format!("raw/bse/equity/2015/01/05/{rev}/meta.json"));
        assert_eq!(rejected_meta(None, rev), format!("rejected/bse/equity/undated/{rev}/_meta.json"));
        let at = DateTime::parse_from_rfc3339("2026-11-27T03:04:05.678Z").unwrap().with_timezone(&Utc);
        assert_ne!(rejected_revision_name(at, "ff", 1), rejected_revision_name(at, "ff", 2));
        assert_eq!(view_lock_takeover("v", "r1", 0), "features/v/_lock_takeover/r1.0.json");
    }
}
