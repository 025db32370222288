//! The `intraday:` section of the configuration.

use serde::{Deserialize, Serialize};

/// How pushed bars are made durable, snapshotted and streamed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IntradayConfig {
    /// Longest a push waits for others to share its log write (group commit), milliseconds.
    /// 0 writes as soon as the previous write is done (pushes that arrive meanwhile still share
    /// the next one).
    pub flush_interval_ms: u64,
    /// Rows a group commit holds at most; more wait for the next write.
    pub max_group_rows: usize,
    /// Seconds between snapshots of the log into Parquet day files (0: only at shutdown).
    pub snapshot_interval_secs: u64,
    /// Rows one push (REST request or Flight upload) may carry.
    pub max_rows_per_push: usize,
    /// Largest body of one REST push; a larger one is refused with 413.
    pub max_push_bytes: bhavstore_storage::ByteSize,
    /// Feature rows a stream subscriber may fall behind before it is dropped.
    pub stream_buffer: usize,
    /// Threads one live evaluation of a streaming view may use. One keeps the input's order, so
    /// no window needs a sort, and leaves the other cores to the listeners.
    pub compute_partitions: usize,
    /// Instruments one live evaluation takes at most; more are evaluated in turns. Bounds the
    /// memory of an evaluation (its input is every carried bar of those instruments).
    pub compute_instruments: usize,
}

impl Default for IntradayConfig {
    fn default() -> Self {
        Self {
            flush_interval_ms: 2,
            max_group_rows: 200_000,
            snapshot_interval_secs: 60,
            max_rows_per_push: 1_000_000,
            max_push_bytes: bhavstore_storage::ByteSize::mib(64),
            stream_buffer: 65_536,
            compute_partitions: 1,
            compute_instruments: 500,
        }
    }
}
