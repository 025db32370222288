//! Server-side cursors (`DECLARE`, `FETCH`, `CLOSE`), which psycopg's named cursors and BI
//! tools use for big results.
//!
//! Adapted from `datafusion-postgres` 0.19's `CursorStatementHook` (Apache-2.0), with the fix we
//! carry: its cursors kept no plan, so a Describe of the cursor's portal (psycopg does one) or
//! of a `FETCH` statement in the extended protocol reported no columns, and the client failed on
//! the data rows that followed. Here the cursor's portal keeps its plan, and a `FETCH` is planned
//! with the schema of the cursor's query (remembered in the connection's metadata).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{CloseCursor, DeclareType, FetchDirection, Ident, Statement, Value};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::results::{QueryResponse, Response, Tag};
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::PortalStore;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;

/// Metadata key prefix under which a connection remembers its cursors' queries.
const META: &str = "bhavstore.cursor.";

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
}

async fn plan_query(ctx: &SessionContext, sql: &str) -> PgWireResult<(Statement, LogicalPlan)> {
    let state = ctx.state();
    let statement = state
        .sql_to_statement(sql, &datafusion::config::Dialect::PostgreSQL)
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let DfStatement::Statement(inner) = &statement else {
        return Err(user_error("42601", "a cursor needs a query".into()));
    };
    let inner = (**inner).clone();
    let plan = state.statement_to_plan(statement).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    super::guard::check_plan(&plan)?;
    Ok((inner, plan))
}

/// The cursor hook.
#[derive(Debug)]
pub struct CursorHook;

#[async_trait]
impl QueryHook for CursorHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        run(statement, ctx, client).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        let schema = match statement {
            // The cursor's query is planned here so its parameters ($1 ...) are known when the
            // client binds them; the DECLARE itself returns no columns.
            Statement::Declare { stmts } if stmts.len() == 1 && stmts[0].for_query.is_some() => {
                let sql = stmts[0].for_query.as_ref().map(ToString::to_string).unwrap_or_default();
                let wrapped = plan_query(ctx, &sql).await.and_then(|(_, plan)| {
                    datafusion::logical_expr::LogicalPlanBuilder::from(plan)
                        .project(Vec::<datafusion::prelude::Expr>::new())
                        .and_then(datafusion::logical_expr::LogicalPlanBuilder::build)
                        .map_err(|e| PgWireError::ApiError(Box::new(e)))
                });
                return Some(wrapped);
            }
            Statement::Declare { .. } | Statement::Close { .. } => Arc::new(DFSchema::empty()),
            Statement::Fetch { name, .. } => {
                let Some(sql) = client.metadata().get(&format!("{META}{}", name.value)).cloned() else {
                    return Some(Err(missing(&name.value)));
                };
                match plan_query(ctx, &sql).await {
                    Ok((_, plan)) => Arc::clone(plan.schema()),
                    Err(e) => return Some(Err(e)),
                }
            }
            _ => return None,
        };
        Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema })))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Declare { stmts } => Some(declare(stmts, ctx, client, Some(params)).await),
            _ => run(statement, ctx, client).await,
        }
    }
}

async fn run(
    statement: &Statement,
    ctx: &SessionContext,
    client: &mut dyn HookClient,
) -> Option<PgWireResult<Response>> {
    match statement {
        Statement::Declare { stmts } => Some(declare(stmts, ctx, client, None).await),
        Statement::Fetch { name, direction, .. } => Some(fetch(client, name, direction).await),
        Statement::Close { cursor } => Some(Ok(close(client, cursor))),
        _ => None,
    }
}

fn missing(name: &str) -> PgWireError {
    user_error("34000", format!("cursor \"{name}\" does not exist"))
}

async fn declare(
    stmts: &[datafusion::sql::sqlparser::ast::Declare],
    ctx: &SessionContext,
    client: &mut dyn HookClient,
    params: Option<&ParamValues>,
) -> PgWireResult<Response> {
    for d in stmts {
        if d.declare_type != Some(DeclareType::Cursor) {
            return Err(user_error("0A000", "only DECLARE ... CURSOR is supported".into()));
        }
        let Some(name) = d.names.first().map(|n| n.value.clone()) else {
            return Err(user_error("42601", "DECLARE CURSOR needs a name".into()));
        };
        let Some(query) = &d.for_query else {
            return Err(user_error("42601", "DECLARE CURSOR needs a FOR query".into()));
        };
        let sql = query.to_string();
        let (statement, plan) = plan_query(ctx, &sql).await?;
        let plan = match params {
            Some(p) => plan.replace_params_with_values(p).map_err(|e| PgWireError::ApiError(Box::new(e)))?,
            None => plan,
        };
        let plan = super::compat::types::signed_output(plan).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let frame = ctx.execute_logical_plan(plan.clone()).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let response = df::encode_dataframe(frame, &Format::UnifiedText, None).await?;
        let stored = Arc::new(StoredStatement::new(name.clone(), (sql.clone(), Some((statement, plan))), vec![]));
        let portal = Portal::new_cursor(name.clone(), stored);
        portal.start(response).await;
        client.portal_store().put_portal(Arc::new(portal));
        client.metadata_mut().insert(format!("{META}{name}"), sql);
    }
    Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
}

async fn fetch(client: &mut dyn HookClient, name: &Ident, direction: &FetchDirection) -> PgWireResult<Response> {
    let count = |v: &Value| match v {
        Value::Number(s, _) => s.parse::<usize>().ok(),
        _ => None,
    };
    let max_rows: Option<usize> = match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => Some(1),
        FetchDirection::Forward { limit: Some(v) } | FetchDirection::Count { limit: v } => count(v),
        FetchDirection::ForwardAll | FetchDirection::All => None,
        _ => return Err(user_error("55000", "cursors are forward-only (NO SCROLL)".into())),
    };
    let portal = match client.portal_store().get_portal(&name.value) {
        Some(entry) => match entry.value() {
            Some(p) => Arc::clone(p),
            None => return Err(missing(&name.value)),
        },
        None => return Err(missing(&name.value)),
    };
    let state = portal.state();
    let taken = std::mem::replace(&mut *state.lock().await, PortalExecutionState::Finished);
    let rows = match taken {
        PortalExecutionState::Suspended(rows) => rows,
        PortalExecutionState::Finished => QueryResponse::new(Arc::new(Vec::new()), futures::stream::empty()),
        PortalExecutionState::Initial => return Err(PgWireError::PortalNotStarted),
    };
    let schema = rows.row_schema();
    let stream = CursorRows { state, rows: Some(rows), left: max_rows };
    Ok(Response::Query(QueryResponse::new(schema, stream)))
}

/// Up to `left` rows of a cursor (all when `None`), streamed; the rest goes back to the cursor's
/// portal when this is dropped. `FETCH ALL` of a large cursor never holds more than a batch.
struct CursorRows {
    state: Arc<tokio::sync::Mutex<PortalExecutionState>>,
    rows: Option<QueryResponse>,
    left: Option<usize>,
}

impl futures::Stream for CursorRows {
    type Item = PgWireResult<DataRow>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use futures::StreamExt;
        if self.left == Some(0) {
            return std::task::Poll::Ready(None);
        }
        let Some(rows) = self.rows.as_mut() else { return std::task::Poll::Ready(None) };
        match rows.data_rows.poll_next_unpin(cx) {
            std::task::Poll::Ready(Some(row)) => {
                if let Some(n) = self.left.as_mut() {
                    *n -= 1;
                }
                std::task::Poll::Ready(Some(row))
            }
            std::task::Poll::Ready(None) => {
                self.rows = None;
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl Drop for CursorRows {
    fn drop(&mut self) {
        // Rows remain: the cursor stays open on them. Nothing else holds the portal's state
        // while a FETCH of it is being sent.
        if let Some(rows) = self.rows.take()
            && let Ok(mut state) = self.state.try_lock()
        {
            *state = PortalExecutionState::Suspended(rows);
        }
    }
}

fn close(client: &mut dyn HookClient, cursor: &CloseCursor) -> Response {
    match cursor {
        CloseCursor::All => {
            client.portal_store().clear_portals();
            client.metadata_mut().retain(|k, _| !k.starts_with(META));
        }
        CloseCursor::Specific { name } => {
            client.portal_store().rm_portal(&name.value);
            client.metadata_mut().remove(&format!("{META}{}", name.value));
        }
    }
    Response::Execution(Tag::new("CLOSE CURSOR"))
}
