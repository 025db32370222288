//! Query resources: one memory pool for every SQL query of the server, a share of it per query,
//! and a bounded spill directory.
//!
//! DataFusion accounts the memory of operators that hold data (sorts, joins, aggregations,
//! windows) in a [`MemoryPool`]. The server's pool ([`FairSpillPool`]) caps all queries
//! together and gives spilling operators a fair share; each query (a Postgres session, a Flight
//! call) gets a [`QueryPool`] in front of it that caps that query alone. Over either cap a sort
//! or join spills to disk where DataFusion can; what cannot spill fails with
//! `ResourcesExhausted` (SQLSTATE 53200), and other queries carry on.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};
use datafusion::prelude::SessionContext;

use super::limits::{ByteSize, LimitsConfig};
use bhavstore_query::sqlguard::TextLimits;

/// The memory of one query, drawn from the server's pool.
#[derive(Debug)]
pub struct QueryPool {
    server: Arc<dyn MemoryPool>,
    server_limit: ByteSize,
    limit: usize,
    used: AtomicUsize,
}

impl QueryPool {
    /// A pool of at most `limit` bytes inside `server`.
    #[must_use]
    pub fn new(server: Arc<dyn MemoryPool>, server_limit: ByteSize, limit: usize) -> Self {
        Self { server, server_limit, limit, used: AtomicUsize::new(0) }
    }
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query pool ({} of {} used)", ByteSize(self.reserved() as u64), ByteSize(self.limit as u64))
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "bhavstore-query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.server.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.server.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.server.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.server.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let before = self.used.fetch_add(additional, Ordering::Relaxed);
        if before.saturating_add(additional) > self.limit {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "query memory limit reached: {} wants {} more with {} already held, over the limit of {} per \
                 query (server.limits.query_memory); sorts and joins spill to disk, but this operator cannot. \
                 Filter or aggregate more in SQL",
                reservation.consumer().name(),
                ByteSize(additional as u64),
                ByteSize(before as u64),
                ByteSize(self.limit as u64),
            )));
        }
        if let Err(e) = self.server.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            tracing::debug!(error = %e, "server memory pool refused a reservation");
            return Err(DataFusionError::ResourcesExhausted(format!(
                "server query memory limit reached: {} wants {} more, but queries together may hold at most {} \
                 (server.limits.query_memory_total) and the rest is in use; try again when other queries finish",
                reservation.consumer().name(),
                ByteSize(additional as u64),
                self.server_limit,
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

/// Errors setting up the query engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// DataFusion refused the runtime (e.g. an unusable spill directory).
    #[error("query runtime: {0}")]
    Runtime(#[from] DataFusionError),
}

/// The server's query resources.
#[derive(Debug, Clone)]
pub struct Engine {
    limits: LimitsConfig,
    server_pool: Arc<dyn MemoryPool>,
}

impl Engine {
    /// Resources for `limits`.
    #[must_use]
    pub fn new(limits: &LimitsConfig) -> Self {
        let server_pool: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(limits.query_memory_total.as_usize()));
        Self { limits: limits.clone(), server_pool }
    }

    /// The limits.
    #[must_use]
    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// Memory held by all queries now.
    #[must_use]
    pub fn reserved(&self) -> usize {
        self.server_pool.reserved()
    }

    /// `base` with the server's pool, a bounded spill directory and the statement limits: the
    /// session every protocol derives its per-query sessions from. Catalogs are shared.
    pub fn server_session(&self, base: &SessionContext) -> Result<SessionContext, EngineError> {
        let state = base.state();
        let mut disk = DiskManagerBuilder::default().with_max_temp_directory_size(self.limits.spill_disk.0);
        if let Some(dir) = &self.limits.spill_dir {
            disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.into()]));
        }
        let mut runtime = state.runtime_env().as_ref().clone();
        runtime.memory_pool = Arc::clone(&self.server_pool);
        runtime.disk_manager = Arc::new(disk.build()?);
        let runtime = Arc::new(runtime);
        let text = TextLimits {
            max_bytes: self.limits.max_statement_bytes.as_usize(),
            max_depth: self.limits.max_expression_depth,
        };
        // The catalogs exist already: building must not create (and register over them) a new
        // default catalog.
        let mut config = state.config().clone().with_create_default_catalog_and_schema(false);
        config.set_extension(Arc::new(text));
        let state = SessionStateBuilder::new_from_existing(state).with_config(config).with_runtime_env(runtime).build();
        Ok(SessionContext::new_with_state(state))
    }

    /// A session for one query (or one Postgres connection, whose statements run one at a
    /// time): `server` with a [`QueryPool`] of its own.
    #[must_use]
    pub fn query_session(&self, server: &SessionContext) -> SessionContext {
        let state = server.state();
        let mut runtime = state.runtime_env().as_ref().clone();
        runtime.memory_pool = Arc::new(QueryPool::new(
            Arc::clone(&self.server_pool),
            self.limits.query_memory_total,
            self.limits.query_memory.as_usize(),
        ));
        let state = SessionStateBuilder::new_from_existing(state).with_runtime_env(Arc::new(runtime)).build();
        SessionContext::new_with_state(state)
    }
}

/// What a panic inside the query engine said, for the log: the statement that hit it gets an
/// internal error and its connection goes on (see `pg::session` and `flight::service`).
#[must_use]
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pool_caps_one_query_and_the_server() {
        let server: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(1000));
        let a: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(Arc::clone(&server), ByteSize(1000), 600));
        let b: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(Arc::clone(&server), ByteSize(1000), 600));
        let ra = MemoryConsumer::new("a").register(&a);
        let rb = MemoryConsumer::new("b").register(&b);
        ra.try_grow(500).unwrap();
        let e = ra.try_grow(200).unwrap_err().to_string();
        assert!(e.contains("query_memory"), "{e}");
        assert_eq!(a.reserved(), 500);
        // b fits its own cap but not the server's remaining 500.
        let e = rb.try_grow(550).unwrap_err().to_string();
        assert!(e.contains("query_memory_total"), "{e}");
        rb.try_grow(400).unwrap();
        assert_eq!(server.reserved(), 900);
        assert!(rb.try_grow(150).is_err());
        drop(ra);
        assert_eq!(server.reserved(), 400);
        // 150 more did not fit the server (100 left) while a held its share.
        rb.try_grow(150).unwrap();
    }
}
