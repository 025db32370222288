//! Shared code of the bhavstore benchmark binaries: a seeded PRNG, the synthetic market model
//! behind `gen-history`, and the Parquet writer settings of the canonical table.

#![warn(missing_docs)]

pub mod history;
pub mod rng;

use datafusion::parquet::file::properties::WriterProperties;

/// Writer settings of the canonical `bhavcopy` files, exactly as `bhavstore` ingestion writes
/// them (one builder: `bhavstore_lake::writer::writer_properties`): zstd level 3, rows sorted by
/// `scrip_code` (column 0) and declared so in the row-group metadata.
#[must_use]
pub fn canonical_writer_properties() -> WriterProperties {
    bhavstore_lake::writer::writer_properties(Some(0), None)
}
