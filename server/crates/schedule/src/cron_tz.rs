//! Cron fire times and retry cut-offs in the schedule's time zone.
//!
//! Everything the runner sleeps towards is an instant in UTC; the time zone only decides which
//! instants those are and which calendar date a fire belongs to.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// The first fire time of `cron` strictly after `after`, with the cron fields read as wall-clock
/// time in `tz`; `None` when it never fires again.
pub(super) fn next_fire(cron: &cron::Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.after(&after.with_timezone(&tz)).next().map(|t| t.with_timezone(&Utc))
}

/// The trade date a fire at `fire` stands for: its local calendar date.
pub(super) fn fire_date(fire: DateTime<Utc>, tz: Tz) -> NaiveDate {
    fire.with_timezone(&tz).date_naive()
}

/// The instant the local wall clock in `tz` shows `time` on `date`.
///
/// On a daylight-saving change the wall-clock time may happen twice (the later one is taken:
/// more time to retry) or not at all (it is read with the offset from before the change, which
/// lands just after the gap, where an unchanged clock would show it).
pub(super) fn local_instant(date: NaiveDate, time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let naive = date.and_time(time);
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(_, later) => later.with_timezone(&Utc),
        LocalResult::None => {
            // Three hours back is before the gap (no zone changes offset twice that fast); the UTC
            // reading is a last resort that no real zone reaches.
            let offset = tz.offset_from_local_datetime(&(naive - TimeDelta::hours(3))).earliest();
            let seconds = offset.map_or(0, |o| o.fix().local_minus_utc());
            (naive - TimeDelta::seconds(i64::from(seconds))).and_utc()
        }
    }
}

/// `t` as local time with the zone's abbreviation, for log messages.
pub(super) fn show_local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z").to_string()
}
