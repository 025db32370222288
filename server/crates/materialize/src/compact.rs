//! Compaction: the small segments daily runs leave (one file per run) merged into one file per
//! calendar year, sorted by entity and event time, published as the next manifest of the same
//! rows.
//!
//! Runs inside a materialization, under the view's lock, after its own manifest is published:
//! the compacted manifest holds exactly the rows, tail, inputs and watermark of the one before
//! it, so readers, the next incremental run and revisions see the same state; the older
//! manifests and their files stay, so time travel to any earlier state keeps working. A crash
//! before the conditional put leaves files no manifest names, which the next cleanup removes.

use std::sync::Arc;

use chrono::{Datelike, Utc};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::col;

use super::{MaterializeError, PreparedView};
use bhavstore_lake::manifest::{self, Manifest, Segment};
use bhavstore_lake::quote_ident;
use bhavstore_lake::records::new_run_id;
use bhavstore_lake::table::ParquetFilesTable;
use bhavstore_lake::writer::write_stream;
use bhavstore_storage::{Storage, paths};

/// Consecutive segments within one calendar year, `after` or more of them: what to merge.
fn runs_to_merge(segments: &[Segment], after: usize) -> Vec<std::ops::Range<usize>> {
    let year = |s: &Segment| (s.min_trade_date.year() == s.max_trade_date.year()).then_some(s.min_trade_date.year());
    let mut out = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let Some(y) = year(&segments[start]) else {
            start += 1;
            continue;
        };
        let end = (start..segments.len()).find(|&i| year(&segments[i]) != Some(y)).unwrap_or(segments.len());
        if end - start >= after.max(2) {
            out.push(start..end);
        }
        start = end;
    }
    out
}

/// Merges the small segments of `published` when `after` or more of them lie in one year, and
/// publishes the result; returns the new manifest's seq, or `None` when nothing was merged.
pub(super) async fn maybe_compact(
    storage: &Storage,
    pv: &PreparedView,
    published: &Manifest,
    schema: SchemaRef,
    after: usize,
) -> Result<Option<u64>, MaterializeError> {
    if after == 0 {
        return Ok(None);
    }
    let ranges = runs_to_merge(&published.segments, after);
    if ranges.is_empty() {
        return Ok(None);
    }
    let spec = &pv.view.spec;
    let run_id = new_run_id();
    let date_col = super::run::date_column(&schema, &spec.event_time).to_string();
    let mut segments: Vec<Segment> = Vec::new();
    let mut next = 0;
    // Only the view's own files are read: a bare session holding their store is enough.
    let ctx = datafusion::prelude::SessionContext::new();
    for (part, range) in ranges.iter().enumerate() {
        segments.extend_from_slice(&published.segments[next..range.start]);
        let merged = &published.segments[range.clone()];
        let files: Vec<_> = merged.iter().flat_map(|s| s.files.iter().cloned()).collect();
        let table = ParquetFilesTable::new(storage, Arc::clone(&schema), &files)?;
        table.register_store(&ctx);
        let df = ctx.read_table(Arc::new(table))?.sort(vec![
            col(quote_ident(&spec.entity)).sort(true, false),
            col(quote_ident(&spec.event_time)).sort(true, false),
        ])?;
        let key = paths::data_file(&spec.name, &pv.version.id, &run_id, part);
        let w = write_stream(storage, &key, Arc::clone(&schema), df.execute_stream().await?, Some(&date_col)).await?;
        let rows: u64 = merged.iter().map(|s| s.rows).sum();
        let written = w.file.as_ref().map_or(0, |f| f.rows);
        if written != rows {
            return Err(MaterializeError::Corrupt(format!(
                "compacting {} segments of {}: {written} rows written for {rows}",
                merged.len(),
                spec.name
            )));
        }
        segments.push(Segment {
            run_id: run_id.clone(),
            min_trade_date: merged[0].min_trade_date,
            max_trade_date: merged[merged.len() - 1].max_trade_date,
            rows,
            files: w.file.into_iter().collect(),
        });
        next = range.end;
    }
    segments.extend_from_slice(&published.segments[next..]);
    let before = published.segments.len();
    let mut m = published.clone();
    m.seq = published.seq + 1;
    m.run_id = run_id.clone();
    m.kind = "compact".into();
    m.started_at = Utc::now();
    m.published_at = Utc::now();
    m.segments = segments;
    m.referenced_runs.push(run_id);
    manifest::publish(storage, &m).await?;
    tracing::info!(view = %spec.name, seq = m.seq, segments_before = before, segments = m.segments.len(), "segments compacted");
    Ok(Some(m.seq))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn seg(from: &str, to: &str) -> Segment {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        Segment { run_id: String::new(), min_trade_date: d(from), max_trade_date: d(to), rows: 1, files: Vec::new() }
    }

    #[test]
    fn merges_runs_of_segments_within_a_year_only() {
        let segs = [
            seg("2014-01-01", "2015-03-01"),
            seg("2015-03-02", "2015-03-02"),
            seg("2015-03-03", "2015-03-03"),
            seg("2015-03-04", "2015-03-04"),
            seg("2015-12-31", "2016-01-01"),
            seg("2016-01-04", "2016-01-04"),
            seg("2016-01-05", "2016-01-05"),
        ];
        assert_eq!(runs_to_merge(&segs, 3), vec![(1..4)]);
        assert_eq!(runs_to_merge(&segs, 2), [1..4, 5..7]);
        assert!(runs_to_merge(&segs, 4).is_empty());
        assert!(runs_to_merge(&segs[..1], 1).is_empty(), "one segment is never rewritten alone");
    }
}
