//! The rules every SQL protocol applies to a client statement before it runs:
//!
//! * its text is bounded ([`check_text`]): a statement longer than the limit, or whose operators
//!   and parentheses nest deeper than the limit, is refused before it is parsed. Parsing,
//!   planning, optimizing and dropping a statement all recurse on its depth, and a few thousand
//!   chained `+` overflow a thread's stack, which aborts the whole process;
//! * it only reads: it is planned, and the plan must not contain DDL, DML, COPY or session
//!   statements. Protocols add their own allow-lists of statement kinds on top (see
//!   `bhavstore_serving::pg::guard`).

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Why a client statement does not run.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// It would change something.
    #[error(
        "cannot execute {0} in a read-only session: bhavstore serves SQL read-only \
         (data changes only through `bhavstore ingest` and `bhavstore materialize`)"
    )]
    ReadOnly(String),
    /// It is not valid SQL, or names something that does not exist.
    #[error(transparent)]
    Engine(#[from] DataFusionError),
    /// Its text is longer than the server accepts.
    #[error(
        "statement is {bytes} bytes long; this server accepts at most {limit} \
         (server.limits.max_statement_bytes)"
    )]
    TooLong {
        /// Length of the statement.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Its operators and parentheses nest deeper than the server accepts.
    #[error(
        "statement too complex: its operators and parentheses nest about {depth} deep; this server \
         accepts at most {limit} (server.limits.max_expression_depth). Use IN (...) lists instead \
         of long OR chains, or split the statement"
    )]
    TooComplex {
        /// Estimated nesting depth.
        depth: usize,
        /// The limit.
        limit: usize,
    },
}

impl GuardError {
    /// SQLSTATE of the refusal: `25006` read-only, `54000` too long, `54001` too complex; engine
    /// errors are classified by `bhavstore_serving::pg::errors::classify`.
    #[must_use]
    pub fn sqlstate(&self) -> Option<&'static str> {
        match self {
            Self::ReadOnly(_) => Some("25006"),
            Self::TooLong { .. } => Some("54000"),
            Self::TooComplex { .. } => Some("54001"),
            Self::Engine(_) => None,
        }
    }
}

/// Bounds on a statement's text, kept in the session's config (an extension) so every path
/// that plans client SQL finds them, including SQL nested in a string (`features_asof`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimits {
    /// Longest statement, bytes.
    pub max_bytes: usize,
    /// Deepest nesting of operators and parentheses.
    pub max_depth: usize,
}

impl TextLimits {
    /// Default longest statement (`server.limits.max_statement_bytes`): 1 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 1 << 20;
    /// Default deepest nesting (`server.limits.max_expression_depth`).
    pub const DEFAULT_MAX_DEPTH: usize = 500;
}

impl Default for TextLimits {
    fn default() -> Self {
        Self { max_bytes: Self::DEFAULT_MAX_BYTES, max_depth: Self::DEFAULT_MAX_DEPTH }
    }
}

impl TextLimits {
    /// The limits configured on `ctx`'s session, or the defaults.
    #[must_use]
    pub fn of(ctx: &SessionContext) -> Self {
        ctx.state().config().get_extension::<Self>().map_or_else(Self::default, |l| *l)
    }
}

/// Refuses a statement that is too long or nests too deep, without parsing it.
pub fn check_text(sql: &str, limits: &TextLimits) -> Result<(), GuardError> {
    if sql.len() > limits.max_bytes {
        return Err(GuardError::TooLong { bytes: sql.len(), limit: limits.max_bytes });
    }
    let depth = nesting_depth(sql);
    if depth > limits.max_depth {
        return Err(GuardError::TooComplex { depth, limit: limits.max_depth });
    }
    Ok(())
}

/// A bound, from the tokens alone, on how deep the statement's syntax tree nests.
///
/// Within one parenthesised group, items separated by commas are siblings; a chain of `n` binary
/// or unary operators in one item nests at most `n` deep (left-deep for `1+1+1`), and each
/// parenthesis adds a level on top of the operators around it. In a `FROM` list commas are
/// joins, which nest the plan like operators, so they count there. Keywords that combine
/// expressions or queries (`AND`, `OR`, `NOT`, `UNION`, `JOIN`, `CASE`, ...) count as
/// operators. The tokenizer is iterative, so this never recurses however deep the text is.
/// Text the tokenizer refuses is left for the parser to report.
#[must_use]
pub fn nesting_depth(sql: &str) -> usize {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else { return 0 };
    let mut frames = vec![Frame::default()];
    let mut deepest = 0;
    for token in &tokens {
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => frames.push(Frame::default()),
            Token::RParen | Token::RBracket | Token::RBrace => {
                if frames.len() > 1 {
                    let done = frames.pop().map_or(0, Frame::close);
                    if let Some(outer) = frames.last_mut() {
                        outer.child = outer.child.max(done + 1);
                    }
                }
            }
            Token::Comma => {
                if let Some(f) = frames.last_mut() {
                    if f.in_from { f.ops += 1 } else { f.end_item() }
                }
            }
            Token::SemiColon => {
                if let Some(f) = frames.first_mut() {
                    f.end_item();
                }
            }
            Token::Word(w) => {
                if let Some(f) = frames.last_mut() {
                    match w.keyword {
                        Keyword::FROM => f.in_from = true,
                        Keyword::WHERE
                        | Keyword::GROUP
                        | Keyword::HAVING
                        | Keyword::ORDER
                        | Keyword::LIMIT
                        | Keyword::OFFSET
                        | Keyword::WINDOW
                        | Keyword::QUALIFY
                        | Keyword::SELECT
                        | Keyword::FETCH => f.in_from = false,
                        _ => {}
                    }
                    // A CASE's arms are a list, not a chain: each arm nests on top of the CASE,
                    // not on top of the arms before it (JDBC's type listing has hundreds).
                    if w.quote_style.is_none() {
                        match w.keyword {
                            Keyword::WHEN | Keyword::THEN | Keyword::ELSE if !f.cases.is_empty() => {
                                f.deepest = f.deepest.max(f.ops + f.child);
                                f.ops = f.cases.last().copied().unwrap_or(0);
                                f.child = 0;
                            }
                            Keyword::END if !f.cases.is_empty() => {
                                f.deepest = f.deepest.max(f.ops + f.child);
                                f.ops = f.cases.pop().unwrap_or(0);
                                f.child = 0;
                            }
                            _ => {}
                        }
                    }
                    if w.quote_style.is_none() && combines(w.keyword) {
                        f.ops += 1;
                        if w.keyword == Keyword::CASE {
                            f.cases.push(f.ops);
                        }
                        if matches!(w.keyword, Keyword::UNION | Keyword::EXCEPT | Keyword::INTERSECT) {
                            f.in_from = false;
                        }
                    }
                }
            }
            t if neutral(t) => {}
            _ => {
                if let Some(f) = frames.last_mut() {
                    f.ops += 1;
                }
            }
        }
        deepest = deepest.max(frames.len());
    }
    // Unbalanced parentheses: close what is open (the parser reports the syntax error).
    while frames.len() > 1 {
        let done = frames.pop().map_or(0, Frame::close);
        if let Some(outer) = frames.last_mut() {
            outer.child = outer.child.max(done + 1);
        }
    }
    frames.pop().map_or(0, Frame::close).max(deepest.saturating_sub(1))
}

/// One parenthesised group while [`nesting_depth`] scans it.
#[derive(Debug, Default)]
struct Frame {
    /// Operators in the current item.
    ops: usize,
    /// Deepest group nested in the current item.
    child: usize,
    /// Deepest item of the group so far.
    deepest: usize,
    /// Inside a FROM list, where commas are joins.
    in_from: bool,
    /// The operator count at each open CASE, which every arm starts from.
    cases: Vec<usize>,
}

impl Frame {
    fn end_item(&mut self) {
        self.deepest = self.deepest.max(self.ops + self.child);
        self.ops = 0;
        self.child = 0;
    }

    fn close(mut self) -> usize {
        self.end_item();
        self.deepest
    }
}

/// Keywords that join two expressions or queries, or wrap one.
fn combines(k: Keyword) -> bool {
    matches!(
        k,
        Keyword::AND
            | Keyword::OR
            | Keyword::NOT
            | Keyword::IS
            | Keyword::IN
            | Keyword::LIKE
            | Keyword::ILIKE
            | Keyword::SIMILAR
            | Keyword::BETWEEN
            | Keyword::CASE
            | Keyword::UNION
            | Keyword::EXCEPT
            | Keyword::INTERSECT
            | Keyword::JOIN
            | Keyword::AT
            | Keyword::COLLATE
            | Keyword::OVERLAPS
            | Keyword::ANY
            | Keyword::ALL
            | Keyword::SOME
            | Keyword::EXISTS
    )
}

/// Tokens that never nest anything: names, literals, blanks, `.` and `:`.
fn neutral(t: &Token) -> bool {
    matches!(
        t,
        Token::EOF
            | Token::Word(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::Whitespace(_)
            | Token::Period
            | Token::Colon
            | Token::Placeholder(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
    )
}

/// The first thing in `plan` that would write, if any.
#[must_use]
pub fn first_write(plan: &LogicalPlan) -> Option<String> {
    let mut bad = None;
    let _ = plan.apply_with_subqueries(|p| {
        bad = match p {
            LogicalPlan::Ddl(d) => Some(d.name().to_string()),
            LogicalPlan::Dml(d) => Some(format!("{} {}", d.op, d.table_name)),
            LogicalPlan::Copy(_) => Some("COPY".to_string()),
            LogicalPlan::Statement(s) => Some(s.name().to_string()),
            _ => None,
        };
        Ok(if bad.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    bad
}

/// Plans `sql`, which must be one query (or `EXPLAIN` of one), and checks it only reads. Its
/// text is checked against the session's [`TextLimits`] first.
pub async fn plan_query(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan, GuardError> {
    check_text(sql, &TextLimits::of(ctx))?;
    let state = ctx.state();
    let statement = state.sql_to_statement(sql, &datafusion::config::Dialect::PostgreSQL)?;
    let allowed = match &statement {
        DfStatement::Statement(s) => matches!(**s, Statement::Query(_)),
        DfStatement::Explain(e) => {
            matches!(&*e.statement, DfStatement::Statement(s) if matches!(**s, Statement::Query(_)))
        }
        _ => false,
    };
    if !allowed {
        return Err(GuardError::ReadOnly(kind(sql)));
    }
    let plan = state.statement_to_plan(statement).await?;
    match first_write(&plan) {
        Some(what) => Err(GuardError::ReadOnly(what)),
        None => Ok(plan),
    }
}

/// The first words of a statement, as a person would name it (`CREATE TABLE`, `INSERT`).
#[must_use]
pub fn kind(sql: &str) -> String {
    let words: Vec<String> = sql.split_whitespace().take(3).map(str::to_uppercase).collect();
    let n = match words.first().map(String::as_str) {
        Some("CREATE" | "DROP" | "ALTER") if words.get(1).is_some_and(|w| w == "EXTERNAL" || w == "OR") => 3,
        Some("CREATE" | "DROP" | "ALTER" | "INSERT" | "DELETE" | "TRUNCATE") => 2,
        _ => 1,
    };
    words.into_iter().take(n).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize, op: &str) -> String {
        let mut s = String::from("select 1");
        for _ in 0..n {
            s.push_str(op);
            s.push('1');
        }
        s
    }

    #[test]
    fn depth_of_chains_and_groups() {
        assert!(nesting_depth("select 1") <= 1);
        assert!(nesting_depth(&chain(2000, "+")) >= 2000);
        assert!(nesting_depth(&chain(300, " or 1=")) >= 300);
        assert!(nesting_depth(&chain(50, "::int")) >= 50);
        // Wide is not deep: long select lists and IN lists are siblings.
        let wide = format!("select {} from t", (0..5000).map(|i| format!("c{i} + 1")).collect::<Vec<_>>().join(", "));
        assert!(nesting_depth(&wide) < 5, "{}", nesting_depth(&wide));
        let list = format!(
            "select * from t where x in ({})",
            (0..10_000).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        );
        assert!(nesting_depth(&list) < 5);
        // Parentheses add up with the operators around them.
        assert!(nesting_depth("select ((((((1))))))") >= 6);
        let arms: String = (0..2000).map(|i| format!(" when t.oid = {i} then 'x{i}'")).collect();
        let case = format!("select case{arms} else null end from t");
        assert!(nesting_depth(&case) < 10, "{}", nesting_depth(&case));
        let nested_cases = format!("select {} 1 {}", "case when a then ".repeat(300), "end ".repeat(300));
        assert!(nesting_depth(&nested_cases) >= 300, "{}", nesting_depth(&nested_cases));
        let nested = format!("select {}1{}", "(1+".repeat(40), ")".repeat(40));
        assert!(nesting_depth(&nested) >= 80);
        // Comma joins in FROM nest the plan.
        let joins = format!("select 1 from {}", (0..700).map(|i| format!("t{i}")).collect::<Vec<_>>().join(", "));
        assert!(nesting_depth(&joins) >= 699);
        let unions = (0..600).map(|_| "select 1").collect::<Vec<_>>().join(" union all ");
        assert!(nesting_depth(&unions) >= 600);
        // Operators in strings, quoted names and comments do not count.
        let quoted = format!("select '{}' as \"{}\" -- {}", "+".repeat(5000), "+".repeat(100), "+".repeat(5000));
        assert!(nesting_depth(&quoted) < 5);
    }

    #[test]
    fn limits_refuse_with_sqlstates() {
        let limits = TextLimits { max_bytes: 10_000, max_depth: 500 };
        assert!(check_text(&chain(400, "+"), &limits).is_ok());
        let e = check_text(&chain(2000, "+"), &limits).unwrap_err();
        assert_eq!(e.sqlstate(), Some("54001"));
        assert!(e.to_string().contains("max_expression_depth"), "{e}");
        let e = check_text(&"x".repeat(10_001), &limits).unwrap_err();
        assert_eq!(e.sqlstate(), Some("54000"));
    }
}
