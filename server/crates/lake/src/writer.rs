//! Streams query results into Parquet objects. Uploads are multipart and become visible only when
//! complete, and nothing refers to a file until a manifest does, so a crash mid-write leaves an
//! orphan, never a torn file in a table.

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, Date32Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::WriterProperties;
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
/// row groups of at most `row_group_rows` rows when given.
#[must_use]
pub fn writer_properties(sorted_by: Option<usize>, row_group_rows: Option<usize>) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_created_by(format!("bhavstore {}", env!("CARGO_PKG_VERSION")));
    if let Some(rows) = row_group_rows {
        b = b.set_max_row_group_row_count(Some(rows));
    }
    if let Some(col) = sorted_by.and_then(|c| i32::try_from(c).ok()) {
        b = b.set_sorting_columns(Some(vec![SortingColumn { column_idx: col, descending: false, nulls_first: false }]));
    }
    b.build()
}

fn props() -> Result<WriterProperties, LakeError> {
    Ok(writer_properties(None, Some(ROW_GROUP_ROWS)))
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
    let werr = |e: datafusion::parquet::errors::ParquetError| LakeError::Write(format!("{key}: {e}"));
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
        .ok_or_else(|| LakeError::Write(format!("{key} is missing right after it was written")))?;
    let to_date = |d: i32| NaiveDate::from_num_days_from_ce_opt(d + 719_163);
    let dates = range.and_then(|(lo, hi)| Some((to_date(lo)?, to_date(hi)?)));
    Ok(Written { file: Some(FileRef { key: key.to_string(), size, rows }), dates })
}

/// Writes `stream` into one file per calendar year of `date_col` (`key_of(year)`), so that a
/// full history is laid out by date: queries on recent sessions (quality figures, the online
/// store, time ranges) skip the other years' files by their statistics.
pub async fn write_stream_by_year(
    storage: &Storage,
    key_of: impl Fn(i32) -> String,
    schema: SchemaRef,
    mut stream: SendableRecordBatchStream,
    date_col: &str,
) -> Result<Vec<Written>, LakeError> {
    use std::collections::BTreeMap;

    use chrono::Datelike;
    use datafusion::arrow::array::UInt32Array;
    use datafusion::arrow::compute::take_record_batch;

    struct Open {
        key: String,
        writer: AsyncArrowWriter<BufWriter>,
        rows: u64,
        range: (i32, i32),
    }
    let idx = schema.index_of(date_col).map_err(|e| LakeError::Write(e.to_string()))?;
    let mut open: BTreeMap<i32, Open> = BTreeMap::new();
    let werr = |e: datafusion::parquet::errors::ParquetError| LakeError::Write(e.to_string());
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let Some(dates) = batch.column(idx).as_any().downcast_ref::<Date32Array>() else {
            return Err(LakeError::Write(format!("{date_col} is not a DATE column")));
        };
        let mut by_year: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
        for (row, d) in dates.iter().enumerate() {
            let year = d.map_or(0, |d| (epoch + chrono::Duration::days(i64::from(d))).year());
            by_year.entry(year).or_default().push(u32::try_from(row).unwrap_or(u32::MAX));
        }
        for (year, rows) in by_year {
            let part =
                take_record_batch(&batch, &UInt32Array::from(rows)).map_err(|e| LakeError::Write(e.to_string()))?;
            let part_dates = part.column(idx).as_any().downcast_ref::<Date32Array>().expect("same column type");
            let (lo, hi) = part_dates.iter().flatten().fold((i32::MAX, i32::MIN), |(a, b), d| (a.min(d), b.max(d)));
            let entry = match open.entry(year) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let key = key_of(year);
                    let object = BufWriter::new(storage.object_store(), storage.object_path(&key));
                    let writer = AsyncArrowWriter::try_new(object, schema.clone(), Some(props()?)).map_err(werr)?;
                    v.insert(Open { key, writer, rows: 0, range: (i32::MAX, i32::MIN) })
                }
            };
            entry.rows += part.num_rows() as u64;
            entry.range = (entry.range.0.min(lo), entry.range.1.max(hi));
            entry.writer.write(&part).await.map_err(werr)?;
        }
    }
    let mut out = Vec::new();
    for (_, o) in open {
        o.writer.close().await.map_err(werr)?;
        let size = storage
            .size(&o.key)
            .await?
            .ok_or_else(|| LakeError::Write(format!("{} is missing right after it was written", o.key)))?;
        let to_date = |d: i32| NaiveDate::from_num_days_from_ce_opt(d + 719_163);
        let dates = (o.range.0 <= o.range.1)
            .then(|| (to_date(o.range.0), to_date(o.range.1)))
            .and_then(|(a, b)| Some((a?, b?)));
        out.push(Written { file: Some(FileRef { key: o.key, size, rows: o.rows }), dates });
    }
    Ok(out)
}

/// One batch as the bytes of a Parquet file with the common settings, rows sorted by column
/// `sorted_by` when given (small tables written whole: a day, a reference file).
pub fn batch_bytes(
    batch: &datafusion::arrow::array::RecordBatch,
    sorted_by: Option<usize>,
) -> Result<bytes::Bytes, LakeError> {
    let props = writer_properties(sorted_by, None);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
        .map_err(|e| LakeError::Write(e.to_string()))?;
    w.write(batch).map_err(|e| LakeError::Write(e.to_string()))?;
    w.close().map_err(|e| LakeError::Write(e.to_string()))?;
    Ok(bytes::Bytes::from(buf))
}
