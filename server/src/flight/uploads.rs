//! Session-scoped uploads: Flight SQL bulk ingestion (`CommandStatementIngest`, ADBC's
//! `adbc_ingest(..., temporary=True)`) into the `temp` catalog of the caller's session. They
//! exist so a training job can send its (entity, timestamp) spine for `features_asof`; they live
//! in memory only, are visible only to the session that made them (a handshake token, a basic
//! user, or the anonymous session), and never touch storage. Persistent ingestion is refused:
//! data enters bhavstore through `ingest` and `materialize` only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
/// Memory one session may hold in uploads.
const SESSION_LIMIT_BYTES: usize = 4 << 30;
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
#[derive(Default)]
pub struct Uploads {
    sessions: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads").finish_non_exhaustive()
    }
}

impl Uploads {
    /// `base`, plus the `temp` catalog of `session` when it has uploads.
    pub fn context(&self, base: &SessionContext, session: &str) -> SessionContext {
        let catalog = {
            let Ok(mut sessions) = self.sessions.lock() else { return base.clone() };
            let now = Instant::now();
            sessions.retain(|_, s| now.duration_since(s.used) < IDLE);
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

    /// Stores `batches` as `temp.public.<table>` of `session`; returns the rows stored.
    pub fn ingest(
        &self,
        session: &str,
        cmd: &CommandStatementIngest,
        batches: Vec<RecordBatch>,
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
        let table = cmd.table.trim();
        if table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Status::invalid_argument("upload table names are letters, digits and _"));
        }
        let Some(first) = batches.first() else {
            return Err(Status::invalid_argument("an upload needs at least one batch"));
        };
        let schema = first.schema();
        let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let (if_exists, if_not_exist) =
            cmd.table_definition_options.map_or((TableExistsOption::Fail, TableNotExistOption::Create), |o| {
                (
                    TableExistsOption::try_from(o.if_exists).unwrap_or(TableExistsOption::Fail),
                    TableNotExistOption::try_from(o.if_not_exist).unwrap_or(TableNotExistOption::Create),
                )
            });
        let mut sessions = self.sessions.lock().map_err(|_| Status::internal("upload table poisoned"))?;
        let s = sessions.entry(session.to_string()).or_insert_with(|| {
            let catalog = Arc::new(MemoryCatalogProvider::new());
            let schema = Arc::new(MemorySchemaProvider::new());
            let _ = catalog.register_schema("public", Arc::clone(&schema) as Arc<dyn SchemaProvider>);
            Session { catalog, schema, bytes: HashMap::new(), data: HashMap::new(), used: Instant::now() }
        });
        s.used = Instant::now();
        let exists = s.schema.table_exist(table);
        let mut all = batches;
        match (exists, if_exists, if_not_exist) {
            (false, _, TableNotExistOption::Fail) => {
                return Err(Status::not_found(format!("{CATALOG}.public.{table} does not exist")));
            }
            (true, TableExistsOption::Fail | TableExistsOption::Unspecified, _) => {
                return Err(Status::already_exists(format!(
                    "{CATALOG}.public.{table} exists (use mode replace or append)"
                )));
            }
            (true, TableExistsOption::Append, _) => {
                let mut previous = s.data.get(table).cloned().unwrap_or_default();
                previous.extend(all);
                all = previous;
                let _ = s.schema.deregister_table(table);
            }
            _ => {
                let _ = s.schema.deregister_table(table);
            }
        }
        let others: usize = s.bytes.iter().filter(|(k, _)| k.as_str() != table).map(|(_, v)| v).sum();
        let total_bytes: usize = all.iter().map(RecordBatch::get_array_memory_size).sum::<usize>().max(bytes);
        if others + total_bytes > SESSION_LIMIT_BYTES {
            return Err(Status::resource_exhausted(format!(
                "uploads of one session are limited to {} GiB",
                SESSION_LIMIT_BYTES >> 30
            )));
        }
        let mem = MemTable::try_new(schema, vec![all.clone()]).map_err(|e| Status::invalid_argument(e.to_string()))?;
        s.schema.register_table(table.to_string(), Arc::new(mem)).map_err(|e| Status::internal(e.to_string()))?;
        s.bytes.insert(table.to_string(), total_bytes);
        s.data.insert(table.to_string(), all);
        tracing::info!(session = %short(session), table, rows, bytes = total_bytes, "temporary upload stored");
        Ok(i64::try_from(rows).unwrap_or(i64::MAX))
    }
}

/// A session key safe to log.
fn short(session: &str) -> String {
    session.chars().take(12).collect()
}
