//! The bhavcopy formats BSE has published and their normalisation into one canonical row.
//!
//! Pure code: bytes in, rows and quarantined lines out. Storage and HTTP live elsewhere.

pub mod actions;
pub mod canonical;
pub mod detect;
pub mod encoding;
pub mod file_name;
pub mod lines;
mod parse;
mod zip_members;

pub use canonical::{CanonicalRow, QuarantinedLine, canonical_schema, equity_by_isin, quarantine_schema};
pub use detect::{BodyKind, classify};
pub use parse::{ParseError, ParsedFile, parse_csv};
pub use zip_members::{MemberInfo, ZipError, ZipLimits, ZipMember, read_member as read_zip_member, scan as scan_zip};

use chrono::NaiveDate;

/// The CSV layouts BSE has used for the equity bhavcopy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    /// `EQ{DDMMYY}.CSV`: 14 columns, no date inside (the date is in the file name).
    LegacyEq14,
    /// `EQ_ISINCODE_{DDMMYY}.CSV`: the 14 columns plus ISIN and `TRADING_DATE` (`DD-Mon-YY`).
    LegacyIsin18,
    /// UDiFF `BhavCopy_BSE_CM_0_0_0_{YYYYMMDD}_F_0000.CSV`: 34 columns, from 2024-07-08.
    Udiff,
}

pub(crate) const LEGACY14_HEADER: [&str; 14] = [
    "SC_CODE",
    "SC_NAME",
    "SC_GROUP",
    "SC_TYPE",
    "OPEN",
    "HIGH",
    "LOW",
    "CLOSE",
    "LAST",
    "PREVCLOSE",
    "NO_TRADES",
    "NO_OF_SHRS",
    "NET_TURNOV",
    "TDCLOINDI",
];
pub(crate) const ISIN18_EXTRA: [&str; 4] = ["ISIN_CODE", "TRADING_DATE", "FILLER2", "FILLER3"];
pub(crate) const UDIFF_HEADER: [&str; 34] = [
    "TradDt",
    "BizDt",
    "Sgmt",
    "Src",
    "FinInstrmTp",
    "FinInstrmId",
    "ISIN",
    "TckrSymb",
    "SctySrs",
    "XpryDt",
    "FininstrmActlXpryDt",
    "StrkPric",
    "OptnTp",
    "FinInstrmNm",
    "OpnPric",
    "HghPric",
    "LwPric",
    "ClsPric",
    "LastPric",
    "PrvsClsgPric",
    "UndrlygPric",
    "SttlmPric",
    "OpnIntrst",
    "ChngInOpnIntrst",
    "TtlTradgVol",
    "TtlTrfVal",
    "TtlNbOfTxsExctd",
    "SsnId",
    "NewBrdLotQty",
    "Rmks",
    "Rsvd1",
    "Rsvd2",
    "Rsvd3",
    "Rsvd4",
];

impl SourceFormat {
    /// The value stored in the `source_format` column.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LegacyEq14 => "bse_eq_legacy14",
            Self::LegacyIsin18 => "bse_eq_isincode18",
            Self::Udiff => "bse_cm_udiff",
        }
    }

    /// Number of fields in every data row.
    #[must_use]
    pub fn field_count(self) -> usize {
        match self {
            Self::LegacyEq14 => 14,
            Self::LegacyIsin18 => 18,
            Self::Udiff => 34,
        }
    }

    /// Recognises a header line (fields trimmed, case-insensitive).
    #[must_use]
    pub fn from_header(line: &str) -> Option<Self> {
        let fields: Vec<String> = lines::split_fields(line.trim_start_matches('\u{feff}'))
            .iter()
            .map(|f| f.trim().to_ascii_uppercase())
            .collect();
        let same = |want: &[&str]| {
            fields.len() == want.len() && fields.iter().zip(want).all(|(a, b)| a == &b.to_ascii_uppercase())
        };
        if same(&LEGACY14_HEADER) {
            return Some(Self::LegacyEq14);
        }
        let isin18: Vec<&str> = LEGACY14_HEADER.iter().chain(ISIN18_EXTRA.iter()).copied().collect();
        if same(&isin18) {
            return Some(Self::LegacyIsin18);
        }
        if same(&UDIFF_HEADER) {
            return Some(Self::Udiff);
        }
        None
    }
}

/// First trading day BSE published the UDiFF equity bhavcopy.
#[must_use]
pub fn udiff_start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 7, 8).expect("valid date")
}
