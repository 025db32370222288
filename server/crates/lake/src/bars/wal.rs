//! Write-ahead-log segments: what one group commit made durable.
//!
//! A segment is one object, written create-only: `BHWAL1\n`, the byte length of the bars
//! part (u64, little endian), the bars as an Arrow IPC stream of [`bars_schema`], then the
//! refusals as an Arrow IPC stream of [`quarantine_schema`]. Object stores write an object
//! whole or not at all, so a segment is either complete or absent.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;

use super::{Bar, Rejected, bars_schema, quarantine_schema, to_batch, to_quarantine_batch};
use crate::LakeError;

const MAGIC: &[u8] = b"BHWAL1\n";

fn corrupt(what: impl std::fmt::Display) -> LakeError {
    LakeError::Corrupt(format!("intraday log segment: {what}"))
}

fn ipc(batch: &RecordBatch) -> Result<Vec<u8>, LakeError> {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &batch.schema()).map_err(|e| LakeError::Write(e.to_string()))?;
    w.write(batch).map_err(|e| LakeError::Write(e.to_string()))?;
    w.finish().map_err(|e| LakeError::Write(e.to_string()))?;
    drop(w);
    Ok(out)
}

/// The bytes of a segment holding `bars` and `rejected`.
pub fn encode(bars: &[Bar], rejected: &[Rejected]) -> Result<Bytes, LakeError> {
    let b = ipc(&to_batch(bars)?)?;
    let q = ipc(&to_quarantine_batch(rejected)?)?;
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + b.len() + q.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(&b);
    out.extend_from_slice(&q);
    Ok(Bytes::from(out))
}

fn read_all(bytes: &[u8]) -> Result<Vec<RecordBatch>, LakeError> {
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(corrupt)?;
    reader.collect::<Result<Vec<_>, _>>().map_err(corrupt)
}

/// The bars and refusals of a segment. `names` shares instrument names between segments.
pub fn decode(bytes: &[u8], names: &mut HashMap<String, Arc<str>>) -> Result<(Vec<Bar>, Vec<Rejected>), LakeError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| corrupt("not a segment (bad magic)"))?;
    let (len, rest) = rest.split_at_checked(8).ok_or_else(|| corrupt("truncated"))?;
    let len = usize::try_from(u64::from_le_bytes(len.try_into().map_err(corrupt)?)).map_err(corrupt)?;
    let (b, q) = rest.split_at_checked(len).ok_or_else(|| corrupt("truncated"))?;
    let mut bars = Vec::new();
    for batch in read_all(b)? {
        bars.extend(bars_from_batch(&batch, names)?);
    }
    let mut rejected = Vec::new();
    for batch in read_all(q)? {
        rejected.extend(rejected_from_batch(&batch)?);
    }
    Ok((bars, rejected))
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, LakeError> {
    batch.column_by_name(name).map(AsRef::as_ref).ok_or_else(|| corrupt(format!("no column {name}")))
}

/// Bars of a batch of [`bars_schema`] (a segment's, or a snapshot file's).
pub fn bars_from_batch(batch: &RecordBatch, names: &mut HashMap<String, Arc<str>>) -> Result<Vec<Bar>, LakeError> {
    if batch.schema().fields() != bars_schema().fields() {
        return Err(corrupt(format!("unexpected bar columns {:?}", batch.schema())));
    }
    let instrument = column(batch, "instrument")?.as_string::<i32>();
    let ts = column(batch, "ts")?.as_primitive::<TimestampMicrosecondType>();
    let interval = column(batch, "interval_s")?.as_primitive::<Int32Type>();
    let f = |n| column(batch, n).map(|c| c.as_primitive::<Float64Type>());
    let (open, high, low, close) = (f("open")?, f("high")?, f("low")?, f("close")?);
    let volume = column(batch, "volume")?.as_primitive::<Int64Type>();
    let revision = column(batch, "revision")?.as_primitive::<Int32Type>();
    let received = column(batch, "received_at")?.as_primitive::<TimestampMicrosecondType>();
    Ok((0..batch.num_rows())
        .map(|i| {
            let name = instrument.value(i);
            let instrument = match names.get(name) {
                Some(n) => Arc::clone(n),
                None => {
                    let n: Arc<str> = Arc::from(name);
                    names.insert(name.to_string(), Arc::clone(&n));
                    n
                }
            };
            Bar {
                instrument,
                ts: ts.value(i),
                interval_s: interval.value(i),
                open: open.value(i),
                high: high.value(i),
                low: low.value(i),
                close: close.value(i),
                volume: volume.value(i),
                revision: revision.value(i),
                received_at: received.value(i),
            }
        })
        .collect())
}

/// Refusals of a batch of [`quarantine_schema`].
pub fn rejected_from_batch(batch: &RecordBatch) -> Result<Vec<Rejected>, LakeError> {
    if batch.schema().fields() != quarantine_schema().fields() {
        return Err(corrupt(format!("unexpected quarantine columns {:?}", batch.schema())));
    }
    let received = column(batch, "received_at")?.as_primitive::<TimestampMicrosecondType>();
    let via = column(batch, "via")?.as_string::<i32>();
    let index = column(batch, "row_index")?.as_primitive::<Int64Type>();
    let instrument = column(batch, "instrument")?.as_string::<i32>();
    let ts = column(batch, "ts")?.as_primitive::<TimestampMicrosecondType>();
    let reason = column(batch, "reason")?.as_string::<i32>();
    let raw = column(batch, "raw")?.as_string::<i32>();
    Ok((0..batch.num_rows())
        .map(|i| Rejected {
            received_at: received.value(i),
            via: via.value(i).to_string(),
            index: index.value(i),
            instrument: instrument.is_valid(i).then(|| instrument.value(i).to_string()),
            ts: ts.is_valid(i).then(|| ts.value(i)),
            reason: reason.value(i).to_string(),
            raw: raw.value(i).to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_round_trips() {
        let bar = Bar {
            instrument: Arc::from("NSE:TCS"),
            ts: 1_784_000_000_000_000,
            interval_s: 60,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
            volume: 7,
            revision: 2,
            received_at: 5,
        };
        let rej = Rejected {
            received_at: 9,
            via: "rest".into(),
            index: 3,
            instrument: None,
            ts: Some(4),
            reason: "low > high".into(),
            raw: "{}".into(),
        };
        let bytes = encode(std::slice::from_ref(&bar), std::slice::from_ref(&rej)).unwrap();
        let (bars, rejected) = decode(&bytes, &mut HashMap::new()).unwrap();
        assert_eq!(bars, [bar]);
        assert_eq!(rejected, [rej]);
        assert!(decode(&bytes[..bytes.len() / 2], &mut HashMap::new()).is_err());
        assert!(decode(b"garbage", &mut HashMap::new()).is_err());
    }
}
