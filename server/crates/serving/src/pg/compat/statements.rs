//! Session statements drivers send that change no data, answered as Postgres answers them:
//! * `SAVEPOINT`, `RELEASE`, `ROLLBACK TO` (psycopg's nested transactions, SQLAlchemy's
//!   `begin_nested`): a read-only transaction has nothing to undo, so they only check that a
//!   transaction is open;
//! * `PREPARE name AS query`, `EXECUTE name(args)`, `DEALLOCATE`: SQL-level prepared
//!   statements, kept per connection; the query is checked read-only when it runs;
//! * `UNLISTEN`, `RESET ALL` (asyncpg's pool reset): nothing is listened to, and the settings
//!   a client can change go back to their defaults;
//! * `SHOW server_version` / `server_version_num`: the one version of [`super::functions`].
//!
//! `LISTEN` and `NOTIFY` are refused with `0A000`: there are no notifications.

use std::ops::ControlFlow;

use async_trait::async_trait;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Expr, Statement, Value, ValueWithSpan, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::{Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;
use std::sync::Arc;

/// Metadata key prefix under which a connection keeps its prepared statements' text.
const PREPARED: &str = "bhavstore.prepared.";

/// Metadata keys of settings a client may change, cleared by `RESET ALL`.
const RESETTABLE: &[&str] = &["statement_timeout_ms", "timezone"];

fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message.into())))
}

fn no_transaction(what: &str) -> PgWireError {
    error("25P01", format!("{what} can only be used in transaction blocks"))
}

fn aborted() -> PgWireError {
    error("25P02", "current transaction is aborted, commands ignored until end of transaction block")
}

/// A plan with no columns and no rows, for statements answered by a hook or at Execute.
#[must_use]
pub fn empty_plan() -> LogicalPlan {
    LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema: Arc::new(DFSchema::empty()) })
}

/// Whether `sql` is a `ROLLBACK TO [SAVEPOINT] x`, which takes a failed transaction back to
/// the savepoint (the wire layer must then report the transaction open again, not failed).
#[must_use]
pub fn is_rollback_to(sql: &str) -> bool {
    let words: Vec<String> = sql.split_whitespace().take(2).map(str::to_ascii_uppercase).collect();
    matches!(words.as_slice(), [a, b] if (a == "ROLLBACK" || a == "ABORT") && b == "TO")
}

/// `MOVE [direction] [FROM | IN] cursor` (which the SQL parser does not know) as the `FETCH`
/// that reads the same rows, and the cursor's name; the caller counts and drops the rows.
#[must_use]
pub fn move_as_fetch(sql: &str) -> Option<(String, String)> {
    let text = sql.trim().trim_end_matches(';').trim();
    let (first, rest) = text.split_once(char::is_whitespace)?;
    if !first.eq_ignore_ascii_case("MOVE") {
        return None;
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (&cursor, before) = words.split_last()?;
    let has_from = before.last().is_some_and(|w| w.eq_ignore_ascii_case("FROM") || w.eq_ignore_ascii_case("IN"));
    let direction = if has_from { &before[..before.len() - 1] } else { before };
    let fetch = format!("FETCH {} FROM {cursor}", direction.join(" "));
    Some((fetch, cursor.trim_matches('"').to_string()))
}

/// The cursor a `FETCH` reads, when the statement is one.
#[must_use]
pub fn fetch_target(sql: &str) -> Option<String> {
    let text = sql.trim().trim_end_matches(';').trim();
    let (first, _) = text.split_once(char::is_whitespace)?;
    if !first.eq_ignore_ascii_case("FETCH") {
        return None;
    }
    text.split_whitespace().last().map(|c| c.trim_matches('"').to_string())
}

/// Statements this hook answers itself (the read-only guard lets them through).
#[must_use]
pub fn handles(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Rollback { savepoint: Some(_), .. }
            | Statement::Prepare { .. }
            | Statement::Execute { .. }
            | Statement::Deallocate { .. }
            | Statement::UNLISTEN { .. }
            | Statement::LISTEN { .. }
            | Statement::NOTIFY { .. }
            | Statement::Reset(_)
    ) || server_version_variable(statement).is_some()
        || is_show_timezone(statement)
}

fn is_show_timezone(statement: &Statement) -> bool {
    let Statement::ShowVariable { variable } = statement else { return false };
    let name = variable.iter().map(|i| i.value.to_ascii_lowercase()).collect::<Vec<_>>().join(" ");
    name == "timezone" || name == "time zone"
}

/// `SHOW x` of a setting with a fixed value here ([`super::catalog::SETTINGS`]).
fn server_version_variable(statement: &Statement) -> Option<String> {
    let Statement::ShowVariable { variable } = statement else { return None };
    let name = variable.iter().map(|i| i.value.to_ascii_lowercase()).collect::<Vec<_>>().join(" ");
    super::catalog::setting(&name)
}

/// The compatibility hook; runs first.
#[derive(Debug)]
pub struct CompatHook;

#[async_trait]
impl QueryHook for CompatHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !handles(statement) {
            return None;
        }
        Some(answer(statement, ctx, client).await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match statement {
            // Planned here so the client's Describe sees the prepared query's columns.
            Statement::Execute { .. } => Some(execute_plan(statement, ctx, client.metadata()).await),
            // The value's column, so the client's Describe sees it (JDBC reads the isolation level
            // this way).
            s if let Some((name, value)) = show_value(s, client.metadata()) => {
                Some(show_plan(ctx, &name, &value).await)
            }
            s if handles(s) => Some(Ok(empty_plan())),
            _ => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // An EXECUTE runs through the default path, which encodes its rows in the formats the
        // client's Bind asked for.
        if !handles(statement) || matches!(statement, Statement::Execute { .. }) {
            return None;
        }
        Some(answer(statement, ctx, client).await)
    }
}

async fn answer(statement: &Statement, ctx: &SessionContext, client: &mut dyn HookClient) -> PgWireResult<Response> {
    let status = client.transaction_status();
    let in_transaction = |what: &str| match status {
        TransactionStatus::Idle => Err(no_transaction(what)),
        TransactionStatus::Error => Err(aborted()),
        TransactionStatus::Transaction => Ok(()),
    };
    match statement {
        Statement::Savepoint { .. } => {
            in_transaction("SAVEPOINT")?;
            Ok(Response::Execution(Tag::new("SAVEPOINT")))
        }
        Statement::ReleaseSavepoint { .. } => {
            in_transaction("RELEASE SAVEPOINT")?;
            Ok(Response::Execution(Tag::new("RELEASE")))
        }
        Statement::Rollback { .. } => match status {
            TransactionStatus::Idle => Err(no_transaction("ROLLBACK TO SAVEPOINT")),
            _ => Ok(Response::Execution(Tag::new("ROLLBACK"))),
        },
        Statement::Prepare { name, statement: inner, .. } => {
            if status == TransactionStatus::Error {
                return Err(aborted());
            }
            let key = format!("{PREPARED}{}", name.value);
            if client.metadata().contains_key(&key) {
                return Err(error("42P05", format!("prepared statement \"{}\" already exists", name.value)));
            }
            if !matches!(**inner, Statement::Query(_)) {
                return Err(super::super::guard::refusal("PREPARE of a statement other than a query"));
            }
            // Planned now so a wrong query fails at PREPARE, as in Postgres.
            let mut probe = (**inner).clone();
            bind_nulls(&mut probe);
            plan_checked(ctx, probe).await?;
            client.metadata_mut().insert(key, inner.to_string());
            Ok(Response::Execution(Tag::new("PREPARE")))
        }
        Statement::Execute { .. } => {
            if status == TransactionStatus::Error {
                return Err(aborted());
            }
            let plan = execute_plan(statement, ctx, client.metadata()).await?;
            let frame = ctx.execute_logical_plan(plan).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            let options = Arc::new(pgwire::types::format::FormatOptions::from_client_metadata(client.metadata()));
            Ok(Response::Query(df::encode_dataframe(frame, &Format::UnifiedText, Some(options)).await?))
        }
        Statement::Deallocate { name, .. } => {
            if name.value.eq_ignore_ascii_case("all") {
                client.metadata_mut().retain(|k, _| !k.starts_with(PREPARED));
            } else if client.metadata_mut().remove(&format!("{PREPARED}{}", name.value)).is_none() {
                return Err(error("26000", format!("prepared statement \"{}\" does not exist", name.value)));
            }
            Ok(Response::Execution(Tag::new("DEALLOCATE")))
        }
        Statement::UNLISTEN { .. } => Ok(Response::Execution(Tag::new("UNLISTEN"))),
        Statement::LISTEN { .. } | Statement::NOTIFY { .. } => {
            Err(error("0A000", "LISTEN and NOTIFY are not supported: bhavstore sends no notifications"))
        }
        Statement::Reset(_) => {
            let m = client.metadata_mut();
            for k in RESETTABLE {
                m.remove(*k);
            }
            Ok(Response::Execution(Tag::new("RESET")))
        }
        other => match show_value(other, client.metadata()) {
            Some((name, value)) => {
                let plan = show_plan(ctx, &name, &value).await?;
                let frame = ctx.execute_logical_plan(plan).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                Ok(Response::Query(df::encode_dataframe(frame, &Format::UnifiedText, None).await?))
            }
            None => Err(error("0A000", "statement not supported")),
        },
    }
}

/// The one-row plan `SHOW` answers with: the value under the setting's name.
async fn show_plan(ctx: &SessionContext, name: &str, value: &str) -> PgWireResult<LogicalPlan> {
    let sql = format!("SELECT '{}' AS \"{name}\"", value.replace('\'', "''"));
    ctx.state().create_logical_plan(&sql).await.map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// The column name and value `SHOW` answers for a setting this module knows.
fn show_value(statement: &Statement, metadata: &std::collections::HashMap<String, String>) -> Option<(String, String)> {
    let Statement::ShowVariable { variable } = statement else { return None };
    let name = variable.iter().map(|i| i.value.to_ascii_lowercase()).collect::<Vec<_>>().join("_");
    let column = match name.as_str() {
        "transaction_isolation_level" => "transaction_isolation".to_string(),
        "time_zone" => "timezone".to_string(),
        _ => name,
    };
    let value = if is_show_timezone(statement) {
        metadata.get("timezone").cloned().unwrap_or_else(|| "UTC".into())
    } else {
        server_version_variable(statement)?
    };
    Some((column, value))
}

/// The plan of `EXECUTE name(args)`: the prepared query with its `$n` replaced by the
/// arguments.
async fn execute_plan(
    statement: &Statement,
    ctx: &SessionContext,
    metadata: &std::collections::HashMap<String, String>,
) -> PgWireResult<LogicalPlan> {
    let Statement::Execute { name: Some(name), parameters, .. } = statement else {
        return Err(error("42601", "EXECUTE needs the name of a prepared statement"));
    };
    let key = name.to_string().trim_matches('"').to_string();
    let Some(sql) = metadata.get(&format!("{PREPARED}{key}")) else {
        return Err(error("26000", format!("prepared statement \"{key}\" does not exist")));
    };
    let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let Some(mut query) = parsed.pop() else { return Err(error("26000", "empty prepared statement")) };
    let mut missing = None;
    let _ = visit_expressions_mut(&mut query, |e| {
        if let Expr::Value(ValueWithSpan { value: Value::Placeholder(p), .. }) = e
            && let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
        {
            match n.checked_sub(1).and_then(|i| parameters.get(i)) {
                Some(arg) => *e = Expr::Nested(Box::new(arg.clone())),
                None => missing = Some(n),
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if let Some(n) = missing {
        return Err(error(
            "42P02",
            format!("there is no parameter ${n}: EXECUTE {key} gives {} arguments", parameters.len()),
        ));
    }
    plan_checked(ctx, query).await
}

/// Replaces every `$n` with NULL, to check that a prepared query plans.
fn bind_nulls(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |e| {
        if matches!(e, Expr::Value(ValueWithSpan { value: Value::Placeholder(_), .. })) {
            *e = Expr::Value(Value::Null.into());
        }
        ControlFlow::<()>::Continue(())
    });
}

async fn plan_checked(ctx: &SessionContext, statement: Statement) -> PgWireResult<LogicalPlan> {
    let plan = ctx
        .state()
        .statement_to_plan(DfStatement::Statement(Box::new(statement)))
        .await
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    super::super::guard::check_plan(&plan)?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0)
    }

    #[test]
    fn recognises_its_statements() {
        for sql in [
            "SAVEPOINT a",
            "RELEASE SAVEPOINT a",
            "ROLLBACK TO SAVEPOINT a",
            "PREPARE p AS SELECT $1",
            "EXECUTE p(1)",
            "DEALLOCATE p",
            "DEALLOCATE ALL",
            "UNLISTEN *",
            "RESET ALL",
            "SHOW server_version",
        ] {
            assert!(handles(&parse(sql)), "{sql}");
        }
        assert!(!handles(&parse("ROLLBACK")));
        assert!(handles(&parse("SHOW timezone")));
        assert!(!handles(&parse("SHOW datafusion.execution.batch_size")));
        assert!(is_rollback_to("rollback  to savepoint x"));
        assert_eq!(
            move_as_fetch("MOVE FORWARD 3 __asyncpg_portal_d__"),
            Some(("FETCH FORWARD 3 FROM __asyncpg_portal_d__".into(), "__asyncpg_portal_d__".into()))
        );
        assert_eq!(move_as_fetch("move 5 in \"c\";"), Some(("FETCH 5 FROM \"c\"".into(), "c".into())));
        assert_eq!(move_as_fetch("select 1"), None);
        assert_eq!(fetch_target("FETCH 10 FROM c1"), Some("c1".into()));
        assert!(!is_rollback_to("rollback"));
    }
}
