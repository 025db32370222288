//! Reference files beside the bhavcopies: corporate-action exports (BSE CSV and JSON, NSE CF-CA
//! CSV and JSON) and BSE's holiday list. Kept like bhavcopies: raw bytes first, immutable, one
//! revision per distinct content (identical bytes are stored once), then their canonical rows
//! as one Parquet file per revision. Rows that cannot be read are listed with their line and
//! reason, never dropped silently.

use bytes::Bytes;
use chrono::{Datelike, NaiveDate, Utc};
use serde::Serialize;

use crate::source::BseClient;
use bhavstore_formats::{BodyKind, classify};

use super::IngestError;
use super::raw::{self, Provenance, RawFolder};
use bhavstore_formats::actions::{self, ActionsError};
use bhavstore_lake::adjust::{ACTIONS_KIND, HOLIDAYS_KIND};
use bhavstore_storage::{Storage, paths};

/// What a reference body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceKind {
    /// A corporate-action export.
    CorporateActions,
    /// BSE's trading-holiday list.
    Holidays,
}

impl ReferenceKind {
    /// The folder name under `raw/reference/` and `parquet/reference/`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CorporateActions => ACTIONS_KIND,
            Self::Holidays => HOLIDAYS_KIND,
        }
    }
}

/// Tells a reference body by its content, never by its name.
#[must_use]
pub fn detect(body: &[u8]) -> Option<ReferenceKind> {
    if actions::detect(body).is_some() {
        Some(ReferenceKind::CorporateActions)
    } else if actions::detect_holidays(body) {
        Some(ReferenceKind::Holidays)
    } else {
        None
    }
}

/// A row of a reference file that was not taken in.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefusedLine {
    /// 1-based line (CSV) or element (JSON).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// What storing one reference file did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReferenceLoaded {
    /// `corporate_actions` or `holidays`.
    pub kind: &'static str,
    /// The format (`bse_ca_csv`, ...; `bse_holidays_json`).
    pub format: String,
    /// The raw revision.
    pub revision: String,
    /// sha256 of the bytes.
    pub raw_sha256: String,
    /// Whether these bytes were new.
    pub is_new: bool,
    /// Rows taken in (for actions: one per purpose of a row).
    pub rows: u64,
    /// Rows refused, with line and reason.
    pub refused: Vec<RefusedLine>,
    /// Actions per kind (`split`, `bonus`, `dividend`, ..., `other`).
    pub kinds: std::collections::BTreeMap<String, u64>,
    /// Split, consolidation and bonus texts whose ratio, and dividends whose amount, could not
    /// be read.
    pub unreadable: Vec<String>,
}

impl ReferenceLoaded {
    /// One line for people.
    #[must_use]
    pub fn describe(&self) -> String {
        let kinds = self.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ");
        format!(
            "{} ({}): {} rows{}{}{}{}",
            self.kind,
            self.format,
            self.rows,
            if kinds.is_empty() { String::new() } else { format!(" ({kinds})") },
            if self.refused.is_empty() { String::new() } else { format!(", {} refused", self.refused.len()) },
            if self.unreadable.is_empty() {
                String::new()
            } else {
                let shown: Vec<&str> = self.unreadable.iter().take(10).map(String::as_str).collect();
                let more = self.unreadable.len().saturating_sub(shown.len());
                format!(
                    ", {} ratios or amounts unreadable: {}{}",
                    self.unreadable.len(),
                    shown.join(" | "),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                )
            },
            if self.is_new { "" } else { " (identical bytes already stored)" }
        )
    }
}

/// Stores and loads one reference body of `kind`; `covers` is the date range a downloaded
/// action list was asked for (an imported file covers its first to last ex-date).
pub async fn store(
    storage: &Storage,
    kind: ReferenceKind,
    name: &str,
    bytes: &Bytes,
    provenance: Provenance,
    covers: Option<(NaiveDate, NaiveDate)>,
) -> Result<ReferenceLoaded, IngestError> {
    let parse_err = |e: ActionsError| IngestError::Reference { name: name.into(), message: e.to_string() };
    let stored = raw::store_in(storage, RawFolder::Reference(kind.as_str()), name, bytes, provenance).await?;
    let (meta, is_new, sha) = (stored.meta.clone(), stored.is_new, stored.meta.sha256.clone());
    let mut loaded = ReferenceLoaded {
        kind: kind.as_str(),
        format: String::new(),
        revision: meta.revision.clone(),
        raw_sha256: sha.clone(),
        is_new,
        rows: 0,
        refused: Vec::new(),
        kinds: Default::default(),
        unreadable: Vec::new(),
    };
    let batch = match kind {
        ReferenceKind::CorporateActions => {
            let parsed = actions::parse(bytes).map_err(parse_err)?;
            loaded.format = parsed.format.as_str().to_string();
            loaded.refused =
                parsed.refused.iter().map(|r| RefusedLine { line: r.line, reason: r.reason.clone() }).collect();
            for row in &parsed.rows {
                for p in &row.purposes {
                    *loaded.kinds.entry(p.kind.as_str().to_string()).or_default() += 1;
                    loaded.rows += 1;
                    let ratio_kind = matches!(
                        p.kind,
                        actions::ActionKind::Split | actions::ActionKind::Consolidation | actions::ActionKind::Bonus
                    );
                    if ratio_kind && p.price_factor.is_none() {
                        loaded.unreadable.push(p.text.clone());
                    }
                    if p.kind == actions::ActionKind::Dividend && p.amount.is_none() {
                        loaded.unreadable.push(format!("{} (no amount)", p.text));
                    }
                }
            }
            actions::actions_to_batch(&parsed, name, &sha).map_err(|e| IngestError::Write(e.to_string()))?
        }
        ReferenceKind::Holidays => {
            let days = actions::parse_holidays(bytes).map_err(parse_err)?;
            loaded.format = "bse_holidays_json".into();
            loaded.rows = days.len() as u64;
            actions::holidays_to_batch(&days, name, &sha).map_err(|e| IngestError::Write(e.to_string()))?
        }
    };
    let key = paths::reference_rows(kind.as_str(), &meta.revision);
    if storage.size(&key).await?.is_none() {
        let data = bhavstore_lake::writer::batch_bytes(&batch, None).map_err(|e| IngestError::Write(e.to_string()))?;
        storage.put(&key, data).await?;
    }
    if let Some((from, to)) = covers {
        let body = serde_json::json!({ "from": from, "to": to }).to_string();
        storage.put(&paths::reference_coverage(kind.as_str(), &meta.revision, from, to), Bytes::from(body)).await?;
    }
    Ok(loaded)
}

/// BSE's corporate-actions CSV export for `[from, to]`, under `api.bseindia.com`.
#[must_use]
pub fn actions_url_path(from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "/BseIndiaAPI/api/CorpactCSVDownload/w?scripcode=&Fdate={}&TDate={}&Purposecode=&strSearch=S&ddlindustrys=&ddlcategorys=E&segment=0",
        from.format("%Y%m%d"),
        to.format("%Y%m%d")
    )
}

/// BSE's trading-holiday list, under `api.bseindia.com`.
pub const HOLIDAYS_URL_PATH: &str = "/BseIndiaAPI/api/HolidayTrading/w?flag=Trading";

/// One month (or the part of it asked for) of a corporate-actions download.
#[derive(Debug)]
pub struct Downloaded {
    /// First date asked for.
    pub from: NaiveDate,
    /// Last date asked for.
    pub to: NaiveDate,
    /// What became of it.
    pub result: Result<ReferenceLoaded, IngestError>,
}

/// Downloads BSE's corporate actions for `[from, to]` a calendar month at a time (BSE's export
/// answers ranges, and a month keeps each answer small), storing each answer's raw bytes and
/// rows. A month that fails is reported and the others go on; storage failures stop.
pub async fn download_actions(
    storage: &Storage,
    client: &BseClient,
    from: NaiveDate,
    to: NaiveDate,
    on_month: &(dyn Fn(&Downloaded) + Sync),
) -> Result<Vec<Downloaded>, IngestError> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let month_end = NaiveDate::from_ymd_opt(start.year(), start.month(), 1)
            .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
            .and_then(|d| d.pred_opt())
            .unwrap_or(to);
        let end = month_end.min(to);
        let name = format!("bse_corporate_actions_{}_{}.csv", start.format("%Y%m%d"), end.format("%Y%m%d"));
        let result = fetch_reference(
            storage,
            client,
            &actions_url_path(start, end),
            &name,
            ReferenceKind::CorporateActions,
            Some((start, end)),
        )
        .await;
        if let Err(e) = &result
            && e.is_storage()
        {
            return Err(IngestError::Write(e.to_string()));
        }
        let d = Downloaded { from: start, to: end, result };
        on_month(&d);
        out.push(d);
        start = end + chrono::Days::new(1);
    }
    Ok(out)
}

/// Downloads and stores BSE's trading-holiday list.
pub async fn download_holidays(storage: &Storage, client: &BseClient) -> Result<ReferenceLoaded, IngestError> {
    let name = format!("bse_trading_holidays_{}.json", Utc::now().format("%Y%m%d"));
    fetch_reference(storage, client, HOLIDAYS_URL_PATH, &name, ReferenceKind::Holidays, None).await
}

async fn fetch_reference(
    storage: &Storage,
    client: &BseClient,
    path: &str,
    name: &str,
    kind: ReferenceKind,
    covers: Option<(NaiveDate, NaiveDate)>,
) -> Result<ReferenceLoaded, IngestError> {
    let f = client.fetch_api(path, name).await?;
    if !(200..300).contains(&f.status) {
        return Err(IngestError::Fetch(crate::source::FetchError::Status { url: f.url, status: f.status }));
    }
    match classify(&f.bytes) {
        BodyKind::FirewallBlock => return Err(IngestError::FirewallPage { name: f.url }),
        BodyKind::NoFilePage => {
            return Err(IngestError::Reference {
                name: name.into(),
                message: format!("{} answered with an HTML page, not the {} it was asked for", f.url, kind.as_str()),
            });
        }
        _ => {}
    }
    if detect(&f.bytes) != Some(kind) {
        return Err(IngestError::Reference {
            name: name.into(),
            message: format!("{} answered with something that is not a {} list", f.url, kind.as_str()),
        });
    }
    let prov = Provenance {
        kind: "http".into(),
        source: f.url.clone(),
        fetched_at: f.fetched_at,
        http_status: Some(f.status),
        content_type: f.content_type.clone(),
    };
    store(storage, kind, name, &f.bytes, prov, covers).await
}
