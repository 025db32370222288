//! Streams query results into Parquet objects. Uploads are multipart and become visible only when
//! complete, and nothing refers to a file until a manifest does, so a crash mid-write leaves an
//! orphan, never a torn file in a table.

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, Date32Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use futures::StreamExt;
use object_store::buffered::BufWriter;

use crate::LakeError;
use crate::manifest::FileRef;
use bhavstore_storage::Storage;

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file (None when the stream was empty: no file is created).
    pub file: Option<FileRef>,
    /// Trade-date range of the rows.
    pub dates: Option<(NaiveDate, NaiveDate)>,
}

const ROW_GROUP_ROWS: usize = 256 * 1024;

/// The settings of every Parquet file bhavstore writes: zstd level 3, `created_by` naming
/// bhavstore, rows sorted by column `sorted_by` (declared in the metadata) when given, and
/// row groups of at most `row_group_rows` rows when given. Writers that have the data in hand
/// use [`writer_properties_for`], which also picks each float column's encodings.
#[must_use]
pub fn writer_properties(sorted_by: Option<usize>, row_group_rows: Option<usize>) -> WriterProperties {
    builder(sorted_by, row_group_rows).build()
}

/// [`writer_properties`] with each float column's dictionary and compression chosen by
/// measuring `sample` (the first batch written; see [`crate::encodings`]).
#[must_use]
pub fn writer_properties_for(
    sample: &datafusion::arrow::array::RecordBatch,
    sorted_by: Option<usize>,
    row_group_rows: Option<usize>,
) -> WriterProperties {
    crate::encodings::apply(builder(sorted_by, row_group_rows), sample).build()
}

fn builder(sorted_by: Option<usize>, row_group_rows: Option<usize>) -> WriterPropertiesBuilder {
    let mut b = WriterProperties::builder()
        .set_compression(crate::encodings::zstd())
        .set_created_by(format!("bhavstore {}", env!("CARGO_PKG_VERSION")));
    if let Some(rows) = row_group_rows {
        b = b.set_max_row_group_row_count(Some(rows));
    }
    if let Some(col) = sorted_by.and_then(|c| i32::try_from(c).ok()) {
        b = b.set_sorting_columns(Some(vec![SortingColumn { column_idx: col, descending: false, nulls_first: false }]));
    }
    b
}

fn props(sample: &datafusion::arrow::array::RecordBatch) -> WriterProperties {
    writer_properties_for(sample, None, Some(ROW_GROUP_ROWS))
}

/// Writes every batch of `stream` to `key`; `date_col` is the event-time column whose range is
/// reported.
pub async fn write_stream(
    storage: &Storage,
    key: &str,
    schema: SchemaRef,
    mut stream: SendableRecordBatchStream,
    date_col: Option<&str>,
) -> Result<Written, LakeError> {
    let date_idx = date_col.and_then(|c| schema.index_of(c).ok());
    let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
    let mut rows = 0u64;
    let mut range: Option<(i32, i32)> = None;
    // The upload happens inside the Parquet writer: a failed PUT comes back as its External
    // error and is reported as the object store's, like every other storage failure.
    let werr = |e: datafusion::parquet::errors::ParquetError| match e {
        datafusion::parquet::errors::ParquetError::External(source) => {
            LakeError::Write(format!("object store put {key}: {source}"))
        }
        e => LakeError::Write(format!("{key}: {e}")),
    };
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if let Some(idx) = date_idx
            && let Some(dates) = batch.column(idx).as_any().downcast_ref::<Date32Array>()
        {
            for d in dates.iter().flatten() {
                range = Some(range.map_or((d, d), |(lo, hi)| (lo.min(d), hi.max(d))));
            }
        }
        rows += batch.num_rows() as u64;
        if writer.is_none() {
            let object = BufWriter::new(storage.object_store(), storage.object_path(key));
            writer = Some(AsyncArrowWriter::try_new(object, schema.clone(), Some(props(&batch))).map_err(werr)?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&batch).await.map_err(werr)?;
        }
    }
    let Some(w) = writer else { return Ok(Written { file: None, dates: None }) };
    w.close().await.map_err(werr)?;
    let size = storage
        .size(key)
        .await?
        .ok_or_else(|| LakeError::Write(format!("{key} is missing right after it was written")))?;
    let to_date = |d: i32| NaiveDate::from_num_days_from_ce_opt(d + 719_163);
    let dates = range.and_then(|(lo, hi)| Some((to_date(lo)?, to_date(hi)?)));
    Ok(Written { file: Some(FileRef { key: key.to_string(), size, rows }), dates })
}

/// One batch as the bytes of a Parquet file with the common settings, rows sorted by column
/// `sorted_by` when given (small tables written whole: a day, a reference file).
pub fn batch_bytes(
    batch: &datafusion::arrow::array::RecordBatch,
    sorted_by: Option<usize>,
) -> Result<bytes::Bytes, LakeError> {
    let props = writer_properties_for(batch, sorted_by, None);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
        .map_err(|e| LakeError::Write(e.to_string()))?;
    w.write(batch).map_err(|e| LakeError::Write(e.to_string()))?;
    w.close().map_err(|e| LakeError::Write(e.to_string()))?;
    Ok(bytes::Bytes::from(buf))
}
