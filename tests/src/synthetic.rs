//! A small deterministic synthetic market written as legacy BSE bhavcopy CSVs (the 14-column
//! `EQ{DDMMYY}.CSV` layout), so tests can feed long histories through the real ingest path.
//!
//! It has what incremental materialization must get right: securities listing late, illiquid
//! ones that trade one session in five (their last N rows span far more than N sessions), a
//! debt security the views filter out, and prices from paise to tens of thousands of rupees.

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// Deterministic 64-bit mixer (SplitMix64 finaliser).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(seed: u64) -> f64 {
    (mix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

struct Security {
    code: u32,
    sc_type: char,
    listed_from: usize,
    every: usize,
    close: f64,
}

/// The market: call [`Market::session`] for sessions 0, 1, 2, ... in order.
pub struct Market {
    seed: u64,
    securities: Vec<Security>,
    days: Vec<NaiveDate>,
}

impl Market {
    /// `securities` securities over `sessions` weekdays from 2001-01-01.
    #[must_use]
    pub fn new(securities: usize, sessions: usize, seed: u64) -> Self {
        let mut days = Vec::with_capacity(sessions);
        let mut d = NaiveDate::from_ymd_opt(2001, 1, 1).expect("valid date");
        while days.len() < sessions {
            if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                days.push(d);
            }
            d = d + Days::new(1);
        }
        let securities = (0..securities)
            .map(|i| {
                let r = |k: u64| unit(seed ^ (i as u64) << 8 ^ k);
                Security {
                    code: 500_000 + i as u32 * 3,
                    sc_type: if i % 17 == 16 { 'B' } else { 'Q' },
                    listed_from: if i % 7 == 3 { (r(1) * sessions as f64 * 0.8) as usize } else { 0 },
                    every: if i % 5 == 2 { 5 } else { 1 },
                    close: (10f64.powf(r(2) * 4.5 - 0.5) * 100.0).round() / 100.0,
                }
            })
            .collect();
        Self { seed, securities, days }
    }

    /// The trade dates.
    #[must_use]
    pub fn days(&self) -> &[NaiveDate] {
        &self.days
    }

    /// File name and CSV bytes of session `i`; sessions must be generated in order because
    /// each close walks from the previous one.
    pub fn session(&mut self, i: usize) -> (String, Vec<u8>) {
        let date = self.days[i];
        let mut csv = String::from(
            "SC_CODE,SC_NAME,SC_GROUP,SC_TYPE,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,NO_TRADES,NO_OF_SHRS,NET_TURNOV,TDCLOINDI\n",
        );
        for (k, s) in self.securities.iter_mut().enumerate() {
            if i < s.listed_from || !(i + k).is_multiple_of(s.every) {
                continue;
            }
            let r = |n: u64| unit(self.seed ^ ((k as u64) << 20) ^ ((i as u64) << 40) ^ n);
            let prev = s.close;
            let step = (r(3) - 0.5) * 0.08;
            s.close = ((prev * step.exp()) * 100.0).round().max(1.0) / 100.0;
            let open = ((prev * ((r(4) - 0.5) * 0.02).exp()) * 100.0).round().max(1.0) / 100.0;
            let high = s.close.max(open) * (1.0 + r(5) * 0.02);
            let low = s.close.min(open) * (1.0 - r(6) * 0.02);
            let shares = 100 + (r(7) * 100_000.0) as u64;
            csv.push_str(&format!(
                "{},SYN {k:<8},A ,{},{open:.2},{high:.2},{low:.2},{:.2},{:.2},{prev:.2},{},{shares},{:.2},\n",
                s.code,
                s.sc_type,
                s.close,
                s.close,
                1 + shares / 50,
                shares as f64 * s.close
            ));
        }
        (format!("EQ{}.CSV", date.format("%d%m%y")), csv.into_bytes())
    }
}
