//! Row-by-row normalisation of a bhavcopy CSV into canonical rows plus quarantined lines.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::canonical::{CanonicalRow, QuarantinedLine, equity_by_isin};
use super::detect::{header_preview, strip_bom};
use super::encoding::{Utf16, detect_utf16};
use super::lines::{Line, lines, split_fields};
use super::{SourceFormat, UDIFF_HEADER};

/// Why a whole file was refused (as opposed to a single line, which is quarantined).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The body has no header line at all.
    #[error("the file is empty")]
    Empty,
    /// The first line is not a bhavcopy header this version knows.
    #[error(
        "unknown header {}: not a BSE equity bhavcopy (legacy 14-column, EQ_ISINCODE 18-column or UDiFF)",
        .header.as_deref().map_or_else(|| "(the first line is not a row of CSV column names; not shown)".to_string(), |h| format!("{h:?}"))
    )]
    UnknownHeader {
        /// The start of the header line when it looks like CSV column names (at most 60
        /// characters); `None` when it does not, so that no other content is ever quoted.
        header: Option<String>,
    },
    /// The file is UTF-16 text, not ASCII.
    #[error("the file is {0}, not ASCII text as BSE publishes it: open it and save it as CSV in UTF-8 or ASCII")]
    Utf16(Utf16),
    /// Nothing in the name or content gives the trade date.
    #[error("cannot tell the trade date: {0}")]
    NoTradeDate(String),
    /// The dates are not in BSE's format: the file went through a spreadsheet program.
    #[error(
        "line {line}: {column} {value:?} is not YYYY-MM-DD as BSE publishes it; the file looks re-saved by a spreadsheet program (dates rewritten, trailing zeros and blank rows changed): use the file as downloaded from BSE"
    )]
    Resaved {
        /// Line number of the first bad date.
        line: u64,
        /// The column holding it.
        column: &'static str,
        /// The value seen.
        value: String,
    },
}

impl ParseError {
    /// The kind of problem, without anything read from the file (for clients who do not own it).
    #[must_use]
    pub fn category(&self) -> String {
        match self {
            Self::Empty => "the file is empty".into(),
            Self::UnknownHeader { .. } => {
                "unknown header: not a BSE equity bhavcopy (legacy 14-column, EQ_ISINCODE 18-column or UDiFF)".into()
            }
            Self::Utf16(_) => self.to_string(),
            Self::NoTradeDate(_) => "cannot tell the trade date from the file's name or content".into(),
            Self::Resaved { line, column, .. } => format!(
                "line {line}: {column} is not a date as BSE writes it; the file looks re-saved by a spreadsheet program"
            ),
        }
    }
}

/// Why one data line was quarantined. The message is the line's `reason` in the quarantine
/// table, so its wording is part of what users see.
#[derive(Debug, thiserror::Error)]
enum LineError {
    /// Every field of the record is blank.
    #[error("empty record (separators only)")]
    EmptyRecord,
    /// The record has the wrong number of fields.
    #[error("{found} fields, expected {expected}{}", .hint.map_or("", FieldCountHint::suffix))]
    FieldCount {
        /// Fields on the line.
        found: usize,
        /// Fields of the format.
        expected: usize,
        /// The likely cause, when the count suggests one.
        hint: Option<FieldCountHint>,
    },
    /// The scrip code is not a positive integer.
    #[error("{column} {value:?} is not a positive integer scrip code")]
    ScripCode {
        /// The column holding it.
        column: &'static str,
        /// The value seen.
        value: String,
    },
    /// A required number is missing.
    #[error("{column} is empty")]
    Empty {
        /// The column.
        column: &'static str,
    },
    /// A number carries a minus sign.
    #[error("{column} {value:?} is negative")]
    Negative {
        /// The column.
        column: &'static str,
        /// The value seen (shortened).
        value: String,
    },
    /// A number parses to an infinity or NaN.
    #[error("{column} {value:?} is not a finite number")]
    NotFinite {
        /// The column.
        column: &'static str,
        /// The value seen (shortened).
        value: String,
    },
    /// A field is not a number at all.
    #[error("{column} {value:?} is not a number")]
    NotANumber {
        /// The column.
        column: &'static str,
        /// The value seen (shortened).
        value: String,
    },
    /// A price or turnover above anything real.
    #[error("{column} {value:?} is implausibly large (above {max:e}); not a real price or turnover")]
    Implausible {
        /// The column.
        column: &'static str,
        /// The value seen (shortened).
        value: String,
        /// The highest plausible value.
        max: f64,
    },
    /// A price that must be above zero is zero.
    #[error("{column} is 0: a security in the bhavcopy traded, so its {column} cannot be zero")]
    Zero {
        /// The column.
        column: &'static str,
    },
    /// A count is not a whole number.
    #[error("{column} {value:?} is not a whole number")]
    NotWholeNumber {
        /// The column.
        column: &'static str,
        /// The value seen.
        value: String,
    },
    /// The row's own date is not the file's trade date.
    #[error("{column} {date} differs from the file's trade date {trade_date}")]
    OtherDate {
        /// The date column.
        column: &'static str,
        /// The row's date.
        date: NaiveDate,
        /// The file's trade date.
        trade_date: NaiveDate,
    },
    /// The row's date is not in the format the layout uses.
    #[error("{column} {value:?} is not {expected}")]
    DateFormat {
        /// The date column.
        column: &'static str,
        /// The value seen.
        value: String,
        /// The expected format, e.g. `YYYY-MM-DD`.
        expected: &'static str,
    },
    /// An earlier line of the file has the same scrip code.
    #[error("duplicate scrip code {scrip_code} (first on line {first})")]
    DuplicateScripCode {
        /// The scrip code.
        scrip_code: i32,
        /// Line number of the row that was kept.
        first: u64,
    },
}

/// The likely cause of a wrong field count.
#[derive(Debug, Clone, Copy)]
enum FieldCountHint {
    /// One or two extra fields next to a `d,ddd` number.
    ThousandsSeparator,
    /// About twice the fields: two records on one line.
    FusedRecords,
    /// A few extra fields.
    StraySeparator,
}

impl FieldCountHint {
    /// The text appended to the field count.
    fn suffix(self) -> &'static str {
        match self {
            Self::ThousandsSeparator => {
                "; looks like a number written with an unquoted thousands separator (such as 1,234.50): BSE writes numbers without separators, so the file was probably re-saved by a spreadsheet program"
            }
            Self::FusedRecords => "; looks like records fused on one line (a missing line break in BSE's file)",
            Self::StraySeparator => "; a stray separator or an unquoted comma inside a field",
        }
    }
}

/// A parsed file: every data line is either in `rows` or in `quarantined`.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    /// Layout of the file.
    pub format: SourceFormat,
    /// The session the file is for.
    pub trade_date: NaiveDate,
    /// Rows that normalised cleanly, in file order.
    pub rows: Vec<CanonicalRow>,
    /// Lines refused, with reasons.
    pub quarantined: Vec<QuarantinedLine>,
    /// Non-empty lines after the header: always `rows.len() + quarantined.len()`.
    pub data_lines: u64,
    /// Empty lines skipped (typically one at the end of the file).
    pub blank_lines: u64,
    /// Things worth a log line that did not stop the load (e.g. name and content disagree on the date).
    pub warnings: Vec<String>,
}

/// Parses a bhavcopy CSV body. `name_date` is the trade date from the file name, if any: the
/// 14-column legacy file carries no date of its own and needs it.
pub fn parse_csv(body: &[u8], name_date: Option<NaiveDate>) -> Result<ParsedFile, ParseError> {
    if let Some(encoding) = detect_utf16(body) {
        return Err(ParseError::Utf16(encoding));
    }
    let body = strip_bom(body);
    let mut it = lines(body).skip_while(|l| l.bytes.trim_ascii().is_empty());
    let header = it.next().ok_or(ParseError::Empty)?;
    let header_text = header.text();
    let format = SourceFormat::from_header(&header_text)
        .ok_or_else(|| ParseError::UnknownHeader { header: header_preview(&header_text) })?;
    let data: Vec<Line<'_>> = it.collect();
    let mut warnings = Vec::new();
    let trade_date = trade_date(format, &data, name_date, &mut warnings)?;

    let mut out = ParsedFile {
        format,
        trade_date,
        rows: Vec::with_capacity(data.len()),
        quarantined: Vec::new(),
        data_lines: 0,
        blank_lines: 0,
        warnings,
    };
    let mut seen: HashMap<i32, u64> = HashMap::with_capacity(data.len());
    for line in data {
        if line.bytes.trim_ascii().is_empty() {
            out.blank_lines += 1;
            continue;
        }
        out.data_lines += 1;
        let text = line.text();
        let fields = split_fields(&text);
        let result = check_shape(format, &fields).and_then(|()| match format {
            SourceFormat::LegacyEq14 => legacy_row(&fields),
            SourceFormat::LegacyIsin18 => isin18_row(&fields, trade_date),
            SourceFormat::Udiff => udiff_row(&fields, trade_date),
        });
        match result {
            Ok(mut row) => {
                row.source_line = line.number;
                if let Some(first) = seen.insert(row.scrip_code, line.number) {
                    seen.insert(row.scrip_code, first);
                    out.quarantined.push(QuarantinedLine {
                        line_number: line.number,
                        raw_line: text,
                        reason: LineError::DuplicateScripCode { scrip_code: row.scrip_code, first }.to_string(),
                    });
                } else {
                    out.rows.push(row);
                }
            }
            Err(reason) => out.quarantined.push(QuarantinedLine {
                line_number: line.number,
                raw_line: text,
                reason: reason.to_string(),
            }),
        }
    }
    Ok(out)
}

fn trade_date(
    format: SourceFormat,
    data: &[Line<'_>],
    name_date: Option<NaiveDate>,
    warnings: &mut Vec<String>,
) -> Result<NaiveDate, ParseError> {
    let (col, content_date) = match format {
        SourceFormat::LegacyEq14 => {
            return name_date.ok_or_else(|| {
                ParseError::NoTradeDate(
                    "the 14-column legacy file has no date column and its name is not BSE's EQDDMMYY.CSV".into(),
                )
            });
        }
        SourceFormat::LegacyIsin18 => ("TRADING_DATE", first_content_date(data, 15, "TRADING_DATE", parse_dd_mon_yy)?),
        SourceFormat::Udiff => ("TradDt", first_content_date(data, 0, "TradDt", parse_iso)?),
    };
    match (content_date, name_date) {
        (Some(c), Some(n)) if c != n => {
            warnings.push(format!("the file name says {n} but {col} says {c}; using {c} from the content"));
            Ok(c)
        }
        (Some(c), _) => Ok(c),
        (None, Some(n)) => Ok(n),
        (None, None) => Err(ParseError::NoTradeDate(format!("no data row has a {col} and the file name has no date"))),
    }
}

/// The date in column `idx` of the first data row that has a non-empty one.
fn first_content_date(
    data: &[Line<'_>],
    idx: usize,
    column: &'static str,
    parse: fn(&str) -> Option<NaiveDate>,
) -> Result<Option<NaiveDate>, ParseError> {
    for line in data {
        let text = line.text();
        let fields = split_fields(&text);
        let Some(value) = fields.get(idx).map(|v| v.trim()) else { continue };
        if value.is_empty() {
            continue;
        }
        return match parse(value) {
            Some(d) => Ok(Some(d)),
            None => Err(ParseError::Resaved { line: line.number, column, value: value.to_string() }),
        };
    }
    Ok(None)
}

fn parse_iso(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn parse_dd_mon_yy(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%d-%b-%y").or_else(|_| NaiveDate::parse_from_str(s, "%d-%b-%Y")).ok()
}

fn check_shape(format: SourceFormat, fields: &[String]) -> Result<(), LineError> {
    let want = format.field_count();
    if fields.len() == want {
        if fields.iter().all(|f| f.trim().is_empty()) {
            return Err(LineError::EmptyRecord);
        }
        return Ok(());
    }
    let extra = fields.len().saturating_sub(want);
    let hint = if (1..=2).contains(&extra) && has_thousands_separator(fields) {
        // A record fused with the next one has about twice the fields; one or two extra fields
        // next to a `d,ddd` number are a number written with a thousands separator.
        Some(FieldCountHint::ThousandsSeparator)
    } else if extra + 2 >= want {
        Some(FieldCountHint::FusedRecords)
    } else if extra > 0 {
        Some(FieldCountHint::StraySeparator)
    } else {
        None
    };
    Err(LineError::FieldCount { found: fields.len(), expected: want, hint })
}

/// Whether two neighbouring fields read like one number split at a thousands separator: a field
/// ending in a digit followed by one of exactly three digits (optionally with decimals).
fn has_thousands_separator(fields: &[String]) -> bool {
    fields.windows(2).any(|w| {
        let (a, b) = (w[0].trim(), w[1].trim());
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        let (int, frac) = b.split_once('.').unwrap_or((b, ""));
        digits(a) && int.len() == 3 && digits(int) && (frac.is_empty() || digits(frac))
    })
}

fn text(field: &str) -> Option<String> {
    let t = field.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn scrip_code(field: &str, column: &'static str) -> Result<i32, LineError> {
    let t = field.trim();
    match t.parse::<i32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(LineError::ScripCode { column, value: t.to_string() }),
    }
}

/// Highest plausible price of one unit, rupees. The highest real prices are debt instruments
/// quoted around 1e7 (a ₹1 crore bond); 1e9 leaves a hundredfold margin and still refuses
/// values such as 1e308 that would turn every feature over them into infinities.
const MAX_PRICE: f64 = 1e9;
/// Highest plausible turnover of one security in one session, rupees (real ones stay below 1e11).
const MAX_TURNOVER: f64 = 1e15;

/// How a numeric column is checked beyond being a number.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A price that must be above zero (high, low, close).
    PositivePrice,
    /// A price that may be zero (BSE prints an open of 0.00 for some block-deal rows, a last or
    /// settlement price of 0.00 is passed on as printed).
    Price,
    /// Rupee turnover.
    Turnover,
}

fn number(field: &str, column: &'static str, required: bool, kind: Kind) -> Result<Option<f64>, LineError> {
    let t = field.trim();
    if t.is_empty() {
        return if required { Err(LineError::Empty { column }) } else { Ok(None) };
    }
    let value = super::detect::truncate(t, 24);
    // `-0` parses as a number at or above zero, yet a minus sign is never right in these
    // columns, and a negative zero turns ratios over it into NaN.
    if t.starts_with('-') {
        return Err(LineError::Negative { column, value });
    }
    let v = match t.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        Ok(_) => return Err(LineError::NotFinite { column, value }),
        Err(_) => return Err(LineError::NotANumber { column, value }),
    };
    let max = if kind == Kind::Turnover { MAX_TURNOVER } else { MAX_PRICE };
    if v > max {
        return Err(LineError::Implausible { column, value, max });
    }
    if kind == Kind::PositivePrice && v == 0.0 {
        return Err(LineError::Zero { column });
    }
    Ok(Some(v))
}

fn count(field: &str, column: &'static str) -> Result<Option<i64>, LineError> {
    let t = field.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.starts_with('-') {
        return Err(LineError::Negative { column, value: super::detect::truncate(t, 24) });
    }
    if let Ok(v) = t.parse::<i64>() {
        return if v >= 0 { Ok(Some(v)) } else { Err(LineError::Negative { column, value: t.to_string() }) };
    }
    // Some producers print counts as `123.00`; accept only an exact integer.
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if !frac.is_empty()
        && frac.bytes().all(|b| b == b'0')
        && let Ok(v) = whole.parse::<i64>()
        && v >= 0
    {
        return Ok(Some(v));
    }
    Err(LineError::NotWholeNumber { column, value: t.to_string() })
}

/// BSE prints 0.00 as the previous close of a new listing: there is no previous close.
fn prev_close(field: &str, column: &'static str) -> Result<Option<f64>, LineError> {
    Ok(number(field, column, false, Kind::Price)?.filter(|v| *v > 0.0))
}

fn legacy_row(f: &[String]) -> Result<CanonicalRow, LineError> {
    Ok(CanonicalRow {
        scrip_code: scrip_code(&f[0], "SC_CODE")?,
        isin: None,
        symbol: None,
        name: f[1].trim().to_string(),
        sc_group: text(&f[2]),
        sc_type: text(&f[3]),
        open: number(&f[4], "OPEN", true, Kind::Price)?,
        high: number(&f[5], "HIGH", true, Kind::PositivePrice)?,
        low: number(&f[6], "LOW", true, Kind::PositivePrice)?,
        close: number(&f[7], "CLOSE", true, Kind::PositivePrice)?,
        last: number(&f[8], "LAST", false, Kind::Price)?,
        prev_close: prev_close(&f[9], "PREVCLOSE")?,
        trades: count(&f[10], "NO_TRADES")?,
        volume: count(&f[11], "NO_OF_SHRS")?,
        turnover: number(&f[12], "NET_TURNOV", false, Kind::Turnover)?,
        is_equity: f[3].trim() == "Q",
        ex_flag: text(&f[13]),
        settlement_price: None,
        source_line: 0,
    })
}

fn isin18_row(f: &[String], trade_date: NaiveDate) -> Result<CanonicalRow, LineError> {
    let mut row = legacy_row(&f[..14])?;
    row.isin = text(&f[14]);
    let date = f[15].trim();
    match parse_dd_mon_yy(date) {
        Some(d) if d == trade_date => {}
        Some(date) => return Err(LineError::OtherDate { column: "TRADING_DATE", date, trade_date }),
        None => {
            return Err(LineError::DateFormat {
                column: "TRADING_DATE",
                value: date.to_string(),
                expected: "DD-Mon-YY",
            });
        }
    }
    Ok(row)
}

fn udiff_row(f: &[String], trade_date: NaiveDate) -> Result<CanonicalRow, LineError> {
    let col = |name: &str| UDIFF_HEADER.iter().position(|h| *h == name).map(|i| f[i].as_str()).unwrap_or("");
    let date = col("TradDt").trim();
    match parse_iso(date) {
        Some(d) if d == trade_date => {}
        Some(date) => return Err(LineError::OtherDate { column: "TradDt", date, trade_date }),
        None => {
            return Err(LineError::DateFormat { column: "TradDt", value: date.to_string(), expected: "YYYY-MM-DD" });
        }
    }
    Ok(CanonicalRow {
        scrip_code: scrip_code(col("FinInstrmId"), "FinInstrmId")?,
        isin: text(col("ISIN")),
        symbol: text(col("TckrSymb")),
        name: col("FinInstrmNm").trim().to_string(),
        sc_group: text(col("SctySrs")),
        sc_type: text(col("FinInstrmTp")),
        open: number(col("OpnPric"), "OpnPric", true, Kind::Price)?,
        high: number(col("HghPric"), "HghPric", true, Kind::PositivePrice)?,
        low: number(col("LwPric"), "LwPric", true, Kind::PositivePrice)?,
        close: number(col("ClsPric"), "ClsPric", true, Kind::PositivePrice)?,
        last: number(col("LastPric"), "LastPric", false, Kind::Price)?,
        prev_close: prev_close(col("PrvsClsgPric"), "PrvsClsgPric")?,
        volume: count(col("TtlTradgVol"), "TtlTradgVol")?,
        turnover: number(col("TtlTrfVal"), "TtlTrfVal", false, Kind::Turnover)?,
        trades: count(col("TtlNbOfTxsExctd"), "TtlNbOfTxsExctd")?,
        is_equity: col("FinInstrmTp").trim() == "STK" && equity_by_isin(col("ISIN")),
        ex_flag: None,
        settlement_price: number(col("SttlmPric"), "SttlmPric", false, Kind::Price)?,
        source_line: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H14: &str =
        "SC_CODE,SC_NAME,SC_GROUP,SC_TYPE,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,NO_TRADES,NO_OF_SHRS,NET_TURNOV,TDCLOINDI";

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn legacy_row_normalises() {
        let body = format!(
            "{H14}\r\n500002,ABB LTD.    ,A ,Q,1299.30,1313.65,1282.25,1285.30,1286.90,1289.75,1002,7683,9938167.00,XD\r\n"
        );
        let p = parse_csv(body.as_bytes(), Some(d("2015-01-05"))).unwrap();
        assert_eq!(p.trade_date, d("2015-01-05"));
        assert_eq!(p.rows.len(), 1);
        let r = &p.rows[0];
        assert_eq!((r.scrip_code, r.name.as_str(), r.sc_group.as_deref()), (500002, "ABB LTD.", Some("A")));
        assert_eq!((r.close, r.prev_close, r.volume, r.trades), (Some(1285.30), Some(1289.75), Some(7683), Some(1002)));
        assert_eq!(r.ex_flag.as_deref(), Some("XD"));
        assert_eq!(r.source_line, 2);
    }

    #[test]
    fn bad_lines_are_quarantined_with_reason_and_line() {
        let body = format!(
            "{H14}\n500002,ABB,A,Q,1,2,0.5,1.5,1.5,1,1,1,1,\n500003,X,A,Q,abc,2,1,1.5,1.5,1,1,1,1,\n500004,Y,A,Q,1,2\n\n"
        );
        let p = parse_csv(body.as_bytes(), Some(d("2015-01-05"))).unwrap();
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.data_lines, 3);
        assert_eq!(p.blank_lines, 1);
        assert_eq!(p.quarantined[0].line_number, 3);
        assert!(p.quarantined[0].reason.contains("OPEN \"abc\" is not a number"), "{:?}", p.quarantined);
        assert_eq!(p.quarantined[1].line_number, 4);
        assert!(p.quarantined[1].reason.contains("6 fields, expected 14"));
    }

    #[test]
    fn legacy_without_name_date_is_refused() {
        let err = parse_csv(format!("{H14}\n").as_bytes(), None).unwrap_err();
        assert!(matches!(err, ParseError::NoTradeDate(_)));
    }

    #[test]
    fn unknown_header_names_it() {
        let err = parse_csv(b"SYMBOL,SERIES,OPEN\nA,EQ,1\n", None).unwrap_err();
        assert!(err.to_string().contains("SYMBOL,SERIES,OPEN"));
    }

    #[test]
    fn duplicate_scrip_is_quarantined() {
        let body = format!("{H14}\n1,A,A,Q,1,1,1,1,1,1,1,1,1,\n1,A,A,Q,1,1,1,1,1,1,1,1,1,\n");
        let p = parse_csv(body.as_bytes(), Some(d("2015-01-05"))).unwrap();
        assert_eq!(p.rows.len(), 1);
        assert!(p.quarantined[0].reason.contains("first on line 2"));
    }

    #[test]
    fn prev_close_zero_is_null() {
        let body = format!("{H14}\n1,A,A,Q,1,1,1,1,1,0.00,1,1,1,\n");
        let p = parse_csv(body.as_bytes(), Some(d("2015-01-05"))).unwrap();
        assert_eq!(p.rows[0].prev_close, None);
    }

    #[test]
    fn implausible_prices_are_quarantined_with_a_reason() {
        let row = |open: &str, close: &str| format!("1,A,A,Q,{open},2,1,{close},1.5,1,1,1,1,\n");
        let body = format!(
            "{H14}\n{}{}{}{}{}",
            row("1", "1e308"),
            row("1", "0"),
            row("1", "-0"),
            row("-0", "1.5"),
            "2,B,A,Q,0.00,312.00,312.00,312.00,312.00,312.00,2,165000,51480000.00,\n"
        );
        let p = parse_csv(body.as_bytes(), Some(d("2015-01-05"))).unwrap();
        let reasons: Vec<&str> = p.quarantined.iter().map(|q| q.reason.as_str()).collect();
        assert_eq!(p.quarantined.len(), 4, "{reasons:?}");
        assert!(reasons[0].contains("CLOSE \"1e308\" is implausibly large"), "{reasons:?}");
        assert!(reasons[1].contains("CLOSE is 0"), "{reasons:?}");
        assert!(reasons[2].contains("CLOSE \"-0\" is negative"), "{reasons:?}");
        assert!(reasons[3].contains("OPEN \"-0\" is negative"), "{reasons:?}");
        // A real row of BSE's 2015 files: an open of 0.00 on a block deal still loads.
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].open, Some(0.0));
    }

    #[test]
    fn thousands_separators_are_named_as_such() {
        let body = format!("{H14}\n1,A,A,Q,1,234.50,2,1,1.5,1.5,1,1,1,1,\n");
        let p = parse_csv(body.as_bytes(), Some(d("2015-01-05"))).unwrap();
        let reason = &p.quarantined[0].reason;
        assert!(reason.contains("15 fields, expected 14") && reason.contains("thousands separator"), "{reason}");
        assert!(!reason.contains("fused"), "{reason}");
    }

    #[test]
    fn line_reasons_keep_their_wording() {
        let d15 = d("2015-01-05");
        let shape =
            |n: usize| check_shape(SourceFormat::LegacyEq14, &vec![String::from("1"); n]).unwrap_err().to_string();
        assert_eq!(shape(6), "6 fields, expected 14");
        assert_eq!(shape(17), "17 fields, expected 14; a stray separator or an unquoted comma inside a field");
        assert_eq!(
            shape(28),
            "28 fields, expected 14; looks like records fused on one line (a missing line break in BSE's file)"
        );
        assert_eq!(
            check_shape(SourceFormat::LegacyEq14, &vec![String::from(" "); 14]).unwrap_err().to_string(),
            "empty record (separators only)"
        );
        assert_eq!(
            scrip_code("x", "SC_CODE").unwrap_err().to_string(),
            "SC_CODE \"x\" is not a positive integer scrip code"
        );
        assert_eq!(number("", "OPEN", true, Kind::Price).unwrap_err().to_string(), "OPEN is empty");
        assert_eq!(
            number("inf", "OPEN", true, Kind::Price).unwrap_err().to_string(),
            "OPEN \"inf\" is not a finite number"
        );
        assert_eq!(
            number("2e15", "NET_TURNOV", false, Kind::Turnover).unwrap_err().to_string(),
            "NET_TURNOV \"2e15\" is implausibly large (above 1e15); not a real price or turnover"
        );
        assert_eq!(count("1.5", "NO_TRADES").unwrap_err().to_string(), "NO_TRADES \"1.5\" is not a whole number");
        assert_eq!(count("-1", "NO_TRADES").unwrap_err().to_string(), "NO_TRADES \"-1\" is negative");
        let mut isin18: Vec<String> =
            "1,A,A,Q,1,1,1,1,1,1,1,1,1,,INE000000000,06-Jan-15,,".split(',').map(String::from).collect();
        assert_eq!(
            isin18_row(&isin18, d15).unwrap_err().to_string(),
            "TRADING_DATE 2015-01-06 differs from the file's trade date 2015-01-05"
        );
        isin18[15] = "2015-01-05".into();
        assert_eq!(isin18_row(&isin18, d15).unwrap_err().to_string(), "TRADING_DATE \"2015-01-05\" is not DD-Mon-YY");
        let mut udiff = vec![String::from("1"); 34];
        udiff[0] = "05-Jan-15".into();
        assert_eq!(udiff_row(&udiff, d15).unwrap_err().to_string(), "TradDt \"05-Jan-15\" is not YYYY-MM-DD");
        udiff[0] = "2015-01-06".into();
        assert_eq!(
            udiff_row(&udiff, d15).unwrap_err().to_string(),
            "TradDt 2015-01-06 differs from the file's trade date 2015-01-05"
        );
    }

    #[test]
    fn utf16_files_name_their_encoding() {
        let mut body = vec![0xFF, 0xFE];
        body.extend(format!("{H14}\r\n").encode_utf16().flat_map(u16::to_le_bytes));
        let err = parse_csv(&body, Some(d("2015-01-05"))).unwrap_err();
        assert_eq!(err, ParseError::Utf16(Utf16::LeBom));
        let msg = err.to_string();
        assert!(msg.contains("UTF-16") && msg.contains("FF FE") && msg.contains("UTF-8"), "{msg}");
    }

    #[test]
    fn headers_are_quoted_only_when_they_are_column_names() {
        let err = parse_csv(b"TOPSECRET_API_KEY=hunter2-abcdef\nX=1\n", None).unwrap_err();
        assert_eq!(err, ParseError::UnknownHeader { header: None });
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = parse_csv(b"root:x:0:0:root,,,:/root:/bin/bash\n", None).unwrap_err();
        assert!(!err.to_string().contains("root:x"), "{err}");
        let long = "SYMBOL,SERIES,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,TOTTRDQTY,TOTTRDVAL,TIMESTAMP,TOTALTRADES,ISIN";
        let err = parse_csv(format!("{long}\n").as_bytes(), None).unwrap_err();
        let ParseError::UnknownHeader { header: Some(h) } = &err else { panic!("{err:?}") };
        assert!(h.starts_with("SYMBOL,SERIES,OPEN") && h.chars().count() <= 63, "{h}");
    }
}
