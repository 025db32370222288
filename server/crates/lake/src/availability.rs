//! When a trade date's values became *available*: the leakage boundary of point-in-time reads.
//! A bhavcopy is not known at the close; BSE publishes it in the evening. A day is available
//! when its raw file was first loaded, if that was within [`FIRST_FETCH_WINDOW`] of the day (a
//! download on the evening), else at the clock's publish time on the day (an import or a
//! backfill long after, which says nothing about when the file existed).
//!
//! Availability is made monotonic (each day at the latest availability of it and every earlier
//! day): "the newest trade date known at t" is then one cutoff, and a late file for one day
//! delays what comes after it rather than letting a later day be read before an earlier one.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};

use crate::LakeError;
use crate::clock::MarketClock;
use bhavstore_storage::{Storage, paths};

/// A first load later than this after the trade date's start is not its publication.
pub const FIRST_FETCH_WINDOW: TimeDelta = TimeDelta::days(3);

/// Which instant makes a trade date's values known to a point-in-time read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsOfRule {
    /// When the bhavcopy was available (fetched, or the publish time): no leakage.
    #[default]
    Available,
    /// The market close of the trade date (what a live strategy would see only if it computed
    /// the values itself from the closing prints).
    Close,
}

impl AsOfRule {
    /// Parses `available` or `close`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "available" => Ok(Self::Available),
            "close" => Ok(Self::Close),
            other => Err(format!("rule {other:?}: use available (the default) or close")),
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Close => "close",
        }
    }
}

/// The availability of every loaded trade date.
#[derive(Debug, Clone, Default)]
pub struct Availability {
    clock: MarketClock,
    /// (trade date, effective availability), ascending in both.
    days: Vec<(NaiveDate, DateTime<Utc>)>,
    /// The first load of each day, as recorded.
    first_loads: BTreeMap<NaiveDate, DateTime<Utc>>,
}

impl Availability {
    /// From the change log of loads (keys only: one listing, no reads).
    pub async fn load(storage: &Storage, clock: &MarketClock) -> Result<Self, LakeError> {
        let keys = storage.list(paths::LOADS).await?;
        let loads = keys.iter().filter_map(|k| {
            let (date, _) = paths::parse_load_entry(k)?;
            let stamp = k.rsplit('/').next()?.split('_').next()?;
            let at = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.fZ").ok()?.and_utc();
            Some((date, at))
        });
        Ok(Self::from_loads(clock.clone(), loads))
    }

    /// From (trade date, load time) pairs.
    #[must_use]
    pub fn from_loads(clock: MarketClock, loads: impl IntoIterator<Item = (NaiveDate, DateTime<Utc>)>) -> Self {
        let mut first_loads: BTreeMap<NaiveDate, DateTime<Utc>> = BTreeMap::new();
        for (d, at) in loads {
            let e = first_loads.entry(d).or_insert(at);
            *e = (*e).min(at);
        }
        let mut days = Vec::with_capacity(first_loads.len());
        let mut running: Option<DateTime<Utc>> = None;
        for (d, first) in &first_loads {
            let own = Self::own(&clock, *d, Some(*first));
            let eff = running.map_or(own, |r| r.max(own));
            running = Some(eff);
            days.push((*d, eff));
        }
        Self { clock, days, first_loads }
    }

    fn own(clock: &MarketClock, d: NaiveDate, first: Option<DateTime<Utc>>) -> DateTime<Utc> {
        let start = d.and_hms_opt(0, 0, 0).map_or_else(Utc::now, |t| t.and_utc());
        match first {
            // Never before the close: a file cannot be known before the session ends.
            Some(f) if f - start <= FIRST_FETCH_WINDOW => f.max(clock.event_time(d)),
            _ => clock.publish_time(d),
        }
    }

    /// When `d`'s values became available (monotonic over the loaded days; a day never loaded
    /// is available at its publish time).
    #[must_use]
    pub fn available_at(&self, d: NaiveDate) -> DateTime<Utc> {
        match self.days.binary_search_by_key(&d, |(day, _)| *day) {
            Ok(i) => self.days[i].1,
            Err(_) => self.clock.publish_time(d),
        }
    }

    /// The first load of `d`, as recorded.
    #[must_use]
    pub fn first_load(&self, d: NaiveDate) -> Option<DateTime<Utc>> {
        self.first_loads.get(&d).copied()
    }

    /// The newest trade date whose values are known at `at` under `rule`.
    #[must_use]
    pub fn last_known_date(&self, at: DateTime<Utc>, rule: AsOfRule) -> NaiveDate {
        match rule {
            AsOfRule::Close => self.clock.last_known_date(at),
            AsOfRule::Available => {
                let n = self.days.partition_point(|(_, t)| *t <= at);
                let known = n.checked_sub(1).map(|i| self.days[i].0);
                if n == self.days.len() {
                    // Every loaded day is known: days after them (no rows yet) by publish time.
                    let beyond = self.clock.last_published_date(at);
                    return known.map_or(beyond, |d| beyond.max(d));
                }
                known.unwrap_or_else(|| self.days[0].0 - chrono::Days::new(1))
            }
        }
    }

    /// The clock it reads event and publish times from.
    #[must_use]
    pub fn clock(&self) -> &MarketClock {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_issue_example_available_answers_the_day_before_close_the_same_day() {
        // 2015-03-09 and 2015-03-10 imported years later: each available at 18:00 IST.
        let a = Availability::from_loads(
            MarketClock::default(),
            [(d("2015-03-09"), t("2024-01-01T00:00:00Z")), (d("2015-03-10"), t("2024-01-01T00:00:00Z"))],
        );
        let at = t("2015-03-10T16:00:00+05:30");
        assert_eq!(a.last_known_date(at, AsOfRule::Available), d("2015-03-09"));
        assert_eq!(a.last_known_date(at, AsOfRule::Close), d("2015-03-10"));
        assert_eq!(a.available_at(d("2015-03-10")), t("2015-03-10T18:00:00+05:30"));
        assert_eq!(a.last_known_date(t("2015-03-10T18:00:00+05:30"), AsOfRule::Available), d("2015-03-10"));
    }

    #[test]
    fn a_download_on_the_evening_is_the_availability_and_a_late_day_delays_the_next() {
        let a = Availability::from_loads(
            MarketClock::default(),
            [
                (d("2026-07-13"), t("2026-07-13T20:05:00+05:30")),
                // Fetched two days late (within the window): 2026-07-14 is known only then, and
                // 2026-07-15 (fetched on time) no earlier.
                (d("2026-07-14"), t("2026-07-16T09:00:00+05:30")),
                (d("2026-07-15"), t("2026-07-15T20:01:00+05:30")),
                (d("2026-07-15"), t("2026-07-20T10:00:00+05:30")),
            ],
        );
        assert_eq!(a.available_at(d("2026-07-13")), t("2026-07-13T20:05:00+05:30"));
        assert_eq!(a.available_at(d("2026-07-15")), t("2026-07-16T09:00:00+05:30"));
        assert_eq!(a.last_known_date(t("2026-07-15T21:00:00+05:30"), AsOfRule::Available), d("2026-07-13"));
        assert_eq!(a.last_known_date(t("2026-07-16T09:00:00+05:30"), AsOfRule::Available), d("2026-07-15"));
        // A day never loaded, after the last: its publish time.
        assert_eq!(a.last_known_date(t("2026-07-17T18:30:00+05:30"), AsOfRule::Available), d("2026-07-17"));
        assert_eq!(AsOfRule::parse("CLOSE"), Ok(AsOfRule::Close));
        assert!(AsOfRule::parse("open").is_err());
    }

    #[tokio::test]
    async fn the_change_log_tells_when_a_day_was_first_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = bhavstore_storage::StorageConfig { url: dir.path().display().to_string(), ..Default::default() };
        let storage = Storage::open(&cfg).unwrap();
        let evening = t("2026-07-14T20:04:10.123456+05:30");
        let later = t("2026-07-20T09:00:00+05:30");
        for (day, at) in [("2026-07-14", evening), ("2026-07-14", later), ("2015-03-10", later)] {
            storage.put(&paths::load_entry(at, d(day), "abc"), bytes::Bytes::from_static(b"{}")).await.unwrap();
        }
        let a = Availability::load(&storage, &MarketClock::default()).await.unwrap();
        assert_eq!(a.first_load(d("2026-07-14")), Some(evening));
        assert_eq!(a.available_at(d("2026-07-14")), evening, "downloaded the same evening");
        assert_eq!(a.available_at(d("2015-03-10")), t("2015-03-10T18:00:00+05:30"), "imported years later");
    }
}
