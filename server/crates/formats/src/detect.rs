//! Telling what a body is from its first bytes, never from the HTTP status or the file name:
//! BSE answers a missing day with `200 OK` and an HTML page, and its firewall answers clients it
//! dislikes with an HTML block page saved under the requested `.ZIP` name.

use super::SourceFormat;

/// What a downloaded or imported body turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// A zip archive (BSE's `EQ{DDMMYY}_CSV.ZIP`, or a user's archive of bhavcopies).
    Zip,
    /// A CSV whose header is one of the known bhavcopy formats.
    Csv(SourceFormat),
    /// BSE's ordinary HTML page: no file is published for that day (holiday, not yet published).
    NoFilePage,
    /// BSE's web application firewall refused the request.
    FirewallBlock,
    /// Anything else; the string says what was seen.
    Unknown(String),
}

const FIREWALL_MARKERS: &[&str] = &[
    "this page can't be displayed",
    "the requested url was rejected",
    "request rejected",
    "access denied",
    "incident id",
    "support id",
];

/// Classifies a body.
#[must_use]
pub fn classify(body: &[u8]) -> BodyKind {
    let trimmed = strip_bom(body).trim_ascii_start();
    if trimmed.is_empty() {
        return BodyKind::Unknown("an empty body".into());
    }
    if body.starts_with(b"PK\x03\x04") || body.starts_with(b"PK\x05\x06") {
        return BodyKind::Zip;
    }
    if let Some(encoding) = super::encoding::detect_utf16(body) {
        return BodyKind::Unknown(format!("{encoding} text"));
    }
    if looks_like_html(trimmed) {
        let head = String::from_utf8_lossy(&trimmed[..trimmed.len().min(64 * 1024)]).to_lowercase();
        if FIREWALL_MARKERS.iter().any(|m| head.contains(m)) {
            return BodyKind::FirewallBlock;
        }
        return BodyKind::NoFilePage;
    }
    let first_line = super::lines::lines(trimmed).next().map(|l| l.text()).unwrap_or_default();
    match SourceFormat::from_header(&first_line) {
        Some(f) => BodyKind::Csv(f),
        None => BodyKind::Unknown(
            header_preview(&first_line)
                .map_or_else(|| "a first line that is not CSV column names".to_string(), |h| format!("header {h:?}")),
        ),
    }
}

/// Longest piece of an unknown header quoted back in an error.
const HEADER_PREVIEW_CHARS: usize = 60;

/// What of an unrecognised first line may be shown in an error: its start when it looks like
/// CSV column names (three or more short identifier-like fields), otherwise nothing. Bodies
/// can be anything (a configuration file, a key, a password database) and error messages
/// travel to logs and API clients, so content that is not a header is never quoted.
#[must_use]
pub fn header_preview(line: &str) -> Option<String> {
    let line = line.trim_start_matches('\u{feff}').trim();
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let name_like = |f: &str| {
        f.len() <= 40
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '.' | '(' | ')' | '#' | '%' | '/' | '-'))
    };
    let has_letter = |f: &str| f.chars().any(|c| c.is_ascii_alphabetic());
    let names = fields.iter().filter(|f| !f.is_empty()).count();
    if fields.len() >= 3
        && names >= 3
        && fields.iter().all(|f| name_like(f))
        && fields.iter().filter(|f| has_letter(f)).count() * 2 >= names
    {
        Some(truncate(line, HEADER_PREVIEW_CHARS))
    } else {
        None
    }
}

fn looks_like_html(trimmed: &[u8]) -> bool {
    let start = String::from_utf8_lossy(&trimmed[..trimmed.len().min(256)]).to_lowercase();
    ["<!doctype html", "<html", "<head", "<body", "<?xml", "<!--", "<meta", "<title"]
        .iter()
        .any(|p| start.starts_with(p))
}

/// The body without a UTF-8 byte-order mark.
#[must_use]
pub fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_bodies() {
        assert_eq!(classify(b"PK\x03\x04rest"), BodyKind::Zip);
        assert_eq!(classify(b"  <!DOCTYPE html><html><body>Holiday</body></html>"), BodyKind::NoFilePage);
        assert_eq!(
            classify(b"<html><body>This page can't be displayed. The incident ID is: N/A.</body></html>"),
            BodyKind::FirewallBlock
        );
        assert_eq!(
            classify(b"\xEF\xBB\xBFSC_CODE,SC_NAME,SC_GROUP,SC_TYPE,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,NO_TRADES,NO_OF_SHRS,NET_TURNOV,TDCLOINDI\r\n"),
            BodyKind::Csv(SourceFormat::LegacyEq14)
        );
        assert!(matches!(classify(b""), BodyKind::Unknown(_)));
        assert!(matches!(classify(b"SYMBOL,SERIES,OPEN\n"), BodyKind::Unknown(_)));
    }
}
