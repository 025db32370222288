//! Corporate actions as BSE and NSE export them, and BSE's trading-holiday list.
//!
//! Pure code: bytes in, rows and refused rows out. Four exports are read, told apart by their
//! content (header names, JSON keys), never by file name:
//!
//! - BSE's CSV export (`Security Code,Security Name[,Company Name],Ex Date,Purpose,...`);
//! - BSE's JSON API (`scrip_code`, `short_name`, `Ex_date`, `Purpose`, ...), bare or wrapped
//!   in `{"Table": [...]}`;
//! - NSE's CF-CA CSV (`SYMBOL`, `COMPANY NAME`, `SERIES`, `PURPOSE`, `EX-DATE`, ...);
//! - NSE's JSON API (`symbol`, `series`, `isin`, `exDate`, `subject`, ...).
//!
//! Every data row becomes an [`ActionRow`] or a [`RefusedRow`] saying why; none is dropped.
//! The purpose text is read by [`parse_purpose`] into one or more [`Purpose`]s.

mod holidays;
mod purpose;
mod schema;
mod sources;

use chrono::NaiveDate;

pub use holidays::{Holiday, detect_holidays, parse_holidays};
pub use purpose::{ActionKind, Purpose, parse_purpose};
pub use schema::{actions_schema, actions_to_batch, holidays_schema, holidays_to_batch};

use crate::encoding::Utf16;

/// The corporate-action exports this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionFormat {
    /// BSE's corporate-actions CSV download.
    BseCsv,
    /// BSE's corporate-actions JSON API answer.
    BseJson,
    /// NSE's CF-CA equities CSV download.
    NseCsv,
    /// NSE's corporate-actions JSON API answer.
    NseJson,
}

impl ActionFormat {
    /// The value stored in the `source_format` column.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BseCsv => "bse_ca_csv",
            Self::BseJson => "bse_ca_json",
            Self::NseCsv => "nse_ca_csv",
            Self::NseJson => "nse_ca_json",
        }
    }

    /// The exchange that published the export: `"BSE"` or `"NSE"`.
    #[must_use]
    pub fn exchange(self) -> &'static str {
        match self {
            Self::BseCsv | Self::BseJson => "BSE",
            Self::NseCsv | Self::NseJson => "NSE",
        }
    }
}

/// One corporate action as the exchange listed it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    /// 1-based physical line where the CSV row starts (the header is line 1), or the 1-based
    /// index of the element in a JSON array.
    pub line: u64,
    /// BSE scrip code; `None` in NSE rows.
    pub scrip_code: Option<i32>,
    /// BSE short name (`Security Name`, `short_name`) or NSE symbol, trimmed.
    pub symbol: Option<String>,
    /// ISIN; only NSE's JSON carries it.
    pub isin: Option<String>,
    /// Company name, trimmed, with `&amp;` decoded to `&`.
    pub company: Option<String>,
    /// NSE series (`EQ`, `BE`, ...); `None` in BSE rows.
    pub series: Option<String>,
    /// Ex-date.
    pub ex_date: NaiveDate,
    /// Record date; `None` where the export has `-` or nothing.
    pub record_date: Option<NaiveDate>,
    /// The purpose text as exported, trimmed.
    pub purpose: String,
    /// [`parse_purpose`] of [`Self::purpose`].
    pub purposes: Vec<Purpose>,
}

/// A data row that could not be read, kept with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRow {
    /// Line (CSV) or element index (JSON), numbered as in [`ActionRow::line`].
    pub line: u64,
    /// The row as it appears in the body: the CSV record's text, or the JSON element re-encoded.
    pub raw: String,
    /// Why the row was refused.
    pub reason: String,
}

/// Everything read from one export.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedActions {
    /// The export's format.
    pub format: ActionFormat,
    /// The rows read, in the order of the body.
    pub rows: Vec<ActionRow>,
    /// The rows refused, in the order of the body.
    pub refused: Vec<RefusedRow>,
}

/// Why a body could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ActionsError {
    /// Nothing but whitespace.
    #[error("the body is empty")]
    Empty,
    /// Not one of the four exports.
    #[error(
        "not a corporate-action export this version reads (BSE CSV or JSON, NSE CF-CA CSV or JSON); the body is {seen}"
    )]
    UnknownFormat {
        /// What the body looked like: a header's column names, a JSON shape and its keys, an
        /// HTML page. Other content is never quoted.
        seen: String,
    },
    /// UTF-16 text (a file re-saved by a Windows editor as "Unicode").
    #[error("the body is {0}, not UTF-8 text as the exchanges publish it: save it as UTF-8")]
    Utf16(Utf16),
    /// Bytes that are not UTF-8.
    #[error("line {line} is not UTF-8 text; the exchanges publish UTF-8: use the file as downloaded")]
    NotUtf8 {
        /// 1-based line holding the first invalid byte.
        line: u64,
    },
    /// JSON that does not parse.
    #[error("malformed JSON: {message}")]
    Json {
        /// The JSON parser's message (it gives line and column, not content).
        message: String,
    },
    /// [`parse_holidays`] on something other than BSE's holiday list.
    #[error("not BSE's trading-holiday list (a JSON array of objects with \"TradingDate\"); the body is {seen}")]
    NotHolidays {
        /// What the body looked like, as in [`Self::UnknownFormat`].
        seen: String,
    },
    /// A holiday entry without a readable date.
    #[error("holiday {index}: {problem}")]
    BadHoliday {
        /// 1-based index of the entry in the JSON array.
        index: u64,
        /// What is wrong with it.
        problem: String,
    },
}

/// Tells which corporate-action export a body is, from its content; `None` for anything else
/// (bhavcopies, the scrip master, HTML pages, the holiday list). A UTF-8 byte-order mark is
/// allowed.
#[must_use]
pub fn detect(body: &[u8]) -> Option<ActionFormat> {
    let text = std::str::from_utf8(crate::detect::strip_bom(body)).ok()?;
    sources::detect_text(text).ok()
}

/// Reads a corporate-action export. A row whose ex-date, scrip code (BSE) or symbol (NSE) is
/// missing or unreadable, whose record date is unreadable, or whose field count differs from
/// the header's, is refused with the reason; the rest of the body is still read.
///
/// # Errors
/// When the body as a whole cannot be read: empty, UTF-16 or not UTF-8, malformed JSON, or not
/// one of the four exports.
pub fn parse(body: &[u8]) -> Result<ParsedActions, ActionsError> {
    let text = body_text(body)?;
    sources::parse_text(text)
}

/// The body as text without a byte-order mark, or the error saying why it is not text.
pub(crate) fn body_text(body: &[u8]) -> Result<&str, ActionsError> {
    if let Some(encoding) = crate::encoding::detect_utf16(body) {
        return Err(ActionsError::Utf16(encoding));
    }
    let body = crate::detect::strip_bom(body);
    let text = std::str::from_utf8(body).map_err(|e| {
        let before = &body[..e.valid_up_to()];
        ActionsError::NotUtf8 { line: 1 + before.iter().filter(|&&b| b == b'\n').count() as u64 }
    })?;
    if text.trim().is_empty() {
        return Err(ActionsError::Empty);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names() {
        let all = [ActionFormat::BseCsv, ActionFormat::BseJson, ActionFormat::NseCsv, ActionFormat::NseJson];
        assert_eq!(all.map(ActionFormat::as_str), ["bse_ca_csv", "bse_ca_json", "nse_ca_csv", "nse_ca_json"]);
        assert_eq!(all.map(ActionFormat::exchange), ["BSE", "BSE", "NSE", "NSE"]);
    }

    #[test]
    fn whole_body_errors() {
        assert!(matches!(parse(b""), Err(ActionsError::Empty)));
        assert!(matches!(parse(b" \r\n\n"), Err(ActionsError::Empty)));
        assert!(matches!(parse(b"\xFF\xFEa\0b\0"), Err(ActionsError::Utf16(_))));
        let e = parse(b"Security Code,Security Name,Ex Date,Purpose\n1,A,01 Jan 2020,B\xE9\n").unwrap_err();
        assert!(matches!(e, ActionsError::NotUtf8 { line: 2 }), "{e}");
        let e = parse(b"[{\"symbol\": ").unwrap_err();
        assert!(matches!(e, ActionsError::Json { .. }), "{e}");
    }
}
