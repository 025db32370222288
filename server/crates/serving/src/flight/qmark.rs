//! `?` placeholders (ADBC and JDBC's `paramstyle = 'qmark'`) as the engine's `$1`, `$2`, ...
//!
//! The statement is tokenized as the planner will read it (the PostgreSQL dialect), and each `?`
//! token becomes the next `$n` in the order it appears. A `?` inside a string literal, a quoted
//! identifier or a comment is a different token and stays as written. The dialect tokenizes
//! `?|`, `?&`, `?-`, `?#`, `?||`, `?-|` and `@?` as PostgreSQL's JSON and geometric operators,
//! which this engine does not implement (it refuses them as "not yet supported"), so a `?` at the
//! start of any of them is a placeholder followed by the rest (`?||'x'` is `$1 ||'x'`).
//!
//! A statement with both `?` and `$n` is refused: which value goes where would be a guess.

use std::borrow::Cow;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};
use tonic::Status;

/// `sql` with its `?` placeholders numbered `$1..$n` positionally; unchanged (borrowed) when it
/// has none. Text the tokenizer refuses is returned unchanged for the parser to report.
pub(super) fn positional(sql: &str) -> Result<Cow<'_, str>, Status> {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return Ok(Cow::Borrowed(sql));
    };
    // Where each `?` is, and how its placeholder is written: plain, before the rest of an
    // operator (`$1 ||`), or after an `@` (`@ $1`).
    let mut marks: Vec<(Location, Mark)> = Vec::new();
    let mut dollar = None;
    for t in &tokens {
        let (at, mark) = match &t.token {
            Token::Question => (t.span.start, Mark::Plain),
            Token::QuestionPipe
            | Token::QuestionAnd
            | Token::QuestionMarkDash
            | Token::QuestionMarkSharp
            | Token::QuestionMarkDoubleVerticalBar
            | Token::QuestionMarkDashVerticalBar => (t.span.start, Mark::BeforeOperator),
            // `@?`: the `?` is its second character.
            Token::AtQuestion => (Location { line: t.span.start.line, column: t.span.start.column + 1 }, Mark::AfterAt),
            Token::Placeholder(p) if p.starts_with('$') => {
                dollar.get_or_insert_with(|| p.clone());
                continue;
            }
            _ => continue,
        };
        marks.push((at, mark));
    }
    if marks.is_empty() {
        return Ok(Cow::Borrowed(sql));
    }
    if let Some(d) = dollar {
        return Err(Status::invalid_argument(format!(
            "the statement mixes ? and numbered ({d}) placeholders; use one style: ? (bound in order) or $1, $2, ..."
        )));
    }
    let offsets = LineOffsets::new(sql);
    let mut out = String::with_capacity(sql.len() + marks.len() * 4);
    let mut copied = 0;
    for (i, (at, mark)) in marks.into_iter().enumerate() {
        let n = i + 1;
        // Locations come from the tokenizer over this very text; a miss would be its bug, and
        // the statement then goes to the parser as written.
        let Some(pos) = offsets.byte(sql, at).filter(|&p| p >= copied && sql[p..].starts_with('?')) else {
            return Ok(Cow::Borrowed(sql));
        };
        out.push_str(&sql[copied..pos]);
        match mark {
            Mark::Plain => out.push_str(&format!("${n}")),
            Mark::BeforeOperator => out.push_str(&format!("${n} ")),
            Mark::AfterAt => out.push_str(&format!(" ${n}")),
        }
        copied = pos + 1;
    }
    out.push_str(&sql[copied..]);
    Ok(Cow::Owned(out))
}

/// How a `?` is replaced.
#[derive(Clone, Copy)]
enum Mark {
    /// `?` alone: `$n`.
    Plain,
    /// `?` starting an operator token: `$n ` and the rest of the token.
    BeforeOperator,
    /// `?` ending `@?`: ` $n` after the `@`.
    AfterAt,
}

/// Byte offsets of line starts, to find a tokenizer `Location` (1-based line and column, the
/// column counted in characters) in the text.
struct LineOffsets(Vec<usize>);

impl LineOffsets {
    fn new(sql: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self(starts)
    }

    fn byte(&self, sql: &str, at: Location) -> Option<usize> {
        let line = usize::try_from(at.line).ok()?.checked_sub(1)?;
        let column = usize::try_from(at.column).ok()?.checked_sub(1)?;
        let start = *self.0.get(line)?;
        sql[start..].char_indices().nth(column).map(|(i, _)| start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(sql: &str) -> String {
        positional(sql).unwrap().into_owned()
    }

    #[test]
    fn question_marks_become_numbered_in_order() {
        assert_eq!(p("select * from t where a = ? and b > ?"), "select * from t where a = $1 and b > $2");
        assert_eq!(p("select ?,?,?"), "select $1,$2,$3");
        let many = format!("select {}", ["?"; 12].join(", "));
        assert!(p(&many).ends_with("$11, $12"), "{}", p(&many));
        // Nothing to do: the same text, not a copy.
        assert!(matches!(positional("select $1, $2").unwrap(), Cow::Borrowed(_)));
        assert!(matches!(positional("select 1").unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn literals_identifiers_and_comments_are_left_alone() {
        assert_eq!(p("select '?', \"a?\", ? -- why?\n"), "select '?', \"a?\", $1 -- why?\n");
        assert_eq!(p("/* ? */ select E'it''s ?', $$ ? $$, ?"), "/* ? */ select E'it''s ?', $$ ? $$, $1");
        // Multi-byte text before the placeholder, on later lines.
        assert_eq!(p("select 'नमस्ते ?',\n  'é', ?\n  , ?"), "select 'नमस्ते ?',\n  'é', $1\n  , $2");
    }

    #[test]
    fn operators_starting_with_a_question_mark_are_a_placeholder_and_the_rest() {
        assert_eq!(p("select ?||'x'"), "select $1 ||'x'");
        assert_eq!(p("select ?|1, ?&1, ?-1, ?#1"), "select $1 |1, $2 &1, $3 -1, $4 #1");
        assert_eq!(p("select ?-|1"), "select $1 -|1");
        assert_eq!(p("select @?"), "select @ $1");
    }

    #[test]
    fn mixed_styles_are_refused() {
        let e = positional("select ? + $1").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("mixes ? and numbered ($1)"), "{}", e.message());
    }

    #[test]
    fn untokenizable_text_is_left_for_the_parser() {
        assert!(matches!(positional("select 'open ?").unwrap(), Cow::Borrowed(_)));
    }
}
