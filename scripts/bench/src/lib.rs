//! Shared code of the bhavstore benchmark binaries: a seeded PRNG, the synthetic market model
//! behind `gen-history`, and the Parquet writer settings of the canonical table.

#![warn(missing_docs)]

pub mod history;
pub mod rng;

use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::WriterProperties;

/// Writer settings of the canonical `bhavcopy` files, as `bhavstore` ingestion writes them
/// (`server/src/ingest/load.rs`, `parquet_bytes`): zstd level 3, rows sorted by `scrip_code`
/// (column 0) and declared so in the row-group metadata.
#[must_use]
pub fn canonical_writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("zstd level 3 is valid")))
        .set_created_by(format!("bhavstore-bench {}", env!("CARGO_PKG_VERSION")))
        .set_sorting_columns(Some(vec![SortingColumn { column_idx: 0, descending: false, nulls_first: false }]))
        .build()
}
