//! BSE's download URLs for a trade date, in the order they are tried.

use chrono::NaiveDate;

use bhavstore_formats::udiff_start;

/// Path (under the base URL) and file name of one candidate download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// URL path below the base, starting with `/`.
    pub path: String,
    /// The file name as BSE names it.
    pub file_name: String,
}

/// Candidates for a date: UDiFF from 2024-07-08; before it the legacy zip, then optionally the
/// `EQ_ISINCODE` zip.
#[must_use]
pub fn candidates(date: NaiveDate, isincode_fallback: bool) -> Vec<Candidate> {
    let dir = "/download/BhavCopy/Equity";
    let mk = |file_name: String| Candidate { path: format!("{dir}/{file_name}"), file_name };
    if date >= udiff_start() {
        return vec![mk(format!("BhavCopy_BSE_CM_0_0_0_{}_F_0000.CSV", date.format("%Y%m%d")))];
    }
    let ddmmyy = date.format("%d%m%y");
    let mut v = vec![mk(format!("EQ{ddmmyy}_CSV.ZIP"))];
    if isincode_fallback {
        v.push(mk(format!("EQ_ISINCODE_{ddmmyy}.zip")));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_date() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(
            candidates(d(2024, 7, 8), true)[0].path,
            "/download/BhavCopy/Equity/BhavCopy_BSE_CM_0_0_0_20240708_F_0000.CSV"
        );
        let legacy = candidates(d(2024, 7, 5), true);
        assert_eq!(legacy[0].path, "/download/BhavCopy/Equity/EQ050724_CSV.ZIP");
        assert_eq!(legacy[1].file_name, "EQ_ISINCODE_050724.zip");
        assert_eq!(candidates(d(2015, 1, 5), false).len(), 1);
    }
}
