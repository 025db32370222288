//! Real-time intraday bars: every way in (REST push, Flight bulk ingest, `import-bars`) ends in
//! [`Intraday::push`], which
//!
//! 1. reads and checks each row ([`input`]): a bad row is refused with its index and reason and
//!    kept in `intraday_quarantine`, the others go on;
//! 2. hands the rows to the one log writer ([`log`]), which orders them against what is stored
//!    (a repeat is a no-op, other values for a stored key a correction with the next revision)
//!    and writes every push that arrived meanwhile as **one** create-only log segment (group
//!    commit). Only when that object exists are the bars applied in memory and the pushes
//!    acknowledged: an acknowledgement means durable, on local disk or S3;
//! 3. after the acknowledgement, recomputes the streaming feature views of the changed
//!    instruments ([`live`]) and sends the new rows to subscribers.
//!
//! [`snapshot`] folds the log into Parquet day files in the background; at start the newest
//! snapshot and the log after it are read back ([`bhavstore_lake::bars::stored::load`]), so a
//! `kill -9` at any moment loses nothing acknowledged.

pub mod config;
pub mod input;
pub mod live;
mod log;
mod snapshot;
pub mod tables;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use bhavstore_features::PreparedView;
use bhavstore_lake::LakeError;
use bhavstore_lake::bars::BarStore;
use bhavstore_lake::bars::stored::SnapshotManifest;
use bhavstore_storage::{Storage, StorageError};

pub use config::IntradayConfig;
pub use input::{Parsed, Via};
pub use live::{FeatureEvent, LiveValue, LiveView, LookupError};

/// Errors of intraday ingestion.
#[derive(Debug, thiserror::Error)]
pub enum IntradayError {
    /// Storage failed; nothing of the push was acknowledged.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading or writing the lake failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// The query engine failed.
    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    /// Another process wrote the log segment this one was about to write.
    #[error(
        "another writer appended to the intraday log (segment {seq}); only one server or import may write at a time"
    )]
    Fenced {
        /// The segment.
        seq: u64,
    },
    /// Writing the log failed; nothing of the push was acknowledged.
    #[error("writing the intraday log failed: {0}")]
    LogWrite(String),
    /// The writer has shut down.
    #[error("intraday ingestion is shutting down")]
    Closed,
    /// A push with more rows than allowed.
    #[error("{rows} rows in one push; the limit is {max} (intraday.max_rows_per_push)")]
    TooManyRows {
        /// Rows sent.
        rows: usize,
        /// The limit.
        max: usize,
    },
    /// A streaming view cannot be computed live.
    #[error("view {view} cannot be computed live: {why}")]
    View {
        /// The view.
        view: String,
        /// Why.
        why: String,
    },
    /// A lock was poisoned by a panic.
    #[error("internal state is unusable after a panic")]
    Poisoned,
}

/// What is held in memory: the bars, the log position they reflect, the snapshot in force.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) store: BarStore,
    /// The last log segment applied.
    pub(crate) seq: u64,
    pub(crate) snapshot: SnapshotManifest,
}

/// The answer to one push.
#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    /// Rows stored (new bars and corrections; repeats count too, they are already stored).
    pub accepted: usize,
    /// New keys.
    pub new: usize,
    /// Repeats of stored values: no-ops.
    pub duplicates: usize,
    /// Corrections (new revisions).
    pub corrections: usize,
    /// Refused rows: index and reason.
    pub rejected: Vec<(i64, String)>,
    /// The log segment that made the push durable (the current one if nothing needed writing).
    pub seq: u64,
    /// When it was durable, UTC microseconds.
    pub durable_at: i64,
}

pub(crate) struct Request {
    parsed: Parsed,
    reply: oneshot::Sender<Result<PushOutcome, IntradayError>>,
}

/// Changed instruments (earliest changed start) after log segment `seq`.
pub(crate) struct Changes {
    seq: u64,
    first: HashMap<Arc<str>, i64>,
}

pub(crate) struct Inner {
    storage: Storage,
    cfg: IntradayConfig,
    state: RwLock<State>,
    durable: watch::Sender<u64>,
    computed: watch::Sender<u64>,
    views: Vec<Arc<LiveView>>,
    events: broadcast::Sender<FeatureEvent>,
    snapshot_lock: tokio::sync::Mutex<()>,
}

/// Intraday ingestion and its live views. Cheap to clone.
#[derive(Clone)]
pub struct Intraday {
    inner: Arc<Inner>,
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Intraday {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intraday").field("storage", &self.inner.storage.display()).finish_non_exhaustive()
    }
}

/// Figures for `/health` and logs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IntradayStatus {
    /// Bars held.
    pub bars: usize,
    /// Instruments with bars.
    pub instruments: usize,
    /// Refused rows kept.
    pub quarantined: usize,
    /// The last durable log segment.
    pub durable_seq: u64,
    /// The last segment whose bars every live view has computed.
    pub features_through_seq: u64,
    /// The log segment the newest snapshot holds.
    pub snapshot_seq: u64,
}

impl Intraday {
    /// Reads what storage holds (newest snapshot, then the log after it), computes the streaming
    /// views among `views` over it, and starts the log writer, the live engine and (with a
    /// non-zero interval) the snapshot timer.
    pub async fn open(storage: &Storage, cfg: &IntradayConfig, views: &[PreparedView]) -> Result<Self, IntradayError> {
        let started = std::time::Instant::now();
        let loaded = bhavstore_lake::bars::stored::load(storage).await?;
        tracing::info!(
            bars = loaded.store.len(),
            instruments = loaded.store.instrument_count(),
            snapshot_seq = loaded.snapshot.as_ref().map_or(0, |s| s.wal_seq),
            replayed_segments = loaded.segments,
            last_seq = loaded.last_seq,
            ms = started.elapsed().as_millis() as u64,
            "intraday bars loaded"
        );
        let mut live = Vec::new();
        for pv in views.iter().filter(|pv| pv.analysis.tables.contains(bhavstore_lake::bars::INTRADAY_BARS)) {
            // A view over the bars that cannot run live is still a SQL view over them, computed
            // when queried; it is just not streamed.
            match LiveView::new(storage, pv, cfg.compute_partitions).await {
                Ok(v) => live.push(Arc::new(v)),
                Err(IntradayError::View { view, why }) => {
                    tracing::warn!(view, reason = %why, "not computed live (queried from intraday_bars when read)");
                }
                Err(e) => return Err(e),
            }
        }
        let seq = loaded.last_seq;
        let state = State { store: loaded.store, seq, snapshot: loaded.snapshot.unwrap_or_default() };
        let (events, _) = broadcast::channel(cfg.stream_buffer.max(16));
        let inner = Arc::new(Inner {
            storage: storage.clone(),
            cfg: cfg.clone(),
            state: RwLock::new(state),
            durable: watch::channel(seq).0,
            computed: watch::channel(seq).0,
            views: live,
            events,
            snapshot_lock: tokio::sync::Mutex::new(()),
        });
        for v in &inner.views {
            let t = std::time::Instant::now();
            let rows = v.rebuild(&inner.state, inner.cfg.compute_instruments).await?;
            tracing::info!(
                view = v.name(),
                rows,
                lookback = v.lookback(),
                ms = t.elapsed().as_millis() as u64,
                "live view computed"
            );
        }
        let (tx, rx) = mpsc::channel(1024);
        let (live_tx, live_rx) = mpsc::unbounded_channel();
        tokio::spawn(log::writer(Arc::clone(&inner), rx, live_tx));
        tokio::spawn(log::live_engine(Arc::clone(&inner), live_rx));
        if cfg.snapshot_interval_secs > 0 {
            let weak = Arc::downgrade(&inner);
            let every = Duration::from_secs(cfg.snapshot_interval_secs);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    if let Err(e) = snapshot::run(&inner).await {
                        tracing::warn!(error = %e, "intraday snapshot failed; the log still holds every bar");
                    }
                }
            });
        }
        Ok(Self { inner, tx })
    }

    /// Stores the valid rows of `parsed` durably and keeps its refusals; answers once the log
    /// segment holding them exists.
    pub async fn push(&self, parsed: Parsed) -> Result<PushOutcome, IntradayError> {
        let rows = parsed.bars.len() + parsed.rejected.len();
        if rows > self.inner.cfg.max_rows_per_push {
            return Err(IntradayError::TooManyRows { rows, max: self.inner.cfg.max_rows_per_push });
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request { parsed, reply }).await.map_err(|_| IntradayError::Closed)?;
        rx.await.map_err(|_| IntradayError::Closed)?
    }

    /// Folds the log into Parquet day files now; returns the snapshot's log segment, or `None`
    /// when nothing changed since the last one.
    pub async fn snapshot(&self) -> Result<Option<u64>, IntradayError> {
        snapshot::run(&self.inner).await
    }

    /// Waits until every live view has computed the bars of every push acknowledged so far
    /// (at most `timeout`); false on timeout.
    pub async fn wait_computed(&self, timeout: Duration) -> bool {
        let target = *self.inner.durable.borrow();
        let mut rx = self.inner.computed.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s >= target)).await.is_ok_and(|r| r.is_ok())
    }

    /// The streaming views.
    #[must_use]
    pub fn views(&self) -> &[Arc<LiveView>] {
        &self.inner.views
    }

    /// The streaming view named `name`.
    #[must_use]
    pub fn view(&self, name: &str) -> Option<Arc<LiveView>> {
        self.inner.views.iter().find(|v| v.name() == name).cloned()
    }

    /// New feature rows as they are computed. A receiver that falls more than
    /// `intraday.stream_buffer` rows behind gets `Lagged` and should be dropped.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<FeatureEvent> {
        self.inner.events.subscribe()
    }

    /// Current figures.
    #[must_use]
    pub fn status(&self) -> IntradayStatus {
        let (bars, instruments, quarantined, snapshot_seq) = self
            .inner
            .state
            .read()
            .map(|s| (s.store.len(), s.store.instrument_count(), s.store.quarantine().len(), s.snapshot.wal_seq))
            .unwrap_or_default();
        IntradayStatus {
            bars,
            instruments,
            quarantined,
            durable_seq: *self.inner.durable.borrow(),
            features_through_seq: *self.inner.computed.borrow(),
            snapshot_seq,
        }
    }

    /// The bars of `intraday_bars` as batches of at most `rows` rows.
    pub fn bar_batches(&self, rows: usize) -> Result<Vec<datafusion::arrow::array::RecordBatch>, IntradayError> {
        let st = self.inner.state.read().map_err(|_| IntradayError::Poisoned)?;
        Ok(st.store.batches(rows)?)
    }

    /// The refused rows of `intraday_quarantine`.
    pub fn quarantine_batch(&self) -> Result<datafusion::arrow::array::RecordBatch, IntradayError> {
        let st = self.inner.state.read().map_err(|_| IntradayError::Poisoned)?;
        Ok(bhavstore_lake::bars::to_quarantine_batch(st.store.quarantine())?)
    }

    /// Takes a last snapshot (pushes already acknowledged are durable in the log either way).
    pub async fn close(&self) {
        match self.snapshot().await {
            Ok(Some(seq)) => tracing::info!(seq, "intraday snapshot written at shutdown"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "intraday snapshot at shutdown failed; the log still holds every bar"),
        }
    }
}
