//! Bars in memory: each instrument's bars sorted by start, newest revision only.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::error::Result;

use super::{Bar, Rejected, to_batch, trade_date_of};

/// What applying a bar did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A key not seen before.
    New,
    /// The same key with the same values: nothing changed.
    Duplicate,
    /// The same key with other values: the bar is replaced, with this revision.
    Corrected(i32),
}

impl Applied {
    /// What storing `bar` over `previous` (the stored bar of its key, if any) does, and the
    /// revision `bar` must carry: the one rule the log writer and [`BarStore`] share.
    #[must_use]
    pub fn against(previous: Option<&Bar>, bar: &Bar) -> (Self, i32) {
        match previous {
            None => (Self::New, 0),
            Some(old) if old.same_values(bar) => (Self::Duplicate, old.revision),
            Some(old) => (Self::Corrected(old.revision + 1), old.revision + 1),
        }
    }
}

/// The fold of snapshots and log segments: every instrument's newest bars, and every refusal.
#[derive(Debug, Default)]
pub struct BarStore {
    instruments: HashMap<Arc<str>, Vec<Bar>>,
    quarantine: Vec<Rejected>,
    dirty_dates: BTreeSet<i32>,
    quarantine_snapshotted: usize,
    bars: usize,
}

impl BarStore {
    /// The stored bar of a key.
    #[must_use]
    pub fn get(&self, instrument: &str, ts: i64) -> Option<&Bar> {
        let bars = self.instruments.get(instrument)?;
        bars.binary_search_by_key(&ts, |b| b.ts).ok().map(|i| &bars[i])
    }

    /// What [`BarStore::apply`] would do with `bar`, and the revision it must carry.
    #[must_use]
    pub fn classify(&self, bar: &Bar) -> (Applied, i32) {
        Applied::against(self.get(&bar.instrument, bar.ts), bar)
    }

    /// Stores `bar` (its revision as given: the log's). A repeat of the stored values changes
    /// nothing.
    pub fn apply(&mut self, bar: Bar) -> Applied {
        let date = bar.trade_date();
        let bars = self.instruments.entry(Arc::clone(&bar.instrument)).or_default();
        // Bars mostly arrive in order: appending is the common case.
        let at = match bars.last() {
            Some(last) if last.ts < bar.ts => Err(bars.len()),
            None => Err(0),
            _ => bars.binary_search_by_key(&bar.ts, |b| b.ts),
        };
        let applied = match at {
            Ok(i) if bars[i].same_values(&bar) => return Applied::Duplicate,
            Ok(i) => {
                let r = bar.revision;
                bars[i] = bar;
                Applied::Corrected(r)
            }
            Err(i) => {
                bars.insert(i, bar);
                self.bars += 1;
                Applied::New
            }
        };
        self.dirty_dates.insert(date);
        applied
    }

    /// Keeps a refusal.
    pub fn push_rejected(&mut self, r: Rejected) {
        self.quarantine.push(r);
    }

    /// Bars held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bars
    }

    /// Whether no bar is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bars == 0
    }

    /// Instruments with at least one bar.
    #[must_use]
    pub fn instrument_count(&self) -> usize {
        self.instruments.len()
    }

    /// The bars of one instrument, sorted by start.
    #[must_use]
    pub fn bars_of(&self, instrument: &str) -> Option<&[Bar]> {
        self.instruments.get(instrument).map(Vec::as_slice)
    }

    /// Every instrument and its bars (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &[Bar])> {
        self.instruments.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// Every bar, as batches of at most `rows` rows, instrument by instrument.
    pub fn batches(&self, rows: usize) -> Result<Vec<RecordBatch>> {
        let mut names: Vec<&Arc<str>> = self.instruments.keys().collect();
        names.sort();
        let mut out = Vec::new();
        let mut pending: Vec<&Bar> = Vec::new();
        for name in names {
            for bar in &self.instruments[name] {
                pending.push(bar);
                if pending.len() >= rows.max(1) {
                    out.push(to_batch(pending.drain(..))?);
                }
            }
        }
        if !pending.is_empty() {
            out.push(to_batch(pending)?);
        }
        Ok(out)
    }

    /// Every bar of trade date `date` (Date32), sorted by instrument and start.
    pub fn date_batch(&self, date: i32) -> Result<RecordBatch> {
        let mut names: Vec<&Arc<str>> = self.instruments.keys().collect();
        names.sort();
        let mut rows: Vec<&Bar> = Vec::new();
        for name in names {
            let bars = &self.instruments[name];
            let from = bars.partition_point(|b| trade_date_of(b.ts) < date);
            rows.extend(bars[from..].iter().take_while(|b| trade_date_of(b.ts) == date));
        }
        to_batch(rows)
    }

    /// Trade dates changed since the last call.
    pub fn take_dirty_dates(&mut self) -> BTreeSet<i32> {
        std::mem::take(&mut self.dirty_dates)
    }

    /// Marks dates changed again (a snapshot that failed).
    pub fn mark_dirty(&mut self, dates: impl IntoIterator<Item = i32>) {
        self.dirty_dates.extend(dates);
    }

    /// Every refusal held.
    #[must_use]
    pub fn quarantine(&self) -> &[Rejected] {
        &self.quarantine
    }

    /// Refusals not yet in a snapshot, and how many come before them.
    #[must_use]
    pub fn unsnapshotted_quarantine(&self) -> (usize, &[Rejected]) {
        let from = self.quarantine_snapshotted.min(self.quarantine.len());
        (from, &self.quarantine[from..])
    }

    /// Records that the first `n` refusals are in a snapshot.
    pub fn quarantine_snapshotted(&mut self, n: usize) {
        self.quarantine_snapshotted = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(ts: i64, close: f64, revision: i32) -> Bar {
        Bar {
            instrument: Arc::from("NSE:TCS"),
            ts,
            interval_s: 60,
            open: close,
            high: close,
            low: close,
            close,
            volume: 10,
            revision,
            received_at: 0,
        }
    }

    #[test]
    fn repeats_are_no_ops_corrections_replace_late_bars_go_in_order() {
        let mut s = BarStore::default();
        assert_eq!(s.apply(bar(120, 1.0, 0)), Applied::New);
        assert_eq!(s.apply(bar(240, 2.0, 0)), Applied::New);
        assert_eq!(s.classify(&bar(120, 1.0, 0)), (Applied::Duplicate, 0));
        assert_eq!(s.apply(bar(120, 1.0, 0)), Applied::Duplicate);
        assert_eq!(s.classify(&bar(120, 1.5, 0)), (Applied::Corrected(1), 1));
        assert_eq!(s.apply(bar(120, 1.5, 1)), Applied::Corrected(1));
        assert_eq!(s.apply(bar(60, 0.5, 0)), Applied::New);
        let ts: Vec<i64> = s.bars_of("NSE:TCS").unwrap().iter().map(|b| b.ts).collect();
        assert_eq!(ts, [60, 120, 240]);
        assert_eq!(s.get("NSE:TCS", 120).unwrap().close, 1.5);
        assert_eq!(s.len(), 3);
        assert_eq!(s.take_dirty_dates().len(), 1);
        assert!(s.take_dirty_dates().is_empty());
    }
}
