//! Trade dates from BSE's file names: `EQ050115.CSV` is 2015-01-05.

use chrono::NaiveDate;

/// The trade date a BSE file name carries, if it follows one of BSE's naming schemes:
/// `EQ{DDMMYY}.CSV`, `EQ{DDMMYY}_CSV.ZIP`, `EQ_ISINCODE_{DDMMYY}.CSV|.zip`,
/// `BhavCopy_BSE_CM_0_0_0_{YYYYMMDD}_F_0000.CSV`. Case does not matter.
#[must_use]
pub fn date_from_file_name(name: &str) -> Option<NaiveDate> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).to_ascii_uppercase();
    let stem = base.split('.').next().unwrap_or(&base);
    let stem = stem.strip_suffix("_CSV").unwrap_or(stem);
    if let Some(rest) = stem.strip_prefix("EQ_ISINCODE_") {
        return ddmmyy(leading_digits(rest));
    }
    if let Some(rest) = stem.strip_prefix("BHAVCOPY_BSE_CM_0_0_0_") {
        let digits = rest.split('_').next()?;
        return yyyymmdd(digits);
    }
    if let Some(rest) = stem.strip_prefix("EQ") {
        // BSE's name, possibly with a suffix a user added (`EQ291221_merged_records.CSV`).
        if let Some(d) = ddmmyy(leading_digits(rest)) {
            return Some(d);
        }
    }
    embedded_yyyymmdd(&base)
}

/// Fallback for names users give their copies (`bse_bhavcopy_legacy_20240101.csv`,
/// `BhavCopy_20250825.csv`): exactly one run of eight digits that is a plausible date.
fn embedded_yyyymmdd(name: &str) -> Option<NaiveDate> {
    let runs: Vec<&str> = name.split(|c: char| !c.is_ascii_digit()).filter(|r| r.len() == 8).collect();
    match runs.as_slice() {
        [one] => yyyymmdd(one).filter(|d| (1990..=2100).contains(&chrono::Datelike::year(d))),
        _ => None,
    }
}

fn leading_digits(s: &str) -> &str {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    &s[..end]
}

fn ddmmyy(s: &str) -> Option<NaiveDate> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d: u32 = s[0..2].parse().ok()?;
    let m: u32 = s[2..4].parse().ok()?;
    let yy: i32 = s[4..6].parse().ok()?;
    // BSE's two-digit years: the electronic bhavcopy starts in the 1990s.
    let y = if yy >= 90 { 1900 + yy } else { 2000 + yy };
    NaiveDate::from_ymd_opt(y, m, d)
}

fn yyyymmdd(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, dd: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, dd)
    }

    #[test]
    fn bse_names() {
        assert_eq!(date_from_file_name("EQ050115.CSV"), d(2015, 1, 5));
        assert_eq!(date_from_file_name("/x/y/eq280619_csv.zip"), d(2019, 6, 28));
        assert_eq!(date_from_file_name("EQ_ISINCODE_030521.CSV"), d(2021, 5, 3));
        assert_eq!(date_from_file_name("EQ_ISINCODE_060122.zip"), d(2022, 1, 6));
        assert_eq!(date_from_file_name("BhavCopy_BSE_CM_0_0_0_20250825_F_0000.CSV"), d(2025, 8, 25));
        assert_eq!(date_from_file_name("EQ311399.CSV"), None);
        assert_eq!(date_from_file_name("EQ291221_merged_records.CSV"), d(2021, 12, 29));
        assert_eq!(date_from_file_name("EQ2912210.CSV"), None);
        assert_eq!(date_from_file_name("prices.csv"), None);
        assert_eq!(date_from_file_name("bse_bhavcopy_legacy_20240101.csv"), d(2024, 1, 1));
        assert_eq!(date_from_file_name("BhavCopy_20250826.spreadsheet-resaved.csv"), d(2025, 8, 26));
        assert_eq!(date_from_file_name("x_20240101_20240102.csv"), None);
        assert_eq!(date_from_file_name("EQ180823_CSV.ZIP.waf-block.html"), d(2023, 8, 18));
    }
}
