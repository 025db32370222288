//! The four exports: telling them apart, and reading their rows into one shape.
//!
//! Columns are found by name, never position: BSE's CSV gained a `Company Name` column over
//! the years and writes one name as ` BC End Date<TAB>`. JSON keys are matched ignoring case,
//! because the two BSE endpoints already disagree (`Ex_date` and `exdate`).

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::purpose::{decode_entities, parse_purpose};
use super::{ActionFormat, ActionRow, ActionsError, ParsedActions, RefusedRow};

/// Column names (normalised: trimmed of spaces, tabs, BOM and quotes, lower case) per field.
struct Columns {
    scrip_code: &'static [&'static str],
    symbol: &'static [&'static str],
    isin: &'static [&'static str],
    company: &'static [&'static str],
    series: &'static [&'static str],
    ex_date: &'static [&'static str],
    record_date: &'static [&'static str],
    purpose: &'static [&'static str],
}

const BSE_CSV: Columns = Columns {
    scrip_code: &["security code", "scrip code"],
    symbol: &["security name", "scrip id", "security id"],
    isin: &[],
    company: &["company name"],
    series: &[],
    ex_date: &["ex date", "ex-date", "exdate"],
    record_date: &["record date", "record-date"],
    purpose: &["purpose"],
};

const NSE_CSV: Columns = Columns {
    scrip_code: &[],
    symbol: &["symbol"],
    isin: &["isin", "isin code"],
    company: &["company name", "company"],
    series: &["series"],
    ex_date: &["ex-date", "ex date", "exdate"],
    record_date: &["record date", "record-date"],
    purpose: &["purpose", "subject"],
};

// BSE's JSON has two ex-dates, `Ex_date` ("25 Oct 2023") and `exdate` ("20231025"): both are
// read and must agree.
const BSE_JSON: Columns = Columns {
    scrip_code: &["scrip_code", "scripcode", "scrip_cd"],
    symbol: &["short_name", "scrip_id"],
    isin: &["isin", "isin_code"],
    company: &["long_name", "company_name", "longname"],
    series: &[],
    ex_date: &["ex_date", "exdate"],
    record_date: &["rd_date", "record_date"],
    purpose: &["purpose"],
};

const NSE_JSON: Columns = Columns {
    scrip_code: &[],
    symbol: &["symbol"],
    isin: &["isin"],
    company: &["comp", "company", "companyname"],
    series: &["series"],
    ex_date: &["exdate", "ex_date"],
    record_date: &["recdate", "record_date"],
    purpose: &["subject", "purpose"],
};

fn columns(format: ActionFormat) -> &'static Columns {
    match format {
        ActionFormat::BseCsv => &BSE_CSV,
        ActionFormat::BseJson => &BSE_JSON,
        ActionFormat::NseCsv => &NSE_CSV,
        ActionFormat::NseJson => &NSE_JSON,
    }
}

/// Which format a CSV header is, from its (normalised) names.
fn csv_format(names: &[String]) -> Option<ActionFormat> {
    let has = |n: &str| names.iter().any(|x| x == n);
    let any = |ns: &[&str]| ns.iter().any(|n| has(n));
    let purpose = has("purpose");
    if any(BSE_CSV.scrip_code) && any(BSE_CSV.ex_date) && purpose {
        return Some(ActionFormat::BseCsv);
    }
    if has("symbol") && any(NSE_CSV.ex_date) && purpose {
        return Some(ActionFormat::NseCsv);
    }
    None
}

/// Which format a JSON object is, from its keys (lower case).
fn json_format(keys: &[String]) -> Option<ActionFormat> {
    let has = |n: &str| keys.iter().any(|k| k == n);
    if has("scrip_code") && (has("ex_date") || has("exdate")) && has("purpose") {
        return Some(ActionFormat::BseJson);
    }
    if has("symbol") && has("exdate") && (has("subject") || has("purpose")) {
        return Some(ActionFormat::NseJson);
    }
    None
}

fn normalise_name(name: &str) -> String {
    name.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}' || c == '"').to_lowercase()
}

/// What the export's format is, or a description of what the body is instead.
pub(crate) fn detect_text(text: &str) -> Result<ActionFormat, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with(['[', '{']) {
        let value: Value = serde_json::from_str(text).map_err(|_| "JSON that does not parse".to_string())?;
        return json_shape(&value).0;
    }
    let header = records(text).next();
    let names: Vec<String> = header.map(|r| r.fields.iter().map(|f| normalise_name(f)).collect()).unwrap_or_default();
    csv_format(&names).ok_or_else(|| describe_text(text))
}

/// The JSON's array of rows and its format, or a description of the shape instead.
fn json_shape(value: &Value) -> (Result<ActionFormat, String>, &[Value]) {
    let Some(array) = json_rows(value) else {
        return (Err(describe_json(value)), &[]);
    };
    let format = array
        .iter()
        .find_map(Value::as_object)
        .and_then(|o| json_format(&lower_keys(o)))
        .ok_or_else(|| describe_json(value));
    (format, array)
}

/// The rows of an API answer: a bare array, or one wrapped as `{"Table": [...]}` (BSE) or
/// `{"data": [...]}` (NSE's newer endpoints).
pub(crate) fn json_rows(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(a) => Some(a),
        Value::Object(o) => o
            .iter()
            .find(|(k, v)| matches!(k.to_ascii_lowercase().as_str(), "table" | "data") && v.is_array())
            .and_then(|(_, v)| v.as_array().map(Vec::as_slice)),
        _ => None,
    }
}

fn lower_keys(o: &Map<String, Value>) -> Vec<String> {
    o.keys().map(|k| k.to_ascii_lowercase()).collect()
}

/// A JSON body's shape for an error message: its keys when they look like names, never values.
pub(crate) fn describe_json(value: &Value) -> String {
    let keys = |o: &Map<String, Value>| {
        let names: Vec<&str> = o.keys().map(String::as_str).filter(|k| name_like(k)).take(12).collect();
        format!("[{}]", names.join(", "))
    };
    match value {
        Value::Array(a) if a.is_empty() => "an empty JSON array".into(),
        Value::Array(a) => match a.iter().find_map(Value::as_object) {
            Some(o) if o.keys().any(|k| k.eq_ignore_ascii_case("tradingdate")) => {
                "BSE's trading-holiday list (read it with parse_holidays)".into()
            }
            Some(o) => format!("a JSON array of objects with keys {}", keys(o)),
            None => "a JSON array without objects".into(),
        },
        Value::Object(o) => match json_rows(value) {
            Some(rows) if !rows.is_empty() => describe_json(&Value::Array(rows.to_vec())),
            _ => format!("a JSON object with keys {}", keys(o)),
        },
        _ => "a JSON scalar".into(),
    }
}

fn name_like(k: &str) -> bool {
    k.len() <= 40 && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ' | '.'))
}

/// A text body's shape for an error message: HTML, a bhavcopy, or its header's column names.
fn describe_text(text: &str) -> String {
    let trimmed = text.trim_start();
    let head = trimmed[..trimmed.len().min(256)].to_ascii_lowercase();
    if ["<!doctype html", "<html", "<head", "<body", "<?xml", "<!--"].iter().any(|p| head.starts_with(p)) {
        return "an HTML page".into();
    }
    let first = crate::lines::lines(trimmed.as_bytes()).next().map(|l| l.text()).unwrap_or_default();
    if crate::SourceFormat::from_header(&first).is_some() {
        return "a BSE equity bhavcopy".into();
    }
    crate::detect::header_preview(&first)
        .map_or_else(|| "text whose first line is not CSV column names".into(), |h| format!("a CSV with header {h:?}"))
}

pub(crate) fn parse_text(text: &str) -> Result<ParsedActions, ActionsError> {
    if text.trim_start().starts_with(['[', '{']) {
        let value: Value = serde_json::from_str(text).map_err(|e| ActionsError::Json { message: e.to_string() })?;
        parse_json(&value)
    } else {
        parse_csv(text)
    }
}

/// One row's fields before they are checked, whatever the source.
struct RawRow<'a> {
    scrip_code: Option<ScripCode<'a>>,
    symbol: Option<&'a str>,
    isin: Option<&'a str>,
    company: Option<&'a str>,
    series: Option<&'a str>,
    /// Every ex-date the row gives (BSE's JSON has two).
    ex_dates: Vec<(&'a str, &'a str)>,
    record_date: Option<&'a str>,
    purpose: Option<&'a str>,
}

enum ScripCode<'a> {
    Text(&'a str),
    Number(&'a serde_json::Number),
}

fn parse_csv(text: &str) -> Result<ParsedActions, ActionsError> {
    let mut recs = records(text);
    let header = recs.next().ok_or(ActionsError::Empty)?;
    let names: Vec<String> = header.fields.iter().map(|f| normalise_name(f)).collect();
    let format = csv_format(&names).ok_or_else(|| ActionsError::UnknownFormat { seen: describe_text(text) })?;
    let cols = columns(format);
    let find = |want: &[&str]| want.iter().find_map(|w| names.iter().position(|n| n == w));
    let idx = CsvIndex {
        scrip_code: find(cols.scrip_code),
        symbol: find(cols.symbol),
        isin: find(cols.isin),
        company: find(cols.company),
        series: find(cols.series),
        ex_date: find(cols.ex_date),
        record_date: find(cols.record_date),
        purpose: find(cols.purpose),
    };
    let mut out = ParsedActions { format, rows: Vec::new(), refused: Vec::new() };
    for rec in recs {
        let refuse = |reason: String| RefusedRow { line: rec.line, raw: rec.raw.to_string(), reason };
        if rec.unterminated {
            out.refused.push(refuse("a quoted field is not closed before the end of the body".into()));
            continue;
        }
        if rec.fields.len() != names.len() {
            out.refused.push(refuse(format!("{} fields, the header has {}", rec.fields.len(), names.len())));
            continue;
        }
        let get = |i: Option<usize>| i.map(|i| rec.fields[i].as_str());
        let raw = RawRow {
            scrip_code: get(idx.scrip_code).map(ScripCode::Text),
            symbol: get(idx.symbol),
            isin: get(idx.isin),
            company: get(idx.company),
            series: get(idx.series),
            ex_dates: get(idx.ex_date).map(|d| vec![("ex-date", d)]).unwrap_or_default(),
            record_date: get(idx.record_date),
            purpose: get(idx.purpose),
        };
        match build_row(format, rec.line, raw) {
            Ok(row) => out.rows.push(row),
            Err(reason) => out.refused.push(refuse(reason)),
        }
    }
    Ok(out)
}

struct CsvIndex {
    scrip_code: Option<usize>,
    symbol: Option<usize>,
    isin: Option<usize>,
    company: Option<usize>,
    series: Option<usize>,
    ex_date: Option<usize>,
    record_date: Option<usize>,
    purpose: Option<usize>,
}

fn parse_json(value: &Value) -> Result<ParsedActions, ActionsError> {
    let (format, array) = json_shape(value);
    let format = format.map_err(|seen| ActionsError::UnknownFormat { seen })?;
    let cols = columns(format);
    let mut out = ParsedActions { format, rows: Vec::new(), refused: Vec::new() };
    for (i, element) in array.iter().enumerate() {
        let line = i as u64 + 1;
        let refuse = |reason: String| RefusedRow { line, raw: element.to_string(), reason };
        let Some(o) = element.as_object() else {
            out.refused.push(refuse("not a JSON object".into()));
            continue;
        };
        let raw = json_raw_row(o, cols);
        match raw.and_then(|raw| build_row(format, line, raw)) {
            Ok(row) => out.rows.push(row),
            Err(reason) => out.refused.push(refuse(reason)),
        }
    }
    Ok(out)
}

/// One JSON element's fields, or why they cannot be read (a field of the wrong JSON type).
fn json_raw_row<'a>(o: &'a Map<String, Value>, cols: &Columns) -> Result<RawRow<'a>, String> {
    let scrip_code = match lookup(o, cols.scrip_code) {
        None | Some((_, Value::Null)) => None,
        Some((_, Value::Number(n))) => Some(ScripCode::Number(n)),
        Some((_, Value::String(s))) => Some(ScripCode::Text(s)),
        Some((k, other)) => return Err(format!("{k:?} is {other}, not a number")),
    };
    let mut ex_dates = Vec::new();
    for key in cols.ex_date {
        if let Some((k, v)) = lookup(o, &[key]) {
            match v {
                Value::String(s) => ex_dates.push((k, s.as_str())),
                Value::Null => {}
                other => return Err(format!("{k:?} is {other}, not a date")),
            }
        }
    }
    Ok(RawRow {
        scrip_code,
        symbol: text_field(o, cols.symbol)?,
        isin: text_field(o, cols.isin)?,
        company: text_field(o, cols.company)?,
        series: text_field(o, cols.series)?,
        ex_dates,
        record_date: text_field(o, cols.record_date)?,
        purpose: text_field(o, cols.purpose)?,
    })
}

/// The first of `keys` the object has (ignoring case), with the key as written.
fn lookup<'a>(o: &'a Map<String, Value>, keys: &[&str]) -> Option<(&'a str, &'a Value)> {
    keys.iter().find_map(|want| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(want)).map(|(k, v)| (k.as_str(), v)))
}

/// A text field. Anything but a string or null is refused: a number or object where text is
/// expected means the API changed shape, and reading it anyway would hide that.
fn text_field<'a>(o: &'a Map<String, Value>, keys: &[&str]) -> Result<Option<&'a str>, String> {
    match lookup(o, keys) {
        None | Some((_, Value::Null)) => Ok(None),
        Some((_, Value::String(s))) => Ok(Some(s)),
        Some((k, other)) => Err(format!("{k:?} is {other}, not text")),
    }
}

/// Checks one row's fields and builds the row, or says why it is refused.
fn build_row(format: ActionFormat, line: u64, raw: RawRow<'_>) -> Result<ActionRow, String> {
    let bse = matches!(format, ActionFormat::BseCsv | ActionFormat::BseJson);
    let scrip_code = if bse {
        Some(match raw.scrip_code {
            None => return Err("no scrip code".into()),
            Some(ScripCode::Number(n)) => n
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .filter(|v| *v > 0)
                .ok_or(format!("scrip code {n} is not a scrip code"))?,
            Some(ScripCode::Text(s)) => {
                let s = s.trim();
                if s.is_empty() || s == "-" {
                    return Err("no scrip code".into());
                }
                s.parse::<i32>().ok().filter(|v| *v > 0).ok_or(format!("scrip code {s:?} is not a number"))?
            }
        })
    } else {
        None
    };
    let symbol = text(raw.symbol);
    if !bse && symbol.is_none() {
        return Err("no symbol".into());
    }
    let mut ex_date: Option<NaiveDate> = None;
    for (name, value) in &raw.ex_dates {
        match parse_date(value) {
            Err(()) => return Err(format!("{name} {:?} is not a date", value.trim())),
            Ok(None) => {}
            Ok(Some(d)) => match ex_date {
                Some(prev) if prev != d => return Err(format!("the ex-dates disagree: {prev} and {d}")),
                _ => ex_date = Some(d),
            },
        }
    }
    let ex_date = ex_date.ok_or("no ex-date")?;
    let record_date = match raw.record_date {
        None => None,
        Some(v) => parse_date(v).map_err(|()| format!("record date {:?} is not a date", v.trim()))?,
    };
    let purpose = raw.purpose.map(str::trim).unwrap_or_default().to_string();
    Ok(ActionRow {
        line,
        scrip_code,
        symbol,
        isin: text(raw.isin),
        company: text(raw.company).map(|c| decode_entities(&c)),
        series: text(raw.series),
        ex_date,
        record_date,
        purposes: parse_purpose(&purpose),
        purpose,
    })
}

/// A trimmed text field; empty and `-` (the exchanges' "nothing here") are `None`.
fn text(v: Option<&str>) -> Option<String> {
    let v = v?.trim();
    (!v.is_empty() && v != "-").then(|| v.to_string())
}

/// The exchanges' date spellings: `25 Oct 2023` (BSE), `05-Jan-2016` (NSE), `20231025` (BSE's
/// `exdate`), ISO. `Ok(None)` for empty or `-`; `Err` for anything else that is not a date.
pub(crate) fn parse_date(v: &str) -> Result<Option<NaiveDate>, ()> {
    let v = v.trim();
    if v.is_empty() || v == "-" {
        return Ok(None);
    }
    let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
    ["%d %b %Y", "%d-%b-%Y", "%Y%m%d", "%Y-%m-%d"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(&v, f).ok())
        .map(Some)
        .ok_or(())
}

/// One CSV record: where it starts, its text and its fields.
struct Record<'a> {
    /// 1-based physical line where the record starts.
    line: u64,
    /// The record's text without its line end.
    raw: &'a str,
    /// Fields, quotes removed (`""` inside quotes is one quote), not trimmed.
    fields: Vec<String>,
    /// A quote was still open at the end of the body.
    unterminated: bool,
}

/// The non-blank records of a CSV text. A quote opens only at the start of a field (after
/// spaces); inside quotes commas and line ends are data. LF, CRLF and lone CR end lines.
fn records(text: &str) -> impl Iterator<Item = Record<'_>> {
    let b = text.as_bytes();
    let mut pos = 0usize;
    let mut line = 1u64;
    std::iter::from_fn(move || {
        loop {
            if pos >= b.len() {
                return None;
            }
            let start = pos;
            let start_line = line;
            let mut fields = Vec::new();
            let mut field = String::new();
            let mut in_quotes = false;
            let mut field_start = pos;
            let mut i = pos;
            let end;
            loop {
                if i >= b.len() {
                    end = i;
                    pos = i;
                    break;
                }
                let c = b[i];
                if in_quotes {
                    match c {
                        b'"' if b.get(i + 1) == Some(&b'"') => {
                            field.push('"');
                            i += 2;
                            continue;
                        }
                        b'"' => in_quotes = false,
                        b'\n' => line += 1,
                        b'\r' if b.get(i + 1) != Some(&b'\n') => line += 1,
                        _ => {}
                    }
                    if c != b'"' {
                        field.push_str(&text[i..i + 1 + utf8_extra(c)]);
                        i += 1 + utf8_extra(c);
                        continue;
                    }
                    i += 1;
                    continue;
                }
                match c {
                    b'\n' | b'\r' => {
                        end = i;
                        pos = if c == b'\r' && b.get(i + 1) == Some(&b'\n') { i + 2 } else { i + 1 };
                        line += 1;
                        break;
                    }
                    b',' => {
                        fields.push(std::mem::take(&mut field));
                        i += 1;
                        field_start = i;
                    }
                    b'"' if text[field_start..i].trim().is_empty() => {
                        field.clear();
                        in_quotes = true;
                        i += 1;
                    }
                    _ => {
                        let n = 1 + utf8_extra(c);
                        field.push_str(&text[i..i + n]);
                        i += n;
                    }
                }
            }
            fields.push(field);
            let raw = &text[start..end];
            if raw.trim().is_empty() {
                continue;
            }
            return Some(Record { line: start_line, raw, fields, unterminated: in_quotes });
        }
    })
}

/// Continuation bytes after a UTF-8 lead byte.
fn utf8_extra(lead: u8) -> usize {
    match lead {
        0xF0..=0xF7 => 3,
        0xE0..=0xEF => 2,
        0xC0..=0xDF => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<(u64, Vec<String>)> {
        records(text).map(|r| (r.line, r.fields)).collect()
    }

    #[test]
    fn csv_records_quotes_and_line_ends() {
        let want = vec![(1, vec!["a".to_string(), "b".to_string()]), (2, vec!["c".to_string(), "d".to_string()])];
        assert_eq!(fields("a,b\nc,d\n"), want);
        assert_eq!(fields("a,b\r\nc,d\r\n"), want);
        assert_eq!(fields("a,b\rc,d"), want);
        assert_eq!(fields("a,b\n\n  \nc,d"), vec![want[0].clone(), (4, want[1].1.clone())]);
        assert_eq!(
            fields(r#""x, y","say ""hi""", "z" ,w"#),
            vec![(1, vec!["x, y".to_string(), r#"say "hi""#.to_string(), "z ".to_string(), "w".to_string()])]
        );
        // A line end inside quotes is data; the next record's line number counts it.
        let r: Vec<_> = records("h\n\"a\nb\",c\nd,e\n").collect();
        assert_eq!((r[1].line, r[1].fields.clone()), (2, vec!["a\nb".to_string(), "c".to_string()]));
        assert_eq!(r[2].line, 4);
        assert!(records("\"open,x\n").next().is_some_and(|r| r.unterminated));
        assert_eq!(fields("a\"b,c"), vec![(1, vec!["a\"b".to_string(), "c".to_string()])]);
        assert_eq!(fields("é,ü"), vec![(1, vec!["é".to_string(), "ü".to_string()])]);
    }

    #[test]
    fn dates() {
        let d = |y, m, day| Ok(Some(NaiveDate::from_ymd_opt(y, m, day).unwrap()));
        assert_eq!(parse_date("25 Oct 2023"), d(2023, 10, 25));
        assert_eq!(parse_date(" 05-Jan-2016 "), d(2016, 1, 5));
        assert_eq!(parse_date("05-JAN-2016"), d(2016, 1, 5));
        assert_eq!(parse_date("20231025"), d(2023, 10, 25));
        assert_eq!(parse_date("2023-10-25"), d(2023, 10, 25));
        assert_eq!(parse_date("25  Oct 2023"), d(2023, 10, 25));
        assert_eq!(parse_date("-"), Ok(None));
        assert_eq!(parse_date(""), Ok(None));
        assert_eq!(parse_date("31 Feb 2020"), Err(()));
        assert_eq!(parse_date("soon"), Err(()));
    }

    const BSE_HEADER: &str = "Security Code,Security Name,Company Name,Ex Date,Purpose,Record Date,BC Start Date, BC End Date\t,ND Start Date,ND End Date,Actual Payment Date";

    #[test]
    fn bse_csv_rows_and_refusals() {
        let body = format!(
            "{BSE_HEADER}\r\n\
             500010,HDFC ,Larsen &amp; Toubro ,09 Jul 2020,Dividend - Rs. - 21.0000,-,13 Jul 2020,30 Jul 2020,06 Jul 2020,10 Jul 2020,-\r\n\
             \r\n\
             ,X,Y,09 Jul 2020,Bonus issue 1:1,-,-,-,-,-,-\r\n\
             12A,X,Y,09 Jul 2020,Bonus issue 1:1,-,-,-,-,-,-\r\n\
             5,X,Y,-,Bonus issue 1:1,-,-,-,-,-,-\r\n\
             5,X,Y,32 Jul 2020,Bonus issue 1:1,-,-,-,-,-,-\r\n\
             5,X,Y,09 Jul 2020,Bonus issue 1:1,someday,-,-,-,-,-\r\n\
             5,X,Y,09 Jul 2020,Bonus issue 1:1\r\n"
        );
        let p = parse_text(&body).unwrap();
        assert_eq!(p.format, ActionFormat::BseCsv);
        assert_eq!(p.rows.len(), 1);
        let r = &p.rows[0];
        assert_eq!((r.line, r.scrip_code, r.symbol.as_deref()), (2, Some(500_010), Some("HDFC")));
        assert_eq!(r.company.as_deref(), Some("Larsen & Toubro"));
        assert_eq!((r.isin.as_deref(), r.series.as_deref(), r.record_date), (None, None, None));
        assert_eq!(r.ex_date, NaiveDate::from_ymd_opt(2020, 7, 9).unwrap());
        assert_eq!(r.purposes[0].amount, Some(21.0));
        let reasons: Vec<(u64, &str)> = p.refused.iter().map(|r| (r.line, r.reason.as_str())).collect();
        assert_eq!(
            reasons,
            vec![
                (4, "no scrip code"),
                (5, "scrip code \"12A\" is not a number"),
                (6, "no ex-date"),
                (7, "ex-date \"32 Jul 2020\" is not a date"),
                (8, "record date \"someday\" is not a date"),
                (9, "5 fields, the header has 11"),
            ]
        );
        assert_eq!(p.refused[0].raw, ",X,Y,09 Jul 2020,Bonus issue 1:1,-,-,-,-,-,-");
    }

    #[test]
    fn bse_csv_without_company_name_goes_by_names() {
        let body = "Ex Date,Purpose,Security Code,Security Name\n06 Jan 2016,Stock  Split From Rs.5/- to Rs.1/-,526797,GREENPLY\n";
        let p = parse_text(body).unwrap();
        let r = &p.rows[0];
        assert_eq!((r.scrip_code, r.symbol.as_deref(), r.company.as_deref()), (Some(526_797), Some("GREENPLY"), None));
        assert_eq!(r.purposes[0].price_factor, Some(5.0));
    }

    #[test]
    fn nse_csv_with_bom_and_quotes() {
        let body = "\u{feff}\"SYMBOL\",\"COMPANY NAME\",\"SERIES\",\"PURPOSE\",\"FACE VALUE\",\"EX-DATE\",\"RECORD DATE\"\n\
                    \"M&M\",\"Mahindra, \"\"and\"\" Mahindra\",\"EQ\",\" Bonus 1:1\",\"5\",\"05-Jan-2016\",\"-\"\n\
                    \"\",\"X\",\"EQ\",\" Bonus 1:1\",\"5\",\"05-Jan-2016\",\"-\"\n";
        assert_eq!(detect_text(body), Ok(ActionFormat::NseCsv));
        let p = parse_text(body).unwrap();
        assert_eq!(p.format, ActionFormat::NseCsv);
        let r = &p.rows[0];
        assert_eq!(r.symbol.as_deref(), Some("M&M"));
        assert_eq!(r.company.as_deref(), Some("Mahindra, \"and\" Mahindra"));
        assert_eq!((r.series.as_deref(), r.scrip_code, r.purpose.as_str()), (Some("EQ"), None, "Bonus 1:1"));
        assert_eq!(p.refused.len(), 1);
        assert_eq!((p.refused[0].line, p.refused[0].reason.as_str()), (3, "no symbol"));
    }

    #[test]
    fn bse_json_bare_and_wrapped() {
        let rows = r#"[{"scrip_code": 520066, "short_name": "JAYBARMARU", "Ex_date": "26 Oct 2023",
            "Purpose": "Stock  Split From Rs.5/- to Rs.2/-", "RD_Date": "26 Oct 2023", "exdate": "20231026",
            "long_name": "JAY BHARAT MARUTI LTD."},
            {"scrip_code": "543464", "short_name": "SPITZE", "Ex_date": "", "exdate": "20231027", "Purpose": "Bonus issue 1:1", "RD_Date": null},
            {"scrip_code": 1, "short_name": "X", "Ex_date": "27 Oct 2023", "exdate": "20231028", "Purpose": "Bonus issue 1:1"},
            {"scrip_code": null, "short_name": "X", "Ex_date": "27 Oct 2023", "Purpose": "Bonus issue 1:1"},
            {"scrip_code": 1.5, "short_name": "X", "Ex_date": "27 Oct 2023", "Purpose": "Bonus issue 1:1"},
            {"scrip_code": 1, "short_name": "X", "Ex_date": 20231027, "Purpose": "Bonus issue 1:1"},
            7]"#;
        for body in [rows.to_string(), format!("{{\"Table\": {rows}}}")] {
            assert_eq!(detect_text(&body), Ok(ActionFormat::BseJson));
            let p = parse_text(&body).unwrap();
            assert_eq!(p.format, ActionFormat::BseJson);
            assert_eq!(p.rows.len(), 2);
            let r = &p.rows[0];
            assert_eq!((r.line, r.scrip_code, r.symbol.as_deref()), (1, Some(520_066), Some("JAYBARMARU")));
            assert_eq!(r.company.as_deref(), Some("JAY BHARAT MARUTI LTD."));
            assert_eq!(r.ex_date, NaiveDate::from_ymd_opt(2023, 10, 26).unwrap());
            assert_eq!(r.record_date, NaiveDate::from_ymd_opt(2023, 10, 26));
            assert_eq!(r.purposes[0].price_factor, Some(2.5));
            let r = &p.rows[1];
            assert_eq!(
                (r.scrip_code, r.ex_date, r.record_date),
                (Some(543_464), NaiveDate::from_ymd_opt(2023, 10, 27).unwrap(), None)
            );
            let reasons: Vec<(u64, &str)> = p.refused.iter().map(|r| (r.line, r.reason.as_str())).collect();
            assert_eq!(
                reasons,
                vec![
                    (3, "the ex-dates disagree: 2023-10-27 and 2023-10-28"),
                    (4, "no scrip code"),
                    (5, "scrip code 1.5 is not a scrip code"),
                    (6, "\"Ex_date\" is 20231027, not a date"),
                    (7, "not a JSON object"),
                ]
            );
            assert_eq!(p.refused[4].raw, "7");
        }
    }

    #[test]
    fn nse_json() {
        let body = r#"{"data": [{"symbol":"GREENPLY","series":"EQ","isin":"INE461C01020","exDate":"06-Jan-2016",
            "subject":" Face Value Split (Sub-Division) - From Rs 5/- Per Share To Re 1/- Per Share","recDate":"07-Jan-2016",
            "faceVal":"1","comp":"Greenply Industries Limited","bcEndDate":"-"}]}"#;
        let p = parse_text(body).unwrap();
        assert_eq!(p.format, ActionFormat::NseJson);
        let r = &p.rows[0];
        assert_eq!((r.isin.as_deref(), r.series.as_deref()), (Some("INE461C01020"), Some("EQ")));
        assert_eq!(r.purposes[0].price_factor, Some(5.0));
    }

    #[test]
    fn unknown_shapes_say_what_they_are() {
        let seen = |body: &str| match parse_text(body) {
            Err(ActionsError::UnknownFormat { seen }) => seen,
            other => panic!("{other:?}"),
        };
        assert_eq!(seen("[]"), "an empty JSON array");
        assert_eq!(
            seen(r#"{"Table":[{"TradingDate":"26 Jan 2026"}]}"#),
            "BSE's trading-holiday list (read it with parse_holidays)"
        );
        assert_eq!(seen(r#"[{"a": "secret value", "b": 1}]"#), "a JSON array of objects with keys [a, b]");
        assert_eq!(seen("<!DOCTYPE html><html></html>"), "an HTML page");
        assert_eq!(
            seen(
                "SC_CODE,SC_NAME,SC_GROUP,SC_TYPE,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,NO_TRADES,NO_OF_SHRS,NET_TURNOV,TDCLOINDI\n"
            ),
            "a BSE equity bhavcopy"
        );
        assert!(
            seen("Security Code,Security Id,Security Name,Status\n1,2,3,4\n").contains("Security Code,Security Id")
        );
        assert_eq!(seen("password=hunter2\n"), "text whose first line is not CSV column names");
    }
}
