//! Splitting a bhavcopy body into numbered lines and fields.
//!
//! BSE files have been seen with LF, CRLF and CR CR LF line ends (the last from files that went
//! through a Windows text-mode copy twice), and a lone CR is treated as a line end too, so every
//! one of them yields the same lines. Line numbers are 1-based and count physical lines as an
//! editor shows them, so a quarantined row can be found in the raw file.

/// One physical line of the body, without its line terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number in the raw body.
    pub number: u64,
    /// The line's bytes, line terminator and trailing CRs removed.
    pub bytes: &'a [u8],
}

impl Line<'_> {
    /// The line as text; bytes that are not UTF-8 (seen in some old names) are replaced.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.bytes).into_owned()
    }
}

/// Iterator over the lines of a body. A terminator at the very end does not start a new line.
pub fn lines(body: &[u8]) -> impl Iterator<Item = Line<'_>> {
    let mut pos = 0usize;
    let mut number = 0u64;
    std::iter::from_fn(move || {
        if pos >= body.len() {
            return None;
        }
        let start = pos;
        let mut i = pos;
        let end;
        loop {
            if i >= body.len() {
                end = i;
                pos = i;
                break;
            }
            match body[i] {
                b'\n' => {
                    end = i;
                    pos = i + 1;
                    break;
                }
                // A run of CRs followed by LF is one terminator (CRLF, CR CR LF); a run of CRs
                // followed by anything else ends the line too (classic Mac line ends).
                b'\r' => {
                    let mut j = i;
                    while j < body.len() && body[j] == b'\r' {
                        j += 1;
                    }
                    end = i;
                    pos = if j < body.len() && body[j] == b'\n' { j + 1 } else { j };
                    break;
                }
                _ => i += 1,
            }
        }
        number += 1;
        Some(Line { number, bytes: &body[start..end] })
    })
}

/// Splits one CSV line into fields. Double-quoted fields (BSE quotes a few names that start with
/// a space) lose their quotes; `""` inside quotes is one quote. Fields are not trimmed here.
#[must_use]
pub fn split_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::with_capacity(34);
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', true) => {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            }
            ('"', false) if field.trim().is_empty() => {
                field.clear();
                in_quotes = true;
            }
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(body: &[u8]) -> Vec<(u64, String)> {
        lines(body).map(|l| (l.number, l.text())).collect()
    }

    #[test]
    fn every_line_ending_gives_the_same_lines() {
        let want = vec![(1, "a,b".to_string()), (2, "c,d".to_string())];
        assert_eq!(texts(b"a,b\nc,d\n"), want);
        assert_eq!(texts(b"a,b\r\nc,d\r\n"), want);
        assert_eq!(texts(b"a,b\r\r\nc,d\r\r\n"), want);
        assert_eq!(texts(b"a,b\rc,d\r"), want);
        assert_eq!(texts(b"a,b\nc,d"), want);
    }

    #[test]
    fn blank_lines_keep_their_numbers() {
        assert_eq!(texts(b"h\n\nx\n"), vec![(1, "h".into()), (2, String::new()), (3, "x".into())]);
    }

    #[test]
    fn quoted_fields_lose_quotes_keep_spaces() {
        assert_eq!(split_fields(r#"538882," EMERALD    ",X ,Q"#), vec!["538882", " EMERALD    ", "X ", "Q"]);
        assert_eq!(split_fields(r#""a""b",c"#), vec![r#"a"b"#, "c"]);
        assert_eq!(split_fields("a,,"), vec!["a", "", ""]);
    }
}
