//! Corporate actions and the prices adjusted for them, point in time.
//!
//! * [`reconcile`]: aligns reported actions (stored by ingest) with the scrips' sessions,
//!   compares them with the bhavcopy's ex-date flags and price jumps, infers actions from flags
//!   no action list covers, and publishes the result ([`manifest`]);
//! * [`tables`]: the SQL tables over it (`corporate_actions`, `corporate_action_checks`,
//!   `adjustment_epochs`, `bhavcopy_adjusted`, `bhavcopy_total_return`) and `trading_calendar`;
//! * [`basis`]: the `prices:` choice of a view; [`ratios`]: the usual split and bonus ratios.

pub mod basis;
pub mod manifest;
pub mod ratios;
pub mod reconcile;
mod sessions;
pub mod tables;

pub use basis::{PriceBasis, WindowUnit};
pub use manifest::AdjustmentsManifest;
pub use reconcile::{ACTIONS_KIND, ReconcileReport, reconcile};
pub use tables::{DayStatus, HOLIDAYS_KIND, TRADING_CALENDAR, calendar, calendar_table};

/// Whether a table's rows depend on the reconciliation of corporate actions (a view reading it
/// is recomputed when the actions of its computed days change).
#[must_use]
pub fn depends_on_actions(table: &str) -> bool {
    matches!(table, tables::CORPORATE_ACTIONS | tables::CORPORATE_ACTION_CHECKS | tables::ADJUSTMENT_EPOCHS)
        || PriceBasis::of_table(table).is_some_and(PriceBasis::uses_actions)
}
