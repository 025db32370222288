//! BSE's trading-holiday list (`HolidayTrading/w?flag=Trading`):
//! `{"Table":[{"TradingDate":"26 Jan 2026","Day":"Monday","Description":"Republic Day",...}]}`.
//!
//! Only `TradingDate` matters; the other keys vary between years and are read leniently. A date
//! that cannot be read fails the whole list rather than dropping the entry: a calendar missing
//! one holiday silently turns it into an expected trading day.

use chrono::NaiveDate;
use serde_json::Value;

use super::ActionsError;
use super::sources::{describe_json, json_rows, parse_date};

/// One trading holiday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    /// The day the exchange is closed.
    pub date: NaiveDate,
    /// What the holiday is (`Republic Day`), trimmed; `None` when absent or empty.
    pub description: Option<String>,
}

/// Whether a body is BSE's holiday list: a JSON array of objects with a `TradingDate` key, bare
/// or wrapped in `{"Table": [...]}`.
#[must_use]
pub fn detect_holidays(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(crate::detect::strip_bom(body)) else {
        return false;
    };
    if !text.trim_start().starts_with(['[', '{']) {
        return false;
    }
    serde_json::from_str::<Value>(text).is_ok_and(|v| holiday_rows(&v).is_some())
}

/// Reads BSE's holiday list, in the order given.
///
/// # Errors
/// When the body is not text or JSON, is not the holiday list, or an entry has no readable
/// `TradingDate`.
pub fn parse_holidays(body: &[u8]) -> Result<Vec<Holiday>, ActionsError> {
    let text = super::body_text(body)?;
    let value: Value = serde_json::from_str(text).map_err(|e| ActionsError::Json { message: e.to_string() })?;
    let rows = holiday_rows(&value).ok_or_else(|| ActionsError::NotHolidays { seen: describe_json(&value) })?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let index = i as u64 + 1;
            let bad = |problem: String| ActionsError::BadHoliday { index, problem };
            let o = row.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
            let field = |name: &str| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
            let date = match field("TradingDate") {
                Some(Value::String(s)) => parse_date(s)
                    .map_err(|()| bad(format!("TradingDate {:?} is not a date like \"26 Jan 2026\"", s.trim())))?
                    .ok_or_else(|| bad("TradingDate is empty".into()))?,
                Some(other) if !other.is_null() => return Err(bad(format!("TradingDate is {other}, not text"))),
                _ => return Err(bad("no TradingDate".into())),
            };
            let description = match field("Description") {
                Some(Value::String(s)) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string),
                _ => None,
            };
            Ok(Holiday { date, description })
        })
        .collect()
}

/// The entries, when the body's objects carry `TradingDate`. An empty list has none to tell by
/// and is not taken for a holiday list.
fn holiday_rows(value: &Value) -> Option<&[Value]> {
    let rows = json_rows(value)?;
    let first = rows.iter().find_map(Value::as_object)?;
    first.keys().any(|k| k.eq_ignore_ascii_case("TradingDate")).then_some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"Table":[
        {"Sr_no":1,"TradingDate":"26 Jan 2026","Day":"Monday","Description":"Republic Day"},
        {"Sr_no":2,"TradingDate":"03-Mar-2026","Day":"Tuesday","Description":" Holi ","Extra":null},
        {"TradingDate":"31 Mar 2026","Description":""}
    ]}"#;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn reads_the_table_shape_and_a_bare_array() {
        let want = vec![
            Holiday { date: d(2026, 1, 26), description: Some("Republic Day".into()) },
            Holiday { date: d(2026, 3, 3), description: Some("Holi".into()) },
            Holiday { date: d(2026, 3, 31), description: None },
        ];
        assert!(detect_holidays(LIST.as_bytes()));
        assert_eq!(parse_holidays(LIST.as_bytes()).unwrap(), want);
        let bare = r#"[{"TradingDate":"26 Jan 2026","Description":"Republic Day"}]"#;
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), bare.as_bytes()].concat();
        assert!(detect_holidays(&with_bom));
        assert_eq!(parse_holidays(&with_bom).unwrap(), want[..1]);
    }

    #[test]
    fn other_bodies_are_not_holidays() {
        for body in [
            "",
            "[]",
            r#"{"Table":[]}"#,
            r#"[{"scrip_code":1,"Ex_date":"26 Oct 2023","Purpose":"Bonus issue 1:1"}]"#,
            "Security Code,Security Name,Ex Date,Purpose\n",
            "<html></html>",
            "{not json",
        ] {
            assert!(!detect_holidays(body.as_bytes()), "{body}");
            assert!(parse_holidays(body.as_bytes()).is_err(), "{body}");
        }
        assert!(super::super::detect(LIST.as_bytes()).is_none());
    }

    #[test]
    fn a_bad_date_fails_the_list() {
        let body = r#"{"Table":[{"TradingDate":"26 Jan 2026"},{"TradingDate":"Holi"}]}"#;
        let e = parse_holidays(body.as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "holiday 2: TradingDate \"Holi\" is not a date like \"26 Jan 2026\"");
        let body = r#"[{"TradingDate":"26 Jan 2026"},{"Description":"x"}]"#;
        assert_eq!(parse_holidays(body.as_bytes()).unwrap_err().to_string(), "holiday 2: no TradingDate");
    }
}
