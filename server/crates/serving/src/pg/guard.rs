//! Read-only sessions. Postgres clients may query, explain, show settings, use cursors and set
//! their own session variables; everything that would change data, the catalog or the shared
//! engine is refused with SQLSTATE 25006 before it is planned.
//!
//! Two layers, because a statement can be dangerous in its text or in its plan:
//! * statements are allowed by kind (an allow-list, so new statement kinds are refused);
//! * queries are planned and the plan must contain no DDL, DML, COPY or session statement
//!   (`SELECT ... INTO` plans as `CREATE TABLE`).

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::results::{Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// SQLSTATE `read_only_sql_transaction`.
pub const READ_ONLY: &str = "25006";
/// SQLSTATE `insufficient_privilege`.
pub const PRIVILEGE: &str = "42501";

/// Session variables `datafusion-postgres` keeps per connection; setting them is harmless.
const CLIENT_VARIABLES: &[&str] = &[
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
];

/// The error a refused statement gets.
#[must_use]
pub fn refusal(what: &str) -> PgWireError {
    let message = bhavstore_query::sqlguard::GuardError::ReadOnly(what.to_string()).to_string();
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), READ_ONLY.into(), message)))
}

/// A [`bhavstore_query::sqlguard`] refusal or engine error as a Postgres error.
#[must_use]
pub fn from_guard(e: bhavstore_query::sqlguard::GuardError) -> PgWireError {
    use bhavstore_query::sqlguard::GuardError;
    match e {
        GuardError::ReadOnly(what) => refusal(&what),
        GuardError::Engine(e) => PgWireError::ApiError(Box::new(e)),
        e @ (GuardError::TooLong { .. } | GuardError::TooComplex { .. }) => {
            let code = e.sqlstate().unwrap_or("54000");
            PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), e.to_string())))
        }
    }
}

/// Refuses DataFusion-only statements (`CREATE EXTERNAL TABLE`, `COPY ... TO 'file'`) that the
/// Postgres parser would otherwise report as mere syntax errors. `COPY ... TO STDOUT` is
/// answered by [`super::copy`] before this is reached.
pub fn precheck(sql: &str) -> PgWireResult<()> {
    let Ok(mut parser) = DFParserBuilder::new(sql).with_dialect(&PostgreSqlDialect {}).build() else { return Ok(()) };
    let Ok(statements) = parser.parse_statements() else { return Ok(()) };
    for s in statements {
        match s {
            DfStatement::CreateExternalTable(_) => return Err(refusal("CREATE EXTERNAL TABLE")),
            DfStatement::CopyTo(_) => return Err(refusal("COPY ... TO a file")),
            DfStatement::Statement(_) | DfStatement::Explain(_) | DfStatement::Reset(_) => {}
        }
    }
    Ok(())
}

/// Whether `plan` only reads.
pub fn check_plan(plan: &LogicalPlan) -> PgWireResult<()> {
    match bhavstore_query::sqlguard::first_write(plan) {
        Some(what) => Err(refusal(&what)),
        None => Ok(()),
    }
}

async fn plan(ctx: &SessionContext, statement: &Statement) -> PgWireResult<LogicalPlan> {
    ctx.state()
        .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
        .await
        .map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// What the guard decides for a statement.
enum Verdict {
    /// Let the next hook (or the default path) handle it.
    Pass,
    /// Answer with this, doing nothing.
    Respond(Response),
}

async fn judge(statement: &Statement, ctx: &SessionContext) -> PgWireResult<Verdict> {
    use Statement as S;
    match statement {
        // Savepoints, SQL-level PREPARE/EXECUTE and friends change no data; EXECUTE's query is
        // checked when it is planned.
        s if super::compat::statements::handles(s) => Ok(Verdict::Pass),
        S::Query(_) => {
            check_plan(&plan(ctx, statement).await?)?;
            Ok(Verdict::Pass)
        }
        S::Explain { statement: inner, .. } => Box::pin(judge(inner, ctx)).await,
        S::Declare { stmts } => {
            for d in stmts {
                if let Some(q) = &d.for_query {
                    check_plan(&plan(ctx, &S::Query(q.clone())).await?)?;
                }
            }
            Ok(Verdict::Pass)
        }
        S::Fetch { .. }
        | S::Close { .. }
        | S::ShowVariable { .. }
        | S::ShowStatus { .. }
        | S::ShowCatalogs { .. }
        | S::ShowTables { .. }
        | S::ShowColumns { .. }
        | S::ShowFunctions { .. }
        | S::ShowCreate { .. }
        | S::ShowSchemas { .. }
        | S::ShowDatabases { .. }
        | S::ShowViews { .. }
        | S::StartTransaction { .. }
        | S::Commit { .. }
        | S::Rollback { .. } => Ok(Verdict::Pass),
        S::Set(set) => judge_set(set),
        S::Discard { .. } => Ok(Verdict::Respond(Response::Execution(Tag::new("DISCARD ALL")))),
        S::Deallocate { .. } => Ok(Verdict::Respond(Response::Execution(Tag::new("DEALLOCATE")))),
        S::Copy { .. } => Err(refusal("COPY other than COPY (query) TO STDOUT")),
        other => Err(refusal(&bhavstore_query::sqlguard::kind(&other.to_string()))),
    }
}

fn judge_set(set: &Set) -> PgWireResult<Verdict> {
    match set {
        Set::SingleAssignment { variable, .. } => {
            let var = variable.to_string().to_lowercase();
            if CLIENT_VARIABLES.contains(&var.as_str()) {
                Ok(Verdict::Pass)
            } else if var.starts_with("datafusion.") {
                Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".into(),
                    PRIVILEGE.into(),
                    format!("{var} is an engine setting shared by every session and cannot be changed by a client"),
                ))))
            } else {
                // Drivers set many variables at connect (client_encoding, JDBC's session
                // characteristics); they do not apply here and are accepted without effect.
                tracing::debug!(variable = %var, "SET ignored");
                Ok(Verdict::Respond(Response::Execution(Tag::new("SET"))))
            }
        }
        Set::SetTimeZone { local: false, .. } => Ok(Verdict::Pass),
        _ => Ok(Verdict::Respond(Response::Execution(Tag::new("SET")))),
    }
}

/// The read-only hook; runs before every other hook.
#[derive(Debug)]
pub struct ReadOnlyHook;

#[async_trait]
impl QueryHook for ReadOnlyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match judge(statement, ctx).await {
            Ok(Verdict::Pass) => None,
            Ok(Verdict::Respond(r)) => Some(Ok(r)),
            Err(e) => Some(Err(e)),
        }
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match statement {
            // Planned once here and checked; the default path executes this plan.
            Statement::Query(_) => Some(plan(ctx, statement).await.and_then(|p| check_plan(&p).map(|()| p))),
            _ => match judge(statement, ctx).await {
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            },
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        logical_plan: &LogicalPlan,
        _params: &ParamValues,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Other hooks plan SET and friends as session statements; those are judged by kind.
        if matches!(statement, Statement::Query(_) | Statement::Explain { .. }) {
            return check_plan(logical_plan).err().map(Err);
        }
        match judge(statement, ctx).await {
            Ok(Verdict::Pass) => None,
            Ok(Verdict::Respond(r)) => Some(Ok(r)),
            Err(e) => Some(Err(e)),
        }
    }
}
