//! Reading what an action does out of its purpose text, as BSE and NSE type it by hand.
//!
//! The texts are free-form and full of typos (`Divdend`, `Annual General Meetingdividend`,
//! `Fv Splt Frm Rs 10 To Re 1`), so this is keyword-driven rather than grammar-driven:
//!
//! 1. The text is cut at the separators the exchanges use between purposes — `/` (but not the
//!    `/-` of `Rs.10/-`), `+`, `&`, `;` and the words `and` / `plus` — outside parentheses, so
//!    `(Date And Purpose Revised)` stays with its purpose.
//! 2. Inside a piece, a second keyword of another kind, or a second dividend, starts a new
//!    purpose: NSE writes `Interim Dividend - Rs 12 Per Share Special Dividend - Rs 8 Per Share`
//!    with no separator at all.
//! 3. A piece with no keyword that starts with a digit or `Per` continues the previous one
//!    (`Rights - 4:25 Fully Paid ... / 2:25 Partly Paid ...`, `Rs.5/ Per Share`).
//! 4. Neighbouring pieces with no keyword become one [`ActionKind::Other`] purpose, so
//!    `Composite Scheme Of Amalgamation And Arrangement` stays whole while
//!    `Annual General Meeting/Dividend - Rs 4 Per Share` gives an `Other` (the meeting) and a
//!    `Dividend`. Other parts are kept rather than dropped so every word of the text is in some
//!    purpose.
//!
//! Numbers are read only where the wording puts them; anything unusual (`Re 0..30`,
//! `Rs 0 .70`, `Rs Per 0.50 Share`, a ratio `1:11.10`) gives `None` rather than a guess.

use std::ops::Range;

/// What a purpose does to a holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// Face-value split (sub-division): more shares of a smaller face value.
    Split,
    /// Consolidation of shares: fewer shares of a larger face value.
    Consolidation,
    /// Bonus issue.
    Bonus,
    /// Rights issue.
    Rights,
    /// Dividend of any kind (interim, final, special), including a dividend component of a
    /// trust's distribution.
    Dividend,
    /// Anything else: meetings, buybacks, schemes, capital reductions, interest, distributions.
    Other,
}

impl ActionKind {
    /// The value stored in the `kind` column.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Split => "split",
            Self::Consolidation => "consolidation",
            Self::Bonus => "bonus",
            Self::Rights => "rights",
            Self::Dividend => "dividend",
            Self::Other => "other",
        }
    }
}

/// One purpose read out of a row's text (a row may hold several).
#[derive(Debug, Clone, PartialEq)]
pub struct Purpose {
    /// What the purpose does.
    pub kind: ActionKind,
    /// The part of the text this purpose was read from, trimmed.
    pub text: String,
    /// What a price before the ex-date is divided by to compare with prices after it:
    /// split Rs 10 -> Rs 1 gives 10.0, consolidation Rs 1 -> Rs 10 gives 0.1, bonus a:b
    /// (a new for b held) gives (a+b)/b. `None` for other kinds, when the text does not say,
    /// when it contradicts the kind (a split to a larger face value), and for a bonus of
    /// preference shares or debentures (no new equity shares).
    pub price_factor: Option<f64>,
    /// Bonus or rights ratio a:b (a new shares for b held), as written.
    pub ratio: Option<(u32, u32)>,
    /// Split or consolidation face values (from, to), in rupees.
    pub face_value: Option<(f64, f64)>,
    /// Dividend in rupees per share (or per unit).
    pub amount: Option<f64>,
    /// Rights issue price per share, where the text states the price itself (`at Rs.100/-`).
    /// `None` when it gives only a premium: the price is face value plus premium, and the face
    /// value at the time is not in the text (NSE's `FACE VALUE` column is today's, not the
    /// rights issue's).
    pub rights_price: Option<f64>,
}

impl Purpose {
    fn bare(kind: ActionKind, text: &str) -> Self {
        Self {
            kind,
            text: text.trim().to_string(),
            price_factor: None,
            ratio: None,
            face_value: None,
            amount: None,
            rights_price: None,
        }
    }
}

/// Reads the purposes out of one row's purpose text, in the order written. Never empty: a text
/// with no known keyword (including an empty one) gives one [`ActionKind::Other`] purpose
/// holding it. Text beside a recognised purpose is kept as an `Other` purpose too:
/// `Annual General Meeting/Dividend - Rs 4 Per Share` gives `Other` then `Dividend`.
#[must_use]
pub fn parse_purpose(text: &str) -> Vec<Purpose> {
    let decoded = decode_entities(text);
    let text = decoded.trim();
    let lower = text.to_ascii_lowercase();
    let mut pieces: Vec<Piece> = Vec::new();
    for range in split_at_separators(&lower) {
        for piece in split_at_keywords(&lower, range) {
            let continues = piece.anchor.is_none() && {
                let t = &lower[piece.range.clone()];
                t.starts_with(|c: char| c.is_ascii_digit()) || starts_with_word(t, "per")
            };
            match pieces.last_mut() {
                Some(prev) if continues => prev.range.end = piece.range.end,
                _ => pieces.push(piece),
            }
        }
    }
    let mut out: Vec<Purpose> = Vec::new();
    let mut other: Option<Range<usize>> = None;
    for piece in pieces {
        match piece.anchor {
            None => other = Some(other.map_or(piece.range.clone(), |o| o.start..piece.range.end)),
            Some(anchor) => {
                if let Some(o) = other.take() {
                    out.push(Purpose::bare(ActionKind::Other, &text[o]));
                }
                out.push(read_purpose(text, &lower, piece.range, anchor));
            }
        }
    }
    if let Some(o) = other {
        out.push(Purpose::bare(ActionKind::Other, &text[o]));
    }
    // Nothing recognised: the whole text, separators and all, is the one purpose.
    if out.iter().all(|p| p.kind == ActionKind::Other) {
        return vec![Purpose::bare(ActionKind::Other, text)];
    }
    out
}

/// A piece of the text and the keyword that gives its kind, if any.
struct Piece {
    range: Range<usize>,
    anchor: Option<Anchor>,
}

/// A keyword occurrence: its kind, where it starts (for cutting) and ends (numbers follow it).
#[derive(Clone, Copy)]
struct Anchor {
    kind: ActionKind,
    start: usize,
    end: usize,
}

/// Word forms that mark each kind, lower case. Typos seen in the exports are listed on purpose.
const CONSOLIDATION_WORDS: &[&str] = &["consolidat"];
const SPLIT_WORDS: &[&str] = &["split", "splt", "sub-division", "subdivision", "sub division"];
const BONUS_WORDS: &[&str] = &["bonus"];
const DIVIDEND_WORDS: &[&str] = &["dividend", "divdend", "dividned", "divided", "ividend"];

/// Words that qualify the keyword after them and belong to its purpose when cutting:
/// `... Per Share Special Interim Dividend - Rs 8` starts the new purpose at `Special`.
const QUALIFIERS: &[&str] = &[
    "special",
    "spl",
    "interim",
    "int",
    "final",
    "additional",
    "one",
    "time",
    "taxable",
    "exempt",
    "first",
    "second",
    "third",
    "face",
    "value",
    "fv",
    "stock",
];

/// Bonus instruments that are not equity shares: equity holders receive no new equity, so the
/// share count does not change and a ratio says nothing about the equity price.
const NON_EQUITY_BONUS: &[&str] = &["ncrps", "crps", "debenture", "preference", "bond", "ncd"];

fn split_at_separators(lower: &str) -> Vec<Range<usize>> {
    let b = lower.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut depth = 0u32;
    let mut i = 0;
    while i < b.len() {
        let sep_len = match b[i] {
            b'(' => {
                depth += 1;
                0
            }
            b')' => {
                depth = depth.saturating_sub(1);
                0
            }
            _ if depth > 0 => 0,
            // `Rs.10/-` is how an amount ends, not a separator.
            b'/' if b.get(i + 1) != Some(&b'-') => 1,
            b'+' | b'&' | b';' => 1,
            b'a' if word_at(lower, i, "and") => 3,
            b'p' if word_at(lower, i, "plus") => 4,
            _ => 0,
        };
        if sep_len > 0 {
            push_trimmed(&mut out, lower, start..i);
            start = i + sep_len;
            i += sep_len;
        } else {
            i += 1;
        }
    }
    push_trimmed(&mut out, lower, start..b.len());
    out
}

/// Adds `range` without its surrounding spaces, unless nothing readable is left.
fn push_trimmed(out: &mut Vec<Range<usize>>, s: &str, range: Range<usize>) {
    let part = &s[range.clone()];
    if !part.chars().any(char::is_alphanumeric) {
        return;
    }
    let start = range.start + (part.len() - part.trim_start().len());
    let end = range.end - (part.len() - part.trim_end().len());
    out.push(start..end);
}

/// Cuts one separated piece before each keyword that starts another purpose.
fn split_at_keywords(lower: &str, range: Range<usize>) -> Vec<Piece> {
    let anchors = anchors_in(lower, range.clone());
    let mut out = Vec::new();
    let mut start = range.start;
    let mut current: Option<Anchor> = None;
    for anchor in anchors {
        let Some(prev) = current else {
            current = Some(anchor);
            continue;
        };
        // `Face Value Split (Sub-Division)` names one split twice; two dividends are two amounts.
        if anchor.kind == prev.kind && anchor.kind != ActionKind::Dividend {
            continue;
        }
        let cut = back_over_qualifiers(lower, start, word_start(lower, anchor.start));
        if cut <= start {
            continue;
        }
        let mut pieces = Vec::new();
        push_trimmed(&mut pieces, lower, start..cut);
        out.extend(pieces.into_iter().map(|r| Piece { range: r, anchor: current }));
        start = cut;
        current = Some(anchor);
    }
    let mut pieces = Vec::new();
    push_trimmed(&mut pieces, lower, start..range.end);
    out.extend(pieces.into_iter().map(|r| Piece { range: r, anchor: current }));
    out
}

/// Keyword occurrences in `range`, in order, outside parentheses (`(Including Special
/// Dividend Of Rs.2/-)` restates the amount before it; it is not another dividend).
fn anchors_in(lower: &str, range: Range<usize>) -> Vec<Anchor> {
    let b = lower.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0u32;
    let mut i = range.start;
    while i < range.end {
        match b[i] {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        // Keywords are ASCII; testing only at ASCII letters also keeps slicing on char boundaries.
        if depth == 0
            && b[i].is_ascii_alphabetic()
            && let Some((kind, len)) = keyword_at(lower, i, range.end)
        {
            out.push(Anchor { kind, start: i, end: i + len });
            i += len;
            continue;
        }
        i += 1;
    }
    out
}

fn keyword_at(lower: &str, i: usize, end: usize) -> Option<(ActionKind, usize)> {
    let s = &lower[i..end];
    let starts = |words: &[&str]| words.iter().find(|w| s.starts_with(**w)).map(|w| w.len());
    if let Some(n) = starts(CONSOLIDATION_WORDS) {
        return Some((ActionKind::Consolidation, n));
    }
    if let Some(n) = starts(SPLIT_WORDS) {
        return Some((ActionKind::Split, n));
    }
    if let Some(n) = starts(BONUS_WORDS) {
        return Some((ActionKind::Bonus, n));
    }
    if word_at(&lower[..end], i, "rights") {
        return Some((ActionKind::Rights, 6));
    }
    if word_at(&lower[..end], i, "right") {
        return Some((ActionKind::Rights, 5));
    }
    if let Some(n) = starts(DIVIDEND_WORDS) {
        return Some((ActionKind::Dividend, n));
    }
    if word_at(&lower[..end], i, "div") {
        return Some((ActionKind::Dividend, 3));
    }
    None
}

fn read_purpose(text: &str, lower: &str, range: Range<usize>, anchor: Anchor) -> Purpose {
    let mut p = Purpose::bare(anchor.kind, &text[range.clone()]);
    let after = &lower[anchor.end..range.end];
    match anchor.kind {
        ActionKind::Split | ActionKind::Consolidation => {
            p.face_value = face_values(after);
            p.price_factor = p.face_value.and_then(|(from, to)| {
                let agrees = if anchor.kind == ActionKind::Split { from > to } else { from < to };
                (agrees && to > 0.0).then(|| from / to)
            });
        }
        ActionKind::Bonus => {
            p.ratio = ratio(after);
            let piece = &lower[range];
            let equity = !NON_EQUITY_BONUS.iter().any(|w| piece.contains(w));
            p.price_factor = p.ratio.filter(|_| equity).map(|(new, held)| f64::from(new + held) / f64::from(held));
        }
        ActionKind::Rights => {
            p.ratio = ratio(after);
            p.rights_price = rights_price(after);
        }
        ActionKind::Dividend => {
            p.amount = amount(after).or_else(|| amount_before(&lower[range.start..anchor.start]));
        }
        ActionKind::Other => {}
    }
    p
}

/// `From Rs.10/- to Rs.1/-`, `Frm Rs 10 To Re 1`, `Rs 3.30 To Rs.10`: the first number after the
/// keyword, the word `to`, the first number after it; nothing else numeric in between.
fn face_values(after: &str) -> Option<(f64, f64)> {
    let first = after.find(|c: char| c.is_ascii_digit())?;
    let (from, used) = number_at(&after[first..])?;
    let rest = &after[first + used..];
    let to = find_word(rest, "to")?;
    if rest[..to].contains(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let rest = &rest[to + 2..];
    let second = rest.find(|c: char| c.is_ascii_digit())?;
    let (to, _) = number_at(&rest[second..])?;
    Some((from, to))
}

/// `1:2`, `1: 1`, `- 4:25`: the first two whole numbers after the keyword joined by a colon.
/// A decimal ratio (`1:11.10`) is not a whole-share ratio and is not rounded into one.
fn ratio(after: &str) -> Option<(u32, u32)> {
    let first = after.find(|c: char| c.is_ascii_digit())?;
    let s = &after[first..];
    let (new, used) = uint_at(s)?;
    let s = s[used..].trim_start().strip_prefix(':')?.trim_start();
    let (held, used) = uint_at(s)?;
    let rest = &s[used..];
    if rest.starts_with('.') && rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    (new > 0 && held > 0).then_some((new, held))
}

/// The price after `@` or `at` when a number follows (`at Rs.100/-`); `None` for a premium.
fn rights_price(after: &str) -> Option<f64> {
    let at_sign = after.find('@').map(|i| (i, 1));
    let at_word = find_word(after, "at").map(|i| (i, 2));
    let (i, len) = match (at_sign, at_word) {
        (Some(a), Some(w)) => {
            if a.0 <= w.0 {
                a
            } else {
                w
            }
        }
        (a, w) => a.or(w)?,
    };
    number_at(skip_currency(&after[i + len..])).map(|(v, _)| v)
}

/// The amount right after a dividend keyword: `- Rs. - 3.0000`, `Rs 5 Per Share`, `-Re 0.70/-`,
/// `Rs - Rs 9`, `- 1.40 Per Share`. Anything else right after it (`For`, `Per`) gives `None`.
fn amount(after: &str) -> Option<f64> {
    number_at(skip_currency(after)).map(|(v, _)| v)
}

/// Trusts' distributions put the amount before the word: `Rs. 1.16 Per Unit As Dividend`,
/// `Rs 1.38 Per Unit Exempt Dividend`, `Rs 1.2975 Dividend Per Unit`. Read only when nothing but
/// those connecting words stands between a rupee amount and the keyword.
fn amount_before(before: &str) -> Option<f64> {
    const CONNECTING: &[&str] = &["as", "of", "per", "unit", "share", "in", "the", "form", "taxable", "exempt"];
    let mut s = before.trim_end();
    loop {
        let start = word_start(s, s.len());
        if start < s.len() && CONNECTING.contains(&&s[start..]) {
            s = s[..start].trim_end();
        } else {
            break;
        }
    }
    let digits_start = s.len() - s.bytes().rev().take_while(|c| c.is_ascii_digit() || *c == b'.').count();
    let (value, used) = number_at(&s[digits_start..])?;
    if digits_start + used != s.len() {
        return None;
    }
    let currency = s[..digits_start].trim_end();
    let currency = currency.strip_suffix('.').unwrap_or(currency);
    let is_currency = ["rs", "re"]
        .iter()
        .any(|c| currency.ends_with(c) && word_start(currency, currency.len()) == currency.len() - c.len());
    is_currency.then_some(value)
}

/// Skips the filler between a keyword and its number: spaces, dashes, `*`, `:`, the currency
/// words `Rs` / `Re` / `INR` and `of`. A `.` is skipped only when no digit follows, so `.5`
/// is left for [`number_at`] to refuse rather than read as 5.
fn skip_currency(mut s: &str) -> &str {
    loop {
        let before = s.len();
        while let Some(c) = s.chars().next() {
            let filler = c.is_whitespace()
                || matches!(c, '-' | '\u{2013}' | '\u{2014}' | '*' | ':' | '=' | '\u{fffd}')
                || (c == '.' && !s[1..].starts_with(|d: char| d.is_ascii_digit()));
            if !filler {
                break;
            }
            s = &s[c.len_utf8()..];
        }
        for w in ["rs", "re", "inr", "of"] {
            if let Some(rest) = s.strip_prefix(w)
                && !rest.starts_with(|c: char| c.is_ascii_alphabetic())
            {
                // The abbreviation's own dot: `Rs.5` is 5, while a bare `.5` is not read.
                s = rest.strip_prefix('.').unwrap_or(rest);
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// An unsigned decimal number at the start of `s` and the bytes it takes. A number the text
/// garbles (`0..30`, `0 .70`, `1.2.3`), a percentage or one with a thousands comma gives `None`.
fn number_at(s: &str) -> Option<(f64, usize)> {
    let b = s.as_bytes();
    let mut i = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if i == 0 {
        return None;
    }
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1 + b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    let rest = &s[i..];
    let next = rest.trim_start();
    let dot_then = |t: &str| t.starts_with('.') && t[1..].starts_with(|c: char| c == '.' || c.is_ascii_digit());
    let comma_digit = rest.starts_with(',') && rest[1..].starts_with(|c: char| c.is_ascii_digit());
    if dot_then(rest) || dot_then(next) || next.starts_with('%') || comma_digit {
        return None;
    }
    s[..i].parse().ok().map(|v| (v, i))
}

fn uint_at(s: &str) -> Option<(u32, usize)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    s[..n].parse().ok().map(|v| (v, n))
}

/// Whether `word` stands at byte `i` of `s` as a whole word.
fn word_at(s: &str, i: usize, word: &str) -> bool {
    let b = s.as_bytes();
    s[i..].starts_with(word)
        && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        && b.get(i + word.len()).is_none_or(|c| !c.is_ascii_alphanumeric())
}

fn starts_with_word(s: &str, word: &str) -> bool {
    word_at(s, 0, word)
}

/// Byte offset of the first whole-word `word` in `s`.
fn find_word(s: &str, word: &str) -> Option<usize> {
    s.match_indices(word).map(|(i, _)| i).find(|&i| word_at(s, i, word))
}

/// Start of the word holding byte `i` (`Specia Ldividend` cuts before `Ldividend`).
fn word_start(s: &str, mut i: usize) -> usize {
    let b = s.as_bytes();
    while i > 0 && b[i - 1].is_ascii_alphabetic() {
        i -= 1;
    }
    i
}

/// Moves `cut` back over the qualifier words before it, not past `floor`.
fn back_over_qualifiers(s: &str, floor: usize, mut cut: usize) -> usize {
    let b = s.as_bytes();
    loop {
        let mut end = cut;
        while end > floor && b[end - 1] == b' ' {
            end -= 1;
        }
        let start = word_start(s, end).max(floor);
        if start < end && QUALIFIERS.contains(&&s[start..end]) {
            cut = start;
        } else {
            return cut;
        }
    }
}

/// The exports sometimes carry HTML-escaped text (`Larsen &amp; Toubro`).
pub(crate) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Purpose {
        let mut v = parse_purpose(text);
        assert_eq!(v.len(), 1, "{text:?} gave {v:#?}");
        v.remove(0)
    }

    fn kinds(text: &str) -> Vec<(ActionKind, String)> {
        parse_purpose(text).into_iter().map(|p| (p.kind, p.text)).collect()
    }

    #[test]
    fn bse_split_wordings() {
        let p = one("Stock  Split From Rs.10/- to Rs.1/-");
        assert_eq!(p.kind, ActionKind::Split);
        assert_eq!(p.face_value, Some((10.0, 1.0)));
        assert_eq!(p.price_factor, Some(10.0));
        assert_eq!(one("Stock Split From Rs.2/- to Re.1/-").price_factor, Some(2.0));
        assert_eq!(one("Stock  Split From Rs.5/- to Rs.2/-").price_factor, Some(2.5));
    }

    #[test]
    fn nse_split_wordings() {
        let p = one(" Face Value Split (Sub-Division) - From Rs 5/- Per Share To Re 1/- Per Share");
        assert_eq!((p.kind, p.face_value, p.price_factor), (ActionKind::Split, Some((5.0, 1.0)), Some(5.0)));
        assert_eq!(p.text, "Face Value Split (Sub-Division) - From Rs 5/- Per Share To Re 1/- Per Share");
        assert_eq!(one("Fv Splt Frm Rs 10 To Re 1").price_factor, Some(10.0));
        assert_eq!(one("Face Value Split From Rs 10 To Rs 2").price_factor, Some(5.0));
        assert_eq!(
            one("Face Value Split (Sub-Division) - From RsN/- Per Share To Re 1/- Per Share").price_factor,
            None
        );
        assert_eq!(
            one("Face Value Split (Sub-Division) - From Rs10/- Per Share To Rs 5/- Per Share").price_factor,
            Some(2.0)
        );
        assert_eq!(
            one("Face Value Split (Sub-Division) - From Rs 10 /- Per Share To Rs 2/- Per Share").price_factor,
            Some(5.0)
        );
    }

    #[test]
    fn a_split_without_readable_face_values_has_no_factor() {
        let p = one("Stock Split");
        assert_eq!((p.kind, p.price_factor, p.face_value), (ActionKind::Split, None, None));
        // Contradicts itself (a split to a larger face value): keep what is written, no factor.
        let p = one("Stock Split From Rs.1/- to Rs.10/-");
        assert_eq!((p.kind, p.price_factor, p.face_value), (ActionKind::Split, None, Some((1.0, 10.0))));
    }

    #[test]
    fn consolidation() {
        let p = one("Consolidation of Shares from Rs 1/- to Rs 10/-");
        assert_eq!((p.kind, p.face_value, p.price_factor), (ActionKind::Consolidation, Some((1.0, 10.0)), Some(0.1)));
        assert_eq!(
            one("Consolidation Of Equity Shares From Re 1 Per Share To Rs 10 Per Share").price_factor,
            Some(0.1)
        );
        let p = one("Consolidation of Shares");
        assert_eq!((p.kind, p.price_factor), (ActionKind::Consolidation, None));
        let v = parse_purpose("Capital Reduction Rs 10 To Rs 3.30 / Consolidation Rs 3.30 To Rs.10");
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].kind, v[0].text.as_str()), (ActionKind::Other, "Capital Reduction Rs 10 To Rs 3.30"));
        assert_eq!(v[1].kind, ActionKind::Consolidation);
        assert_eq!(v[1].face_value, Some((3.3, 10.0)));
        assert_eq!(v[1].price_factor, Some(3.3 / 10.0));
    }

    #[test]
    fn bonus_wordings() {
        for (text, ratio, factor) in [
            ("Bonus issue 1:1", (1, 1), 2.0),
            (" Bonus 1:2", (1, 2), 1.5),
            ("Bonus issue 4:1", (4, 1), 5.0),
            ("Bonus- 1:2", (1, 2), 1.5),
            ("Bonus 1: 1", (1, 1), 2.0),
            ("Bonus  1:4", (1, 4), 1.25),
            ("Bonus issue 23:1", (23, 1), 24.0),
        ] {
            let p = one(text);
            assert_eq!((p.kind, p.ratio, p.price_factor), (ActionKind::Bonus, Some(ratio), Some(factor)), "{text}");
        }
    }

    #[test]
    fn a_bonus_of_other_instruments_has_no_factor() {
        let p = one("Bonus Ncrps 1:116");
        assert_eq!((p.kind, p.ratio, p.price_factor), (ActionKind::Bonus, Some((1, 116)), None));
        let p = one("Scheme Of Arangement- Bonus - 1 Debenture For 1 Equity Share Held");
        assert_eq!((p.kind, p.ratio, p.price_factor), (ActionKind::Bonus, None, None));
    }

    #[test]
    fn dividend_wordings() {
        for (text, amount) in [
            ("Final Dividend - Rs. - 3.0000", 3.0),
            ("Interim Dividend - Rs. - 2.5000", 2.5),
            ("Dividend - Rs. - 21.0000", 21.0),
            ("Interim Dividend - Rs 5 Per Share", 5.0),
            ("Dividend - Rs 2.50 Per Share", 2.5),
            ("Special Dividend - Rs. - 10.0000", 10.0),
            ("Dividend - Re 0.70/- Per Share", 0.7),
            ("Dividend Rs - 9 Per Share", 9.0),
            ("Dividend Re - Re 0.5 Per Share", 0.5),
            ("Dividend-Rs.4 Per Share", 4.0),
            ("Dividend - Rs4 Per Share", 4.0),
            ("Int Div-Rs 3 Per Sh", 3.0),
            ("Interim Divdend - Rs 1 Per Share", 1.0),
            ("Annual General Meetingdividend - Rs 1.2 Per Share", 1.2),
            ("Specia Ldividend - Rs 6 Per Share", 6.0),
            ("Dividend - 1 Rs Per Share", 1.0),
            ("Interim Dividend - Rs 2 Per Share (Purpose Revised)", 2.0),
        ] {
            let p = one(text);
            assert_eq!((p.kind, p.amount), (ActionKind::Dividend, Some(amount)), "{text}");
        }
    }

    #[test]
    fn distribution_dividends_give_the_amount_first() {
        for (text, amount) in [
            ("Distribution - Rs 3.5 Per Unit Consists Of Rs. 1.16 Per Unit As Dividend", Some(1.16)),
            ("Rs 1.38 Per Unit Exempt Dividend", Some(1.38)),
            ("Rs 1.2975 Dividend Per Unit", Some(1.2975)),
            ("Re 0.26 As Dividend", Some(0.26)),
            ("Distritbution - Rs 2.98 Per Unit Comprising Of Rs 1.84 Per Unit In The Form Dividend", Some(1.84)),
            ("Rs 1.2435 Per Unit Of Dividend", Some(1.2435)),
            // Not a rupee amount, or other words in between: not read.
            ("1.16 Per Unit As Dividend", None),
            ("Rs 1.16 Per Unit Paid As Dividend", None),
            ("Rs 0..16 As Dividend", None),
        ] {
            let p = one(text);
            assert_eq!((p.kind, p.amount), (ActionKind::Dividend, amount), "{text}");
        }
    }

    #[test]
    fn dividend_without_a_readable_amount() {
        for text in [
            "Interim Dividend",
            "Dividend",
            "Dividend 25%",
            "Dividend - Rs 0 .70 Per Share",
            "Dividend - Re 0..30 Per Share",
            "Interim Dividend - Rs Per 0.50 Share",
            "Dividend - R E 1 Per Share",
            "Dividend - Rs .5 Per Share",
        ] {
            let p = one(text);
            assert_eq!((p.kind, p.amount), (ActionKind::Dividend, None), "{text}");
        }
    }

    #[test]
    fn rights_wordings() {
        let p = one("Right Issue of Equity Shares ");
        assert_eq!((p.kind, p.ratio, p.rights_price), (ActionKind::Rights, None, None));
        assert_eq!(p.text, "Right Issue of Equity Shares");
        let p = one(" Rights 2:7 @ Premium Rs 55/-");
        assert_eq!((p.kind, p.ratio, p.rights_price), (ActionKind::Rights, Some((2, 7)), None));
        let p = one("Rights 1:4 at Rs.100/-");
        assert_eq!((p.ratio, p.rights_price), (Some((1, 4)), Some(100.0)));
        let p = one("Rights 3:10 @ Rs 25 Per Share");
        assert_eq!((p.ratio, p.rights_price), (Some((3, 10)), Some(25.0)));
        assert_eq!(one("Rights 1:11.10 @ Premium Rs 0/-").ratio, None);
        assert_eq!(one("Rights 5: 116 At Premium Rs 244/- Per Share").ratio, Some((5, 116)));
        let p = one("Rights - 4:25 Fully Paid Up Shares @ Premium Rs 500/- Per Share / 2:25 Partly Paid Up Shares");
        assert_eq!((p.kind, p.ratio), (ActionKind::Rights, Some((4, 25))));
        assert!(p.text.ends_with("2:25 Partly Paid Up Shares"));
        assert_eq!(one("Rights:14 Compulosry Convertible Debentures For Every 15 Equity Shares").ratio, None);
    }

    #[test]
    fn several_purposes_in_one_row() {
        let v = parse_purpose("Final Dividend - Rs. - 1.0000 / Bonus issue 1:1");
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].kind, v[0].amount), (ActionKind::Dividend, Some(1.0)));
        assert_eq!((v[1].kind, v[1].price_factor), (ActionKind::Bonus, Some(2.0)));

        assert_eq!(
            kinds("Annual General Meeting/Dividend - Rs 4 Per Share"),
            vec![
                (ActionKind::Other, "Annual General Meeting".into()),
                (ActionKind::Dividend, "Dividend - Rs 4 Per Share".into())
            ]
        );
        let v =
            parse_purpose("Bonus 1:1 And Face Value Split (Sub-Division) - From Rs 10/- Per Share To Rs 5/- Per Share");
        assert_eq!(
            v.iter().map(|p| (p.kind, p.price_factor)).collect::<Vec<_>>(),
            vec![(ActionKind::Bonus, Some(2.0)), (ActionKind::Split, Some(2.0))]
        );
        let v = parse_purpose("Bonus 1:2/Face Value Split (Sub-Division) From Rs 2/- Per Share To Re 1/- Per Share");
        assert_eq!(v.iter().map(|p| p.price_factor).collect::<Vec<_>>(), vec![Some(1.5), Some(2.0)]);
        let v = parse_purpose(
            "Interim Div - Rs 6/- Per Share + Face Value Split (Sub-Division) - From Rs 10/- Per Share To Re 1/- Per Share",
        );
        assert_eq!(
            v.iter().map(|p| (p.kind, p.amount, p.price_factor)).collect::<Vec<_>>(),
            vec![(ActionKind::Dividend, Some(6.0), None), (ActionKind::Split, None, Some(10.0))]
        );
        let v = parse_purpose("Dividend - Re 0.70/- Per Share/ Right 26:151");
        assert_eq!(
            v.iter().map(|p| (p.kind, p.ratio)).collect::<Vec<_>>(),
            vec![(ActionKind::Dividend, None), (ActionKind::Rights, Some((26, 151)))]
        );
    }

    #[test]
    fn two_dividends_without_a_separator() {
        let v = parse_purpose("Interim Dividend - Rs 12 Per Share Special Interim Dividend - Rs 8 Per Share");
        assert_eq!(
            v.iter().map(|p| (p.text.as_str(), p.amount)).collect::<Vec<_>>(),
            vec![
                ("Interim Dividend - Rs 12 Per Share", Some(12.0)),
                ("Special Interim Dividend - Rs 8 Per Share", Some(8.0))
            ]
        );
        let v = parse_purpose("Agm/Spl Div- Rs.5/- Div-7.5/-");
        assert_eq!(
            v.iter().map(|p| (p.kind, p.amount)).collect::<Vec<_>>(),
            vec![(ActionKind::Other, None), (ActionKind::Dividend, Some(5.0)), (ActionKind::Dividend, Some(7.5))]
        );
        // Restated inside parentheses: one dividend.
        let p = one("Dividend-Rs.12 Per Share (Including Special Dividend Of Rs.2/- Per Share).");
        assert_eq!(p.amount, Some(12.0));
    }

    #[test]
    fn separators_inside_parentheses_and_other_runs_stay_whole() {
        let p = one("Interim Dividend - Rs 3 Per Share (Date And Purpose Revised)");
        assert_eq!(p.amount, Some(3.0));
        assert_eq!(
            kinds("Composite Scheme Of Amalgamation And Arrangement"),
            vec![(ActionKind::Other, "Composite Scheme Of Amalgamation And Arrangement".into())]
        );
        assert_eq!(kinds("Interest Payment/Buyback"), vec![(ActionKind::Other, "Interest Payment/Buyback".into())]);
        let v = kinds("Annual General Meeting/Dividend -Rs.5/ Per Share");
        assert_eq!(v[1], (ActionKind::Dividend, "Dividend -Rs.5/ Per Share".into()));
        let v = parse_purpose(
            "Distribution - Rs 5 Per Unit Consisting Of Interest - Rs 3 Per Unit/ Dividend - Rs 2 Per Unit/ Return Of Capital - Re 1 Per Unit",
        );
        assert_eq!(
            v.iter().map(|p| (p.kind, p.amount)).collect::<Vec<_>>(),
            vec![(ActionKind::Other, None), (ActionKind::Dividend, Some(2.0)), (ActionKind::Other, None)]
        );
        assert_eq!(v[2].text, "Return Of Capital - Re 1 Per Unit");
    }

    #[test]
    fn others_and_garbage() {
        for text in [
            "Annual General Meeting",
            "E.G.M. ",
            "Buyback",
            "Reduction of Capital ",
            "Resolution Plan -Suspension ",
            "Amalgamation",
            "Scheme Of Arrangement",
            "Interest Payment",
            "Redemption",
            "Spin Off",
            "Demerger",
            "Capital Reduction -  From Rs 10/- To Rs 4/- Per Share",
            "Annual General Meeting- Re 1 Per Share (Purpose Revised)",
            "Income Distribution (InvIT)",
            "xyzzy 123 ///",
            "///",
            "copyright",
        ] {
            let p = one(text);
            assert_eq!((p.kind, p.text.as_str()), (ActionKind::Other, text.trim()), "{text}");
            assert_eq!((p.price_factor, p.amount, p.ratio), (None, None, None));
        }
    }

    #[test]
    fn never_panics_on_odd_text() {
        let pool = [
            "Dividend",
            "Rs.",
            "Re",
            "–",
            "�",
            "é",
            "/",
            "/-",
            "(",
            ")",
            "+",
            "&",
            "and",
            "Split",
            "From",
            "To",
            "1",
            ":",
            "2.5",
            ".",
            "..",
            "Bonus",
            "Rights",
            "@",
            "at",
            "Premium",
            "Div",
            " ",
            "%",
            ",",
            "Consolidation",
            "Per",
        ];
        // Every sequence of three tokens, and every slice of a few real texts.
        for a in pool {
            for b in pool {
                for c in pool {
                    let text = format!("{a}{b} {c}{a}");
                    assert!(!parse_purpose(&text).is_empty(), "{text}");
                }
            }
        }
        for text in [
            "Annual General Meeting/ Dividend \u{fffd} Rs 5 Per Share",
            "Bonus 1:1/Face Value Split (Sub-Division) - From Rs 10/- Per Share To Re 1/- Per Share",
            "Rights - 4:25 Fully Paid Up Shares @ Premium Rs 500/- Per Share / 2:25 Partly Paid Up",
        ] {
            for (i, _) in text.char_indices() {
                for (j, _) in text[i..].char_indices() {
                    assert!(!parse_purpose(&text[i..i + j]).is_empty());
                }
            }
        }
    }

    #[test]
    fn empty_text_gives_one_empty_other() {
        for text in ["", "   "] {
            assert_eq!(parse_purpose(text), vec![Purpose::bare(ActionKind::Other, "")]);
        }
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(decode_entities("Larsen &amp; Toubro"), "Larsen & Toubro");
        let v = parse_purpose("Dividend - Rs 2 Per Share &amp; Special Dividend - Rs 1 Per Share");
        assert_eq!(v.iter().map(|p| p.amount).collect::<Vec<_>>(), vec![Some(2.0), Some(1.0)]);
    }

    #[test]
    fn kind_names() {
        let all = [
            ActionKind::Split,
            ActionKind::Consolidation,
            ActionKind::Bonus,
            ActionKind::Rights,
            ActionKind::Dividend,
            ActionKind::Other,
        ];
        assert_eq!(all.map(ActionKind::as_str), ["split", "consolidation", "bonus", "rights", "dividend", "other"]);
    }
}
