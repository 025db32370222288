//! Postgres spellings DataFusion cannot plan, rewritten to equivalents it can, before
//! `datafusion-postgres`' own compatibility parser sees the statement:
//! * `current_user`, `session_user`, `current_role`: the login user, named as Postgres names it;
//! * `LIKE p ESCAPE 'c'` with any escape character (SQLAlchemy uses `/`): the pattern is
//!   rewritten to the backslash escapes DataFusion knows, also when it is a parameter;
//! * `ARRAY(SELECT x FROM ...)` (psql's `\du`): an `array_agg` subquery;
//! * `generate_subscripts(a, d)` (SQLAlchemy's key and index inspection): the subscripts as
//!   an `unnest`, which zips with the `unnest` beside it as Postgres' set-returning functions do;
//! * a parameter the client declared as a date or time type is cast to it, so a `timestamp`
//!   parameter compared with a `date` column is compared as Postgres compares them.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, CastKind, DataType as SqlType, Expr, FunctionArguments, Ident, ObjectNamePart, Query,
    SelectItem, SetExpr, Statement, TableFactor, TimezoneInfo, Value, ValueWithSpan, VisitMut, VisitorMut,
    visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use pgwire::api::Type;

/// What a rewrite needs to know about the session and the statement.
pub struct Context<'a> {
    /// The login user.
    pub user: &'a str,
    /// Types the client declared for `$1`, `$2` ... (extended protocol), `None` where it left
    /// one to the server.
    pub param_types: &'a [Option<Type>],
}

/// Rewrites `sql`. `None` when nothing changed or it does not parse here (the compatibility
/// parser then gets the text as it came).
#[must_use]
pub fn rewrite_sql(sql: &str, cx: &Context<'_>) -> Option<String> {
    let replaced = replace_fragments(sql);
    let sql = replaced.as_deref().unwrap_or(sql);
    let Ok(plain) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else { return replaced };
    let mut statements = plain.clone();
    let mut changed = false;
    for s in &mut statements {
        changed |= rewrite_statement(s, cx);
    }
    // Statements the compatibility parser answers from its own list of known catalog queries
    // (psql's policy and publication lookups) are left to it. Checked only when a rewrite would
    // apply, so a plain query is parsed once here, not three times.
    if !changed || replaced_by_compat_parser(sql, &plain) {
        return replaced;
    }
    Some(statements.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

/// Fragments of client queries (fixed text a client always sends) that DataFusion cannot plan,
/// with what they equal on this server.
const FRAGMENTS: &[(&str, &str)] = &[
    // psql's `\d+`: a relation's options plus its TOAST table's. No relation here has a TOAST
    // table (`reltoastrelid` is 0), so the TOAST part is always empty.
    (
        "pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')",
        "pg_catalog.array_to_string(c.reloptions, ', ')",
    ),
];

fn replace_fragments(sql: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for (from, to) in FRAGMENTS {
        if out.as_deref().unwrap_or(sql).contains(from) {
            out = Some(out.as_deref().unwrap_or(sql).replace(from, to));
        }
    }
    out
}

/// Rewrites one parsed statement in place; whether anything changed.
pub fn rewrite_statement(statement: &mut Statement, cx: &Context<'_>) -> bool {
    // Named first, while the select lists still show what the user wrote.
    let mut names = SelectLists { changed: false, depth: 0 };
    let _ = statement.visit(&mut names);
    let mut changed = names.changed;
    let _ = visit_expressions_mut(statement, |e| {
        changed |= rewrite_expr(e, cx);
        ControlFlow::<()>::Continue(())
    });
    changed
}

/// Prefix of the aliases given to repeated select-list expressions: Postgres allows
/// `select null, null`, DataFusion needs distinct names. [`super::names`] names such columns
/// as Postgres would.
pub const DUPLICATE_ALIAS: &str = "__pg_dup_";

/// Visits every query's select list.
struct SelectLists {
    changed: bool,
    depth: usize,
}

impl VisitorMut for SelectLists {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        self.changed |= name_value_functions(query);
        // An outer query refers to a subquery's columns by the names Postgres gives them
        // (`select word from (select ..., count(1) from t) s order by count`).
        if self.depth > 1 {
            self.changed |= name_nested(query);
        }
        self.changed |= alias_duplicates(query);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, table: &mut TableFactor) -> ControlFlow<()> {
        if let Some(derived) = unnest_table(table) {
            *table = derived;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `FROM unnest(a) x` (a set-returning function as a table, psql's `\d+`) as
/// `FROM (SELECT unnest(a) AS x) x`.
fn unnest_table(table: &TableFactor) -> Option<TableFactor> {
    let (arg, alias) = match table {
        TableFactor::Table { name, alias, args: Some(args), .. }
            if name.0.last().is_some_and(|p| p.to_string().eq_ignore_ascii_case("unnest")) && args.args.len() == 1 =>
        {
            (args.args[0].to_string(), alias.clone())
        }
        TableFactor::UNNEST { alias, array_exprs, with_offset: false, with_ordinality: false, .. }
            if array_exprs.len() == 1 =>
        {
            (array_exprs[0].to_string(), alias.clone())
        }
        _ => return None,
    };
    let column = alias.as_ref().map_or_else(|| "unnest".to_string(), |a| a.name.value.clone());
    let name = alias.as_ref().map_or_else(|| "unnest".to_string(), |a| a.name.to_string());
    let sql = format!("SELECT 1 FROM (SELECT unnest({arg}) AS \"{column}\") AS {name}");
    let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, &sql).ok()?;
    let Statement::Query(q) = parsed.pop()? else { return None };
    let SetExpr::Select(select) = *q.body else { return None };
    select.from.into_iter().next().map(|t| t.relation)
}

/// Aliases the unnamed items of a nested select list with their Postgres names, where the
/// name is not taken twice.
fn name_nested(q: &mut Query) -> bool {
    let SetExpr::Select(select) = q.body.as_mut() else { return false };
    let names = super::names::select_item_names(&select.projection);
    let mut count = std::collections::HashMap::new();
    for n in names.iter().flatten() {
        *count.entry(n.clone()).or_insert(0) += 1;
    }
    let mut changed = false;
    for (item, name) in select.projection.iter_mut().zip(names) {
        if let (SelectItem::UnnamedExpr(e), Some(name)) = (&*item, name)
            && !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
            && name != "?column?"
            && count.get(&name) == Some(&1)
        {
            *item = SelectItem::ExprWithAlias { expr: e.clone(), alias: Ident::with_quote('"', name) };
            changed = true;
        }
    }
    changed
}

fn alias_duplicates(q: &mut Query) -> bool {
    let SetExpr::Select(select) = q.body.as_mut() else { return false };
    let mut seen = std::collections::HashSet::new();
    let mut changed = false;
    for (i, item) in select.projection.iter_mut().enumerate() {
        if let SelectItem::UnnamedExpr(e) = item
            && !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
            && !seen.insert(e.to_string())
        {
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', format!("{DUPLICATE_ALIAS}{i}")),
            };
            changed = true;
        }
    }
    changed
}

static COMPAT: std::sync::LazyLock<PostgresCompatibilityParser> =
    std::sync::LazyLock::new(PostgresCompatibilityParser::new);

/// Whether the compatibility parser replaces (part of) `sql` with a canned answer: what it
/// parses differs from the plain parse with its rewrite rules applied.
fn replaced_by_compat_parser(sql: &str, plain: &[Statement]) -> bool {
    let Ok(compat) = COMPAT.parse(sql) else { return false };
    let ruled: Vec<Statement> = plain.iter().cloned().map(|s| COMPAT.rewrite(s)).collect();
    compat != ruled
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).ok()?.parse_expr().ok()
}

fn value_function(e: &Expr) -> Option<&'static str> {
    // `user` is a reserved word in Postgres: unquoted, it is always the function.
    if let Expr::Identifier(i) = e {
        return match (i.quote_style, i.value.to_ascii_lowercase().as_str()) {
            (None, "user") => Some("user"),
            (None, "current_user") => Some("current_user"),
            (None, "session_user") => Some("session_user"),
            (None, "current_role") => Some("current_role"),
            (None, "current_catalog") => Some("current_catalog"),
            (None, "current_schema") => Some("current_schema"),
            _ => None,
        };
    }
    let Expr::Function(f) = e else { return None };
    if !matches!(&f.args, FunctionArguments::None)
        && !matches!(&f.args, FunctionArguments::List(l) if l.args.is_empty())
    {
        return None;
    }
    let [part] = f.name.0.as_slice() else { return None };
    match part.to_string().to_ascii_lowercase().as_str() {
        "current_user" => Some("current_user"),
        "session_user" => Some("session_user"),
        "current_role" => Some("current_role"),
        "user" => Some("user"),
        "current_catalog" => Some("current_catalog"),
        _ => None,
    }
}

/// The value of a SQL value function for this session.
fn value_function_value(name: &str, cx: &Context<'_>) -> String {
    match name {
        "current_catalog" => "bhavstore".into(),
        "current_schema" => "public".into(),
        _ => cx.user.to_string(),
    }
}

/// The Postgres name of an expression this module rewrites into something named otherwise.
fn rewritten_name(e: &Expr) -> Option<&'static str> {
    if let Some(name) = value_function(e) {
        return Some(name);
    }
    let Expr::Function(f) = e else { return None };
    let name = f.name.to_string().to_ascii_lowercase();
    match (name.trim_start_matches("pg_catalog."), &f.args) {
        ("array", FunctionArguments::Subquery(_)) => Some("array"),
        ("generate_subscripts", _) => Some("generate_subscripts"),
        ("regexp_split_to_table", _) => Some("regexp_split_to_table"),
        _ => None,
    }
}

/// `select current_user` is named `current_user`; the literal it becomes would not be.
fn name_value_functions(q: &mut Query) -> bool {
    let SetExpr::Select(select) = q.body.as_mut() else { return false };
    let mut changed = false;
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(e) = item
            && let Some(name) = rewritten_name(e)
        {
            *item = SelectItem::ExprWithAlias { expr: e.clone(), alias: Ident::with_quote('"', name) };
            changed = true;
        }
    }
    changed
}

fn rewrite_expr(e: &mut Expr, cx: &Context<'_>) -> bool {
    if let Some(name) = value_function(e) {
        *e = Expr::Value(Value::SingleQuotedString(value_function_value(name, cx)).into());
        return true;
    }
    if let Some(new) = catalog_cast(e) {
        *e = new;
        return true;
    }
    match e {
        // `(keys).x`: a field of a composite value.
        Expr::CompoundFieldAccess { root, access_chain }
            if matches!(root.as_ref(), Expr::Nested(_))
                && access_chain.len() == 1
                && matches!(&access_chain[0], AccessExpr::Dot(Expr::Identifier(_))) =>
        {
            let (Expr::Nested(inner), AccessExpr::Dot(Expr::Identifier(key))) = (root.as_ref(), &access_chain[0])
            else {
                return false;
            };
            match parse_expr(&format!("get_field({inner}, '{}')", key.value.to_ascii_lowercase())) {
                Some(new) => {
                    *e = new;
                    true
                }
                None => false,
            }
        }
        Expr::BinaryOp { left, op: BinaryOperator::Eq | BinaryOperator::NotEq, right } => {
            // `typreceive != 0`: a regproc column against oid 0 ("no function"), which the
            // catalog writes as '-'.
            let zero =
                |e: &Expr| matches!(e, Expr::Value(ValueWithSpan { value: Value::Number(n, _), .. }) if n == "0");
            let dash = || Expr::Value(Value::SingleQuotedString("-".into()).into());
            if is_regproc_column(left) && zero(right) {
                **right = dash();
                true
            } else if is_regproc_column(right) && zero(left) {
                **left = dash();
                true
            } else {
                false
            }
        }
        Expr::Subquery(q) if never_matches(q) => {
            // `seqrelid = NULL` (SQLAlchemy's identity lookup, once there is no sequence) finds no
            // row: the subquery is NULL, whatever it would select. Its parameters stay in the
            // statement (in a branch never taken), so the client's bound values still line up.
            let kept = parameters_of(q);
            *e = if kept.is_empty() {
                Expr::Value(Value::Null.into())
            } else {
                let pad = if kept.len() % 2 == 1 { ", NULL" } else { "" };
                match parse_expr(&format!("CASE WHEN false THEN json_build_object({}{pad}) END", kept.join(", "))) {
                    Some(x) => x,
                    None => return false,
                }
            };
            true
        }
        Expr::Subquery(q) => {
            let mut changed = aggregate_catalog_subquery(q);
            if let Some(outer) = take_outer_conditions(q) {
                let sub = Expr::Subquery(q.clone());
                if let Some(new) = parse_expr(&format!("CASE WHEN {outer} THEN {sub} END")) {
                    *e = new;
                    changed = true;
                }
            }
            changed
        }
        Expr::Like { pattern, escape_char, .. } | Expr::ILike { pattern, escape_char, .. } => {
            let Some(esc) = escape_char.as_ref().and_then(escape_text) else { return false };
            if esc == "\\" {
                return false;
            }
            let Some(wrapped) = parse_expr(&format!("bhavstore_like_escape({pattern}, '{}')", esc.replace('\'', "''")))
            else {
                return false;
            };
            **pattern = wrapped;
            *escape_char = None;
            true
        }
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            let name = name.trim_start_matches("pg_catalog.");
            match (name, &f.args) {
                ("array", FunctionArguments::Subquery(q)) => match array_subquery(q) {
                    Some(sub) => {
                        *e = sub;
                        true
                    }
                    None => false,
                },
                // No column is backed by a sequence (its arguments need not be computed).
                ("pg_get_serial_sequence", args) if !has_parameters(&args.to_string()) => {
                    *e = Expr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(Expr::Value(Value::Null.into())),
                        data_type: SqlType::Text,
                        array: false,
                        format: None,
                    };
                    true
                }
                // Postgres' clock functions are `timestamp with time zone`.
                (
                    "now" | "current_timestamp" | "transaction_timestamp" | "statement_timestamp" | "localtimestamp",
                    _,
                ) if matches!(&f.args, FunctionArguments::None)
                    || matches!(&f.args, FunctionArguments::List(l) if l.args.is_empty()) =>
                {
                    if name == "localtimestamp" {
                        return false;
                    }
                    let Some(new) = parse_expr("CAST(now() AS TIMESTAMP WITH TIME ZONE)") else { return false };
                    *e = new;
                    true
                }
                // JDBC's key and index metadata: one row (x, n) per element of an index's keys.
                ("information_schema._pg_expandarray" | "_pg_expandarray", FunctionArguments::List(list))
                    if list.args.len() == 1 =>
                {
                    match parse_expr(&format!("unnest(bhavstore_expandarray({}))", list.args[0])) {
                        Some(new) => {
                            *e = new;
                            true
                        }
                        None => false,
                    }
                }
                ("regexp_split_to_table", FunctionArguments::List(list)) if list.args.len() >= 2 => {
                    let args = list.args.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                    match parse_expr(&format!("unnest(regexp_split_to_array({args}))")) {
                        Some(new) => {
                            *e = new;
                            true
                        }
                        None => false,
                    }
                }
                ("generate_subscripts", FunctionArguments::List(list)) if list.args.len() == 2 => {
                    let (a, d) = (&list.args[0], &list.args[1]);
                    match parse_expr(&format!(
                        "unnest(range(1, CAST(coalesce(array_length({a}, {d}), 0) AS BIGINT) + 1))"
                    )) {
                        Some(new) => {
                            *e = new;
                            true
                        }
                        None => false,
                    }
                }
                _ => false,
            }
        }
        Expr::Value(ValueWithSpan { value: Value::Placeholder(p), .. }) => {
            let Some(ty) = declared_type(p, cx.param_types) else { return false };
            let inner = e.clone();
            *e = Expr::Cast { kind: CastKind::Cast, expr: Box::new(inner), data_type: ty, array: false, format: None };
            true
        }
        _ => false,
    }
}

fn escape_text(v: &ValueWithSpan) -> Option<String> {
    match &v.value {
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
        _ => None,
    }
}

/// `ARRAY(SELECT x FROM ... [ORDER BY o])` as `(SELECT array_agg(x ORDER BY o) FROM ...)`,
/// for the one-column, ungrouped selects catalog queries use.
fn array_subquery(q: &Query) -> Option<Expr> {
    let mut q = q.clone();
    let SetExpr::Select(select) = q.body.as_mut() else { return None };
    if q.limit_clause.is_some() || select.distinct.is_some() || !group_by_is_empty(select) {
        return None;
    }
    let [item] = select.projection.as_mut_slice() else { return None };
    let expr = match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    let order = q.order_by.take().map(|o| format!(" {o}")).unwrap_or_default();
    let agg = parse_expr(&format!("array_agg({expr}{order})"))?;
    *item = SelectItem::UnnamedExpr(agg);
    Some(Expr::Subquery(Box::new(q)))
}

fn group_by_is_empty(select: &datafusion::sql::sqlparser::ast::Select) -> bool {
    use datafusion::sql::sqlparser::ast::GroupByExpr;
    matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
}

/// The date or time type the client declared for placeholder `$n`.
fn declared_type(placeholder: &str, types: &[Option<Type>]) -> Option<SqlType> {
    let n: usize = placeholder.strip_prefix('$')?.parse().ok()?;
    let ty = types.get(n.checked_sub(1)?)?.as_ref()?;
    Some(match *ty {
        Type::DATE => SqlType::Date,
        Type::TIMESTAMP => SqlType::Timestamp(None, TimezoneInfo::WithoutTimeZone),
        Type::TIMESTAMPTZ => SqlType::Timestamp(None, TimezoneInfo::WithTimeZone),
        Type::TIME => SqlType::Time(None, TimezoneInfo::None),
        _ => return None,
    })
}

/// Columns of `pg_catalog` whose type is `regproc` (written as function names here).
const REGPROC_COLUMNS: &[&str] = &[
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
    "typsubscript",
    "aggfnoid",
    "aggtransfn",
    "aggfinalfn",
    "oprcode",
    "prosupport",
];

fn is_regproc_column(e: &Expr) -> bool {
    let name = match e {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => &i.value,
            None => return false,
        },
        _ => return false,
    };
    REGPROC_COLUMNS.contains(&name.to_ascii_lowercase().as_str())
}

/// Casts through Postgres' catalog types that DataFusion does not have:
/// * `'pg_catalog.array_in'::regproc` is the function's name (the catalog keeps names);
/// * `oid::regtype::text` is the type's name, `oid::regclass::text` the relation's;
/// * `x::"pg_catalog"."int4"` (asyncpg, schema-qualified types) is `x::int4`.
fn catalog_cast(e: &Expr) -> Option<Expr> {
    let Expr::Cast { expr, data_type, .. } = e else { return None };
    // NULL cast to an oid alias is a NULL oid (not a catalog lookup of nothing).
    if matches!(custom_type(data_type).as_deref(), Some("regclass" | "regtype" | "regproc" | "regnamespace" | "oid"))
        && is_null(expr)
    {
        return parse_expr("CAST(NULL AS INTEGER)");
    }
    match custom_type(data_type).as_deref() {
        Some("regproc" | "regprocedure") => {
            if let Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(name), .. }) = expr.as_ref() {
                let bare = name.trim_start_matches("pg_catalog.").to_string();
                return Some(Expr::Value(Value::SingleQuotedString(bare).into()));
            }
            None
        }
        Some(other) if matches!(data_type, SqlType::Custom(..)) && standard_type(other).is_some() => {
            let mut new = e.clone();
            if let Expr::Cast { data_type, .. } = &mut new {
                *data_type = standard_type(other)?;
            }
            Some(new)
        }
        _ if matches!(data_type, SqlType::Text | SqlType::Varchar(_)) => match expr.as_ref() {
            Expr::Cast { expr: inner, data_type: t, .. } => match custom_type(t).as_deref() {
                Some("regtype") => parse_expr(&format!("bhavstore_regtype_name({inner})")),
                Some("regclass") => {
                    parse_expr(&format!("(SELECT max(c.relname) FROM pg_catalog.pg_class AS c WHERE c.oid = {inner})"))
                }
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// The lower-case name of a type as written, without `pg_catalog.` and quotes (`regtype`,
/// `regclass`, `int4`).
fn custom_type(t: &SqlType) -> Option<String> {
    let name = match t {
        SqlType::Custom(name, _) => name
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => i.value.to_ascii_lowercase(),
                other => other.to_string().to_ascii_lowercase(),
            })
            .collect::<Vec<_>>()
            .join("."),
        other => other.to_string().to_ascii_lowercase(),
    };
    Some(name.strip_prefix("pg_catalog.").map_or(name.clone(), str::to_string))
}

/// A Postgres type name DataFusion's SQL does not accept, as the SQL type it does.
fn standard_type(name: &str) -> Option<SqlType> {
    Some(match name {
        "int2" => SqlType::SmallInt(None),
        "int4" | "integer" => SqlType::Integer(None),
        "int8" | "bigint" => SqlType::BigInt(None),
        "float4" => SqlType::Real,
        "float8" => SqlType::DoublePrecision,
        "text" | "name" | "json" | "jsonb" | "bpchar" => SqlType::Text,
        "varchar" => SqlType::Varchar(None),
        "bool" | "boolean" => SqlType::Boolean,
        "date" => SqlType::Date,
        "timestamp" => SqlType::Timestamp(None, TimezoneInfo::None),
        "timestamptz" => SqlType::Timestamp(None, TimezoneInfo::WithTimeZone),
        "numeric" => SqlType::Numeric(datafusion::sql::sqlparser::ast::ExactNumberInfo::None),
        "bytea" => SqlType::Bytea,
        _ => return None,
    })
}

/// `NULL`, or `NULL` cast to a type.
fn is_null(x: &Expr) -> bool {
    match x {
        Expr::Value(ValueWithSpan { value: Value::Null, .. }) => true,
        Expr::Cast { expr, .. } => matches!(expr.as_ref(), Expr::Value(ValueWithSpan { value: Value::Null, .. })),
        _ => false,
    }
}

/// The parameters of a subquery, with the casts that type them (`$2::VARCHAR`).
fn parameters_of(q: &Query) -> Vec<String> {
    let mut found = Vec::new();
    let mut probe = q.clone();
    let _ = visit_expressions_mut(&mut probe, |x| {
        match x {
            Expr::Cast { expr, .. }
                if matches!(expr.as_ref(), Expr::Value(ValueWithSpan { value: Value::Placeholder(_), .. })) =>
            {
                found.push(x.to_string());
            }
            Expr::Value(ValueWithSpan { value: Value::Placeholder(p), .. }) => found.push(p.clone()),
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    // A bare placeholder inside a cast was found twice: keep the cast.
    let is_cast = |f: &str| f.contains("::") || f.starts_with("CAST");
    let casts: Vec<String> = found.iter().filter(|f| is_cast(f)).cloned().collect();
    found.retain(|f| {
        is_cast(f) || !casts.iter().any(|c| c.starts_with(&format!("{f}::")) || c.contains(&format!("({f} ")))
    });
    found
}

fn has_parameters(sql: &str) -> bool {
    sql.contains('$')
}

/// Whether a subquery's `WHERE` has a conjunct `x = NULL`, which no row satisfies.
fn never_matches(q: &Query) -> bool {
    let SetExpr::Select(select) = q.body.as_ref() else { return false };
    let Some(selection) = select.selection.clone() else { return false };
    // `count` of no rows is 0, not NULL.
    if !group_by_is_empty(select)
        || select.projection.iter().any(|i| i.to_string().to_ascii_lowercase().contains("count("))
    {
        return false;
    }
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    conjuncts
        .iter()
        .any(|c| matches!(c, Expr::BinaryOp { left, op: BinaryOperator::Eq, right } if is_null(left) || is_null(right)))
}

/// Removes from a scalar subquery's `WHERE` the conditions on the outer query's columns only
/// (`pg_attribute.atthasdef` in SQLAlchemy's column query) and returns them: DataFusion cannot
/// decorrelate a subquery filtered on outer columns alone, and `CASE WHEN outer THEN (subquery)
/// END` is the same value (no row, so NULL, when the condition does not hold).
fn take_outer_conditions(q: &mut Query) -> Option<Expr> {
    let SetExpr::Select(select) = q.body.as_mut() else { return None };
    let inner: Vec<String> = select
        .from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
        .flat_map(|r| match r {
            TableFactor::Table { name, alias, .. } => {
                let mut names = vec![name.to_string().to_ascii_lowercase()];
                if let Some(last) = name.0.last() {
                    names.push(last.to_string().to_ascii_lowercase());
                }
                if let Some(a) = alias {
                    names.push(a.name.value.to_ascii_lowercase());
                }
                names
            }
            _ => vec![String::from("\u{0}")],
        })
        .collect();
    if inner.iter().any(|n| n == "\u{0}") {
        return None;
    }
    let selection = select.selection.take()?;
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    let (outer, rest): (Vec<Expr>, Vec<Expr>) = conjuncts.into_iter().partition(|c| only_outer(c, &inner));
    select.selection = rest.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    });
    outer.into_iter().reduce(|a, b| Expr::BinaryOp { left: Box::new(a), op: BinaryOperator::And, right: Box::new(b) })
}

fn split_and(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        Expr::Nested(inner) if matches!(*inner, Expr::BinaryOp { op: BinaryOperator::And, .. }) => {
            split_and(*inner, out)
        }
        other => out.push(other),
    }
}

/// Whether every column `e` names is qualified by a relation that is not among `inner`, and
/// it names at least one (no subqueries inside).
fn only_outer(e: &Expr, inner: &[String]) -> bool {
    let mut outer = 0usize;
    let mut other = false;
    let mut probe = e.clone();
    let _ = visit_expressions_mut(&mut probe, |x| {
        match x {
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let qualifier =
                    parts[..parts.len() - 1].iter().map(|p| p.value.to_ascii_lowercase()).collect::<Vec<_>>().join(".");
                let last = parts[parts.len() - 2].value.to_ascii_lowercase();
                if inner.contains(&qualifier) || inner.contains(&last) {
                    other = true;
                } else {
                    outer += 1;
                }
            }
            Expr::Identifier(_) | Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => other = true,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    outer > 0 && !other
}

/// Aggregates that make a scalar subquery one row by themselves.
const AGGREGATES: &[&str] =
    &["count", "max", "min", "sum", "avg", "array_agg", "string_agg", "bool_and", "bool_or", "every", "first_value"];

/// A scalar subquery over catalog tables that is not aggregated (`(SELECT c.relkind = 'c'
/// FROM pg_class c WHERE c.oid = t.typrelid)`, JDBC's type listing): Postgres runs it per row
/// and it finds at most one row by the catalog's keys; DataFusion only decorrelates aggregated
/// ones, so it gets `max()`, which is the one row's value.
fn aggregate_catalog_subquery(q: &mut Query) -> bool {
    if q.limit_clause.is_some() || q.order_by.is_some() {
        return false;
    }
    let SetExpr::Select(select) = q.body.as_mut() else { return false };
    if !group_by_is_empty(select) || select.distinct.is_some() || select.from.is_empty() {
        return false;
    }
    let catalog_only = select.from.iter().all(|t| {
        std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)).all(|r| match r {
            TableFactor::Table { name, .. } => {
                let n = name.to_string().to_ascii_lowercase();
                n.starts_with("pg_") || n.starts_with("pg_catalog.") || n.starts_with("information_schema.")
            }
            _ => false,
        })
    });
    let [item] = select.projection.as_mut_slice() else { return false };
    let (expr, alias) = match item {
        SelectItem::UnnamedExpr(e) => (e.clone(), None),
        SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
        _ => return false,
    };
    if !catalog_only {
        return false;
    }
    if let Expr::Function(f) = &expr
        && AGGREGATES.contains(&f.name.to_string().to_ascii_lowercase().as_str())
    {
        return false;
    }
    let Some(agg) = parse_expr(&format!("max({expr})")) else { return false };
    *item = match alias {
        Some(alias) => SelectItem::ExprWithAlias { expr: agg, alias },
        None => SelectItem::UnnamedExpr(agg),
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(sql: &str) -> String {
        rewrite_sql(sql, &Context { user: "quant", param_types: &[Some(Type::TIMESTAMPTZ), None] })
            .unwrap_or_else(|| sql.to_string())
    }

    #[test]
    fn value_functions_are_the_login_user() {
        assert_eq!(
            rw("select current_user, session_user"),
            "SELECT 'quant' AS \"current_user\", 'quant' AS \"session_user\""
        );
        assert_eq!(rw("select 1 where current_user = 'quant'"), "SELECT 1 WHERE 'quant' = 'quant'");
    }

    #[test]
    fn like_escape_becomes_backslash() {
        assert_eq!(
            rw("select 1 where n not like 'pg/_%' escape '/'"),
            "SELECT 1 WHERE n NOT LIKE bhavstore_like_escape('pg/_%', '/')"
        );
        assert_eq!(rw("select 1 where n like $2 escape '/'"), "SELECT 1 WHERE n LIKE bhavstore_like_escape($2, '/')");
        assert_eq!(rw(r"select 1 where n like 'a\_b' escape '\'"), r"select 1 where n like 'a\_b' escape '\'");
    }

    #[test]
    fn array_of_a_subquery_aggregates() {
        assert_eq!(
            rw("select ARRAY(SELECT b.rolname FROM r b WHERE b.x = a.y ORDER BY 1) as memberof from a"),
            "SELECT (SELECT array_agg(b.rolname ORDER BY 1) FROM r b WHERE b.x = a.y) AS memberof FROM a"
        );
    }

    #[test]
    fn catalog_types_and_regproc() {
        assert_eq!(
            rw("select typinput='pg_catalog.array_in'::regproc as a from pg_type where typreceive != 0"),
            "SELECT typinput = 'array_in' AS a FROM pg_type WHERE typreceive <> '-'"
        );
        assert_eq!(rw("select $2::\"pg_catalog\".\"int4\"::text"), "SELECT $2::INTEGER::TEXT");
        assert_eq!(rw("select atttypid::regtype::text as t"), "SELECT bhavstore_regtype_name(atttypid) AS t");
        assert_eq!(rw("select null, null, user"), "SELECT NULL, NULL AS \"__pg_dup_1\", 'quant' AS \"user\"");
        assert_eq!(
            rw("select 1 from pg_type t where (select c.relkind = 'c' from pg_class c where c.oid = t.typrelid)"),
            "SELECT 1 FROM pg_type t WHERE (SELECT max(c.relkind = 'c') FROM pg_class c WHERE c.oid = t.typrelid)"
        );
    }

    #[test]
    fn canned_catalog_queries_and_table_functions() {
        // psql's policy lookup is answered by the compatibility parser's own list: untouched.
        let policy = "SELECT pol.polname, pol.polpermissive,
  CASE WHEN pol.polroles = '{0}' THEN NULL ELSE pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',') END,
  pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
  pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid),
  CASE pol.polcmd
    WHEN 'r' THEN 'SELECT'
    WHEN 'a' THEN 'INSERT'
    WHEN 'w' THEN 'UPDATE'
    WHEN 'd' THEN 'DELETE'
    END AS cmd
FROM pg_catalog.pg_policy pol
WHERE pol.polrelid = '16384' ORDER BY 1;";
        assert_eq!(rw(policy), policy);
        assert_eq!(rw("select x from pg_catalog.unnest(a) x"), "SELECT x FROM (SELECT unnest(a) AS \"x\") AS x");
    }

    #[test]
    fn an_empty_subquery_keeps_its_parameters() {
        assert_eq!(
            rw("select (select json_build_object($2::VARCHAR, s.a, $3, 1) from pg_sequence s where s.r = NULL) from t"),
            "SELECT CASE WHEN false THEN json_build_object($2::VARCHAR, $3) END FROM t"
        );
    }

    #[test]
    fn outer_conditions_leave_the_subquery() {
        assert_eq!(
            rw("select (select d.x from pg_attrdef d where a.has and d.r = a.r) from pg_attribute a"),
            "SELECT CASE WHEN a.has THEN (SELECT max(d.x) FROM pg_attrdef d WHERE d.r = a.r) END FROM pg_attribute a"
        );
    }

    #[test]
    fn subscripts_and_typed_parameters() {
        assert_eq!(
            rw("select unnest(c.conkey), generate_subscripts(c.conkey, 1) from c"),
            "SELECT unnest(c.conkey), unnest(range(1, CAST(coalesce(array_length(c.conkey, 1), 0) AS BIGINT) + 1)) AS \"generate_subscripts\" FROM c"
        );
        assert_eq!(
            rw("select 1 from t where d >= $1 and e = $2"),
            "SELECT 1 FROM t WHERE d >= CAST($1 AS TIMESTAMP WITH TIME ZONE) AND e = $2"
        );
    }
}
