//! Session-scoped uploads: Flight SQL bulk ingestion (`CommandStatementIngest`, ADBC's
//! `adbc_ingest(..., temporary=True)`) into the `temp` catalog of the caller's session. They
//! exist so a training job can send its (entity, timestamp) spine for `features_asof`; they live
//! in memory only, are visible only to the session that made them (the session a handshake
//! opened, or else the one connection they came on, and dropped when it closes), and never
//! touch storage. Persistent ingestion is refused: data enters bhavstore through `ingest` and
//! `materialize` only.
//!
//! Memory is bounded per session and for the whole server, and checked batch by batch while an
//! upload arrives: an upload over either cap is refused when it crosses it, not after it has
//! all been received.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::error::FlightError;
use futures::{Stream, TryStreamExt};

use arrow_flight::sql::CommandStatementIngest;
use arrow_flight::sql::{TableExistsOption, TableNotExistOption};
use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::CatalogProviderList;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use tonic::Status;

/// Name of the catalog uploads appear in (`temp.public.<table>`).
pub const CATALOG: &str = "temp";
/// Uploads of a session idle this long are dropped.
const IDLE: Duration = Duration::from_secs(2 * 3600);

struct Session {
    catalog: Arc<MemoryCatalogProvider>,
    schema: Arc<MemorySchemaProvider>,
    bytes: HashMap<String, usize>,
    /// The batches of each table (shared with its MemTable), for appends.
    data: HashMap<String, Vec<RecordBatch>>,
    used: Instant,
}

/// Every session's uploads.
pub struct Uploads {
    sessions: Mutex<HashMap<String, Session>>,
    /// Bytes held or being received by all sessions.
    total: AtomicUsize,
    per_session: usize,
    total_limit: usize,
}

impl Session {
    fn held(&self) -> usize {
        self.bytes.values().sum()
    }
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads").finish_non_exhaustive()
    }
}

impl Uploads {
    /// Uploads of at most `per_session` bytes per session and `total` for all of them.
    #[must_use]
    pub fn new(per_session: usize, total: usize) -> Self {
        Self { sessions: Mutex::new(HashMap::new()), total: AtomicUsize::new(0), per_session, total_limit: total }
    }

    /// Bytes held by all sessions.
    #[must_use]
    pub fn held(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Drops the uploads of `session` (its connection closed).
    pub fn drop_session(&self, session: &str) {
        let gone = self.sessions.lock().ok().and_then(|mut m| m.remove(session));
        if let Some(s) = gone {
            self.total.fetch_sub(s.held(), Ordering::Relaxed);
            tracing::debug!(session = %short(session), "uploads of a closed connection dropped");
        }
    }

    /// Drops sessions idle too long; returns the bytes they held.
    fn expire(&self, sessions: &mut HashMap<String, Session>) {
        let now = Instant::now();
        let mut freed = 0;
        sessions.retain(|_, s| {
            let keep = now.duration_since(s.used) < IDLE;
            if !keep {
                freed += s.held();
            }
            keep
        });
        self.total.fetch_sub(freed, Ordering::Relaxed);
    }

    /// `base`, plus the `temp` catalog of `session` when it has uploads.
    pub fn context(&self, base: &SessionContext, session: &str) -> SessionContext {
        let catalog = {
            let Ok(mut sessions) = self.sessions.lock() else { return base.clone() };
            self.expire(&mut sessions);
            let now = Instant::now();
            match sessions.get_mut(session) {
                Some(s) => {
                    s.used = now;
                    Arc::clone(&s.catalog)
                }
                None => return base.clone(),
            }
        };
        let list = Arc::new(MemoryCatalogProviderList::new());
        for name in base.catalog_names() {
            if let Some(c) = base.catalog(&name) {
                list.register_catalog(name, c);
            }
        }
        list.register_catalog(CATALOG.to_string(), catalog as Arc<dyn CatalogProvider>);
        let state = SessionStateBuilder::new_from_existing(base.state()).with_catalog_list(list).build();
        SessionContext::new_with_state(state)
    }

    /// Receives an upload into `temp.public.<table>` of `session`; returns the rows stored.
    pub async fn receive(
        &self,
        session: &str,
        cmd: &CommandStatementIngest,
        mut batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Unpin + Send,
    ) -> Result<i64, Status> {
        if !cmd.temporary {
            return Err(Status::permission_denied(
                "bhavstore is read-only: only temporary (session) uploads are accepted, e.g. \
                 adbc_ingest(..., temporary=True); data enters through `bhavstore ingest`",
            ));
        }
        if cmd.catalog.as_deref().is_some_and(|c| c != CATALOG) || cmd.schema.as_deref().is_some_and(|s| s != "public")
        {
            return Err(Status::invalid_argument(format!("uploads go to {CATALOG}.public")));
        }
        let table = cmd.table.trim().to_string();
        if table.is_empty() || table.len() > 63 || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Status::invalid_argument("upload table names are 1 to 63 letters, digits and _"));
        }
        let (if_exists, if_not_exist) =
            cmd.table_definition_options.map_or((TableExistsOption::Fail, TableNotExistOption::Create), |o| {
                (
                    TableExistsOption::try_from(o.if_exists).unwrap_or(TableExistsOption::Fail),
                    TableNotExistOption::try_from(o.if_not_exist).unwrap_or(TableNotExistOption::Create),
                )
            });
        // What the session holds in its other tables (and in this one, for an append) counts
        // against its cap while the new batches arrive.
        let (held_before, existing) = {
            let mut sessions = self.sessions.lock().map_err(|_| Status::internal("upload table poisoned"))?;
            self.expire(&mut sessions);
            match sessions.get(session) {
                Some(s) => {
                    let this = s.bytes.get(&table).copied().unwrap_or(0);
                    let keep_this = matches!(if_exists, TableExistsOption::Append) && s.bytes.contains_key(&table);
                    (s.held() - if keep_this { 0 } else { this }, s.schema.table_exist(&table))
                }
                None => (0, false),
            }
        };
        match (existing, if_exists, if_not_exist) {
            (false, _, TableNotExistOption::Fail) => {
                return Err(Status::not_found(format!("{CATALOG}.public.{table} does not exist")));
            }
            (true, TableExistsOption::Fail | TableExistsOption::Unspecified, _) => {
                return Err(Status::already_exists(format!(
                    "{CATALOG}.public.{table} exists (use mode replace or append)"
                )));
            }
            _ => {}
        }
        let mut received = Reservation { uploads: self, bytes: 0 };
        let mut new_batches = Vec::new();
        while let Some(batch) =
            batches.try_next().await.map_err(|e| Status::invalid_argument(format!("reading the upload: {e}")))?
        {
            let size = super::received_bytes(&batch);
            if held_before + received.bytes + size > self.per_session {
                return Err(Status::resource_exhausted(format!(
                    "uploads of one session are limited to {} bytes (server.limits.upload_bytes_per_session); \
                     this one passed it at {} bytes with {} bytes held by the session's other tables",
                    self.per_session,
                    received.bytes + size,
                    held_before
                )));
            }
            received.grow(size)?;
            new_batches.push(batch);
        }
        let Some(first) = new_batches.first() else {
            return Err(Status::invalid_argument("an upload needs at least one batch"));
        };
        let schema = first.schema();
        let rows: usize = new_batches.iter().map(RecordBatch::num_rows).sum();
        let mut sessions = self.sessions.lock().map_err(|_| Status::internal("upload table poisoned"))?;
        let s = sessions.entry(session.to_string()).or_insert_with(|| {
            let catalog = Arc::new(MemoryCatalogProvider::new());
            let schema = Arc::new(MemorySchemaProvider::new());
            let _ = catalog.register_schema("public", Arc::clone(&schema) as Arc<dyn SchemaProvider>);
            Session { catalog, schema, bytes: HashMap::new(), data: HashMap::new(), used: Instant::now() }
        });
        s.used = Instant::now();
        let mut all = new_batches;
        let mut bytes = received.bytes;
        if matches!(if_exists, TableExistsOption::Append) && s.schema.table_exist(&table) {
            let mut previous = s.data.get(&table).cloned().unwrap_or_default();
            previous.extend(all);
            all = previous;
            bytes += s.bytes.get(&table).copied().unwrap_or(0);
        } else if let Some(old) = s.bytes.get(&table) {
            // Replaced: what the old table held is given back.
            self.total.fetch_sub(*old, Ordering::Relaxed);
        }
        let mem = MemTable::try_new(schema, vec![all.clone()]).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let _ = s.schema.deregister_table(&table);
        s.schema.register_table(table.clone(), Arc::new(mem)).map_err(|e| Status::internal(e.to_string()))?;
        s.bytes.insert(table.clone(), bytes);
        s.data.insert(table.clone(), all);
        // The reservation now belongs to the stored table.
        received.bytes = 0;
        tracing::info!(session = %short(session), table, rows, bytes, "temporary upload stored");
        Ok(i64::try_from(rows).unwrap_or(i64::MAX))
    }
}

/// Bytes of an upload in flight, counted against the server's cap; given back unless the
/// upload is stored.
struct Reservation<'a> {
    uploads: &'a Uploads,
    bytes: usize,
}

impl Reservation<'_> {
    fn grow(&mut self, size: usize) -> Result<(), Status> {
        let before = self.uploads.total.fetch_add(size, Ordering::Relaxed);
        if before + size > self.uploads.total_limit {
            self.uploads.total.fetch_sub(size, Ordering::Relaxed);
            return Err(Status::resource_exhausted(format!(
                "temporary uploads of all sessions are limited to {} bytes (server.limits.upload_bytes_total); \
                 try again when other sessions finish",
                self.uploads.total_limit
            )));
        }
        self.bytes += size;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.uploads.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A session key safe to log.
fn short(session: &str) -> String {
    session.chars().take(12).collect()
}
