//! The synthetic market behind `gen-history`: a fixed universe of securities, each a geometric
//! random walk, emitted one session at a time as canonical `bhavcopy` rows.
//!
//! Every security draws from its own [`SplitMix64`] stream, so a run is a pure function of
//! `(securities, sessions, seed, start)` whatever the number of writer threads. The universe
//! mixes what the feature views have to cope with: about 5% debt securities (`sc_type` `B`,
//! `is_equity` false, filtered out by the views), late listings, early delistings and illiquid
//! securities that skip sessions, so window partitions have different lengths and gaps.

use chrono::{Datelike, Days, NaiveDate, Weekday};

use bhavstore_formats::CanonicalRow;

use crate::rng::{SplitMix64, mix};

/// Daily standard deviation of the close-to-close log return.
pub const DAILY_LOG_VOL: f64 = 0.02;
/// Share of the universe that is equity (`sc_type` `Q`); the rest is debt (`B`).
pub const EQUITY_SHARE: f64 = 0.95;
/// Share of securities listed after the first session.
pub const LATE_LISTING_SHARE: f64 = 0.03;
/// Share of securities delisted before the last session.
pub const EARLY_DELISTING_SHARE: f64 = 0.02;
/// Share of illiquid securities, which skip sessions at random (5% to 50% of them).
pub const ILLIQUID_SHARE: f64 = 0.03;

/// The first `sessions` weekdays on or after `start` (the synthetic exchange has no holidays).
#[must_use]
pub fn trading_days(start: NaiveDate, sessions: usize) -> Vec<NaiveDate> {
    let mut days = Vec::with_capacity(sessions);
    let mut d = start;
    while days.len() < sessions {
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            days.push(d);
        }
        d = d + Days::new(1);
    }
    days
}

/// One security: static attributes plus the state of its random walk.
#[derive(Debug, Clone)]
struct Security {
    scrip_code: i32,
    isin: String,
    name: String,
    sc_group: &'static str,
    sc_type: &'static str,
    is_equity: bool,
    /// First session (index) it trades.
    listed: usize,
    /// One past its last session.
    delisted: usize,
    /// Probability of not trading in a session while listed.
    skip_probability: f64,
    /// ln of the typical daily volume.
    log_volume: f64,
    /// ln of the unrounded price; advances only on sessions it trades.
    log_price: f64,
    /// Close printed on its previous traded session.
    prev_close: Option<f64>,
    rng: SplitMix64,
}

impl Security {
    fn new(index: usize, sessions: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::stream(seed, index as u64);
        let is_equity = rng.chance(EQUITY_SHARE);
        let listed = if rng.chance(LATE_LISTING_SHARE) { rng.below(sessions as u64) as usize } else { 0 };
        let delisted = if rng.chance(EARLY_DELISTING_SHARE) {
            listed + 1 + rng.below((sessions - listed) as u64) as usize
        } else {
            sessions
        };
        let skip_probability = if rng.chance(ILLIQUID_SHARE) { rng.uniform_range(0.05, 0.5) } else { 0.0 };
        let log_price = rng.uniform_range(10f64.ln(), 3000f64.ln());
        let log_volume = rng.uniform_range(1e3f64.ln(), 1e6f64.ln());
        let groups = ["A", "B", "B", "T", "X", "XT", "M", "Z"];
        let sc_group = if is_equity { groups[rng.below(groups.len() as u64) as usize] } else { "F" };
        // ISIN layout: INE, 4-character issuer, 2-digit security type (01 equity shares,
        // 07 debentures, which `equity_by_isin` classifies the same way), serial, check digit.
        let issuer = base36(index as u64, 4);
        let isin = format!("INE{issuer}{}01{}", if is_equity { "01" } else { "07" }, index % 10);
        let name = format!("SYNTH {index:05} {}", if is_equity { "LTD" } else { "NCD" });
        Self {
            scrip_code: 500_000 + index as i32,
            isin,
            name,
            sc_group,
            sc_type: if is_equity { "Q" } else { "B" },
            is_equity,
            listed,
            delisted,
            skip_probability,
            log_volume,
            log_price,
            prev_close: None,
            rng,
        }
    }

    /// The security's row for session `day`, if it trades then.
    fn session(&mut self, day: usize) -> Option<CanonicalRow> {
        if day < self.listed || day >= self.delisted {
            return None;
        }
        if self.skip_probability > 0.0 && self.rng.chance(self.skip_probability) {
            return None;
        }
        let rng = &mut self.rng;
        self.log_price += rng.gauss(0.0, DAILY_LOG_VOL);
        let close = round_paise(self.log_price.exp());
        let open = round_paise(self.prev_close.unwrap_or(close) * rng.gauss(0.0, 0.006).exp());
        let high = ((open.max(close) * rng.gauss(0.0, 0.008).abs().exp() * 100.0).ceil() / 100.0).max(open.max(close));
        let low = ((open.min(close) * (-rng.gauss(0.0, 0.008).abs()).exp() * 100.0).floor() / 100.0)
            .clamp(0.01, open.min(close));
        let volume = (self.log_volume + rng.gauss(0.0, 0.8)).exp().round().max(1.0) as i64;
        let trades = (volume / (20 + rng.below(180) as i64)).max(1);
        let ex_flag = rng.chance(0.002).then(|| "XD".to_string());
        let row = CanonicalRow {
            scrip_code: self.scrip_code,
            isin: Some(self.isin.clone()),
            symbol: None,
            name: self.name.clone(),
            sc_group: Some(self.sc_group.to_string()),
            sc_type: Some(self.sc_type.to_string()),
            open: Some(open),
            high: Some(high),
            low: Some(low),
            close: Some(close),
            last: Some(close),
            prev_close: self.prev_close,
            volume: Some(volume),
            turnover: Some((volume as f64 * (high + low + close) / 3.0 * 100.0).round() / 100.0),
            trades: Some(trades),
            is_equity: self.is_equity,
            ex_flag,
            settlement_price: None,
            source_line: 0,
        };
        self.prev_close = Some(close);
        Some(row)
    }
}

/// Rounds a price to the paisa, never below one paisa.
fn round_paise(price: f64) -> f64 {
    ((price * 100.0).round() / 100.0).max(0.01)
}

/// `value` in base 36, upper case, left-padded with zeros to `width`.
fn base36(mut value: u64, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value % 36) as usize];
        value /= 36;
    }
    String::from_utf8(out).expect("ASCII digits")
}

/// The whole universe, stepped one session at a time.
#[derive(Debug)]
pub struct Market {
    securities: Vec<Security>,
    days: Vec<NaiveDate>,
    next: usize,
    seed: u64,
}

/// One session's rows, sorted by `scrip_code` as the canonical files are.
#[derive(Debug)]
pub struct Session {
    /// The trade date.
    pub date: NaiveDate,
    /// Synthetic provenance hash (64 hex digits) for the `raw_sha256` column.
    pub raw_sha256: String,
    /// The rows.
    pub rows: Vec<CanonicalRow>,
}

impl Market {
    /// A universe of `securities` over the first `sessions` weekdays from `start`.
    #[must_use]
    pub fn new(securities: usize, sessions: usize, seed: u64, start: NaiveDate) -> Self {
        Self {
            securities: (0..securities).map(|i| Security::new(i, sessions, seed)).collect(),
            days: trading_days(start, sessions),
            next: 0,
            seed,
        }
    }

    /// The trade dates, in order.
    #[must_use]
    pub fn days(&self) -> &[NaiveDate] {
        &self.days
    }

    /// Securities with `is_equity` true.
    #[must_use]
    pub fn equity_count(&self) -> usize {
        self.securities.iter().filter(|s| s.is_equity).count()
    }
}

impl Iterator for Market {
    type Item = Session;

    fn next(&mut self) -> Option<Session> {
        let day = self.next;
        let date = *self.days.get(day)?;
        self.next += 1;
        let mut rows: Vec<CanonicalRow> = self.securities.iter_mut().filter_map(|s| s.session(day)).collect();
        rows.sort_by_key(|r| r.scrip_code);
        for (i, r) in rows.iter_mut().enumerate() {
            // Line 1 of a bhavcopy is the header.
            r.source_line = i as u64 + 2;
        }
        let h = |k: u64| mix(self.seed ^ mix(day as u64 * 4 + k));
        let raw_sha256 = format!("{:016x}{:016x}{:016x}{:016x}", h(0), h(1), h(2), h(3));
        Some(Session { date, raw_sha256, rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> NaiveDate {
        NaiveDate::from_ymd_opt(2005, 1, 3).unwrap()
    }

    #[test]
    fn weekdays_only() {
        let days = trading_days(NaiveDate::from_ymd_opt(2005, 1, 1).unwrap(), 10);
        assert_eq!(days.len(), 10);
        assert_eq!(days[0], start());
        assert!(days.iter().all(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)));
        assert!(days.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn rows_are_consistent_and_sorted() {
        for session in Market::new(300, 120, 7, start()) {
            assert!(session.rows.windows(2).all(|w| w[0].scrip_code < w[1].scrip_code));
            for r in &session.rows {
                let (o, h, l, c) = (r.open.unwrap(), r.high.unwrap(), r.low.unwrap(), r.close.unwrap());
                assert!(l > 0.0 && l <= o.min(c) && h >= o.max(c), "{r:?}");
                assert!(r.volume.unwrap() > 0 && r.trades.unwrap() > 0);
                assert_eq!(r.is_equity, r.sc_type.as_deref() == Some("Q"));
                assert_eq!(r.is_equity, bhavstore_formats::equity_by_isin(r.isin.as_deref().unwrap()));
            }
        }
    }

    #[test]
    fn same_seed_same_history_and_uneven_partitions() {
        let a: Vec<Session> = Market::new(200, 60, 42, start()).collect();
        let b: Vec<Session> = Market::new(200, 60, 42, start()).collect();
        let c: Vec<Session> = Market::new(200, 60, 43, start()).collect();
        assert!(a.iter().zip(&b).all(|(x, y)| x.rows == y.rows && x.raw_sha256 == y.raw_sha256));
        assert!(a.iter().zip(&c).any(|(x, y)| x.rows != y.rows));
        let mut per_security = std::collections::BTreeMap::<i32, usize>::new();
        for s in &a {
            for r in &s.rows {
                *per_security.entry(r.scrip_code).or_default() += 1;
            }
        }
        let lengths: std::collections::BTreeSet<usize> = per_security.values().copied().collect();
        assert!(lengths.len() > 3, "partition lengths {lengths:?}");
        assert!(a.iter().flat_map(|s| &s.rows).any(|r| !r.is_equity));
    }
}
