//! Which prices a daily feature view is computed on (`prices:` in its YAML).

use serde::{Deserialize, Serialize};

/// The price basis of a daily view; each reads its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceBasis {
    /// Prices as BSE printed them (`bhavcopy`).
    #[default]
    Raw,
    /// Adjusted for splits, consolidations and bonuses (`bhavcopy_adjusted`).
    Adjusted,
    /// Adjusted for dividends too (`bhavcopy_total_return`).
    TotalReturn,
}

impl PriceBasis {
    /// Every basis.
    pub const ALL: [Self; 3] = [Self::Raw, Self::Adjusted, Self::TotalReturn];

    /// The table a view on this basis reads.
    #[must_use]
    pub fn table(self) -> &'static str {
        match self {
            Self::Raw => crate::session::BHAVCOPY,
            Self::Adjusted => "bhavcopy_adjusted",
            Self::TotalReturn => "bhavcopy_total_return",
        }
    }

    /// The basis whose table (by rows or by sessions) is `name`.
    #[must_use]
    pub fn of_table(name: &str) -> Option<Self> {
        Self::of_input_table(name).map(|(b, _)| b)
    }

    /// The YAML spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Adjusted => "adjusted",
            Self::TotalReturn => "total_return",
        }
    }

    /// Whether the view's rows depend on the reconciliation of corporate actions.
    #[must_use]
    pub fn uses_actions(self) -> bool {
        self != Self::Raw
    }

    /// The table a view on this basis reads when its windows count `unit`s.
    #[must_use]
    pub fn input_table(self, unit: WindowUnit) -> &'static str {
        match (self, unit) {
            (b, WindowUnit::Rows) => b.table(),
            (Self::Raw, WindowUnit::Session) => "bhavcopy_sessions",
            (Self::Adjusted, WindowUnit::Session) => "bhavcopy_adjusted_sessions",
            (Self::TotalReturn, WindowUnit::Session) => "bhavcopy_total_return_sessions",
        }
    }

    /// The basis and window unit of a daily input table.
    #[must_use]
    pub fn of_input_table(name: &str) -> Option<(Self, WindowUnit)> {
        Self::ALL
            .into_iter()
            .flat_map(|b| [(b, WindowUnit::Rows), (b, WindowUnit::Session)])
            .find(|(b, u)| b.input_table(*u) == name)
    }
}

/// What "the last n" of a daily view's windows counts (`window_unit:` in its YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowUnit {
    /// The security's own rows, its traded sessions (`bhavcopy`, `bhavcopy_adjusted`, ...).
    #[default]
    Rows,
    /// Exchange sessions: the view reads a `*_sessions` table, which has a row for every
    /// session from the security's first trade on, NULL prices (and `traded` false) where it
    /// did not trade; a window over a suspension is then NULL, not a mean over months.
    Session,
}

impl WindowUnit {
    /// The YAML spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rows => "rows",
            Self::Session => "session",
        }
    }
}
