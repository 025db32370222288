//! The per-connection handler set pgwire asks for.
//!
//! On top of `datafusion-postgres`' session service this layer:
//! * refuses statements that are too long or nest too deep before anything parses them;
//! * answers `COPY ... TO STDOUT` before its parser (which does not accept COPY);
//! * stops a statement on a cancel request, its timeout, or its client going away, in planning
//!   and while rows stream;
//! * streams the rows of an extended-protocol portal to the client as they are produced. pgwire's
//!   own `Execute` collects every row of a portal without a row limit before sending the first
//!   (hundreds of MiB for one large result); here only `max_rows` rows are ever held.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_postgres::DfSessionService;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_execution_response};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, DEFAULT_NAME, ErrorHandler, PgWireConnectionState,
    PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::extendedquery::{Execute, PortalSuspended};
use pgwire::messages::response::EmptyQueryResponse;

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::arrow_pg::datatypes::df;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::HookClient;

use super::auth::Startup;
use super::compat;
use super::session::{CancelRegistry, Connection, Guarded, guarded};
use bhavstore_query::sqlguard::{GuardError, TextLimits};

/// What every connection of a listener shares.
pub(super) struct Shared {
    /// The server session (catalog, memory pool, statement limits).
    pub ctx: SessionContext,
    /// Per-query sessions come from here.
    pub engine: crate::serve::Engine,
    /// Query hooks, read-only first.
    pub hooks: Vec<Arc<dyn datafusion_postgres::QueryHook>>,
    /// Logins.
    pub users: Option<Arc<super::auth::ScramUsers>>,
    /// pgwire's registry of connections (cancel keys).
    pub manager: Arc<ConnectionManager>,
    /// Our registry of connections, for cancel requests.
    pub registry: Arc<CancelRegistry>,
    /// Open connections per user.
    pub user_slots: Arc<super::session::UserSlots>,
}

/// What one connection uses.
pub(super) struct Handlers {
    queries: Arc<Queries>,
    startup: Arc<Startup>,
    cancel: Arc<Cancel>,
}

impl Handlers {
    pub(super) fn new(shared: &Shared, conn: Arc<Connection>) -> Self {
        // Each connection runs its statements one at a time, in a session with its own memory
        // pool: the per-query cap holds for everything the connection has open.
        let ctx = shared.engine.query_session(&shared.ctx);
        // Postgres sessions have a time zone (UTC here): `now()` and `timestamptz` values and
        // parameters carry it, as clients expect of `timestamp with time zone`.
        ctx.state_ref().write().config_mut().options_mut().execution.time_zone = Some("UTC".to_string());
        let inner = DfSessionService::new_with_hooks(Arc::new(ctx.clone()), shared.hooks.clone());
        let parser = Arc::new(CheckedParser { inner: inner.query_parser(), limits: TextLimits::of(&ctx) });
        Self {
            queries: Arc::new(Queries {
                inner,
                sql_parser: PostgresCompatibilityParser::new(),
                hooks: shared.hooks.clone(),
                ctx,
                conn: Arc::clone(&conn),
                parser,
            }),
            startup: Arc::new(Startup::new(
                shared.users.as_ref(),
                Arc::clone(&shared.manager),
                Arc::clone(&shared.user_slots),
                conn,
            )),
            cancel: Arc::new(Cancel {
                pgwire: DefaultCancelHandler::new(Arc::clone(&shared.manager)),
                registry: Arc::clone(&shared.registry),
            }),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(super::errors::SqlStateErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// Cancel requests: they interrupt the target connection's statement wherever it is (planning
/// or streaming rows), not only while pgwire waits for the first response.
struct Cancel {
    pgwire: DefaultCancelHandler,
    registry: Arc<CancelRegistry>,
}

#[async_trait]
impl CancelHandler for Cancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let found = self.registry.cancel(request.pid, &request.secret_key);
        tracing::info!(pid = request.pid, found, "postgres cancel request");
        self.pgwire.on_cancel_request(request).await;
    }
}

/// A refusal of [`bhavstore_query::sqlguard::check_text`] as a Postgres error.
fn text_error(e: &GuardError) -> PgWireError {
    let code = e.sqlstate().unwrap_or("54000");
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), e.to_string())))
}

/// `datafusion-postgres`' parser, behind the statement text limits.
pub(super) struct CheckedParser {
    inner: Arc<datafusion_postgres::Parser>,
    limits: TextLimits,
}

#[async_trait]
impl QueryParser for CheckedParser {
    type Statement = <datafusion_postgres::Parser as QueryParser>::Statement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        bhavstore_query::sqlguard::check_text(sql, &self.limits).map_err(|e| text_error(&e))?;
        tracing::debug!(sql, protocol = "extended", "postgres statement");
        // COPY is answered at Execute by [`super::copy`]; here it only needs to parse.
        if super::copy::is_copy(sql) {
            let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .map_err(|e| PgWireError::ApiError(Box::new(e)))?
                .into_iter()
                .next();
            return Ok(statement.map(|s| (sql.to_string(), Some((s, compat::statements::empty_plan())))));
        }
        let user = client.metadata().get(pgwire::api::METADATA_USER).cloned().unwrap_or_default();
        let cx = compat::rewrite::Context { user: &user, param_types: types };
        let rewritten = compat::rewrite::rewrite_sql(sql, &cx);
        let parsed = self.inner.parse_sql(client, rewritten.as_deref().unwrap_or(sql), types).await?;
        Ok(match parsed {
            Some((text, Some((statement, plan)))) if matches!(statement, Statement::Query(_)) => {
                let plan = compat::types::signed_output(plan).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                Some((text, Some((statement, plan))))
            }
            other => other,
        })
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let fields = self.inner.get_result_schema(stmt, column_format)?;
        let names = stmt.1.as_ref().and_then(|(s, _)| compat::names::result_names(s));
        Ok(rename(fields, names.as_deref()))
    }
}

/// Query handling of one connection.
pub(super) struct Queries {
    inner: DfSessionService,
    sql_parser: PostgresCompatibilityParser,
    hooks: Vec<Arc<dyn datafusion_postgres::QueryHook>>,
    ctx: SessionContext,
    conn: Arc<Connection>,
    parser: Arc<CheckedParser>,
}

impl Queries {
    /// Wraps a response's rows so they stop when the statement is interrupted.
    fn guard(&self, response: Response, timeout: Option<std::time::Duration>) -> Response {
        match response {
            Response::Query(mut q) => {
                let rows = std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
                q.data_rows = Box::pin(Guarded::new(rows, self.conn.interrupt(timeout)));
                Response::Query(q)
            }
            Response::CopyOut(mut c) => {
                let data = std::mem::replace(&mut c.data_stream, Box::pin(futures::stream::empty()));
                c.data_stream = Box::pin(Guarded::new(data, self.conn.interrupt(timeout)));
                Response::CopyOut(c)
            }
            other => other,
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn on_query<C>(&self, client: &mut C, query: pgwire::messages::simplequery::Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // `ROLLBACK TO SAVEPOINT` takes a failed transaction back to an open one; pgwire only
        // moves a transaction's status forward, so it is set here, before the statement runs.
        if compat::statements::is_rollback_to(&query.query)
            && client.transaction_status() == pgwire::messages::response::TransactionStatus::Error
        {
            client.set_transaction_status(pgwire::messages::response::TransactionStatus::Transaction);
        }
        self._on_query(client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        bhavstore_query::sqlguard::check_text(query, &self.parser.limits).map_err(|e| text_error(&e))?;
        tracing::debug!(sql = query, protocol = "simple", "postgres statement");
        let timeout = self.conn.statement_timeout(client.metadata());
        let mut interrupt = self.conn.interrupt(timeout);
        let responses = if super::copy::is_copy(query) {
            vec![guarded(&mut interrupt, super::copy::copy_to_stdout(&self.ctx, query)).await?]
        } else if let Some((fetch, portal)) = compat::statements::move_as_fetch(query) {
            guarded(&mut interrupt, self.start_portal(client as &mut dyn HookClient, &portal)).await?;
            let fetched = guarded(&mut interrupt, self.run_simple(client, &fetch)).await?;
            let mut moved = Vec::with_capacity(fetched.len());
            for r in fetched {
                moved.push(match r {
                    Response::Query(mut rows) => {
                        let mut n = 0usize;
                        while let Some(row) = rows.data_rows.next().await {
                            row?;
                            n += 1;
                        }
                        Response::Execution(Tag::new("MOVE").with_rows(n))
                    }
                    other => other,
                });
            }
            moved
        } else {
            super::guard::precheck(query)?;
            if let Some(portal) = compat::statements::fetch_target(query) {
                guarded(&mut interrupt, self.start_portal(client as &mut dyn HookClient, &portal)).await?;
            }
            guarded(&mut interrupt, self.run_simple(client, query)).await?
        };
        Ok(responses.into_iter().map(|r| self.guard(r, timeout)).collect())
    }
}

impl Queries {
    /// The simple protocol: each statement through the hooks (read-only guard, cursors,
    /// settings, transactions, compatibility), else planned and run with Postgres' result
    /// names and types.
    async fn run_simple<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let api = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
        let user = client.metadata().get(pgwire::api::METADATA_USER).cloned().unwrap_or_default();
        let rewritten =
            compat::rewrite::rewrite_sql(query, &compat::rewrite::Context { user: &user, param_types: &[] });
        let statements = self
            .sql_parser
            .parse(rewritten.as_deref().unwrap_or(query))
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut out = Vec::with_capacity(statements.len());
        'statement: for statement in statements {
            for hook in &self.hooks {
                if let Some(r) = hook.handle_simple_query(&statement, &self.ctx, client).await {
                    out.push(r?);
                    continue 'statement;
                }
            }
            let names = compat::names::result_names(&statement);
            let plan = self
                .ctx
                .state()
                .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(statement)))
                .await
                .map_err(api)?;
            let plan = compat::types::signed_output(plan).map_err(api)?;
            let frame = self.ctx.execute_logical_plan(plan).await.map_err(api)?;
            let options = Arc::new(pgwire::types::format::FormatOptions::from_client_metadata(client.metadata()));
            let mut rows = df::encode_dataframe(frame, &Format::UnifiedText, Some(options)).await?;
            rows.row_schema = Arc::new(rename((*rows.row_schema).clone(), names.as_deref()));
            out.push(Response::Query(rows));
        }
        Ok(out)
    }

    /// A portal bound through the extended protocol and not executed yet, started so that
    /// `FETCH` and `MOVE` can read it as Postgres lets them (asyncpg's cursors do).
    async fn start_portal(&self, client: &mut dyn HookClient, name: &str) -> PgWireResult<()> {
        let api = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
        let Some(Entry::Value(portal)) = client.portal_store().get_portal(name) else { return Ok(()) };
        let state = portal.state();
        if !matches!(*state.lock().await, PortalExecutionState::Initial) {
            return Ok(());
        }
        let Some((_, plan)) = portal.statement.statement.1.as_ref() else { return Ok(()) };
        let mut types: Vec<(usize, Option<datafusion::arrow::datatypes::DataType>)> = plan
            .get_parameter_types()
            .map_err(api)?
            .into_iter()
            .filter_map(|(id, t)| id.trim_start_matches('$').parse().ok().map(|n| (n, t)))
            .collect();
        types.sort_by_key(|(n, _)| *n);
        let refs: Vec<Option<&datafusion::arrow::datatypes::DataType>> =
            types.iter().map(|(_, t)| t.as_ref()).collect();
        let params = df::deserialize_parameters(portal.as_ref(), &refs)?;
        let plan = plan.clone().replace_params_with_values(&params).map_err(api)?;
        let plan = compat::types::signed_output(plan).map_err(api)?;
        let frame = self.ctx.execute_logical_plan(plan).await.map_err(api)?;
        let options = Arc::new(pgwire::types::format::FormatOptions::from_client_metadata(client.metadata()));
        let rows = df::encode_dataframe(frame, &portal.result_column_format, Some(options)).await?;
        *state.lock().await = PortalExecutionState::Suspended(rows);
        Ok(())
    }
}

/// `fields` with the names Postgres would give them, where [`compat::names`] knows one.
fn rename(fields: Vec<FieldInfo>, names: Option<&[Option<String>]>) -> Vec<FieldInfo> {
    let Some(names) = names.filter(|n| n.len() == fields.len()) else { return fields };
    fields
        .into_iter()
        .zip(names)
        .map(|(f, name)| match name {
            Some(name) if name != f.name() => {
                FieldInfo::new(name.clone(), f.table_id(), f.column_id(), f.datatype().clone(), f.format())
                    .with_format_options(Arc::clone(f.format_options()))
                    .with_type_size(f.type_size())
                    .with_type_modifier(f.type_modifier())
            }
            _ => f,
        })
        .collect()
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = CheckedParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let timeout = self.conn.statement_timeout(client.metadata());
        let mut interrupt = self.conn.interrupt(timeout);
        if super::copy::is_copy(&portal.statement.statement.0) {
            let copy = super::copy::copy_to_stdout(&self.ctx, &portal.statement.statement.0);
            return Ok(self.guard(guarded(&mut interrupt, copy).await?, timeout));
        }
        let response = guarded(
            &mut interrupt,
            <DfSessionService as ExtendedQueryHandler>::do_query(&self.inner, client, portal, max_rows),
        )
        .await?;
        Ok(self.guard(response, timeout))
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let mut transaction = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let max_rows = usize::try_from(message.max_rows).unwrap_or(0);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(p)) => p,
            Some(Entry::Empty) => {
                client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
                client.set_state(PgWireConnectionState::ReadyForQuery);
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(name.to_owned())),
        };
        let state = portal.state();
        let started = !matches!(*state.lock().await, PortalExecutionState::Initial);
        let rows = if started {
            // A suspended portal: take its rows out; they go back if some remain.
            match std::mem::replace(&mut *state.lock().await, PortalExecutionState::Finished) {
                PortalExecutionState::Suspended(rows) => Some(rows),
                _ => Some(QueryResponse::new(Arc::new(Vec::new()), futures::stream::empty())),
            }
        } else {
            match <Self as ExtendedQueryHandler>::do_query(self, client, portal.as_ref(), max_rows).await? {
                Response::Query(rows) => {
                    *state.lock().await = PortalExecutionState::Finished;
                    Some(rows)
                }
                Response::EmptyQuery => {
                    client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
                    None
                }
                Response::Execution(tag) => {
                    send_execution_response(client, tag).await?;
                    None
                }
                Response::TransactionStart(tag) => {
                    send_execution_response(client, tag).await?;
                    transaction = transaction.to_in_transaction_state();
                    None
                }
                Response::TransactionEnd(tag) => {
                    send_execution_response(client, tag).await?;
                    transaction = transaction.to_idle_state();
                    client.portal_store().rm_portal(DEFAULT_NAME);
                    None
                }
                Response::Error(e) => {
                    client.send(PgWireBackendMessage::ErrorResponse((*e).into())).await?;
                    transaction = transaction.to_error_state();
                    None
                }
                Response::CopyOut(c) => {
                    pgwire::api::copy::send_copy_out_response(client, c).await?;
                    None
                }
                Response::CopyIn(_) | Response::CopyBoth(_) => {
                    return Err(super::guard::refusal("COPY FROM"));
                }
            }
        };
        if let Some(rows) = rows
            && let Some(rest) = send_rows(client, rows, max_rows).await?
        {
            *state.lock().await = PortalExecutionState::Suspended(rest);
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(transaction);
        Ok(())
    }
}

/// Sends up to `max_rows` rows (all when 0) as they come; returns the response when rows
/// remain (the portal is suspended).
async fn send_rows<C>(
    client: &mut C,
    mut response: QueryResponse,
    max_rows: usize,
) -> PgWireResult<Option<QueryResponse>>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let tag = response.command_tag().to_owned();
    let mut sent = 0usize;
    loop {
        if max_rows > 0 && sent >= max_rows {
            client.send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new())).await?;
            return Ok(Some(response));
        }
        match response.data_rows.next().await {
            // `feed` buffers; the codec flushes the buffer as it fills, so memory stays bounded.
            Some(row) => {
                client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                sent += 1;
            }
            None => {
                let done = Tag::new(&tag).with_rows(sent);
                client.send(PgWireBackendMessage::CommandComplete(done.into())).await?;
                return Ok(None);
            }
        }
    }
}
