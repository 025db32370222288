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

use super::auth::Startup;
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
        let inner = DfSessionService::new_with_hooks(Arc::new(ctx.clone()), shared.hooks.clone());
        let parser = Arc::new(CheckedParser { inner: inner.query_parser(), limits: TextLimits::of(&ctx) });
        Self {
            queries: Arc::new(Queries { inner, ctx, conn: Arc::clone(&conn), parser }),
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
        self.inner.parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}

/// Query handling of one connection.
pub(super) struct Queries {
    inner: DfSessionService,
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
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        bhavstore_query::sqlguard::check_text(query, &self.parser.limits).map_err(|e| text_error(&e))?;
        let timeout = self.conn.statement_timeout(client.metadata());
        let mut interrupt = self.conn.interrupt(timeout);
        let responses = if super::copy::is_copy(query) {
            vec![guarded(&mut interrupt, super::copy::copy_to_stdout(&self.ctx, query)).await?]
        } else {
            super::guard::precheck(query)?;
            guarded(&mut interrupt, <DfSessionService as SimpleQueryHandler>::do_query(&self.inner, client, query))
                .await?
        };
        Ok(responses.into_iter().map(|r| self.guard(r, timeout)).collect())
    }
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
