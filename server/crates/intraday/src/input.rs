//! Reading pushed bars: JSON rows (REST), Arrow batches (Flight), CSV files (`import-bars`).
//! Every row becomes a bar or a refusal with its index and reason; one bad row never refuses
//! the others.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use serde_json::Value;

use bhavstore_lake::bars::{Bar, IST_OFFSET_SECS, Rejected};

/// How rows came in; kept with each refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `POST /feature-store/push`.
    Rest,
    /// Flight SQL bulk ingest.
    Flight,
    /// `bhavstore import-bars`.
    Cli,
}

impl Via {
    /// The name kept in `intraday_quarantine.via`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::Flight => "flight",
            Self::Cli => "cli",
        }
    }
}

/// Rows read from one push: bars (revision 0 until the log orders them) and refusals.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Valid bars with their index in the push.
    pub bars: Vec<(i64, Bar)>,
    /// Refused rows.
    pub rejected: Vec<Rejected>,
}

/// The bar length when a row does not say.
pub const DEFAULT_INTERVAL_S: i32 = 60;
const FIELDS: [&str; 8] = ["instrument", "ts", "open", "high", "low", "close", "volume", "interval_s"];

/// The fields of one row before they are checked together.
#[derive(Debug, Default)]
struct Fields {
    instrument: Option<String>,
    ts: Option<i64>,
    open: Option<f64>,
    high: Option<f64>,
    low: Option<f64>,
    close: Option<f64>,
    volume: Option<i64>,
    interval_s: Option<i64>,
}

/// A float that is a whole number an `i64` holds exactly (JSON `100.0`, CSV `100.0`).
fn whole(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Parses a bar start: RFC 3339 with an offset, or a naive `YYYY-MM-DD[T| ]HH:MM[:SS[.f]]`
/// read as IST. Returns UTC microseconds.
#[must_use]
pub fn parse_ts(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.timestamp_micros());
        }
    }
    let ist = FixedOffset::east_opt(i32::try_from(IST_OFFSET_SECS).ok()?)?;
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return ist.from_local_datetime(&n).single().map(|t| t.timestamp_micros());
        }
    }
    None
}

/// Whether `s` is `EXCHANGE:SYMBOL` (exchange upper-case letters, symbol without spaces).
#[must_use]
pub fn valid_instrument(s: &str) -> bool {
    let Some((ex, sym)) = s.split_once(':') else { return false };
    !ex.is_empty()
        && ex.len() <= 16
        && ex.chars().all(|c| c.is_ascii_uppercase())
        && !sym.is_empty()
        && sym.len() <= 64
        && sym.chars().all(|c| c.is_ascii_alphanumeric() || "&_-.".contains(c))
}

/// Checks one row's fields together.
fn check(f: Fields, received_at: i64) -> Result<Bar, (Option<String>, Option<i64>, String)> {
    let fail = |why: String| (f.instrument.clone(), f.ts, why);
    let instrument = match &f.instrument {
        None => return Err(fail("missing instrument".into())),
        Some(i) if !valid_instrument(i) => {
            return Err(fail(format!("instrument {i:?} is not EXCHANGE:SYMBOL (e.g. NSE:TCS, BSE:500325)")));
        }
        Some(i) => i.clone(),
    };
    let ts = f.ts.ok_or_else(|| fail("missing ts".into()))?;
    let mut prices = [0.0; 4];
    for (slot, (name, v)) in
        prices.iter_mut().zip([("open", f.open), ("high", f.high), ("low", f.low), ("close", f.close)])
    {
        match v {
            None => return Err(fail(format!("missing price {name}"))),
            Some(p) if !p.is_finite() || p <= 0.0 => return Err(fail(format!("{name} {p} is not a positive price"))),
            Some(p) => *slot = p,
        }
    }
    let [open, high, low, close] = prices;
    if low > high {
        return Err(fail(format!("low {low} > high {high}")));
    }
    if open < low || open > high {
        return Err(fail(format!("open {open} is outside [low {low}, high {high}]")));
    }
    if close < low || close > high {
        return Err(fail(format!("close {close} is outside [low {low}, high {high}]")));
    }
    let volume = match f.volume {
        None => return Err(fail("missing volume".into())),
        Some(v) if v < 0 => return Err(fail(format!("negative volume {v}"))),
        Some(v) => v,
    };
    let interval_s = f.interval_s.unwrap_or(i64::from(DEFAULT_INTERVAL_S));
    let interval_s = match i32::try_from(interval_s) {
        Ok(v) if (1..=86_400).contains(&v) => v,
        _ => return Err(fail(format!("interval_s {interval_s} is not between 1 and 86400"))),
    };
    Ok(Bar {
        instrument: Arc::from(instrument),
        ts,
        interval_s,
        open,
        high,
        low,
        close,
        volume,
        revision: 0,
        received_at,
    })
}

fn reject(
    parsed: &mut Parsed,
    via: Via,
    index: i64,
    raw: String,
    received_at: i64,
    e: (Option<String>, Option<i64>, String),
) {
    parsed.rejected.push(Rejected {
        received_at,
        via: via.as_str().into(),
        index,
        instrument: e.0,
        ts: e.1,
        reason: e.2,
        raw,
    });
}

/// Reads the `rows` of a REST push (JSON objects).
#[must_use]
pub fn from_json_rows(rows: &[Value], received_at: i64) -> Parsed {
    let mut out = Parsed::default();
    for (i, row) in rows.iter().enumerate() {
        let index = i64::try_from(i).unwrap_or(i64::MAX);
        let raw = row.to_string();
        match json_fields(row) {
            Ok(f) => match check(f, received_at) {
                Ok(bar) => out.bars.push((index, bar)),
                Err(e) => reject(&mut out, Via::Rest, index, raw, received_at, e),
            },
            Err(e) => reject(&mut out, Via::Rest, index, raw, received_at, e),
        }
    }
    out
}

fn json_fields(row: &Value) -> Result<Fields, (Option<String>, Option<i64>, String)> {
    let Value::Object(map) = row else {
        return Err((None, None, "a row must be a JSON object".into()));
    };
    let instrument = map.get("instrument").and_then(Value::as_str).map(str::to_string);
    let ts_text = map.get("ts");
    let ts = ts_text.and_then(Value::as_str).and_then(parse_ts);
    let fail = |why: String| (instrument.clone(), ts, why);
    let unknown: Vec<&str> = map.keys().map(String::as_str).filter(|k| !FIELDS.contains(k)).collect();
    if !unknown.is_empty() {
        return Err(fail(format!("unknown field(s) {unknown:?}; a bar has {FIELDS:?}")));
    }
    if let Some(v) = map.get("instrument")
        && !v.is_string()
    {
        return Err(fail("instrument must be a string".into()));
    }
    match ts_text {
        Some(Value::String(s)) if ts.is_none() => {
            return Err(fail(format!("unparseable time {s:?} (RFC 3339, or YYYY-MM-DD HH:MM:SS in IST)")));
        }
        Some(v) if !v.is_string() && !v.is_null() => {
            return Err(fail(format!("unparseable time {v} (RFC 3339 text expected)")));
        }
        _ => {}
    }
    let num = |name: &str| -> Result<Option<f64>, (Option<String>, Option<i64>, String)> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(fail(format!("{name} must be a number, not {other}"))),
        }
    };
    let int = |name: &str| -> Result<Option<i64>, (Option<String>, Option<i64>, String)> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Ok(Some(i)),
                (None, Some(f)) if whole(f).is_some() => Ok(whole(f)),
                _ => Err(fail(format!("{name} must be a whole number, not {n}"))),
            },
            Some(other) => Err(fail(format!("{name} must be a whole number, not {other}"))),
        }
    };
    let interval_s = int("interval_s")?;
    Ok(Fields {
        instrument: instrument.clone(),
        ts,
        open: num("open")?,
        high: num("high")?,
        low: num("low")?,
        close: num("close")?,
        volume: int("volume")?,
        interval_s,
    })
}

/// Why an uploaded batch cannot be read at all (its columns, not its rows).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A required column is missing.
    #[error("intraday_bars uploads need a column {0:?}")]
    Missing(&'static str),
    /// A column bhavstore does not know.
    #[error("unknown column(s) {0:?}; intraday_bars takes {FIELDS:?}")]
    Unknown(Vec<String>),
    /// A column of a type that cannot become the field's.
    #[error("column {column:?}: {message}")]
    Type {
        /// The column.
        column: String,
        /// Why.
        message: String,
    },
}

/// Reads an uploaded Arrow batch; `first_index` is the index of its first row in the upload.
pub fn from_record_batch(batch: &RecordBatch, first_index: i64, received_at: i64) -> Result<Parsed, UploadError> {
    let schema = batch.schema();
    let unknown: Vec<String> =
        schema.fields().iter().map(|f| f.name().clone()).filter(|n| !FIELDS.contains(&n.as_str())).collect();
    if !unknown.is_empty() {
        return Err(UploadError::Unknown(unknown));
    }
    let get = |name: &'static str| batch.column_by_name(name);
    let typed = |name: &'static str, to: &DataType| -> Result<Option<Arc<dyn Array>>, UploadError> {
        get(name)
            .map(|c| cast(c, to).map_err(|e| UploadError::Type { column: name.into(), message: e.to_string() }))
            .transpose()
    };
    let instrument = typed("instrument", &DataType::Utf8)?.ok_or(UploadError::Missing("instrument"))?;
    let ts_col = get("ts").ok_or(UploadError::Missing("ts"))?;
    let ts: Vec<Option<i64>> = match ts_col.data_type() {
        DataType::Timestamp(_, tz) => {
            let micros = cast(ts_col, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .map_err(|e| UploadError::Type { column: "ts".into(), message: e.to_string() })?;
            // A timestamp without a zone is IST wall time, like naive text.
            let shift = if tz.is_some() { 0 } else { IST_OFFSET_SECS * 1_000_000 };
            micros.as_primitive::<TimestampMicrosecondType>().iter().map(|v| v.map(|v| v - shift)).collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(ts_col, &DataType::Utf8)
                .map_err(|e| UploadError::Type { column: "ts".into(), message: e.to_string() })?;
            text.as_string::<i32>().iter().map(|v| v.and_then(parse_ts)).collect()
        }
        other => return Err(UploadError::Type { column: "ts".into(), message: format!("{other} is not a timestamp") }),
    };
    let floats = |name: &'static str| -> Result<Vec<Option<f64>>, UploadError> {
        let c = typed(name, &DataType::Float64)?.ok_or(UploadError::Missing(name))?;
        Ok(c.as_primitive::<Float64Type>().iter().collect())
    };
    let (open, high, low, close) = (floats("open")?, floats("high")?, floats("low")?, floats("close")?);
    let volume: Vec<Option<i64>> = typed("volume", &DataType::Int64)?
        .ok_or(UploadError::Missing("volume"))?
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    let interval: Option<Vec<Option<i64>>> =
        typed("interval_s", &DataType::Int64)?.map(|c| c.as_primitive::<Int64Type>().iter().collect());
    let names = instrument.as_string::<i32>();
    let mut out = Parsed::default();
    let mut interned: HashSet<Arc<str>> = HashSet::new();
    for i in 0..batch.num_rows() {
        let index = first_index + i64::try_from(i).unwrap_or(i64::MAX);
        let interval_s = interval.as_ref().and_then(|v| v[i]);
        let f = Fields {
            instrument: names.is_valid(i).then(|| names.value(i).to_string()),
            ts: ts[i],
            open: open[i],
            high: high[i],
            low: low[i],
            close: close[i],
            volume: volume[i],
            interval_s,
        };
        let raw_ts = ts_col.is_valid(i) && ts[i].is_none();
        let result = if raw_ts {
            Err((f.instrument.clone(), None, "unparseable time".to_string()))
        } else {
            check(f, received_at)
        };
        match result {
            Ok(mut bar) => {
                // One allocation per instrument name per batch, not per row.
                match interned.get(&*bar.instrument) {
                    Some(n) => bar.instrument = Arc::clone(n),
                    None => {
                        interned.insert(Arc::clone(&bar.instrument));
                    }
                }
                out.bars.push((index, bar));
            }
            Err(e) => {
                let raw = row_text(batch, i);
                reject(&mut out, Via::Flight, index, raw, received_at, e);
            }
        }
    }
    Ok(out)
}

fn row_text(batch: &RecordBatch, row: usize) -> String {
    let mut m = serde_json::Map::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        let v = datafusion::arrow::util::display::array_value_to_string(c, row).unwrap_or_default();
        m.insert(f.name().clone(), if c.is_null(row) { Value::Null } else { Value::String(v) });
    }
    Value::Object(m).to_string()
}

/// Reads a history file in the `ts,open,high,low,close,volume` layout (a header line first);
/// refusals carry the 1-based line number.
#[must_use]
pub fn from_csv(text: &str, instrument: &str, received_at: i64) -> Parsed {
    let mut out = Parsed::default();
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = match lines.next() {
        Some((_, h)) => h.trim_start_matches('\u{feff}').split(',').map(|c| c.trim().to_ascii_lowercase()).collect(),
        None => return out,
    };
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(ts_i), Some(o), Some(h), Some(l), Some(c), Some(v)) =
        (col("ts"), col("open"), col("high"), col("low"), col("close"), col("volume"))
    else {
        out.rejected.push(Rejected {
            received_at,
            via: Via::Cli.as_str().into(),
            index: 1,
            instrument: Some(instrument.into()),
            ts: None,
            reason: format!("header {header:?} is not ts,open,high,low,close,volume"),
            raw: text.lines().next().unwrap_or_default().to_string(),
        });
        return out;
    };
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let index = i64::try_from(n + 1).unwrap_or(i64::MAX);
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |i: usize| cells.get(i).copied().filter(|s| !s.is_empty());
        let ts = cell(ts_i).and_then(parse_ts);
        let fail = |why: String| (Some(instrument.to_string()), ts, why);
        let result = if cells.len() != header.len() {
            Err(fail(format!("{} fields, the header has {}", cells.len(), header.len())))
        } else if cell(ts_i).is_some() && ts.is_none() {
            Err(fail(format!("unparseable time {:?}", cell(ts_i).unwrap_or_default())))
        } else {
            let num = |i: usize, name: &str| -> Result<Option<f64>, (Option<String>, Option<i64>, String)> {
                cell(i).map(|s| s.parse::<f64>().map_err(|_| fail(format!("{name} {s:?} is not a number")))).transpose()
            };
            let vol = cell(v)
                .map(|s| {
                    s.parse::<i64>().or_else(|_| {
                        s.parse::<f64>()
                            .ok()
                            .and_then(whole)
                            .ok_or_else(|| fail(format!("volume {s:?} is not a whole number")))
                    })
                })
                .transpose();
            (|| {
                let f = Fields {
                    instrument: Some(instrument.to_string()),
                    ts,
                    open: num(o, "open")?,
                    high: num(h, "high")?,
                    low: num(l, "low")?,
                    close: num(c, "close")?,
                    volume: vol?,
                    interval_s: None,
                };
                check(f, received_at)
            })()
        };
        match result {
            Ok(bar) => out.bars.push((index, bar)),
            Err(e) => reject(&mut out, Via::Cli, index, line.to_string(), received_at, e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_refusal_has_its_reason_and_the_rest_is_kept() {
        let good = json!({"instrument": "NSE:TCS", "ts": "2026-07-14T09:15:00+05:30", "open": 10, "high": 11, "low": 9, "close": 10.5, "volume": 100});
        let with = |k: &str, v: Value| {
            let mut r = good.clone();
            r[k] = v;
            r
        };
        let without = |k: &str| {
            let mut r = good.clone();
            r.as_object_mut().unwrap().remove(k);
            r
        };
        let rows = vec![
            good.clone(),
            with("low", json!(12)),
            with("open", json!(8)),
            with("close", json!(11.5)),
            with("volume", json!(-1)),
            with("ts", json!("yesterday")),
            with("extra", json!(1)),
            without("close"),
            with("instrument", json!("tcs")),
            json!(5),
            with("ts", json!("2026-07-14 09:16:00")),
        ];
        let p = from_json_rows(&rows, 0);
        assert_eq!(p.bars.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 10]);
        // Naive times are IST: 09:16 IST is 03:46 UTC.
        assert_eq!(p.bars[1].1.ts, parse_ts("2026-07-14T03:46:00Z").unwrap());
        let reasons: Vec<(i64, &str)> = p.rejected.iter().map(|r| (r.index, r.reason.as_str())).collect();
        let expect = [
            (1, "low 12 > high 11"),
            (2, "open 8 is outside"),
            (3, "close 11.5 is outside"),
            (4, "negative volume -1"),
            (5, "unparseable time"),
            (6, "unknown field"),
            (7, "missing price close"),
            (8, "is not EXCHANGE:SYMBOL"),
            (9, "must be a JSON object"),
        ];
        assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
        for ((i, r), (ei, er)) in reasons.iter().zip(expect) {
            assert_eq!(*i, ei);
            assert!(r.contains(er), "{r} vs {er}");
        }
    }

    #[test]
    fn csv_lines_are_numbered_from_one() {
        let text = "ts,open,high,low,close,volume\n2026-07-14 09:15:00+05:30,1,2,0.5,1.5,10\n2026-07-14 09:16:00+05:30,1,2,3,1.5,10\n";
        let p = from_csv(text, "NSE:TCS", 0);
        assert_eq!(p.bars.len(), 1);
        assert_eq!(p.rejected[0].index, 3);
        assert!(p.rejected[0].reason.contains("low 3 > high 2"));
    }
}
