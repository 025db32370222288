//! When a session's values become known (the market clock), and Arrow's Date32 day numbers.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A market clock that cannot be built from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The time zone is not an IANA name.
    #[error("online.timezone: {0}")]
    TimeZone(String),
    /// The close is not `HH:MM`.
    #[error("online.market_close {0}")]
    Close(String),
    /// The publish time is not `HH:MM`.
    #[error("online.publish_time {0}")]
    Publish(String),
}

/// When a session's values become known.
#[derive(Debug, Clone)]
pub struct MarketClock {
    tz: Tz,
    close: NaiveTime,
    publish: NaiveTime,
}

impl Default for MarketClock {
    /// BSE: 15:30 in Asia/Kolkata, the bhavcopy published by 18:00.
    fn default() -> Self {
        Self {
            tz: chrono_tz::Asia::Kolkata,
            close: NaiveTime::from_hms_opt(15, 30, 0).unwrap_or_default(),
            publish: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default(),
        }
    }
}

impl MarketClock {
    /// The default close, `online.market_close`.
    pub const DEFAULT_CLOSE: &str = "15:30";
    /// The default zone, `online.timezone`.
    pub const DEFAULT_TIMEZONE: &str = "Asia/Kolkata";
    /// The default `online.publish_time`: when a day's bhavcopy counts as available when the
    /// time it was fetched is not known (imports, backfills long after the day).
    pub const DEFAULT_PUBLISH_TIME: &str = "18:00";

    /// A clock closing at `market_close` (`HH:MM`, local) in the IANA zone `timezone`. The
    /// error names the `online.*` setting each comes from.
    pub fn new(market_close: &str, timezone: &str) -> Result<Self, ClockError> {
        let tz: Tz = timezone.parse().map_err(|e| ClockError::TimeZone(format!("{e}")))?;
        let close = NaiveTime::parse_from_str(market_close, "%H:%M")
            .map_err(|e| ClockError::Close(format!("{market_close:?}: {e} (use HH:MM)")))?;
        Ok(Self { tz, close, ..Self::default() })
    }

    /// The same clock with bhavcopies published at `publish_time` (`HH:MM`, local).
    pub fn with_publish_time(mut self, publish_time: &str) -> Result<Self, ClockError> {
        self.publish = NaiveTime::parse_from_str(publish_time, "%H:%M")
            .map_err(|e| ClockError::Publish(format!("{publish_time:?}: {e} (use HH:MM)")))?;
        Ok(self)
    }

    /// When the bhavcopy of `d` counts as published if nothing better is known.
    #[must_use]
    pub fn publish_time(&self, d: NaiveDate) -> DateTime<Utc> {
        self.instant(d, self.publish)
    }

    /// The latest trade date whose publish time is at or before `at`.
    #[must_use]
    pub fn last_published_date(&self, at: DateTime<Utc>) -> NaiveDate {
        self.last_date_by(at, self.publish)
    }

    /// Event time of a trade date.
    #[must_use]
    pub fn event_time(&self, d: NaiveDate) -> DateTime<Utc> {
        self.instant(d, self.close)
    }

    /// The latest trade date whose event time is at or before `at`.
    #[must_use]
    pub fn last_known_date(&self, at: DateTime<Utc>) -> NaiveDate {
        self.last_date_by(at, self.close)
    }

    /// Local time `t` of `d` in the clock's zone.
    fn instant(&self, d: NaiveDate, t: NaiveTime) -> DateTime<Utc> {
        let local = d.and_time(t);
        self.tz.from_local_datetime(&local).earliest().map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
    }

    /// The latest date whose local time `t` is at or before `at`.
    fn last_date_by(&self, at: DateTime<Utc>, t: NaiveTime) -> NaiveDate {
        let d = at.with_timezone(&self.tz).date_naive();
        if self.instant(d, t) <= at { d } else { d - Days::new(1) }
    }
}

/// 1970-01-01, the origin of Arrow's Date32.
#[must_use]
pub fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// Days since [`epoch`] (Arrow's Date32).
#[must_use]
pub fn to_days(d: NaiveDate) -> i32 {
    i32::try_from((d - epoch()).num_days()).unwrap_or(i32::MIN)
}

/// The date of a Date32 value.
#[must_use]
pub fn from_days(d: i32) -> NaiveDate {
    epoch() + chrono::Duration::days(i64::from(d))
}
