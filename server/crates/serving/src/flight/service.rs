//! The `FlightSqlService` implementation.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, SqlNullOrdering,
    SqlSupportedCaseSensitivity, SqlSupportedTransaction, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::common::ParamValues;
use datafusion::datasource::TableType;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use std::future::Future;
use std::time::Duration;
use tonic::{Request, Response, Status, Streaming};

use super::auth::FlightAuth;
use super::handle::Handle;
use super::uploads::Uploads;
use crate::serve::Engine;
use crate::serve::listener::ConnInfo;
use bhavstore_query::sqlguard::GuardError;

type DoGetStream = <BhavFlightSql as FlightService>::DoGetStream;

/// Flight SQL over a bhavstore catalog.
#[derive(Clone)]
pub struct BhavFlightSql {
    ctx: SessionContext,
    engine: Engine,
    auth: Arc<FlightAuth>,
    info: Arc<SqlInfoData>,
    uploads: Arc<Uploads>,
    intraday: Option<bhavstore_intraday::Intraday>,
}

impl BhavFlightSql {
    /// Serves the server session `ctx`; each call runs in a session of its own from `engine`.
    #[must_use]
    pub fn new(ctx: SessionContext, engine: Engine, auth: Arc<FlightAuth>) -> Self {
        let limits = engine.limits();
        let uploads =
            Arc::new(Uploads::new(limits.upload_bytes_per_session.as_usize(), limits.upload_bytes_total.as_usize()));
        Self { ctx, engine, auth, info: Arc::new(sql_info()), uploads, intraday: None }
    }

    /// Accepts bulk ingest into `intraday_bars` through `intraday`.
    #[must_use]
    pub fn with_intraday(mut self, intraday: Option<bhavstore_intraday::Intraday>) -> Self {
        self.intraday = intraday;
        self
    }

    /// The uploads of every session (dropped per connection when it closes).
    #[must_use]
    pub fn uploads(&self) -> Arc<Uploads> {
        Arc::clone(&self.uploads)
    }

    /// Which session a call belongs to: the session a handshake opened (its bearer token), or
    /// else the connection the call came on.
    fn session_key<T>(&self, request: &Request<T>) -> String {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        if let Some(token) = header.and_then(crate::serve::authorization::bearer)
            && self.auth.is_session(token)
        {
            return format!("session:{token}");
        }
        match request.extensions().get::<ConnInfo>() {
            Some(c) => connection_key(c.id),
            None => "connection:unknown".to_string(),
        }
    }

    /// The catalog as the caller's session sees it (with its uploads), with a memory pool of
    /// the call's own.
    fn session<T>(&self, request: &Request<T>) -> SessionContext {
        let ctx = self.engine.query_session(&self.ctx);
        self.uploads.context(&ctx, &self.session_key(request))
    }

    /// How long the call may run: the client's gRPC deadline, else the server's default, never
    /// above the server's maximum.
    fn timeout<T>(&self, request: &Request<T>) -> Option<Duration> {
        let asked = request.metadata().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
        self.engine.limits().statement_timeout(asked)
    }

    /// Plans a client statement: read-only, within the text limits, its `?` placeholders
    /// numbered `$1..$n` in order.
    async fn plan(ctx: &SessionContext, sql: &str, timeout: Option<Duration>) -> Result<LogicalPlan, Status> {
        let sql = super::qmark::positional(sql)?;
        let planning = bhavstore_query::sqlguard::plan_query(ctx, &sql);
        match timeout {
            Some(t) => tokio::time::timeout(t, planning).await.map_err(|_| deadline(t))?.map_err(guard_status),
            None => planning.await.map_err(guard_status),
        }
    }

    /// Executes a handle: once, or once per row of its bound parameters, in row order. The
    /// stream ends with `DEADLINE_EXCEEDED` when the call runs out of time, and stops (with the
    /// query behind it) when the client goes away.
    async fn execute(
        &self,
        ctx: &SessionContext,
        handle: &Handle,
        timeout: Option<Duration>,
    ) -> Result<(SchemaRef, SendableStream), Status> {
        let started = tokio::time::Instant::now();
        let plan = Self::plan(ctx, &handle.sql, timeout).await?;
        let schema = wire_schema(plan.schema().inner());
        let params = handle.params()?;
        let stream = if params.is_empty() {
            wire_stream(Self::run(ctx, plan).await?, Arc::clone(&schema))
        } else {
            let rows = super::params::bind_rows(&plan, &params, self.engine.limits().max_parameter_rows)?;
            // Optimized once with its placeholders; each row only substitutes values and plans
            // the physical side, so thousands of rows do not each pay for the optimizer.
            let state = ctx.state();
            let optimized = state.optimize(&plan).map_err(engine_status)?;
            let out = Arc::clone(&schema);
            let runs = futures::stream::iter(rows)
                .map(move |values| {
                    let state = state.clone();
                    let optimized = optimized.clone();
                    async move {
                        let bound = optimized.with_param_values(ParamValues::from(values))?;
                        let physical = state.query_planner().create_physical_plan(&bound, &state).await?;
                        datafusion::physical_plan::execute_stream(physical, state.task_ctx())
                    }
                })
                .buffered(2)
                .map_err(|e| FlightError::Tonic(Box::new(engine_status(e))))
                .map_ok(move |s| wire_stream(s, Arc::clone(&out)))
                .try_flatten();
            Box::pin(runs)
        };
        let stream = catch_panics(stream);
        let stream: SendableStream = match timeout {
            Some(t) => Box::pin(WithDeadline::new(stream, started + t, t)),
            None => stream,
        };
        Ok((schema, stream))
    }

    /// An "update" (`executemany`, `execute_update`) of a handle. A statement that would write
    /// is refused as read-only by planning, before any row runs. A query runs once per bound
    /// row (or once without parameters) with its rows discarded, so a bad value or a failing
    /// row is reported as it would be by a fetch; it changes no records, so the count is 0.
    async fn update(&self, ctx: &SessionContext, handle: &Handle, timeout: Option<Duration>) -> Result<i64, Status> {
        let (_, mut stream) = self.execute(ctx, handle, timeout).await?;
        while let Some(batch) = stream.next().await {
            batch.map_err(Status::from)?;
        }
        Ok(0)
    }

    async fn run(ctx: &SessionContext, plan: LogicalPlan) -> Result<SendableRecordBatchStream, Status> {
        let frame = ctx.execute_logical_plan(plan).await.map_err(engine_status)?;
        frame.execute_stream().await.map_err(engine_status)
    }

    fn info_for(&self, schema: &Schema, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
        FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("encoding the schema: {e}")))
            .map(|i| i.with_endpoint(endpoint).with_descriptor(descriptor).with_ordered(true))
    }

    async fn tables_batch(&self, query: CommandGetTables) -> Result<RecordBatch, Status> {
        let mut builder = query.into_builder();
        for catalog_name in self.ctx.catalog_names() {
            let Some(catalog) = self.ctx.catalog(&catalog_name) else { continue };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                let mut names = schema.table_names();
                names.sort();
                for name in names {
                    let Ok(Some(table)) = schema.table(&name).await else { continue };
                    let kind = match table.table_type() {
                        TableType::View => "VIEW",
                        TableType::Temporary => "LOCAL TEMPORARY",
                        TableType::Base => "TABLE",
                    };
                    builder
                        .append(&catalog_name, &schema_name, &name, kind, &wire_schema(&table.schema()))
                        .map_err(|e| Status::internal(e.to_string()))?;
                }
            }
        }
        builder.build().map_err(|e| Status::internal(e.to_string()))
    }
}

type SendableStream =
    Pin<Box<dyn Stream<Item = Result<RecordBatch, arrow_flight::error::FlightError>> + Send + 'static>>;

/// The schema clients receive: view types become their plain forms, which every Arrow reader
/// (older pyarrow, polars, the ADBC driver, JDBC) understands.
fn wire_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            f.as_ref().clone().with_data_type(t)
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn wire_stream(stream: SendableRecordBatchStream, schema: SchemaRef) -> SendableStream {
    Box::pin(stream.map(move |batch| {
        // Engine errors reach the client classified and without internals, like planning errors.
        let batch = batch.map_err(|e| FlightError::Tonic(Box::new(engine_status(e))))?;
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| if c.data_type() == f.data_type() { Ok(Arc::clone(c)) } else { cast(c, f.data_type()) })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
    }))
}

fn encode(schema: SchemaRef, batches: SendableStream) -> Response<DoGetStream> {
    let stream = FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from);
    Response::new(Box::pin(stream))
}

fn one_batch<E: std::fmt::Display>(batch: Result<RecordBatch, E>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let schema = batch.schema();
    Ok(encode(schema, Box::pin(futures::stream::once(async { Ok(batch) }))))
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: Result<IpcMessage, _> = SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    message.map(|IpcMessage(b)| b).map_err(|e| Status::internal(format!("encoding a schema: {e}")))
}

/// Refusals and engine errors as gRPC statuses, without internals.
fn guard_status(e: GuardError) -> Status {
    match e {
        GuardError::ReadOnly(_) => Status::permission_denied(e.to_string()),
        GuardError::TooLong { .. } | GuardError::TooComplex { .. } => Status::invalid_argument(e.to_string()),
        GuardError::Engine(e) => engine_status(e),
    }
}

/// An engine error as a gRPC status, by its SQLSTATE.
pub(super) fn engine_status(e: datafusion::error::DataFusionError) -> Status {
    let (code, message) = crate::pg::errors::classify(&e);
    match code {
        "42P01" | "42703" => Status::not_found(message),
        "0A000" => Status::unimplemented(message),
        c if c.starts_with("53") => Status::resource_exhausted(message),
        "58030" | "XX000" => Status::internal(message),
        _ => Status::invalid_argument(message),
    }
}

fn deadline(t: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the call ran past its deadline of {} ms (gRPC deadline, server.limits.statement_timeout_secs)",
        t.as_millis()
    ))
}

/// `grpc-timeout` as gRPC writes it: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The session key of the uploads of connection `id`.
#[must_use]
pub(super) fn connection_key(id: u64) -> String {
    format!("connection:{id}")
}

/// Ends the stream with `INTERNAL` if the engine panics while producing it: the connection
/// and the server go on (a bug in one operator must not take other calls with it).
fn catch_panics(stream: SendableStream) -> SendableStream {
    Box::pin(std::panic::AssertUnwindSafe(stream).catch_unwind().map(|r| {
        r.unwrap_or_else(|p| {
            let what = crate::serve::engine::panic_message(p.as_ref());
            tracing::error!(panic = %what, "the query engine panicked while running a Flight call");
            Err(FlightError::Tonic(Box::new(Status::internal(
                "internal error while running the statement (logged on the server); try a simpler form",
            ))))
        })
    }))
}

/// A result stream that ends with `DEADLINE_EXCEEDED` at its deadline, dropping the query.
struct WithDeadline {
    inner: Option<SendableStream>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl WithDeadline {
    fn new(inner: SendableStream, at: tokio::time::Instant, timeout: Duration) -> Self {
        Self { inner: Some(inner), sleep: Box::pin(tokio::time::sleep_until(at)), timeout }
    }
}

impl Stream for WithDeadline {
    type Item = Result<RecordBatch, FlightError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else { return std::task::Poll::Ready(None) };
        if let std::task::Poll::Ready(item) = inner.as_mut().poll_next(cx) {
            return std::task::Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.inner = None;
            let t = self.timeout;
            tracing::info!(timeout_ms = t.as_millis(), "flight call stopped at its deadline");
            return std::task::Poll::Ready(Some(Err(FlightError::Tonic(Box::new(deadline(t))))));
        }
        std::task::Poll::Pending
    }
}

fn sql_info() -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "bhavstore");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, SqlSupportedTransaction::None as i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, true);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32);
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlNullOrdering, SqlNullOrdering::SqlNullsSortedHigh as i32);
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlMaxColumnNameLength, 63_i64);
    b.append(SqlInfo::SqlMaxTableNameLength, 63_i64);
    // The builder only fails on a value of the wrong kind for its id; every id above is static.
    b.build().unwrap_or_else(|e| panic!("static SqlInfo table: {e}"))
}

#[tonic::async_trait]
impl FlightSqlService for BhavFlightSql {
    type FlightService = Self;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let user = self.auth.check(header)?;
        let token = self.auth.open_session(&user)?;
        tracing::debug!(%user, "flight handshake");
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter(vec![Ok(reply)])));
        let value = format!("Bearer {token}").parse().map_err(|_| Status::internal("token header"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let plan = Self::plan(&self.session(&request), &query.query, self.timeout(&request)).await?;
        let schema = wire_schema(plan.schema().inner());
        let ticket = TicketStatementQuery { statement_handle: Handle::new(&query.query).encode()? };
        let info = self.info_for(&schema, ticket.as_any().encode_to_vec(), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let handle = Handle::decode(&ticket.statement_handle)?;
        let (schema, stream) = self.execute(&self.session(&request), &handle, self.timeout(&request)).await?;
        Ok(encode(schema, stream))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let plan = Self::plan(&self.session(&request), &query.query, self.timeout(&request)).await?;
        let schema = wire_schema(plan.schema().inner());
        // $1, $2, ... in order ($10 after $9); `?` placeholders are numbered in order too.
        let ids = super::params::placeholders(&plan)?;
        let params = Schema::new(
            ids.into_iter().map(|(id, t)| Field::new(id, t.unwrap_or(DataType::Utf8), true)).collect::<Vec<_>>(),
        );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: Handle::new(&query.query).encode()?,
            dataset_schema: schema_bytes(&schema)?,
            parameter_schema: schema_bytes(&params)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // Handles hold no server state.
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let handle = Handle::decode(&query.prepared_statement_handle)?;
        let stream = request.into_inner().map_err(FlightError::from);
        let limits = self.engine.limits();
        let batches =
            super::params::receive(stream, limits.max_parameter_rows, limits.upload_bytes_per_session.as_usize())
                .await?;
        let handle = handle.with_params(&batches)?;
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(handle.encode()?) })
    }

    /// `executemany` / `execute_update` of a prepared statement: the bound rows are received
    /// within the same limits as for a query, then [`Self::update`].
    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let handle = Handle::decode(&query.prepared_statement_handle)?;
        let (ctx, timeout) = (self.session(&request), self.timeout(&request));
        // Refused before the parameters are read: a write never waits for its upload.
        Self::plan(&ctx, &handle.sql, timeout).await?;
        let stream = request.into_inner().map_err(FlightError::from);
        let limits = self.engine.limits();
        let batches =
            super::params::receive(stream, limits.max_parameter_rows, limits.upload_bytes_per_session.as_usize())
                .await?;
        self.update(&ctx, &handle.with_params(&batches)?, timeout).await
    }

    /// `execute_update` of a statement without preparing it: refused for a write, as above.
    async fn do_put_statement_update(
        &self,
        query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let (ctx, timeout) = (self.session(&request), self.timeout(&request));
        self.update(&ctx, &Handle::new(&query.query), timeout).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = Handle::decode(&cmd.prepared_statement_handle)?;
        let plan = Self::plan(&self.session(&request), &handle.sql, self.timeout(&request)).await?;
        // Bound parameters are checked here, where the client asks to execute, so a wrong type
        // or count is reported by `execute` and not only once the rows are fetched.
        let params = handle.params()?;
        if !params.is_empty() {
            super::params::bind_rows(&plan, &params, self.engine.limits().max_parameter_rows)?;
        }
        let schema = wire_schema(plan.schema().inner());
        let info = self.info_for(&schema, cmd.as_any().encode_to_vec(), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let handle = Handle::decode(&query.prepared_statement_handle)?;
        let (schema, stream) = self.execute(&self.session(&request), &handle, self.timeout(&request)).await?;
        Ok(encode(schema, stream))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(self.info_for(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        let mut names = self.ctx.catalog_names();
        names.sort();
        for name in names {
            builder.append(name);
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(self.info_for(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for catalog_name in self.ctx.catalog_names() {
            let Some(catalog) = self.ctx.catalog(&catalog_name) else { continue };
            let mut schemas = catalog.schema_names();
            schemas.sort();
            for schema in schemas {
                builder.append(&catalog_name, schema);
            }
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(self.info_for(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        one_batch(Ok::<_, Status>(self.tables_batch(query).await?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(self.info_for(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for t in ["LOCAL TEMPORARY", "TABLE", "VIEW"] {
            builder.append(t);
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.info).schema();
        Ok(Response::new(self.info_for(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        one_batch(query.into_builder(&self.info).build())
    }

    async fn do_put_statement_ingest(
        &self,
        cmd: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let session = self.session_key(&request);
        if !cmd.temporary && cmd.table.trim() == bhavstore_lake::bars::INTRADAY_BARS {
            let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
            if !self.auth.can_write(header.as_deref()) {
                return Err(Status::permission_denied(
                    "ingest into intraday_bars needs a user or token with the write role (server.users[].roles / server.tokens[].roles: [write])",
                ));
            }
            let stream = request.into_inner().map_err(FlightError::from);
            let batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream);
            return super::bars::ingest(self.intraday.as_ref(), &cmd, batches).await;
        }
        let stream = request.into_inner().map_err(FlightError::from);
        let batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream);
        self.uploads.receive(&session, &cmd, batches).await
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
