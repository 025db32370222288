//! One Parquet file per calendar year of a date column, each written by its own task.
//!
//! A full history is laid out by date so that queries on recent sessions (quality figures, the
//! online store, time ranges) skip the other years' files by their statistics. Rows arrive in
//! entity order (a window's output), so every year's file is open at once: each keeps at most
//! one row group of [`ROW_GROUP_BYTES`] encoded bytes in memory, and the years encode in
//! parallel (Parquet encoding is most of a full run's write cost).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{Array, Date32Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::runtime::SpawnedTask;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::AsyncArrowWriter;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use tokio::sync::mpsc;

use crate::LakeError;
use crate::manifest::FileRef;
use crate::writer::{Written, writer_properties_for};
use bhavstore_storage::Storage;

/// A row group is closed when its encoded size reaches this.
pub const ROW_GROUP_BYTES: usize = 8 << 20;
/// Rows gathered before a file's encodings are chosen (see [`crate::encodings`]).
const SAMPLE_ROWS: usize = 16 * 1024;
/// Bytes buffered per file before a part is uploaded (S3's smallest part is 5 MiB).
const UPLOAD_PART_BYTES: usize = 6 << 20;
/// Batches queued per year before a sender waits.
const QUEUE: usize = 4;

type KeyOf = Arc<dyn Fn(i32) -> String + Send + Sync>;

/// The files of one stream of rows, by year of `date_col`.
pub struct YearFiles {
    storage: Storage,
    key_of: KeyOf,
    schema: SchemaRef,
    date_idx: usize,
    open: Mutex<BTreeMap<i32, Year>>,
}

struct Year {
    tx: mpsc::Sender<RecordBatch>,
    task: SpawnedTask<Result<Written, LakeError>>,
}

impl YearFiles {
    /// Files `key_of(year)` of rows of `schema`, split by the DATE column `date_col`.
    pub fn new(
        storage: &Storage,
        key_of: impl Fn(i32) -> String + Send + Sync + 'static,
        schema: SchemaRef,
        date_col: &str,
    ) -> Result<Self, LakeError> {
        let date_idx = schema.index_of(date_col).map_err(|e| LakeError::Write(e.to_string()))?;
        if schema.field(date_idx).data_type() != &datafusion::arrow::datatypes::DataType::Date32 {
            return Err(LakeError::Write(format!("{date_col} is not a DATE column")));
        }
        Ok(Self { storage: storage.clone(), key_of: Arc::new(key_of), schema, date_idx, open: Mutex::default() })
    }

    /// Writes every batch of `stream`.
    pub async fn drain(&self, mut stream: SendableRecordBatchStream) -> Result<(), LakeError> {
        while let Some(batch) = stream.next().await {
            self.write(batch?).await?;
        }
        Ok(())
    }

    /// Sends each year's rows of `batch` to that year's writer (started on its first rows).
    pub async fn write(&self, batch: RecordBatch) -> Result<(), LakeError> {
        let Some(dates) = batch.column(self.date_idx).as_any().downcast_ref::<Date32Array>() else {
            return Err(LakeError::Write("the date column is not a DATE column".into()));
        };
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        let mut by_year: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
        let mut last: Option<(i32, i32)> = None;
        for (row, d) in dates.iter().enumerate() {
            // Consecutive rows are mostly one entity's consecutive days: the same year.
            let year = match (d, last) {
                (Some(d), Some((ld, ly))) if d == ld => ly,
                (Some(d), _) => (epoch + chrono::Duration::days(i64::from(d))).year(),
                (None, _) => 0,
            };
            if let Some(d) = d {
                last = Some((d, year));
            }
            by_year.entry(year).or_default().push(u32::try_from(row).unwrap_or(u32::MAX));
        }
        for (year, rows) in by_year {
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(&batch, &UInt32Array::from(rows)).map_err(|e| LakeError::Write(e.to_string()))?
            };
            let tx = self.sender(year);
            if tx.send(part).await.is_err() {
                // The writer stopped: its error comes out of finish().
                return Err(LakeError::Write(format!("the writer of year {year} failed")));
            }
        }
        Ok(())
    }

    fn sender(&self, year: i32) -> mpsc::Sender<RecordBatch> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = open.entry(year).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let (storage, key, schema) = (self.storage.clone(), (self.key_of)(year), Arc::clone(&self.schema));
            let date_idx = self.date_idx;
            Year { tx, task: SpawnedTask::spawn(write_year(storage, key, schema, date_idx, rx)) }
        });
        entry.tx.clone()
    }

    /// Closes every file; the files written, by year. The first writer's error if any failed.
    pub async fn finish(self) -> Result<Vec<Written>, LakeError> {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut out = Vec::new();
        let mut first_err = None;
        for (_, y) in open {
            drop(y.tx);
            match y.task.join_unwind().await {
                Ok(Ok(w)) => out.push(w),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(LakeError::Write(e.to_string()));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

async fn write_year(
    storage: Storage,
    key: String,
    schema: SchemaRef,
    date_idx: usize,
    mut rx: mpsc::Receiver<RecordBatch>,
) -> Result<Written, LakeError> {
    let werr = |e: datafusion::parquet::errors::ParquetError| LakeError::Write(format!("{key}: {e}"));
    let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
    let mut sample: Vec<RecordBatch> = Vec::new();
    let mut sampled = 0usize;
    let (mut rows, mut range) = (0u64, (i32::MAX, i32::MIN));
    loop {
        let next = rx.recv().await;
        let ended = next.is_none();
        if let Some(b) = next {
            let dates = b.column(date_idx).as_any().downcast_ref::<Date32Array>().expect("checked in new()");
            for d in dates.iter().flatten() {
                range = (range.0.min(d), range.1.max(d));
            }
            rows += b.num_rows() as u64;
            sampled += b.num_rows();
            sample.push(b);
        }
        if writer.is_none() && (sampled >= SAMPLE_ROWS || (ended && sampled > 0)) {
            let first = concat_batches(&schema, &sample).map_err(|e| LakeError::Write(e.to_string()))?;
            let object = BufWriter::with_capacity(storage.object_store(), storage.object_path(&key), UPLOAD_PART_BYTES);
            let props = writer_properties_for(&first, None, None);
            writer = Some(AsyncArrowWriter::try_new(object, Arc::clone(&schema), Some(props)).map_err(werr)?);
        }
        if let Some(w) = writer.as_mut() {
            for b in sample.drain(..) {
                w.write(&b).await.map_err(werr)?;
                if w.in_progress_size() >= ROW_GROUP_BYTES {
                    w.flush().await.map_err(werr)?;
                }
            }
        }
        if ended {
            break;
        }
    }
    let Some(w) = writer else { return Ok(Written { file: None, dates: None }) };
    w.close().await.map_err(werr)?;
    let size = storage
        .size(&key)
        .await?
        .ok_or_else(|| LakeError::Write(format!("{key} is missing right after it was written")))?;
    let to_date = |d: i32| NaiveDate::from_num_days_from_ce_opt(d + 719_163);
    let dates = (range.0 <= range.1).then(|| (to_date(range.0), to_date(range.1))).and_then(|(a, b)| Some((a?, b?)));
    Ok(Written { file: Some(FileRef { key, size, rows }), dates })
}
