//! Rows split by entity into bucket files on local disk, read back a few buckets at a time.
//!
//! Work that needs each entity's whole history at once (a window over a security's sessions,
//! the alignment of its corporate actions with its prices) reads a history stored by date. One
//! pass over the history writes every row into its entity's bucket (Arrow IPC, uncompressed:
//! the cost is a copy), after which each bucket holds whole entities and is a fraction of the
//! history: memory is bounded by a bucket, not by the history, and the history is read once.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::runtime::SpawnedTask;
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use futures::TryStreamExt;

use crate::LakeError;

/// Which bucket an entity key (cast to Int64; `None` for NULL) goes to.
pub type BucketOf = Arc<dyn Fn(Option<i64>) -> usize + Send + Sync>;

/// The buckets of one pass; the folder is removed when this is dropped.
pub struct Spill {
    dir: PathBuf,
    schema: SchemaRef,
    /// Files per bucket (one per input partition that had rows for it).
    files: Vec<Vec<PathBuf>>,
    rows: Vec<usize>,
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove a spill folder");
        }
    }
}

fn io(what: &Path, e: std::io::Error) -> LakeError {
    LakeError::Write(format!("{}: {e}", what.display()))
}

fn arrow(e: datafusion::arrow::error::ArrowError) -> LakeError {
    LakeError::Write(e.to_string())
}

/// A fresh folder for a spill under the system's temporary folder, named for `what`.
#[must_use]
pub fn temp_dir(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("bhavstore-{what}-{}-{nanos}", std::process::id()))
}

/// Runs `df` and writes each row to bucket `bucket_of(key)` of `buckets`, under `dir` (created;
/// removed with the result). Each of the plan's partitions is read on its own task.
pub async fn spill(
    df: DataFrame,
    dir: &Path,
    buckets: usize,
    key: &str,
    bucket_of: BucketOf,
) -> Result<Spill, LakeError> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let key_idx = schema.index_of(key).map_err(arrow)?;
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut out = Spill {
        dir: dir.to_path_buf(),
        schema: Arc::clone(&schema),
        files: vec![Vec::new(); buckets],
        rows: vec![0; buckets],
    };
    let tasks: Vec<_> = df
        .execute_stream_partitioned()
        .await?
        .into_iter()
        .enumerate()
        .map(|(part, stream)| {
            let (dir, schema, bucket_of) = (dir.to_path_buf(), Arc::clone(&schema), Arc::clone(&bucket_of));
            SpawnedTask::spawn(spill_partition(stream, dir, schema, part, key_idx, buckets, bucket_of))
        })
        .collect();
    let done = futures::future::try_join_all(tasks.into_iter().map(SpawnedTask::join_unwind))
        .await
        .map_err(|e| LakeError::Write(e.to_string()))?;
    for part in done {
        for (b, (path, rows)) in part?.into_iter().enumerate() {
            if let Some(p) = path {
                out.files[b].push(p);
                out.rows[b] += rows;
            }
        }
    }
    Ok(out)
}

type Writer = StreamWriter<BufWriter<File>>;

async fn spill_partition(
    mut stream: SendableRecordBatchStream,
    dir: PathBuf,
    schema: SchemaRef,
    part: usize,
    key_idx: usize,
    buckets: usize,
    bucket_of: BucketOf,
) -> Result<Vec<(Option<PathBuf>, usize)>, LakeError> {
    let mut writers: Vec<Option<(PathBuf, Writer)>> = (0..buckets).map(|_| None).collect();
    let mut rows = vec![0usize; buckets];
    while let Some(batch) = stream.try_next().await? {
        let keys = cast(batch.column(key_idx), &DataType::Int64).map_err(arrow)?;
        let mut idx: Vec<Vec<u32>> = vec![Vec::new(); buckets];
        for (r, k) in keys.as_primitive::<Int64Type>().iter().enumerate() {
            idx[bucket_of(k).min(buckets - 1)].push(u32::try_from(r).unwrap_or(u32::MAX));
        }
        for (b, of_b) in idx.into_iter().enumerate() {
            if of_b.is_empty() {
                continue;
            }
            rows[b] += of_b.len();
            let piece = if of_b.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(&batch, &UInt32Array::from(of_b)).map_err(arrow)?
            };
            let w = match &mut writers[b] {
                Some((_, w)) => w,
                slot @ None => {
                    let path = dir.join(format!("bucket-{b:04}-part-{part:03}.arrows"));
                    let file = File::create(&path).map_err(|e| io(&path, e))?;
                    let w = StreamWriter::try_new(BufWriter::with_capacity(256 << 10, file), &schema).map_err(arrow)?;
                    &mut slot.insert((path, w)).1
                }
            };
            w.write(&piece).map_err(arrow)?;
        }
    }
    let mut out = Vec::with_capacity(buckets);
    for (w, n) in writers.into_iter().zip(rows) {
        match w {
            Some((path, mut w)) => {
                w.finish().map_err(arrow)?;
                out.push((Some(path), n));
            }
            None => out.push((None, 0)),
        }
    }
    Ok(out)
}

impl Spill {
    /// The rows' schema.
    #[must_use]
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Rows per bucket.
    #[must_use]
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }

    /// The rows of `buckets`, read back into memory.
    pub fn batches(&self, buckets: &[usize]) -> Result<Vec<RecordBatch>, LakeError> {
        let mut out = Vec::new();
        for path in buckets.iter().filter_map(|b| self.files.get(*b)).flatten() {
            let file = File::open(path).map_err(|e| io(path, e))?;
            for b in StreamReader::try_new(BufReader::with_capacity(1 << 20, file), None).map_err(arrow)? {
                out.push(b.map_err(arrow)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn every_row_lands_once_in_its_entitys_bucket_and_the_folder_goes_away() {
        let schema =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new("v", DataType::Utf8, false)]));
        let part = |lo: i64| {
            let keys: Vec<Option<i64>> = (lo..lo + 50).map(|i| (i % 7 != 0).then_some(i % 13)).collect();
            let vals: Vec<String> = (lo..lo + 50).map(|i| format!("row{i}")).collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(keys)), Arc::new(StringArray::from(vals))],
            )
            .unwrap()
        };
        let ctx = SessionContext::new();
        let table = MemTable::try_new(Arc::clone(&schema), vec![vec![part(0)], vec![part(50)]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let dir = temp_dir("spill-test");
        let bucket_of: BucketOf = Arc::new(|k| k.map_or(0, |k| usize::try_from(k % 4).unwrap() + 1));
        let spill = spill(ctx.table("t").await.unwrap(), &dir, 5, "k", bucket_of).await.unwrap();
        assert_eq!(spill.rows().iter().sum::<usize>(), 100);
        let mut seen = Vec::new();
        for b in 0..5 {
            for batch in spill.batches(&[b]).unwrap() {
                let keys = batch.column(0).as_primitive::<Int64Type>();
                let vals = batch.column(1).as_string::<i32>();
                for i in 0..batch.num_rows() {
                    let want = if keys.is_null(i) { 0 } else { usize::try_from(keys.value(i) % 4).unwrap() + 1 };
                    assert_eq!(want, b, "{} in bucket {b}", vals.value(i));
                    seen.push(vals.value(i).to_string());
                }
            }
        }
        seen.sort();
        let mut all: Vec<String> = (0..100).map(|i| format!("row{i}")).collect();
        all.sort();
        assert_eq!(seen, all);
        assert!(dir.exists());
        drop(spill);
        assert!(!dir.exists(), "the folder is removed with the spill");
    }
}
