//! The sessions a reconciliation reads, and the few of them it keeps for the next one.
//!
//! A scrip's reconciliation looks at only some of its sessions: the first (an action dated
//! before the data), every flagged one, the first on or after each of its actions' ex-dates
//! (an *anchor*), the neighbours of those (the previous close of a jump, the next day's flag)
//! and the last (the previous close of a session still to come). [`Condenser`] keeps exactly
//! those from a date-ordered stream, so a reconciliation of the kept sessions decides what one
//! of the whole history decides.
//!
//! Fed what it kept plus later sessions, it keeps what it would have kept from the whole
//! history, provided each anchor on or before a scrip's last kept session was an anchor when
//! those were kept: the kept sessions of one reconciliation and the new days are all the next
//! one reads (see [`super::reconcile`] for when it reads everything instead).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Float64Array, Float64Builder, Int32Array, Int32Builder,
    RecordBatch, StringArray, StringBuilder, UInt64Array, UInt64Builder, new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int32Type, Schema, SchemaRef, UInt64Type,
};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::{StreamExt, TryStreamExt};

use crate::LakeError;
use crate::clock::{from_days, to_days};
use bhavstore_storage::{Storage, paths};

/// One session of one scrip.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Session {
    pub(super) date: NaiveDate,
    pub(super) open: Option<f64>,
    pub(super) close: Option<f64>,
    pub(super) prev_close: Option<f64>,
    /// `TDCLOINDI`, trimmed; `None` when blank.
    pub(super) flag: Option<String>,
    /// The raw file of a flagged session: only a flag's inference names it.
    pub(super) raw_sha256: Option<String>,
    pub(super) source_line: u64,
    /// Whether the session's format carries `TDCLOINDI` at all.
    pub(super) has_flags: bool,
}

/// One scrip's place in a [`Condenser`].
#[derive(Default)]
struct Lane {
    kept: Vec<Session>,
    /// The last session seen, when it is not kept (yet).
    prev: Option<Session>,
    /// The last session seen was kept for itself: this one is its next neighbour.
    need_next: bool,
    anchors: Vec<NaiveDate>,
    next_anchor: usize,
}

/// Keeps the sessions a reconciliation reads from each scrip's sessions, pushed in date order
/// per scrip (scrips may interleave).
pub(super) struct Condenser {
    lanes: HashMap<i32, Lane>,
    anchors: HashMap<i32, Vec<NaiveDate>>,
}

impl Condenser {
    /// `anchors`: the ex-dates of each scrip's actions.
    pub(super) fn new(anchors: &BTreeMap<i32, BTreeSet<NaiveDate>>) -> Self {
        let anchors = anchors.iter().map(|(s, d)| (*s, d.iter().copied().collect())).collect();
        Self { lanes: HashMap::new(), anchors }
    }

    pub(super) fn push(&mut self, scrip: i32, s: Session) {
        let anchors = &mut self.anchors;
        let lane = self
            .lanes
            .entry(scrip)
            .or_insert_with(|| Lane { anchors: anchors.remove(&scrip).unwrap_or_default(), ..Lane::default() });
        let first = lane.kept.is_empty() && lane.prev.is_none();
        let mut anchor = false;
        while lane.anchors.get(lane.next_anchor).is_some_and(|a| *a <= s.date) {
            anchor = true;
            lane.next_anchor += 1;
        }
        let itself = first || anchor || s.flag.is_some();
        let prev = lane.prev.take();
        if itself && let Some(p) = prev {
            lane.kept.push(p);
        }
        let keep = itself || lane.need_next;
        lane.need_next = itself;
        if keep {
            lane.kept.push(s);
        } else {
            lane.prev = Some(s);
        }
    }

    /// Each scrip's kept sessions in date order; its last session is always among them.
    pub(super) fn finish(self) -> BTreeMap<i32, Vec<Session>> {
        self.lanes
            .into_iter()
            .map(|(scrip, mut lane)| {
                lane.kept.extend(lane.prev);
                (scrip, lane.kept)
            })
            .collect()
    }
}

/// ISINs and symbols the bhavcopies carry, to resolve actions listed without a scrip code.
/// Merging two sets of rows' identifiers equals reading both sets at once.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Identifiers {
    /// `None`: the identifier belongs to several scrips.
    by_isin: HashMap<String, Option<i32>>,
    by_symbol: HashMap<String, Option<i32>>,
    /// The identifiers of each scrip's last row seen: rows rarely change them.
    last: HashMap<i32, (Option<String>, Option<String>)>,
}

impl Identifiers {
    fn add(m: &mut HashMap<String, Option<i32>>, key: &str, scrip: i32) {
        match m.get_mut(key) {
            Some(e) => {
                if *e != Some(scrip) {
                    *e = None;
                }
            }
            None => {
                m.insert(key.to_string(), Some(scrip));
            }
        }
    }

    /// Notes one row's identifiers (trimmed of spaces; blank is none).
    fn row(&mut self, scrip: i32, isin: Option<&str>, symbol: Option<&str>) {
        fn clean(v: Option<&str>) -> Option<&str> {
            v.map(|v| v.trim_matches(' ')).filter(|v| !v.is_empty())
        }
        let (isin, symbol) = (clean(isin), clean(symbol));
        if let Some((i, s)) = self.last.get(&scrip)
            && i.as_deref() == isin
            && s.as_deref() == symbol
        {
            return;
        }
        if let Some(i) = isin {
            Self::add(&mut self.by_isin, i, scrip);
        }
        if let Some(s) = symbol {
            Self::add(&mut self.by_symbol, s, scrip);
        }
        self.last.insert(scrip, (isin.map(str::to_string), symbol.map(str::to_string)));
    }

    /// The one scrip of an ISIN, else of a symbol.
    pub(super) fn resolve(&self, isin: Option<&str>, symbol: Option<&str>) -> Option<i32> {
        let unique = |m: &HashMap<String, Option<i32>>, k: &str| m.get(k).copied().flatten();
        isin.and_then(|i| unique(&self.by_isin, i)).or_else(|| symbol.and_then(|s| unique(&self.by_symbol, s)))
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Utf8, false),
            Field::new("identifier", DataType::Utf8, false),
            Field::new("scrip_code", DataType::Int32, true),
        ]))
    }

    /// The carried form: one row per identifier (`scrip_code` NULL when shared).
    pub(super) fn to_batch(&self) -> Result<RecordBatch, LakeError> {
        let (mut kind, mut id, mut scrip) = (StringBuilder::new(), StringBuilder::new(), Int32Builder::new());
        for (k, m) in [("isin", &self.by_isin), ("symbol", &self.by_symbol)] {
            let sorted: BTreeMap<&String, &Option<i32>> = m.iter().collect();
            for (key, s) in sorted {
                kind.append_value(k);
                id.append_value(key);
                scrip.append_option(*s);
            }
        }
        let cols: Vec<ArrayRef> = vec![Arc::new(kind.finish()), Arc::new(id.finish()), Arc::new(scrip.finish())];
        RecordBatch::try_new(Self::schema(), cols).map_err(|e| LakeError::Write(e.to_string()))
    }

    pub(super) fn from_batches(batches: &[RecordBatch], key: &str) -> Result<Self, LakeError> {
        let mut out = Self::default();
        for b in batches {
            let kind = string(b, "kind", key)?;
            let id = string(b, "identifier", key)?;
            let scrip = column(b, "scrip_code", key)?.as_primitive::<Int32Type>().clone();
            for i in 0..b.num_rows() {
                let s = scrip.is_valid(i).then(|| scrip.value(i));
                let m = if kind.value(i) == "isin" { &mut out.by_isin } else { &mut out.by_symbol };
                m.insert(id.value(i).to_string(), s);
            }
        }
        Ok(out)
    }
}

/// Column `name` of a stored batch (`key` names the object in the error).
pub(super) fn column<'a>(b: &'a RecordBatch, name: &str, key: &str) -> Result<&'a ArrayRef, LakeError> {
    b.column_by_name(name).ok_or_else(|| LakeError::Corrupt(format!("{key}: no column {name}")))
}

/// Text column `name` of a stored batch.
pub(super) fn string(b: &RecordBatch, name: &str, key: &str) -> Result<StringArray, LakeError> {
    let c = cast(column(b, name, key)?, &DataType::Utf8).map_err(|e| LakeError::Corrupt(format!("{key}: {e}")))?;
    Ok(c.as_string::<i32>().clone())
}

/// The carried sessions' table.
fn sessions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("scrip_code", DataType::Int32, false),
        Field::new("trade_date", DataType::Date32, false),
        Field::new("open", DataType::Float64, true),
        Field::new("close", DataType::Float64, true),
        Field::new("prev_close", DataType::Float64, true),
        Field::new("flag", DataType::Utf8, true),
        Field::new("raw_sha256", DataType::Utf8, true),
        Field::new("source_line", DataType::UInt64, false),
        Field::new("has_flags", DataType::Boolean, false),
    ]))
}

/// Kept sessions as one batch, by scrip and date.
pub(super) fn sessions_batch(kept: &BTreeMap<i32, Vec<Session>>) -> Result<RecordBatch, LakeError> {
    let mut scrip = Int32Builder::new();
    let mut date = Date32Builder::new();
    let mut f: [Float64Builder; 3] = std::array::from_fn(|_| Float64Builder::new());
    let (mut flag, mut sha) = (StringBuilder::new(), StringBuilder::new());
    let mut line = UInt64Builder::new();
    let mut has = BooleanBuilder::new();
    for (s, days) in kept {
        for d in days {
            scrip.append_value(*s);
            date.append_value(to_days(d.date));
            for (b, v) in f.iter_mut().zip([d.open, d.close, d.prev_close]) {
                b.append_option(v);
            }
            flag.append_option(d.flag.as_deref());
            sha.append_option(d.raw_sha256.as_deref());
            line.append_value(d.source_line);
            has.append_value(d.has_flags);
        }
    }
    let mut cols: Vec<ArrayRef> = vec![Arc::new(scrip.finish()), Arc::new(date.finish())];
    cols.extend(f.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    cols.extend([
        Arc::new(flag.finish()) as ArrayRef,
        Arc::new(sha.finish()),
        Arc::new(line.finish()),
        Arc::new(has.finish()),
    ]);
    RecordBatch::try_new(sessions_schema(), cols).map_err(|e| LakeError::Write(e.to_string()))
}

/// Kept sessions read back, in the order written: (scrip, session).
pub(super) fn sessions_from(batches: &[RecordBatch], key: &str) -> Result<Vec<(i32, Session)>, LakeError> {
    let mut out = Vec::new();
    for b in batches {
        let scrip = column(b, "scrip_code", key)?.as_primitive::<Int32Type>();
        let date = column(b, "trade_date", key)?.as_primitive::<Date32Type>();
        let f = |n: &str| column(b, n, key).map(|c| c.as_primitive::<Float64Type>().clone());
        let (open, close, prev) = (f("open")?, f("close")?, f("prev_close")?);
        let flag = string(b, "flag", key)?;
        let sha = string(b, "raw_sha256", key)?;
        let line = column(b, "source_line", key)?.as_primitive::<UInt64Type>();
        let has = column(b, "has_flags", key)?.as_boolean();
        for i in 0..b.num_rows() {
            let opt = |a: &Float64Array| a.is_valid(i).then(|| a.value(i));
            let s = |a: &StringArray| a.is_valid(i).then(|| a.value(i).to_string());
            out.push((
                scrip.value(i),
                Session {
                    date: from_days(date.value(i)),
                    open: opt(&open),
                    close: opt(&close),
                    prev_close: opt(&prev),
                    flag: s(&flag),
                    raw_sha256: s(&sha),
                    source_line: line.value(i),
                    has_flags: has.value(i),
                },
            ));
        }
    }
    Ok(out)
}

/// The day files of the `bhavcopy` table (every Parquet object of each `trade_date=` folder,
/// as its listing table reads them), by date.
pub(super) async fn day_files(storage: &Storage) -> Result<BTreeMap<NaiveDate, Vec<String>>, LakeError> {
    let mut out: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
    for key in storage.list(paths::BHAVCOPY_TABLE).await? {
        if !key.ends_with(".parquet") {
            continue;
        }
        if let Some(d) = paths::trade_date_of(&key) {
            out.entry(d).or_default().push(key);
        }
    }
    Ok(out)
}

/// The columns of one day file a reconciliation reads.
pub(super) struct DayRows {
    pub(super) date: NaiveDate,
    scrip: Int32Array,
    open: Float64Array,
    close: Float64Array,
    prev: Float64Array,
    flag: StringArray,
    sha: StringArray,
    line: UInt64Array,
    format: StringArray,
    ids: Option<(StringArray, StringArray)>,
}

impl DayRows {
    pub(super) fn len(&self) -> usize {
        self.scrip.len()
    }

    /// Row `i` as a session.
    pub(super) fn session(&self, i: usize) -> (i32, Session) {
        let opt = |a: &Float64Array| a.is_valid(i).then(|| a.value(i));
        let flag = (self.flag.is_valid(i))
            .then(|| self.flag.value(i).trim_matches(' '))
            .filter(|f| !f.is_empty())
            .map(str::to_string);
        let raw_sha256 =
            if flag.is_some() && self.sha.is_valid(i) { Some(self.sha.value(i).to_string()) } else { None };
        let has_flags =
            self.format.is_valid(i) && matches!(self.format.value(i), "bse_eq_legacy14" | "bse_eq_isincode18");
        (
            self.scrip.value(i),
            Session {
                date: self.date,
                open: opt(&self.open),
                close: opt(&self.close),
                prev_close: opt(&self.prev),
                flag,
                raw_sha256,
                source_line: self.line.value(i),
                has_flags,
            },
        )
    }

    /// Adds this day's identifiers (read only when asked for).
    pub(super) fn identifiers(&self, ids: &mut Identifiers) {
        let Some((isin, symbol)) = &self.ids else { return };
        for i in 0..self.len() {
            ids.row(
                self.scrip.value(i),
                isin.is_valid(i).then(|| isin.value(i)),
                symbol.is_valid(i).then(|| symbol.value(i)),
            );
        }
    }
}

/// Decodes the columns a reconciliation reads from one day file.
fn decode(date: NaiveDate, key: &str, bytes: Bytes, with_ids: bool) -> Result<Vec<DayRows>, LakeError> {
    let err = |e: &dyn std::fmt::Display| LakeError::Corrupt(format!("{key}: {e}"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| err(&e))?;
    let mut names =
        vec!["scrip_code", "open", "close", "prev_close", "ex_flag", "raw_sha256", "source_line", "source_format"];
    if with_ids {
        names.extend(["isin", "symbol"]);
    }
    let file_schema = Arc::clone(builder.schema());
    let roots: Vec<usize> = names.iter().filter_map(|n| file_schema.index_of(n).ok()).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder.with_projection(mask).with_batch_size(65_536).build().map_err(|e| err(&e))?;
    let mut out = Vec::new();
    for batch in reader {
        let b = batch.map_err(|e| err(&e))?;
        let n = b.num_rows();
        // A column an older file lacks reads as NULL, as the listing table reads it.
        let get = |name: &str, ty: &DataType| -> Result<ArrayRef, LakeError> {
            match b.column_by_name(name) {
                Some(c) => cast(c, ty).map_err(|e| err(&e)),
                None => Ok(new_null_array(ty, n)),
            }
        };
        let f = |name: &str| get(name, &DataType::Float64).map(|c| c.as_primitive::<Float64Type>().clone());
        let s = |name: &str| get(name, &DataType::Utf8).map(|c| c.as_string::<i32>().clone());
        let required = |name: &str, ty: &DataType| {
            b.column_by_name(name)
                .ok_or_else(|| err(&format!("no column {name}")))
                .and_then(|c| cast(c, ty).map_err(|e| err(&e)))
        };
        out.push(DayRows {
            date,
            scrip: required("scrip_code", &DataType::Int32)?.as_primitive::<Int32Type>().clone(),
            open: f("open")?,
            close: f("close")?,
            prev: f("prev_close")?,
            flag: s("ex_flag")?,
            sha: s("raw_sha256")?,
            line: required("source_line", &DataType::UInt64)?.as_primitive::<UInt64Type>().clone(),
            format: s("source_format")?,
            ids: if with_ids { Some((s("isin")?, s("symbol")?)) } else { None },
        });
    }
    Ok(out)
}

/// Day files read ahead of the one being consumed: decoding runs on the blocking pool while
/// the caller walks the previous day.
fn read_ahead() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 2
}

async fn read_day(storage: Storage, date: NaiveDate, key: String, with_ids: bool) -> Result<Vec<DayRows>, LakeError> {
    let bytes = storage.get(&key).await?.ok_or_else(|| LakeError::Corrupt(format!("{key} is listed but missing")))?;
    tokio::task::spawn_blocking(move || decode(date, &key, bytes, with_ids))
        .await
        .map_err(|e| LakeError::Corrupt(format!("decoding a day file: {e}")))?
}

/// Reads `files` in date order and hands each day's rows to `visit`, decoding ahead in
/// parallel; `with_ids` also reads ISINs and symbols.
pub(super) async fn scan(
    storage: &Storage,
    files: &BTreeMap<NaiveDate, Vec<String>>,
    with_ids: bool,
    mut visit: impl FnMut(DayRows),
) -> Result<u64, LakeError> {
    // Owned jobs: a stream of futures borrowing the map is not `Send` for every lifetime.
    let jobs: Vec<(NaiveDate, String)> =
        files.iter().flat_map(|(d, keys)| keys.iter().map(move |k| (*d, k.clone()))).collect();
    let mut days = futures::stream::iter(jobs)
        .map(|(date, key)| read_day(storage.clone(), date, key, with_ids))
        .buffered(read_ahead());
    let mut rows = 0u64;
    while let Some(parts) = days.try_next().await? {
        for part in parts {
            rows += part.len() as u64;
            visit(part);
        }
    }
    Ok(rows)
}

/// A deterministic generator of numbers below `m` (xorshift), for the property tests here and
/// in `reconcile`.
#[cfg(test)]
pub(super) fn scramble(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Duration::days(n)
    }

    fn s(n: i64, flag: bool) -> Session {
        Session {
            date: day(n),
            open: Some(n as f64),
            close: Some(n as f64 + 0.5),
            prev_close: None,
            flag: flag.then(|| "XD".to_string()),
            raw_sha256: flag.then(|| format!("sha{n}")),
            source_line: n as u64,
            has_flags: true,
        }
    }

    fn condense(days: &[Session], anchors: &[i64]) -> Vec<i64> {
        let a = BTreeMap::from([(7, anchors.iter().map(|n| day(*n)).collect())]);
        let mut c = Condenser::new(&a);
        for d in days {
            c.push(7, d.clone());
        }
        c.finish().remove(&7).unwrap_or_default().iter().map(|d| (d.date - day(0)).num_days()).collect()
    }

    #[test]
    fn keeps_the_first_the_last_flags_anchors_and_their_neighbours() {
        let days: Vec<Session> = (0..30).map(|n| s(n, n == 10 || n == 11)).collect();
        assert_eq!(condense(&days, &[20]), [0, 1, 9, 10, 11, 12, 19, 20, 21, 29]);
        // An ex-date without a session of its own anchors the next session.
        let gappy: Vec<Session> = (0..30).filter(|n| *n != 20).map(|n| s(n, false)).collect();
        assert_eq!(condense(&gappy, &[20]), [0, 1, 19, 21, 22, 29]);
        assert_eq!(condense(&gappy, &[-5, 40]), [0, 1, 29], "before the data: the first; after: nothing yet");
    }

    #[test]
    fn condensing_what_was_kept_plus_new_days_equals_condensing_everything() {
        // A deterministic scramble of flags, anchors and split points.
        let mut next = scramble(0x2545_f491_4f6c_dd1d);
        for _ in 0..500 {
            let len = 1 + next(60) as i64;
            let mut days = Vec::new();
            for n in 0..len {
                if next(5) != 0 {
                    days.push(s(n, next(7) == 0));
                }
            }
            if days.is_empty() {
                continue;
            }
            let anchors: Vec<i64> = (0..next(4)).map(|_| next(70) as i64 - 5).collect();
            let whole = condense(&days, &anchors);
            let cut = next(days.len() as u64 + 1) as usize;
            let a = BTreeMap::from([(7, anchors.iter().map(|n| day(*n)).collect())]);
            let mut first = Condenser::new(&a);
            for d in &days[..cut] {
                first.push(7, d.clone());
            }
            let kept = first.finish().remove(&7).unwrap_or_default();
            let mut again = Condenser::new(&a);
            for d in kept.iter().chain(&days[cut..]) {
                again.push(7, d.clone());
            }
            let got: Vec<i64> =
                again.finish().remove(&7).unwrap_or_default().iter().map(|d| (d.date - day(0)).num_days()).collect();
            assert_eq!(got, whole, "{days:?} cut at {cut}, anchors {anchors:?}");
        }
    }

    #[test]
    fn identifiers_merge_like_one_read() {
        let rows = [(1, "INE1", "AAA"), (2, "INE2", "BBB"), (1, "INE1", "AAA"), (3, "INE3", "AAA"), (1, "INE9", "AAA")];
        let mut whole = Identifiers::default();
        for (s, i, y) in rows {
            whole.row(s, Some(i), Some(y));
        }
        let mut first = Identifiers::default();
        for (s, i, y) in &rows[..2] {
            first.row(*s, Some(i), Some(y));
        }
        let carried = Identifiers::from_batches(&[first.to_batch().unwrap()], "t").unwrap();
        let mut merged = carried;
        for (s, i, y) in &rows[2..] {
            merged.row(*s, Some(i), Some(y));
        }
        for (i, y) in [("INE1", "AAA"), ("INE2", "BBB"), ("INE9", "ZZZ"), ("INE3", "AAA"), ("X", "AAA")] {
            assert_eq!(merged.resolve(Some(i), Some(y)), whole.resolve(Some(i), Some(y)), "{i} {y}");
        }
        assert_eq!(whole.resolve(None, Some("AAA")), None, "a symbol two scrips used matches neither");
        assert_eq!(whole.resolve(Some("INE9"), None), Some(1));
    }
}
