//! Streams query results into Parquet objects. Uploads are multipart and become visible only when
//! complete, and nothing refers to a file until a manifest does, so a crash mid-write leaves an
//! orphan, never a torn file in a table.

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, Date32Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use object_store::buffered::BufWriter;

use super::MaterializeError;
use super::manifest::FileRef;
use crate::storage::Storage;

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file (None when the stream was empty: no file is created).
    pub file: Option<FileRef>,
    /// Trade-date range of the rows.
    pub dates: Option<(NaiveDate, NaiveDate)>,
}

const ROW_GROUP_ROWS: usize = 256 * 1024;

fn props() -> Result<WriterProperties, MaterializeError> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| MaterializeError::Write(e.to_string()))?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("bhavstore {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// Writes every batch of `stream` to `key`; `date_col` is the event-time column whose range is
/// reported.
pub async fn write_stream(
    storage: &Storage,
    key: &str,
    schema: SchemaRef,
    mut stream: SendableRecordBatchStream,
    date_col: Option<&str>,
) -> Result<Written, MaterializeError> {
    let date_idx = date_col.and_then(|c| schema.index_of(c).ok());
    let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
    let mut rows = 0u64;
    let mut range: Option<(i32, i32)> = None;
    let werr = |e: datafusion::parquet::errors::ParquetError| MaterializeError::Write(format!("{key}: {e}"));
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
            writer = Some(AsyncArrowWriter::try_new(object, schema.clone(), Some(props()?)).map_err(werr)?);
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
        .ok_or_else(|| MaterializeError::Write(format!("{key} is missing right after it was written")))?;
    let to_date = |d: i32| NaiveDate::from_num_days_from_ce_opt(d + 719_163);
    let dates = range.and_then(|(lo, hi)| Some((to_date(lo)?, to_date(hi)?)));
    Ok(Written { file: Some(FileRef { key: key.to_string(), size, rows }), dates })
}
