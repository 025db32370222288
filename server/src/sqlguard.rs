//! The read-only rule every SQL protocol applies: a client statement is planned, and the plan
//! must not contain DDL, DML, COPY or session statements. Protocols add their own allow-lists
//! of statement kinds on top (see [`crate::pg::guard`]).

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

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

/// Plans `sql`, which must be one query (or `EXPLAIN` of one), and checks it only reads.
pub async fn plan_query(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan, GuardError> {
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
