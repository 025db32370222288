//! Result column names as Postgres chooses them (its `FigureColname`): `count` for
//! `count(*)`, `?column?` for an expression, the column for a column or a cast of one.
//! DataFusion names columns after the whole expression (`count(*)`, `Int64(1)`), which breaks
//! code that reads results by name (`row["count"]`, pandas columns).
//!
//! Names are given to the fields the client sees, not to the plan: Postgres allows two result
//! columns of the same name, DataFusion's plans do not.

use datafusion::sql::sqlparser::ast::{
    DataType as SqlType, Expr, Function, Query, SelectItem, SetExpr, Statement, Value, ValueWithSpan,
};

/// The name Postgres gives each result column of `statement`, in order, or `None` where the
/// engine's own name is right (named items, wildcards) or the statement is not a query.
/// `None` for the whole statement when its columns cannot be lined up with its select list.
#[must_use]
pub fn result_names(statement: &Statement) -> Option<Vec<Option<String>>> {
    match statement {
        Statement::Query(q) => query_names(q),
        _ => None,
    }
}

fn query_names(query: &Query) -> Option<Vec<Option<String>>> {
    body_names(&query.body)
}

fn body_names(body: &SetExpr) -> Option<Vec<Option<String>>> {
    match body {
        SetExpr::Select(select) => {
            // A wildcard expands to an unknown number of columns.
            if select
                .projection
                .iter()
                .any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)))
            {
                return None;
            }
            Some(select_item_names(&select.projection))
        }
        // The first branch names the columns of a set operation.
        SetExpr::SetOperation { left, .. } => body_names(left),
        SetExpr::Query(q) => query_names(q),
        _ => None,
    }
}

/// The Postgres name of each item of a select list without wildcards (`None`: named by its
/// alias).
#[must_use]
pub fn select_item_names(projection: &[SelectItem]) -> Vec<Option<String>> {
    projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some(expr_name(e).unwrap_or_else(|| "?column?".to_string())),
            SelectItem::ExprWithAlias { expr, alias } if alias.value.starts_with(super::rewrite::DUPLICATE_ALIAS) => {
                Some(expr_name(expr).unwrap_or_else(|| "?column?".to_string()))
            }
            _ => None,
        })
        .collect()
}

/// The name of one expression, or `None` for Postgres' `?column?`.
fn expr_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        Expr::Function(f) => Some(function_name(f)),
        Expr::Cast { expr, data_type, .. } => expr_name(expr).or_else(|| Some(type_name(data_type))),
        Expr::Nested(inner) => expr_name(inner),
        Expr::Case { .. } => Some("case".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::Subquery(q) => query_names(q).and_then(|n| n.into_iter().next().flatten()),
        Expr::Extract { .. } => Some("extract".into()),
        Expr::Substring { .. } => Some("substring".into()),
        Expr::Trim { .. } => Some("btrim".into()),
        Expr::Position { .. } => Some("position".into()),
        Expr::Overlay { .. } => Some("overlay".into()),
        Expr::Ceil { .. } => Some("ceil".into()),
        Expr::Floor { .. } => Some("floor".into()),
        Expr::TypedString(t) => Some(type_name(&t.data_type)),
        Expr::Value(ValueWithSpan { value: Value::Null | Value::Boolean(_), .. }) => None,
        _ => None,
    }
}

fn function_name(f: &Function) -> String {
    let name = f.name.0.last().map(ToString::to_string).unwrap_or_default();
    let unquoted = name.trim_matches('"');
    match unquoted.to_ascii_lowercase().as_str() {
        // SQL value functions: Postgres names them as written.
        "current_user" | "session_user" | "current_role" | "user" | "current_date" | "current_time"
        | "current_timestamp" | "localtime" | "localtimestamp" | "current_catalog" | "current_schema" => {
            unquoted.to_ascii_lowercase()
        }
        "coalesce" | "greatest" | "least" | "nullif" => unquoted.to_ascii_lowercase(),
        _ if name.starts_with('"') => unquoted.to_string(),
        lower => lower.to_string(),
    }
}

/// The name Postgres gives a cast of something unnamed: its type's internal name.
fn type_name(t: &SqlType) -> String {
    use SqlType as T;
    match t {
        T::Int(_) | T::Integer(_) | T::Int4(_) => "int4".into(),
        T::BigInt(_) | T::Int8(_) => "int8".into(),
        T::SmallInt(_) | T::Int2(_) => "int2".into(),
        T::Real | T::Float4 => "float4".into(),
        T::Double(_) | T::DoublePrecision | T::Float8 => "float8".into(),
        T::Boolean | T::Bool => "bool".into(),
        T::Text => "text".into(),
        T::Varchar(_) | T::CharacterVarying(_) => "varchar".into(),
        T::Char(_) | T::Character(_) => "bpchar".into(),
        T::Numeric(_) | T::Decimal(_) => "numeric".into(),
        T::Date => "date".into(),
        T::Timestamp(_, tz) => {
            if matches!(
                tz,
                datafusion::sql::sqlparser::ast::TimezoneInfo::WithTimeZone
                    | datafusion::sql::sqlparser::ast::TimezoneInfo::Tz
            ) {
                "timestamptz".into()
            } else {
                "timestamp".into()
            }
        }
        T::Interval { .. } => "interval".into(),
        T::Custom(name, _) => name.0.last().map(|p| p.to_string().trim_matches('"').to_string()).unwrap_or_default(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn names(sql: &str) -> Option<Vec<Option<String>>> {
        let s = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        result_names(&s[0])
    }

    fn some(v: &[&str]) -> Option<Vec<Option<String>>> {
        Some(v.iter().map(|s| if s.is_empty() { None } else { Some((*s).to_string()) }).collect())
    }

    #[test]
    fn names_as_postgres_gives_them() {
        assert_eq!(
            names("select count(*), 1, 1+1, max(close) from t"),
            some(&["count", "?column?", "?column?", "max"])
        );
        assert_eq!(
            names("select close, t.open, x::int, '1'::int, now()"),
            some(&["close", "open", "x", "int4", "now"])
        );
        assert_eq!(names("select a as b, case when a then 1 end, current_user"), some(&["", "case", "current_user"]));
        assert_eq!(names("select 1 union select 2"), some(&["?column?"]));
        assert_eq!(names("select (select max(x) from t), exists(select 1)"), some(&["max", "exists"]));
        assert_eq!(names("select *, 1 from t"), None);
        assert_eq!(names("show timezone"), None);
    }
}
