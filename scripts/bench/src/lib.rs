//! Shared code of the bhavstore benchmark binaries: a seeded PRNG, the synthetic market model
//! behind `gen-history`, and the Parquet writer settings of the canonical table.

#![warn(missing_docs)]

pub mod history;
pub mod rng;

use datafusion::parquet::file::properties::WriterProperties;

/// Writer settings of one canonical `bhavcopy` file, exactly as `bhavstore` ingestion writes
/// it (one builder: `bhavstore_lake::writer::writer_properties_for`): zstd level 3, each float
/// column's encodings measured on `batch`, rows sorted by `scrip_code` (column 0) and declared
/// so in the row-group metadata.
#[must_use]
pub fn canonical_writer_properties(batch: &datafusion::arrow::array::RecordBatch) -> WriterProperties {
    bhavstore_lake::writer::writer_properties_for(batch, Some(0), None)
}
