//! Intraday bars: the `intraday_bars` table, as every reader sees it.
//!
//! A bar is keyed by (`instrument`, `ts`), `ts` being its start. What is stored is a fold: the
//! newest snapshot's day files, then every write-ahead-log segment after it, in order; a later
//! entry for the same key is a correction and carries a higher `revision`. [`BarStore`] is that
//! fold in memory; [`stored::load`] builds it from storage, so the server at start, the
//! materializer and `bhavstore query` all read the same bars.
//!
//! Times: `ts` is UTC microseconds; the trade date and session are those of `ts` in IST
//! (UTC+05:30, no daylight saving): `pre_open` before 09:15, `regular` 09:15 to 15:30 (the
//! 15:29 bar is the session's last), `post_close` from 15:30.

mod batch;
mod store;
pub mod stored;
pub mod wal;

pub use batch::{bars_schema, quarantine_schema, to_batch, to_quarantine_batch};
pub use store::{Applied, BarStore};

use std::sync::Arc;

/// Name of the intraday bars table.
pub const INTRADAY_BARS: &str = "intraday_bars";
/// Name of the table of refused intraday bars.
pub const INTRADAY_QUARANTINE: &str = "intraday_quarantine";

/// Seconds east of UTC of Indian Standard Time.
pub const IST_OFFSET_SECS: i64 = 19_800;
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Minute of the IST day the regular session opens (09:15).
pub const REGULAR_OPEN_MINUTE: i64 = 9 * 60 + 15;
/// Minute of the IST day the regular session closes (15:30).
pub const REGULAR_CLOSE_MINUTE: i64 = 15 * 60 + 30;

/// Which part of the trading day a bar starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Session {
    /// Before 09:15 IST.
    PreOpen,
    /// 09:15 to 15:30 IST.
    Regular,
    /// From 15:30 IST.
    PostClose,
}

impl Session {
    /// The name the table shows.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreOpen => "pre_open",
            Self::Regular => "regular",
            Self::PostClose => "post_close",
        }
    }

    /// The session of a bar starting at `ts` (UTC microseconds).
    #[must_use]
    pub fn of(ts: i64) -> Self {
        let local = ts + IST_OFFSET_SECS * 1_000_000;
        let minute = local.rem_euclid(MICROS_PER_DAY) / 60_000_000;
        if minute < REGULAR_OPEN_MINUTE {
            Self::PreOpen
        } else if minute < REGULAR_CLOSE_MINUTE {
            Self::Regular
        } else {
            Self::PostClose
        }
    }
}

/// The IST trade date (Arrow Date32 days) of a bar starting at `ts` (UTC microseconds).
#[must_use]
pub fn trade_date_of(ts: i64) -> i32 {
    let local = ts + IST_OFFSET_SECS * 1_000_000;
    i32::try_from(local.div_euclid(MICROS_PER_DAY)).unwrap_or(i32::MIN)
}

/// One stored bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// `EXCHANGE:SYMBOL`.
    pub instrument: Arc<str>,
    /// Bar start, UTC microseconds.
    pub ts: i64,
    /// Bar length in seconds.
    pub interval_s: i32,
    /// Prices.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Last price.
    pub close: f64,
    /// Shares traded.
    pub volume: i64,
    /// 0 for the first value of the key, then one more for each correction.
    pub revision: i32,
    /// When the server accepted this revision, UTC microseconds.
    pub received_at: i64,
}

impl Bar {
    /// Whether `other` carries the same market data (revision and arrival aside): a repeat of
    /// it is a no-op, anything else a correction.
    #[must_use]
    pub fn same_values(&self, other: &Self) -> bool {
        self.interval_s == other.interval_s
            && self.open.to_bits() == other.open.to_bits()
            && self.high.to_bits() == other.high.to_bits()
            && self.low.to_bits() == other.low.to_bits()
            && self.close.to_bits() == other.close.to_bits()
            && self.volume == other.volume
    }

    /// IST trade date (Date32 days).
    #[must_use]
    pub fn trade_date(&self) -> i32 {
        trade_date_of(self.ts)
    }

    /// Session of its start.
    #[must_use]
    pub fn session(&self) -> Session {
        Session::of(self.ts)
    }
}

/// A bar the server refused, kept with its reason in `intraday_quarantine`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// When it arrived, UTC microseconds.
    pub received_at: i64,
    /// How it came in: `rest`, `flight`, `cli`.
    pub via: String,
    /// Its index in the request (0-based), or its line in the file (1-based) for `cli`.
    pub index: i64,
    /// The instrument, if it could be read.
    pub instrument: Option<String>,
    /// The bar start, if it could be read.
    pub ts: Option<i64>,
    /// Why it was refused.
    pub reason: String,
    /// The row as it came (JSON text or the CSV line).
    pub raw: String,
}
