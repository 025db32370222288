//! The `online:` section of the configuration.

use serde::{Deserialize, Serialize};

/// What the in-memory online store holds and how event times are read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OnlineConfig {
    /// Calendar days of history held per view, counted back from its newest session. Lookups
    /// older than that are refused (use SQL or Flight for training sets).
    pub history_days: u32,
    /// Local wall-clock time at which a session's values become known (BSE closes at 15:30).
    pub market_close: String,
    /// IANA time zone of `market_close`.
    pub timezone: String,
    /// Local time by which BSE has published a day's bhavcopy: a day whose file was not
    /// downloaded within 3 days of it (an import, an old backfill) counts as available then.
    pub publish_time: String,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        Self {
            history_days: 400,
            market_close: bhavstore_lake::MarketClock::DEFAULT_CLOSE.into(),
            timezone: bhavstore_lake::MarketClock::DEFAULT_TIMEZONE.into(),
            publish_time: bhavstore_lake::MarketClock::DEFAULT_PUBLISH_TIME.into(),
        }
    }
}

impl OnlineConfig {
    /// The market clock of `market_close` in `timezone`.
    pub fn clock(&self) -> Result<bhavstore_lake::MarketClock, bhavstore_lake::ClockError> {
        bhavstore_lake::MarketClock::new(&self.market_close, &self.timezone)?.with_publish_time(&self.publish_time)
    }
}
