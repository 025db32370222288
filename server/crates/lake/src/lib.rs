//! The lake: what every reader of a bhavstore store shares, below ingest, materialization,
//! the online store and the SQL catalog.
//!
//! * [`session`]: the base DataFusion session and the day tables (`bhavcopy`, `bhavcopy_quarantine`);
//! * [`manifest`]: the published-state format of a feature view, and [`table`] over its files;
//! * [`published`]: a view's published state as one value, and the channel it travels on;
//! * [`records`]: run and quality records (`bhavstore_runs`, `bhavstore_quality`);
//! * [`writer`]: the one Parquet writer configuration, with [`encodings`] chosen per column by measurement;
//! * [`clock`]: the market clock and Arrow Date32 helpers;
//! * [`ident`]: quoting names into SQL;
//! * [`adjust`]: corporate actions reconciled with the prices, the adjusted price tables and the
//!   trading calendar;
//! * [`availability`]: when each trade date's values became known, and the as-of rules;
//! * [`spill`]: rows split by entity into bucket files on local disk, for per-entity work in bounded memory;
//! * [`year_files`]: a history written as one Parquet file per year, the years in parallel;
//! * [`bars`]: intraday bars as stored (snapshots and the write-ahead log) and in memory.

pub mod adjust;
pub mod availability;
pub mod bars;
pub mod clock;
pub mod encodings;
pub mod host;
pub mod ident;
pub mod manifest;
pub mod published;
pub mod records;
pub mod session;
pub mod spill;
pub mod table;
pub mod writer;
pub mod year_files;

use bhavstore_storage::StorageError;
use datafusion::error::DataFusionError;

pub use availability::{AsOfRule, Availability};
pub use clock::{ClockError, MarketClock, epoch, from_days, to_days};
pub use ident::quote_ident;
pub use manifest::Manifest;
pub use published::{Published, PublishedState, Publisher};
pub use records::{QualityRecord, RunRecord, new_run_id};
pub use session::{BHAVCOPY, BHAVCOPY_QUARANTINE, TableView, session};

/// Errors reading or writing the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// DataFusion failed.
    #[error("query engine: {0}")]
    Engine(#[from] DataFusionError),
    /// DataFusion refused a table registration.
    #[error("registering table {table}: {source}")]
    Register {
        /// The table.
        table: &'static str,
        /// DataFusion's error.
        source: DataFusionError,
    },
    /// Writing Parquet failed.
    #[error("writing Parquet: {0}")]
    Write(String),
    /// A stored record does not parse or is missing.
    #[error("stored state is damaged: {0}")]
    Corrupt(String),
    /// Another run published first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A published state holds no files.
    #[error("{0}")]
    Empty(String),
}
