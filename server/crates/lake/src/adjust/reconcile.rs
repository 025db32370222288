//! Reconciling the corporate actions with the prices: every reported action is aligned to the
//! scrip's first session on or after its ex-date and compared with the bhavcopy's `TDCLOINDI`
//! flags and with the observed jump (previous close against the ex-session's open). Flags no
//! action list covers become `inferred` actions when the jump snaps to a usual ratio. The result
//! is three small tables (actions, checks, epochs) and a manifest naming them.
//!
//! Only actions whose ex-session is a session in the data take effect, and an action never
//! changes a row before its ex-session: the factors are cumulative from the start of the data,
//! so a price on day t is adjusted by what was effective on or before t and nothing later.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, AsArray, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, RecordBatch, StringBuilder,
    UInt64Builder,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int32Type, Schema, SchemaRef, UInt64Type,
};
use tracing::{info, warn};

use super::manifest::{self, AdjustmentsManifest, Carried};
use super::ratios::{self, Family};
use super::sessions::{
    Condenser, DayRows, Identifiers, Session, column, day_files, scan, sessions_batch, sessions_from, string,
};
use crate::LakeError;
use crate::clock::{from_days, to_days};
use crate::manifest::FileRef;
use bhavstore_storage::{Storage, paths, sha256_hex};

/// Reference kind of corporate-action files (see [`paths::raw_reference_dir`]).
pub const ACTIONS_KIND: &str = "corporate_actions";

/// What one reconciliation found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconcileReport {
    /// The manifest published, or the current one when nothing changed.
    pub seq: Option<u64>,
    /// Whether a new manifest was published.
    pub changed: bool,
    /// Figures (see [`AdjustmentsManifest::counts`]).
    pub counts: BTreeMap<String, u64>,
}

impl ReconcileReport {
    /// One line for people.
    #[must_use]
    pub fn describe(&self) -> String {
        let c = |k: &str| self.counts.get(k).copied().unwrap_or(0);
        format!(
            "corporate actions: {} reported ({} applied, {} not matched to a BSE scrip), {} inferred from flags and jumps, {} checks{}",
            c("reported"),
            c("applied_reported"),
            c("unresolved"),
            c("inferred"),
            c("checks"),
            if self.changed { "" } else { " (unchanged)" }
        )
    }
}

/// One reported action as stored by ingest (one purpose of one row of an export).
#[derive(Debug, Clone)]
struct Action {
    exchange: String,
    scrip_code: Option<i32>,
    isin: Option<String>,
    symbol: Option<String>,
    company: Option<String>,
    ex_date: NaiveDate,
    record_date: Option<NaiveDate>,
    kind: String,
    price_factor: Option<f64>,
    ratio: Option<(i32, i32)>,
    amount: Option<f64>,
    rights_price: Option<f64>,
    purpose_text: String,
    purpose: String,
    origin: String,
    source_format: String,
    source_name: String,
    raw_sha256: String,
    source_line: u64,
    // Filled here.
    ex_session: Option<NaiveDate>,
    applied: bool,
    note: Option<String>,
    superseded: bool,
}

/// A check: a disagreement between an action list, the flags and the prices.
#[derive(Debug, Clone)]
struct Check {
    scrip_code: i32,
    trade_date: NaiveDate,
    check: &'static str,
    flag: Option<String>,
    kinds: Option<String>,
    factor: Option<f64>,
    observed: Option<f64>,
    detail: String,
}

/// The factor steps of one scrip on one ex-session.
#[derive(Debug, Clone, Default)]
struct Step {
    price: f64,
    dividends: f64,
    kinds: BTreeSet<String>,
}

/// The `corporate_actions` table.
#[must_use]
pub fn actions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("exchange", DataType::Utf8, false),
        Field::new("scrip_code", DataType::Int32, true),
        Field::new("isin", DataType::Utf8, true),
        Field::new("symbol", DataType::Utf8, true),
        Field::new("company", DataType::Utf8, true),
        Field::new("ex_date", DataType::Date32, false),
        Field::new("ex_session", DataType::Date32, true),
        Field::new("record_date", DataType::Date32, true),
        Field::new("kind", DataType::Utf8, false),
        Field::new("price_factor", DataType::Float64, true),
        Field::new("ratio_new", DataType::Int32, true),
        Field::new("ratio_old", DataType::Int32, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("rights_price", DataType::Float64, true),
        Field::new("purpose_text", DataType::Utf8, false),
        Field::new("purpose", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
        Field::new("applied", DataType::Boolean, false),
        Field::new("note", DataType::Utf8, true),
        Field::new("source_format", DataType::Utf8, false),
        Field::new("source_name", DataType::Utf8, false),
        Field::new("raw_sha256", DataType::Utf8, false),
        Field::new("source_line", DataType::UInt64, false),
    ]))
}

/// The `corporate_action_checks` table.
#[must_use]
pub fn checks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("scrip_code", DataType::Int32, false),
        Field::new("trade_date", DataType::Date32, false),
        Field::new("check", DataType::Utf8, false),
        Field::new("flag", DataType::Utf8, true),
        Field::new("kinds", DataType::Utf8, true),
        Field::new("factor", DataType::Float64, true),
        Field::new("observed_ratio", DataType::Float64, true),
        Field::new("detail", DataType::Utf8, false),
    ]))
}

/// The `adjustment_epochs` table: from `valid_from` (an ex-session) until the day before
/// `valid_to`, the scrip's prices are multiplied by `adj_factor` (splits, bonuses) or
/// `tr_factor` (dividends too) to be on one basis with its earlier rows.
#[must_use]
pub fn epochs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("scrip_code", DataType::Int32, false),
        Field::new("valid_from", DataType::Date32, false),
        Field::new("valid_to", DataType::Date32, false),
        Field::new("adj_factor", DataType::Float64, false),
        Field::new("tr_factor", DataType::Float64, false),
        Field::new("step_adj", DataType::Float64, false),
        Field::new("step_tr", DataType::Float64, false),
    ]))
}

/// The end of an open epoch.
fn open_end() -> NaiveDate {
    NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX)
}

/// Flags that announce a change of share basis.
fn price_family(flag: &str) -> Option<Family> {
    match flag {
        "SS" => Some(Family::Split),
        "XB" => Some(Family::Bonus),
        "CS" => Some(Family::Consolidation),
        _ => None,
    }
}

/// Reconciles every stored action file with the bhavcopy and publishes the result if it
/// differs from the newest reconciliation.
///
/// It continues from the sessions the newest reconciliation kept when every load since then is
/// of a later day and every action's ex-date was already anchored there (see
/// [`super::sessions`]); otherwise it reads the whole history. Both read what decides the
/// result, so both publish the same tables.
pub async fn reconcile(storage: &Storage) -> Result<ReconcileReport, LakeError> {
    // What the result depends on, listed before anything is read: the bhavcopy loads and the
    // stored action lists. Unchanged since the newest reconciliation, it still holds (a load
    // landing meanwhile moves the watermark, so the next call computes again).
    let mut load_keys = storage.list(paths::LOADS).await?;
    load_keys.sort();
    let loads_watermark = load_keys.last().cloned();
    let mut reference_keys = storage.list(&paths::reference_table_dir(ACTIONS_KIND)).await?;
    reference_keys.sort();
    let latest = manifest::latest(storage).await?;
    if let Some(l) = &latest
        && l.loads_watermark == loads_watermark
        && l.reference_keys == reference_keys
    {
        return Ok(ReconcileReport { seq: Some(l.seq), changed: false, counts: l.counts.clone() });
    }
    let started = std::time::Instant::now();
    let (mut actions, sources, asked) = read_reported(storage, &reference_keys).await?;
    // Identifiers resolve actions listed without a scrip code; without such actions the
    // bhavcopies' ISINs and symbols are not read.
    let needs_ids = actions.iter().any(|a| a.scrip_code.is_none());
    let mut cont = match &latest {
        Some(l) => continuation(storage, l, &load_keys, needs_ids).await?,
        None => None,
    };
    let files = if cont.is_none() { Some(day_files(storage).await?) } else { None };
    let ids = match (&mut cont, &files) {
        (Some(c), _) => c.ids.take(),
        (None, Some(files)) if needs_ids => {
            let mut ids = Identifiers::default();
            scan(storage, files, true, |day| day.identifiers(&mut ids)).await?;
            Some(ids)
        }
        _ => None,
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    counts.insert("reported".into(), actions.len() as u64);
    resolve(&mut actions, ids.as_ref(), &mut counts);
    supersede(&mut actions, &asked, &mut counts);
    let actions = dedup(actions, &mut counts);
    let coverage = coverage(&actions, &asked);
    let mut anchors: BTreeMap<i32, BTreeSet<NaiveDate>> = BTreeMap::new();
    for a in &actions {
        if let Some(s) = a.scrip_code {
            anchors.entry(s).or_default().insert(a.ex_date);
        }
    }
    if let Some(c) = &cont
        && let Some((scrip, date)) = c.unanchored(&anchors)
    {
        info!(scrip, %date, "an action now falls on a day the last reconciliation did not keep: reading the whole history");
        cont = None;
    }

    let mut condenser = Condenser::new(&anchors);
    let (through, days_read, rows_read) = match cont {
        Some(c) => {
            for (scrip, s) in c.kept {
                condenser.push(scrip, s);
            }
            let mut rows = 0;
            for day in &c.new_days {
                for i in 0..day.len() {
                    let (scrip, s) = day.session(i);
                    condenser.push(scrip, s);
                }
                rows += day.len() as u64;
            }
            (c.through, c.new_days.len(), rows)
        }
        None => {
            let files = match files {
                Some(f) => f,
                None => day_files(storage).await?,
            };
            let rows = scan(storage, &files, false, |day| {
                for i in 0..day.len() {
                    let (scrip, s) = day.session(i);
                    condenser.push(scrip, s);
                }
            })
            .await?;
            (files.keys().next_back().copied(), files.len(), rows)
        }
    };
    let kept = condenser.finish();
    info!(
        days = days_read,
        rows = rows_read,
        kept = kept.values().map(Vec::len).sum::<usize>(),
        secs = started.elapsed().as_secs_f64(),
        "corporate actions: sessions read"
    );
    let mut scrips: BTreeSet<i32> =
        kept.iter().filter(|(_, days)| days.iter().any(|d| d.flag.is_some())).map(|(s, _)| *s).collect();
    // Every resolved scrip's actions are aligned to its sessions, rights and others included.
    scrips.extend(actions.iter().filter_map(|a| a.scrip_code));
    let mut by_scrip: BTreeMap<i32, Vec<Action>> = BTreeMap::new();
    let mut unresolved = Vec::new();
    for a in actions {
        match a.scrip_code {
            Some(s) => by_scrip.entry(s).or_default().push(a),
            None => unresolved.push(a),
        }
    }
    let mut out_actions: Vec<Action> = Vec::new();
    let mut checks: Vec<Check> = Vec::new();
    let mut epochs: Vec<(i32, NaiveDate, NaiveDate, f64, f64, f64, f64)> = Vec::new();
    let mut digest_parts: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
    let empty = Vec::new();
    for scrip in &scrips {
        let days = kept.get(scrip).unwrap_or(&empty);
        let acts = by_scrip.remove(scrip).unwrap_or_default();
        let steps = scrip_steps(*scrip, days, acts, &coverage, &mut out_actions, &mut checks);
        let (mut adj, mut tr) = (1.0_f64, 1.0_f64);
        let list: Vec<(usize, f64, f64)> = steps
            .iter()
            .map(|(idx, step)| (*idx, step.price, step.price * dividend_step(*scrip, days, *idx, step, &mut checks)))
            .filter(|(_, p, t)| *p != 1.0 || *t != 1.0)
            .collect();
        for (n, (idx, p, t)) in list.iter().enumerate() {
            adj *= p;
            tr *= t;
            let from = days[*idx].date;
            let to = list.get(n + 1).map_or_else(open_end, |next| days[next.0].date);
            epochs.push((*scrip, from, to, adj, tr, *p, *t));
            digest_parts.entry(from).or_default().push(format!("{scrip}:{p:e}:{t:e}"));
        }
    }
    // Actions of scrips that have no session at all, and those not matched to a scrip.
    for (_, acts) in by_scrip {
        for mut a in acts {
            a.note = Some("no session of this scrip in the data".into());
            out_actions.push(a);
        }
    }
    for mut a in unresolved {
        a.note = Some("not matched to a BSE scrip (no ISIN or symbol in the bhavcopies)".into());
        out_actions.push(a);
    }
    out_actions.sort_by(|a, b| {
        (a.scrip_code, a.ex_date, &a.kind, &a.origin, &a.source_name, a.source_line).cmp(&(
            b.scrip_code,
            b.ex_date,
            &b.kind,
            &b.origin,
            &b.source_name,
            b.source_line,
        ))
    });
    checks.sort_by(|a, b| (a.trade_date, a.scrip_code, a.check).cmp(&(b.trade_date, b.scrip_code, b.check)));

    let count = |c: &mut BTreeMap<String, u64>, k: &str, n: usize| {
        c.insert(k.into(), n as u64);
    };
    count(&mut counts, "inferred", out_actions.iter().filter(|a| a.origin == "inferred").count());
    count(&mut counts, "applied_reported", out_actions.iter().filter(|a| a.applied && a.origin == "reported").count());
    count(&mut counts, "checks", checks.len());
    count(&mut counts, "epochs", epochs.len());
    for c in &checks {
        *counts.entry(format!("check:{}", c.check)).or_default() += 1;
    }
    let digest: BTreeMap<NaiveDate, String> =
        digest_parts.into_iter().map(|(d, mut parts)| (d, hash_parts(&mut parts))).collect();

    // The files' bytes are the content: Parquet of equal batches is equal, and every value of
    // every row counts (a moved ex-session in the middle of a table changes the hash).
    let files = [
        ("actions", crate::writer::batch_bytes(&actions_batch(&out_actions)?, None)?, out_actions.len()),
        ("checks", crate::writer::batch_bytes(&checks_batch(&checks)?, None)?, checks.len()),
        ("epochs", crate::writer::batch_bytes(&epochs_batch(&epochs)?, None)?, epochs.len()),
    ];
    let content_hash = {
        let mut text = String::new();
        for (name, bytes, _) in &files {
            text.push_str(&format!("{name} {}\n", sha256_hex(bytes)));
        }
        for (d, h) in &digest {
            text.push_str(&format!("{d} {h}\n"));
        }
        text.push_str(&sources.join("\n"));
        sha256_hex(text.as_bytes())
    };
    let seq = latest.as_ref().map_or(1, |l| l.seq + 1);
    let carried = write_carried(storage, seq, &kept, ids.as_ref(), through).await?;
    if let Some(l) = &latest
        && l.content_hash == content_hash
    {
        // Same result from newer inputs: record them and the sessions kept, so the next call
        // continues from here.
        let mut again = l.clone();
        again.seq = seq;
        again.computed_at = Utc::now();
        again.loads_watermark = loads_watermark;
        again.reference_keys = reference_keys;
        again.carried = Some(carried);
        if manifest::publish(storage, &again).await.is_ok() {
            forget_carried(storage, l, again.carried.as_ref()).await;
            return Ok(ReconcileReport { seq: Some(again.seq), changed: false, counts: again.counts });
        }
        // Another reconciliation took the seq: what this one kept is read by no one.
        forget_carried(storage, &again, None).await;
        return Ok(ReconcileReport { seq: Some(l.seq), changed: false, counts: l.counts.clone() });
    }
    // Each process writes under keys of its own content, create-only: two reconciliations
    // racing for one seq never mix files, and the loser's manifest put fails.
    let mut refs = Vec::new();
    for (table, bytes, rows) in files {
        let key = paths::adjustments_file(seq, &content_hash[..16], table);
        let size = bytes.len() as u64;
        if storage.put_create(&key, bytes).await? == bhavstore_storage::Created::AlreadyExisted {
            // The same content under the same seq: another process wrote these very bytes.
            tracing::debug!(%key, "reconciliation file already written with this content");
        }
        refs.push(FileRef { key, size, rows: rows as u64 });
    }
    let [actions_ref, checks_ref, epochs_ref]: [FileRef; 3] =
        refs.try_into().map_err(|_| LakeError::Write("three reconciliation files".into()))?;
    let m = AdjustmentsManifest {
        format: manifest::FORMAT,
        seq,
        computed_at: Utc::now(),
        content_hash,
        actions: actions_ref,
        checks: checks_ref,
        epochs: epochs_ref,
        sources,
        digest,
        counts: counts.clone(),
        loads_watermark,
        reference_keys,
        carried: Some(carried),
    };
    if let Err(e) = manifest::publish(storage, &m).await {
        forget_carried(storage, &m, None).await;
        return Err(e);
    }
    if let Some(l) = &latest {
        forget_carried(storage, l, m.carried.as_ref()).await;
    }
    let report = ReconcileReport { seq: Some(seq), changed: true, counts };
    info!(seq, "{}", report.describe());
    Ok(report)
}

/// What a reconciliation continues from: the sessions the newest one kept and the days loaded
/// since.
struct Continuation {
    kept: Vec<(i32, Session)>,
    new_days: Vec<DayRows>,
    ids: Option<Identifiers>,
    through: Option<NaiveDate>,
    /// The (scrip, ex-date) pairs the kept sessions were anchored on.
    anchored: HashSet<(i32, NaiveDate)>,
    /// Each scrip's last kept session.
    last: HashMap<i32, NaiveDate>,
}

impl Continuation {
    /// An action's ex-date on or before its scrip's last kept session that was no anchor when
    /// the sessions were kept: its first session on or after may not have been kept.
    fn unanchored(&self, anchors: &BTreeMap<i32, BTreeSet<NaiveDate>>) -> Option<(i32, NaiveDate)> {
        anchors.iter().find_map(|(scrip, dates)| {
            let last = self.last.get(scrip)?;
            dates.iter().find(|d| *d <= last && !self.anchored.contains(&(*scrip, **d))).map(|d| (*scrip, *d))
        })
    }
}

/// The continuation from `latest`, or `None` (and why, in the log) when the whole history must
/// be read: nothing carried, a load of a day already read, identifiers needed but not carried,
/// or a carried file gone.
async fn continuation(
    storage: &Storage,
    latest: &AdjustmentsManifest,
    load_keys: &[String],
    needs_ids: bool,
) -> Result<Option<Continuation>, LakeError> {
    let whole = |why: &str| {
        info!("corporate actions: reading the whole history ({why})");
        Ok(None)
    };
    let Some(carried) = &latest.carried else { return whole("no sessions carried from the last reconciliation") };
    let new_loads = load_keys.iter().filter(|k| latest.loads_watermark.as_ref().is_none_or(|w| *k > w));
    let dates: BTreeSet<NaiveDate> = new_loads.filter_map(|k| paths::parse_load_entry(k)).map(|(d, _)| d).collect();
    if let (Some(first), Some(through)) = (dates.first(), carried.through)
        && *first <= through
    {
        return whole(&format!("{first} was loaded again or late; the last reconciliation read through {through}"));
    }
    if needs_ids && carried.identifiers.is_none() {
        return whole("actions listed without a scrip code need the bhavcopies' ISINs and symbols");
    }
    let Some(kept) = storage.get(&carried.sessions.key).await? else {
        return whole("the carried sessions were replaced by a newer reconciliation");
    };
    let kept = sessions_from(&super::tables::read_bytes(kept, &carried.sessions.key)?, &carried.sessions.key)?;
    let ids = match &carried.identifiers {
        Some(r) => match storage.get(&r.key).await? {
            Some(b) => Some(Identifiers::from_batches(&super::tables::read_bytes(b, &r.key)?, &r.key)?),
            None => return whole("the carried identifiers were replaced by a newer reconciliation"),
        },
        None => None,
    };
    let Some(actions) = storage.get(&latest.actions.key).await? else {
        return whole("the last reconciliation's actions are gone");
    };
    let mut anchored = HashSet::new();
    for b in super::tables::read_bytes(actions, &latest.actions.key)? {
        let scrip = column(&b, "scrip_code", &latest.actions.key)?.as_primitive::<Int32Type>();
        let ex = column(&b, "ex_date", &latest.actions.key)?.as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            if scrip.is_valid(i) {
                anchored.insert((scrip.value(i), from_days(ex.value(i))));
            }
        }
    }
    let files: BTreeMap<NaiveDate, Vec<String>> = dates.iter().map(|d| (*d, vec![paths::bhavcopy_file(*d)])).collect();
    let mut new_days = Vec::new();
    let mut ids = ids;
    let with_ids = ids.is_some();
    if let Err(e) = scan(storage, &files, with_ids, |day| new_days.push(day)).await {
        return whole(&format!("a newly loaded day could not be read: {e}"));
    }
    if let Some(ids) = &mut ids {
        for day in &new_days {
            day.identifiers(ids);
        }
    }
    let mut last = HashMap::new();
    for (scrip, s) in &kept {
        last.insert(*scrip, s.date);
    }
    let through = carried.through.max(dates.last().copied());
    Ok(Some(Continuation { kept, new_days, ids, through, anchored, last }))
}

/// Writes the sessions kept (and the identifiers, when read) for the next reconciliation.
async fn write_carried(
    storage: &Storage,
    seq: u64,
    kept: &BTreeMap<i32, Vec<Session>>,
    ids: Option<&Identifiers>,
    through: Option<NaiveDate>,
) -> Result<Carried, LakeError> {
    let sessions = crate::writer::batch_bytes(&sessions_batch(kept)?, Some(0))?;
    let ids = ids.map(|i| i.to_batch().and_then(|b| crate::writer::batch_bytes(&b, None))).transpose()?;
    let hash = {
        let mut h = sha256_hex(&sessions);
        if let Some(i) = &ids {
            h.push_str(&sha256_hex(i));
        }
        sha256_hex(h.as_bytes())
    };
    let rows = kept.values().map(Vec::len).sum::<usize>() as u64;
    let key = |table: &str| paths::adjustments_carried_file(seq, &hash[..16], table);
    let sessions = put_carried(storage, key("sessions"), sessions, rows).await?;
    let identifiers = match ids {
        Some(b) => Some(put_carried(storage, key("identifiers"), b, 0).await?),
        None => None,
    };
    Ok(Carried { sessions, identifiers, through })
}

async fn put_carried(storage: &Storage, key: String, bytes: bytes::Bytes, rows: u64) -> Result<FileRef, LakeError> {
    let size = bytes.len() as u64;
    // Create-only: the same key holds the same bytes (its name is their hash).
    storage.put_create(&key, bytes).await?;
    Ok(FileRef { key, size, rows })
}

/// Deletes what `previous` carried, but for what `now` carries: only the newest
/// reconciliation's sessions are ever read (a reconciliation still reading older ones finds them
/// gone and reads the whole history instead), and those of a manifest that lost its seq to
/// another process are read by no one.
async fn forget_carried(storage: &Storage, previous: &AdjustmentsManifest, now: Option<&Carried>) {
    let Some(old) = &previous.carried else { return };
    let keep: Vec<&str> = now
        .iter()
        .flat_map(|c| [Some(&c.sessions), c.identifiers.as_ref()])
        .flatten()
        .map(|r| r.key.as_str())
        .collect();
    for r in [Some(&old.sessions), old.identifiers.as_ref()].into_iter().flatten() {
        if !keep.contains(&r.key.as_str())
            && let Err(e) = storage.delete(&r.key).await
        {
            warn!(key = %r.key, error = %e, "could not delete sessions carried by an older reconciliation");
        }
    }
}

fn hash_parts(parts: &mut [String]) -> String {
    parts.sort_unstable();
    sha256_hex(parts.join("\n").as_bytes())[..24].to_string()
}

fn affects_prices(a: &Action) -> bool {
    matches!(a.kind.as_str(), "split" | "consolidation" | "bonus" | "dividend")
}

/// Walks one scrip's sessions: aligns its actions, compares them with flags and jumps, infers
/// from uncovered flags. Returns the factor steps by session index.
fn scrip_steps(
    scrip: i32,
    days: &[Session],
    acts: Vec<Action>,
    coverage: &[Coverage],
    out: &mut Vec<Action>,
    checks: &mut Vec<Check>,
) -> BTreeMap<usize, Step> {
    let mut steps: BTreeMap<usize, Step> = BTreeMap::new();
    for mut a in acts {
        let idx = days.partition_point(|s| s.date < a.ex_date);
        let Some(day) = days.get(idx) else {
            a.note = Some("no session of this scrip on or after the ex-date yet".into());
            out.push(a);
            continue;
        };
        a.ex_session = Some(day.date);
        if a.superseded {
            out.push(a);
            continue;
        }
        if idx == 0 && a.ex_date < day.date {
            // Before the data: there is no earlier row of the scrip to adjust, and applying it
            // to the first row would turn its prev_close into a fake move.
            a.ex_session = None;
            a.note = Some("ex-date before the scrip's first session in the data; not applied".into());
            out.push(a);
            continue;
        }
        match (a.kind.as_str(), a.price_factor, a.amount) {
            ("split" | "consolidation" | "bonus", Some(f), _) if f > 0.0 && f.is_finite() => {
                let step = steps.entry(idx).or_insert_with(|| Step { price: 1.0, ..Step::default() });
                step.price *= f;
                step.kinds.insert(a.kind.clone());
                a.applied = true;
            }
            ("split" | "consolidation" | "bonus", _, _) => {
                a.note = Some("the ratio could not be read from the purpose text; not applied".into());
                checks.push(Check {
                    scrip_code: scrip,
                    trade_date: day.date,
                    check: "unreadable_ratio",
                    flag: day.flag.clone(),
                    kinds: Some(a.kind.clone()),
                    factor: None,
                    observed: jump(days, idx),
                    detail: format!("{:?}: no ratio could be read; the action is listed but not applied", a.purpose),
                });
            }
            ("dividend", _, Some(amount)) if amount > 0.0 => {
                let step = steps.entry(idx).or_insert_with(|| Step { price: 1.0, ..Step::default() });
                step.dividends += amount;
                step.kinds.insert("dividend".into());
                a.applied = true;
                a.note = Some("total_return only".into());
            }
            ("dividend", _, _) => {
                a.note = Some("no amount could be read from the purpose text; not in total_return".into());
                checks.push(Check {
                    scrip_code: scrip,
                    trade_date: day.date,
                    check: "unreadable_amount",
                    flag: day.flag.clone(),
                    kinds: Some("dividend".into()),
                    factor: None,
                    observed: None,
                    detail: format!("{:?}: no amount could be read; total_return leaves it out", a.purpose),
                });
            }
            _ => {}
        }
        out.push(a);
    }
    // Reported price steps against flags and jumps.
    for (idx, step) in &steps {
        if step.price == 1.0 {
            continue;
        }
        let day = &days[*idx];
        let kinds = step.kinds.iter().filter(|k| *k != "dividend").cloned().collect::<Vec<_>>().join("+");
        let observed = jump(days, *idx);
        if observed.is_none_or(|r| !ratios::agrees(r, step.price)) {
            checks.push(Check {
                scrip_code: scrip,
                trade_date: day.date,
                check: "action_without_move",
                flag: day.flag.clone(),
                kinds: Some(kinds.clone()),
                factor: Some(step.price),
                observed,
                detail: format!(
                    "the action divides earlier prices by {} but the previous close / open ratio is {}",
                    step.price,
                    observed.map_or_else(|| "unknown".to_string(), |r| format!("{r:.4}"))
                ),
            });
        }
        let flags: Vec<&str> =
            [Some(day), days.get(idx + 1)].into_iter().flatten().filter_map(|s| s.flag.as_deref()).collect();
        if day.has_flags && !flags.iter().any(|f| price_family(f).is_some()) {
            checks.push(Check {
                scrip_code: scrip,
                trade_date: day.date,
                check: "action_without_flag",
                flag: day.flag.clone(),
                kinds: Some(kinds.clone()),
                factor: Some(step.price),
                observed,
                detail: "no SS, XB or CS flag on the ex-session or the next one".into(),
            });
        }
        if step.kinds.contains("split") && flags.contains(&"XB") && !flags.contains(&"SS") {
            checks.push(Check {
                scrip_code: scrip,
                trade_date: day.date,
                check: "split_flagged_as_bonus",
                flag: Some("XB".into()),
                kinds: Some(kinds),
                factor: Some(step.price),
                observed,
                detail: "a split (with a bonus) on this ex-session is flagged only XB; the combined factor is applied"
                    .into(),
            });
        }
    }
    // Flags against the actions.
    for (idx, day) in days.iter().enumerate() {
        let Some(flag) = day.flag.as_deref() else { continue };
        let near = |i: usize| steps.contains_key(&i) || (i > 0 && steps.contains_key(&(i - 1)));
        let near_price = (idx > 0 && steps.get(&(idx - 1)).is_some_and(|s| s.price != 1.0))
            || steps.get(&idx).is_some_and(|s| s.price != 1.0);
        let covered = coverage.iter().any(|c| c.covers(scrip, day.date));
        let family = price_family(flag);
        if let Some(family) = family {
            if near_price {
                continue;
            }
            if covered {
                checks.push(Check {
                    scrip_code: scrip,
                    trade_date: day.date,
                    check: "flag_without_action",
                    flag: Some(flag.into()),
                    kinds: None,
                    factor: None,
                    observed: jump(days, idx),
                    detail: format!("flag {flag} but the action lists covering this date have no split or bonus"),
                });
                continue;
            }
            let observed = jump(days, idx);
            match observed.and_then(|r| ratios::snap(r, family)) {
                Some(f) => {
                    let kind = match family {
                        Family::Split => "split",
                        Family::Bonus => "bonus",
                        Family::Consolidation => "consolidation",
                    };
                    let step = steps.entry(idx).or_insert_with(|| Step { price: 1.0, ..Step::default() });
                    step.price *= f;
                    step.kinds.insert(kind.into());
                    let r = observed.unwrap_or(f64::NAN);
                    out.push(Action {
                        exchange: "BSE".into(),
                        scrip_code: Some(scrip),
                        isin: None,
                        symbol: None,
                        company: None,
                        ex_date: day.date,
                        record_date: None,
                        kind: kind.into(),
                        price_factor: Some(f),
                        ratio: None,
                        amount: None,
                        rights_price: None,
                        purpose_text: format!(
                            "inferred: flag {flag}, previous close / open = {r:.4}, snapped to {f}"
                        ),
                        purpose: format!("TDCLOINDI {flag}"),
                        origin: "inferred".into(),
                        source_format: "bhavcopy".into(),
                        source_name: "bhavcopy".into(),
                        raw_sha256: day.raw_sha256.clone().unwrap_or_default(),
                        source_line: day.source_line,
                        ex_session: Some(day.date),
                        applied: true,
                        note: Some("no action list covers this date".into()),
                        superseded: false,
                    });
                }
                None => checks.push(Check {
                    scrip_code: scrip,
                    trade_date: day.date,
                    check: "flag_without_move",
                    flag: Some(flag.into()),
                    kinds: None,
                    factor: None,
                    observed,
                    detail: format!(
                        "flag {flag}, no action list covers the date, and the previous close / open ratio {} is no usual split or bonus ratio; nothing inferred",
                        observed.map_or_else(|| "(unknown)".to_string(), |r| format!("{r:.4}"))
                    ),
                }),
            }
        } else if covered && matches!(flag, "XD" | "XR") && !near(idx) {
            let has_rights = flag == "XR";
            if !has_rights {
                checks.push(Check {
                    scrip_code: scrip,
                    trade_date: day.date,
                    check: "flag_without_action",
                    flag: Some(flag.into()),
                    kinds: None,
                    factor: None,
                    observed: jump(days, idx),
                    detail: format!("flag {flag} but the action lists covering this date have no dividend"),
                });
            }
        }
    }
    steps
}

/// The total-return step of a session: a dividend D against the previous close P (on the new
/// basis) is a step of P / (P - D): earlier prices are divided by it, i.e. scaled by (P - D) / P.
fn dividend_step(scrip: i32, days: &[Session], idx: usize, step: &Step, checks: &mut Vec<Check>) -> f64 {
    if step.dividends <= 0.0 {
        return 1.0;
    }
    let Some(before) = before_close(days, idx) else { return 1.0 };
    let p = before / step.price;
    if p > step.dividends {
        p / (p - step.dividends)
    } else {
        checks.push(Check {
            scrip_code: scrip,
            trade_date: days[idx].date,
            check: "dividend_exceeds_price",
            flag: days[idx].flag.clone(),
            kinds: Some("dividend".into()),
            factor: None,
            observed: None,
            detail: format!("dividends of {} against a previous close of {p}; not applied", step.dividends),
        });
        1.0
    }
}

/// The close before session `idx`: the scrip's previous row, else BSE's previous close.
fn before_close(days: &[Session], idx: usize) -> Option<f64> {
    let prior = idx.checked_sub(1).and_then(|i| days[i].close);
    prior.or(days[idx].prev_close).filter(|p| *p > 0.0)
}

/// Previous close / the ex-session's open (its close when it has no open).
fn jump(days: &[Session], idx: usize) -> Option<f64> {
    let before = before_close(days, idx)?;
    let day = &days[idx];
    let at = day.open.filter(|o| *o > 0.0).or(day.close.filter(|c| *c > 0.0))?;
    Some(before / at)
}

/// BSE rows carry a scrip code; NSE rows are matched by ISIN, then by symbol, against the
/// identifiers the bhavcopies carry; an identifier two scrips share matches neither.
fn resolve(actions: &mut [Action], ids: Option<&Identifiers>, counts: &mut BTreeMap<String, u64>) {
    let mut unresolved = 0u64;
    for a in actions.iter_mut() {
        if a.scrip_code.is_some() {
            continue;
        }
        a.scrip_code = ids.and_then(|ids| ids.resolve(a.isin.as_deref(), a.symbol.as_deref()));
        if a.scrip_code.is_none() {
            unresolved += 1;
        }
    }
    counts.insert("unresolved".into(), unresolved);
}

/// A downloaded range of one list, and which revision answered it.
#[derive(Debug, Clone)]
struct Asked {
    revision: String,
    from: NaiveDate,
    to: NaiveDate,
}

/// Rows of a downloaded list that a newer download of the same dates no longer holds (BSE
/// re-dated or withdrew the action) are superseded: listed, never applied.
fn supersede(actions: &mut [Action], asked: &[Asked], counts: &mut BTreeMap<String, u64>) {
    // A revision folder is `{stored_at}-{sha256[..16]}`: it sorts by the time it was stored.
    let revision_of = |sha: &str| asked.iter().map(|a| &a.revision).find(|r| r.ends_with(&sha[..16.min(sha.len())]));
    let mut n = 0u64;
    for a in actions.iter_mut().filter(|a| a.origin == "reported") {
        let Some(own) = revision_of(&a.raw_sha256) else { continue };
        if let Some(newer) = asked.iter().find(|r| r.revision > *own && r.from <= a.ex_date && a.ex_date <= r.to) {
            a.superseded = true;
            a.note = Some(format!("superseded by a newer download of {} .. {}", newer.from, newer.to));
            n += 1;
        }
    }
    counts.insert("superseded".into(), n);
}

/// The same action from several exports (BSE and NSE, overlapping months) is applied once: the
/// first by exchange (BSE first), file and line is kept, the others are listed as duplicates.
/// Two equal purposes of one export (an interim and a special dividend of the same amount) are
/// two actions.
fn dedup(mut actions: Vec<Action>, counts: &mut BTreeMap<String, u64>) -> Vec<Action> {
    actions.sort_by(|a, b| {
        (&a.exchange, &a.source_name, a.source_line).cmp(&(&b.exchange, &b.source_name, b.source_line))
    });
    let mut seen: HashMap<(i32, NaiveDate, String, String), String> = HashMap::new();
    let mut dups = 0u64;
    for a in actions.iter_mut().filter(|a| !a.superseded) {
        let Some(scrip) = a.scrip_code else { continue };
        let value = format!("{:?}/{:?}", a.price_factor, a.amount);
        let first = seen.entry((scrip, a.ex_date, a.kind.clone(), value)).or_insert_with(|| a.raw_sha256.clone());
        if *first != a.raw_sha256 && affects_prices(a) {
            a.note = Some("the same action from another export; applied once".into());
            a.superseded = true;
            dups += 1;
        }
    }
    counts.insert("duplicates".into(), dups);
    actions
}

/// Dates (and scrips) an action list speaks for: a flag there without an action in it is a
/// check, not a reason to infer.
#[derive(Debug, Clone)]
struct Coverage {
    from: NaiveDate,
    to: NaiveDate,
    /// `None`: every scrip (a BSE download or a market-wide BSE export).
    scrips: Option<BTreeSet<i32>>,
}

impl Coverage {
    fn covers(&self, scrip: i32, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to && self.scrips.as_ref().is_none_or(|s| s.contains(&scrip))
    }
}

/// A BSE export of at least this many scrips is taken for the whole market of its dates.
const MARKET_WIDE_SCRIPS: usize = 10;

/// What the lists cover: each downloaded range (BSE's whole market); each imported BSE export
/// of many scrips from its first to its last ex-date; any other file (an NSE list, a one-company
/// export) only for its own scrips.
fn coverage(actions: &[Action], asked: &[Asked]) -> Vec<Coverage> {
    let mut out: Vec<Coverage> = asked.iter().map(|a| Coverage { from: a.from, to: a.to, scrips: None }).collect();
    let mut by_file: HashMap<&str, (NaiveDate, NaiveDate, BTreeSet<i32>, bool)> = HashMap::new();
    for a in actions.iter().filter(|a| a.origin == "reported") {
        let e = by_file.entry(a.raw_sha256.as_str()).or_insert((a.ex_date, a.ex_date, BTreeSet::new(), true));
        e.0 = e.0.min(a.ex_date);
        e.1 = e.1.max(a.ex_date);
        e.2.extend(a.scrip_code);
        e.3 &= a.exchange == "BSE";
    }
    for (from, to, scrips, bse) in by_file.into_values() {
        let market = bse && scrips.len() >= MARKET_WIDE_SCRIPS;
        out.push(Coverage { from, to, scrips: (!market).then_some(scrips) });
    }
    out
}

/// Every stored action row (see `bhavstore_formats::actions::actions_schema`) and the sha256 of
/// each raw file behind them.
async fn read_reported(
    storage: &Storage,
    keys: &[String],
) -> Result<(Vec<Action>, Vec<String>, Vec<Asked>), LakeError> {
    let mut asked = Vec::new();
    for key in keys.iter().filter(|k| k.ends_with(".coverage.json")) {
        #[derive(serde::Deserialize)]
        struct Range {
            from: NaiveDate,
            to: NaiveDate,
        }
        let Some(bytes) = storage.get(key).await? else { continue };
        let r: Range = serde_json::from_slice(&bytes).map_err(|e| LakeError::Corrupt(format!("{key}: {e}")))?;
        let name = key.rsplit('/').next().unwrap_or_default();
        let revision = name.split('.').next().unwrap_or_default().to_string();
        asked.push(Asked { revision, from: r.from, to: r.to });
    }
    let mut out = Vec::new();
    let mut sources = BTreeSet::new();
    // `keys` are sorted.
    for key in keys.iter().filter(|k| k.ends_with(".parquet")) {
        for b in super::tables::read_file(storage, key).await? {
            let col = |name: &str| column(&b, name, key);
            let s = |name: &str| string(&b, name, key);
            let (exchange, isin, symbol, company, kind) =
                (s("exchange")?, s("isin")?, s("symbol")?, s("company")?, s("kind")?);
            let (ptext, purpose, origin, fmt, name, sha) = (
                s("purpose_text")?,
                s("purpose")?,
                s("origin")?,
                s("source_format")?,
                s("source_name")?,
                s("raw_sha256")?,
            );
            let scrip = col("scrip_code")?.as_primitive::<Int32Type>().clone();
            let ex = col("ex_date")?.as_primitive::<Date32Type>().clone();
            let factor = col("price_factor")?.as_primitive::<Float64Type>().clone();
            let amount = col("amount")?.as_primitive::<Float64Type>().clone();
            let rights = col("rights_price")?.as_primitive::<Float64Type>().clone();
            let record = col("record_date")?.as_primitive::<Date32Type>().clone();
            let ratio_new = col("ratio_new")?.as_primitive::<Int32Type>().clone();
            let ratio_old = col("ratio_old")?.as_primitive::<Int32Type>().clone();
            let line = col("source_line")?.as_primitive::<UInt64Type>().clone();
            let opt = |a: &datafusion::arrow::array::StringArray, i: usize| {
                a.is_valid(i).then(|| a.value(i).trim().to_string()).filter(|v| !v.is_empty())
            };
            for i in 0..b.num_rows() {
                sources.insert(sha.value(i).to_string());
                out.push(Action {
                    exchange: exchange.value(i).to_string(),
                    scrip_code: scrip.is_valid(i).then(|| scrip.value(i)),
                    isin: opt(&isin, i),
                    symbol: opt(&symbol, i),
                    company: opt(&company, i),
                    ex_date: from_days(ex.value(i)),
                    record_date: record.is_valid(i).then(|| from_days(record.value(i))),
                    kind: kind.value(i).to_string(),
                    price_factor: factor.is_valid(i).then(|| factor.value(i)),
                    ratio: (ratio_new.is_valid(i) && ratio_old.is_valid(i))
                        .then(|| (ratio_new.value(i), ratio_old.value(i))),
                    amount: amount.is_valid(i).then(|| amount.value(i)),
                    rights_price: rights.is_valid(i).then(|| rights.value(i)),
                    purpose_text: ptext.value(i).to_string(),
                    purpose: purpose.value(i).to_string(),
                    origin: origin.value(i).to_string(),
                    source_format: fmt.value(i).to_string(),
                    source_name: name.value(i).to_string(),
                    raw_sha256: sha.value(i).to_string(),
                    source_line: line.value(i),
                    ex_session: None,
                    applied: false,
                    note: None,
                    superseded: false,
                });
            }
        }
    }
    if out.is_empty() {
        warn!(
            "no corporate-action list is stored: only flags and price jumps can adjust prices (bhavstore corporate-actions --from --to, or bhavstore import of an export)"
        );
    }
    Ok((out, sources.into_iter().collect(), asked))
}

fn actions_batch(rows: &[Action]) -> Result<RecordBatch, LakeError> {
    let mut exchange = StringBuilder::new();
    let mut scrip = Int32Builder::new();
    let mut isin = StringBuilder::new();
    let mut symbol = StringBuilder::new();
    let mut company = StringBuilder::new();
    let mut ex = Date32Builder::new();
    let mut session = Date32Builder::new();
    let mut record = Date32Builder::new();
    let mut kind = StringBuilder::new();
    let mut factor = Float64Builder::new();
    let mut ratio_new = Int32Builder::new();
    let mut ratio_old = Int32Builder::new();
    let mut amount = Float64Builder::new();
    let mut rights = Float64Builder::new();
    let mut ptext = StringBuilder::new();
    let mut purpose = StringBuilder::new();
    let mut origin = StringBuilder::new();
    let mut applied = BooleanBuilder::new();
    let mut note = StringBuilder::new();
    let mut fmt = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut sha = StringBuilder::new();
    let mut line = UInt64Builder::new();
    for a in rows {
        exchange.append_value(&a.exchange);
        scrip.append_option(a.scrip_code);
        isin.append_option(a.isin.as_deref());
        symbol.append_option(a.symbol.as_deref());
        company.append_option(a.company.as_deref());
        ex.append_value(to_days(a.ex_date));
        session.append_option(a.ex_session.map(to_days));
        record.append_option(a.record_date.map(to_days));
        kind.append_value(&a.kind);
        factor.append_option(a.price_factor);
        ratio_new.append_option(a.ratio.map(|r| r.0));
        ratio_old.append_option(a.ratio.map(|r| r.1));
        amount.append_option(a.amount);
        rights.append_option(a.rights_price);
        ptext.append_value(&a.purpose_text);
        purpose.append_value(&a.purpose);
        origin.append_value(&a.origin);
        applied.append_value(a.applied);
        note.append_option(a.note.as_deref());
        fmt.append_value(&a.source_format);
        name.append_value(&a.source_name);
        sha.append_value(&a.raw_sha256);
        line.append_value(a.source_line);
    }
    RecordBatch::try_new(
        actions_schema(),
        vec![
            Arc::new(exchange.finish()),
            Arc::new(scrip.finish()),
            Arc::new(isin.finish()),
            Arc::new(symbol.finish()),
            Arc::new(company.finish()),
            Arc::new(ex.finish()),
            Arc::new(session.finish()),
            Arc::new(record.finish()),
            Arc::new(kind.finish()),
            Arc::new(factor.finish()),
            Arc::new(ratio_new.finish()),
            Arc::new(ratio_old.finish()),
            Arc::new(amount.finish()),
            Arc::new(rights.finish()),
            Arc::new(ptext.finish()),
            Arc::new(purpose.finish()),
            Arc::new(origin.finish()),
            Arc::new(applied.finish()),
            Arc::new(note.finish()),
            Arc::new(fmt.finish()),
            Arc::new(name.finish()),
            Arc::new(sha.finish()),
            Arc::new(line.finish()),
        ],
    )
    .map_err(|e| LakeError::Write(e.to_string()))
}

fn checks_batch(rows: &[Check]) -> Result<RecordBatch, LakeError> {
    let mut scrip = Int32Builder::new();
    let mut date = Date32Builder::new();
    let mut check = StringBuilder::new();
    let mut flag = StringBuilder::new();
    let mut kinds = StringBuilder::new();
    let mut factor = Float64Builder::new();
    let mut observed = Float64Builder::new();
    let mut detail = StringBuilder::new();
    for c in rows {
        scrip.append_value(c.scrip_code);
        date.append_value(to_days(c.trade_date));
        check.append_value(c.check);
        flag.append_option(c.flag.as_deref());
        kinds.append_option(c.kinds.as_deref());
        factor.append_option(c.factor);
        observed.append_option(c.observed);
        detail.append_value(&c.detail);
    }
    RecordBatch::try_new(
        checks_schema(),
        vec![
            Arc::new(scrip.finish()),
            Arc::new(date.finish()),
            Arc::new(check.finish()),
            Arc::new(flag.finish()),
            Arc::new(kinds.finish()),
            Arc::new(factor.finish()),
            Arc::new(observed.finish()),
            Arc::new(detail.finish()),
        ],
    )
    .map_err(|e| LakeError::Write(e.to_string()))
}

fn epochs_batch(rows: &[(i32, NaiveDate, NaiveDate, f64, f64, f64, f64)]) -> Result<RecordBatch, LakeError> {
    let mut scrip = Int32Builder::new();
    let mut from = Date32Builder::new();
    let mut to = Date32Builder::new();
    let mut fs: [Float64Builder; 4] = std::array::from_fn(|_| Float64Builder::new());
    for (s, f, t, adj, tr, sa, st) in rows {
        scrip.append_value(*s);
        from.append_value(to_days(*f));
        to.append_value(to_days(*t));
        for (b, v) in fs.iter_mut().zip([adj, tr, sa, st]) {
            b.append_value(*v);
        }
    }
    let mut cols: Vec<Arc<dyn Array>> = vec![Arc::new(scrip.finish()), Arc::new(from.finish()), Arc::new(to.finish())];
    cols.extend(fs.iter_mut().map(|b| Arc::new(b.finish()) as Arc<dyn Array>));
    RecordBatch::try_new(epochs_schema(), cols).map_err(|e| LakeError::Write(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn sess(date: &str, open: f64, close: f64, flag: Option<&str>) -> Session {
        Session {
            date: d(date),
            open: Some(open),
            close: Some(close),
            prev_close: None,
            flag: flag.map(str::to_string),
            raw_sha256: Some(format!("sha-{date}")),
            source_line: 2,
            has_flags: true,
        }
    }

    fn act(ex: &str, kind: &str, factor: Option<f64>, amount: Option<f64>) -> Action {
        Action {
            exchange: "BSE".into(),
            scrip_code: Some(532755),
            isin: None,
            symbol: None,
            company: None,
            ex_date: d(ex),
            record_date: None,
            kind: kind.into(),
            price_factor: factor,
            ratio: None,
            amount,
            rights_price: None,
            purpose_text: kind.into(),
            purpose: kind.into(),
            origin: "reported".into(),
            source_format: "bse_ca_csv".into(),
            source_name: "list.csv".into(),
            raw_sha256: "list".into(),
            source_line: 2,
            ex_session: None,
            applied: false,
            note: None,
            superseded: false,
        }
    }

    fn march() -> Vec<Coverage> {
        vec![Coverage { from: d("2015-03-01"), to: d("2015-03-31"), scrips: None }]
    }

    impl Action {
        /// The second purpose of the same row.
        fn part_of_row(&mut self) {
            self.purpose_text = "Special Dividend".into();
        }
    }

    fn kinds(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().map(|c| c.check).collect()
    }

    /// Everything a scrip's reconciliation decides, by date.
    fn decided(days: &[Session], acts: &[Action], coverage: &[Coverage]) -> String {
        let (mut out, mut checks) = (Vec::new(), Vec::new());
        let steps = scrip_steps(1, days, acts.to_vec(), coverage, &mut out, &mut checks);
        let steps: Vec<String> = steps
            .iter()
            .map(|(i, st)| {
                let tr = dividend_step(1, days, *i, st, &mut checks);
                format!("{} {:e} {:e} {:?} {tr:e}", days[*i].date, st.price, st.dividends, st.kinds)
            })
            .collect();
        format!("{out:?}\n{checks:?}\n{steps:?}")
    }

    #[test]
    fn the_kept_sessions_decide_what_the_whole_history_decides() {
        // Scrambled histories: flags of every kind, jumps that snap and jumps that do not,
        // actions on sessions, between sessions, before and after the data; then the same
        // decided from the condensed sessions, and from a condensation continued with new days.
        let mut next = super::super::sessions::scramble(0x9e37_79b9_7f4a_7c15);
        let base = d("2015-01-01");
        let flags = ["SS", "XB", "CS", "XD", "XR", "XI"];
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for round in 0..400 {
            let mut days = Vec::new();
            let mut price = 1000.0;
            for n in 0..(2 + next(80)) {
                if next(6) == 0 {
                    continue;
                }
                let jump = [1.0, 1.0, 1.0, 2.0, 5.0, 10.0, 0.1, 1.37][next(8) as usize];
                price = price / jump * (1.0 + (next(21) as f64 - 10.0) / 1000.0);
                let flag = (next(9) == 0).then(|| flags[next(6) as usize].to_string());
                days.push(Session {
                    date: base + chrono::Duration::days(n as i64),
                    open: (next(20) != 0).then_some(price),
                    close: Some(price * 1.001),
                    prev_close: (next(3) == 0).then_some(price * 0.99),
                    raw_sha256: flag.as_ref().map(|_| format!("sha{n}")),
                    flag,
                    source_line: n + 2,
                    has_flags: next(10) != 0,
                });
            }
            let mut acts = Vec::new();
            for _ in 0..next(5) {
                let ex = base + chrono::Duration::days(next(100) as i64 - 10);
                let ex = ex.format("%Y-%m-%d").to_string();
                acts.push(match next(4) {
                    0 => act(&ex, "split", Some([2.0, 5.0, 10.0][next(3) as usize]), None),
                    1 => act(&ex, "bonus", (next(4) != 0).then_some(2.0), None),
                    2 => act(&ex, "dividend", None, (next(3) != 0).then_some(next(50) as f64)),
                    _ => act(&ex, "rights", None, None),
                });
            }
            let coverage = if next(2) == 0 {
                vec![Coverage {
                    from: base + chrono::Duration::days(next(40) as i64),
                    to: base + chrono::Duration::days(40 + next(40) as i64),
                    scrips: None,
                }]
            } else {
                Vec::new()
            };
            let anchors = BTreeMap::from([(1, acts.iter().map(|a| a.ex_date).collect::<BTreeSet<_>>())]);
            let condense = |sessions: &[Session]| {
                let mut c = Condenser::new(&anchors);
                for s in sessions {
                    c.push(1, s.clone());
                }
                c.finish().remove(&1).unwrap_or_default()
            };
            let whole = decided(&days, &acts, &coverage);
            for what in [
                "inferred",
                "flag_without_action",
                "flag_without_move",
                "action_without_move",
                "total_return only",
                "applied: true",
            ] {
                *seen.entry(what).or_default() += usize::from(whole.contains(what));
            }
            let kept = condense(&days);
            assert_eq!(decided(&kept, &acts, &coverage), whole, "round {round}: {days:?}");
            let cut = next(days.len() as u64 + 1) as usize;
            let mut continued = condense(&days[..cut]);
            continued.extend_from_slice(&days[cut..]);
            assert_eq!(decided(&condense(&continued), &acts, &coverage), whole, "round {round}, cut at {cut}");
        }
        assert!(seen.values().all(|n| *n >= 10), "every kind of decision is exercised: {seen:?}");
    }

    #[test]
    fn a_split_with_a_bonus_flagged_only_xb_is_one_factor_and_a_check() {
        // TECHM 2015-03-19: Rs 10 -> 5 split and a 1:1 bonus, 2800.15 -> 685.80, flagged XB.
        let days = [sess("2015-03-18", 2790.0, 2800.15, None), sess("2015-03-19", 690.0, 685.80, Some("XB"))];
        let acts = vec![act("2015-03-19", "split", Some(2.0), None), act("2015-03-19", "bonus", Some(2.0), None)];
        let (mut out, mut checks) = (Vec::new(), Vec::new());
        let steps = scrip_steps(532755, &days, acts, &march(), &mut out, &mut checks);
        assert_eq!(steps[&1].price, 4.0);
        assert_eq!(kinds(&checks), ["split_flagged_as_bonus"]);
        assert!(out.iter().all(|a| a.applied && a.ex_session == Some(d("2015-03-19"))));
    }

    #[test]
    fn an_uncovered_flag_is_inferred_and_a_covered_one_without_an_action_is_a_check() {
        // 511064 on 2015-03-11: 478.30 -> 48.60, flagged SS.
        let days = [sess("2015-03-10", 480.0, 478.30, None), sess("2015-03-11", 48.0, 48.60, Some("SS"))];
        let (mut out, mut checks) = (Vec::new(), Vec::new());
        let steps = scrip_steps(511064, &days, Vec::new(), &[], &mut out, &mut checks);
        assert_eq!(steps[&1].price, 10.0);
        assert_eq!((out.len(), out[0].origin.as_str(), out[0].kind.as_str()), (1, "inferred", "split"));
        assert_eq!(out[0].raw_sha256, "sha-2015-03-11", "traceable to the flagged row's file");
        assert!(checks.is_empty());

        let (mut out, mut checks) = (Vec::new(), Vec::new());
        let steps = scrip_steps(511064, &days, Vec::new(), &march(), &mut out, &mut checks);
        assert!(steps.is_empty() && out.is_empty(), "a list covering the date says there was no split");
        assert_eq!(kinds(&checks), ["flag_without_action"]);
    }

    #[test]
    fn a_flag_whose_jump_is_no_usual_ratio_is_a_check_not_a_guess() {
        let days = [sess("2015-03-10", 100.0, 100.0, None), sess("2015-03-11", 97.0, 96.0, Some("SS"))];
        let (mut out, mut checks) = (Vec::new(), Vec::new());
        let steps = scrip_steps(1, &days, Vec::new(), &[], &mut out, &mut checks);
        assert!(steps.is_empty() && out.is_empty());
        assert_eq!(kinds(&checks), ["flag_without_move"]);
    }

    #[test]
    fn a_reported_action_without_a_move_is_applied_and_checked() {
        let days = [sess("2015-04-07", 100.0, 100.0, None), sess("2015-04-08", 100.0, 101.0, None)];
        let (mut out, mut checks) = (Vec::new(), Vec::new());
        let steps =
            scrip_steps(1, &days, vec![act("2015-04-08", "bonus", Some(2.0), None)], &march(), &mut out, &mut checks);
        assert_eq!(steps[&1].price, 2.0, "the exchange's list wins over the prices");
        assert_eq!(kinds(&checks), ["action_without_move", "action_without_flag"]);
    }

    #[test]
    fn an_ex_date_without_a_session_moves_to_the_next_traded_session_with_its_flag() {
        // Ex-date 2015-03-11, the scrip's next trade (and BSE's flag) on 2015-03-13.
        let days = [sess("2015-03-09", 480.0, 478.30, None), sess("2015-03-13", 48.0, 48.60, Some("SS"))];
        let (mut out, mut checks) = (Vec::new(), Vec::new());
        let steps =
            scrip_steps(1, &days, vec![act("2015-03-11", "split", Some(10.0), None)], &march(), &mut out, &mut checks);
        assert_eq!(steps[&1].price, 10.0);
        assert_eq!(out[0].ex_session, Some(d("2015-03-13")));
        assert!(checks.is_empty(), "{:?}", kinds(&checks));
    }

    #[test]
    fn a_dividend_is_a_total_return_step_only() {
        let days = [sess("2015-03-10", 110.0, 110.0, None), sess("2015-03-11", 100.0, 100.0, Some("XD"))];
        let (mut out, mut checks) = (Vec::new(), Vec::new());
        let steps = scrip_steps(
            1,
            &days,
            vec![act("2015-03-11", "dividend", None, Some(10.0))],
            &march(),
            &mut out,
            &mut checks,
        );
        let step = &steps[&1];
        assert_eq!(step.price, 1.0);
        let tr = dividend_step(1, &days, 1, step, &mut checks);
        assert!((tr - 1.1).abs() < 1e-15, "P / (P - D) = 110 / 100: {tr}");
        assert!(checks.is_empty());
    }

    #[test]
    fn inference_on_a_day_never_depends_on_later_days() {
        // Point in time: the steps found on a prefix of the sessions are the steps of the whole
        // history on that prefix, so incremental materialization equals full.
        let mut days = Vec::new();
        let mut price = 500.0;
        for (i, day) in (1..=28).map(|n| format!("2015-02-{n:02}")).enumerate() {
            let flag = match i {
                7 => Some("SS"),
                13 => Some("XB"),
                20 => Some("SS"),
                _ => None,
            };
            let factor = match i {
                7 => 5.0,
                13 => 2.0,
                _ => 1.0,
            };
            price = price / factor * (1.0 + 0.01 * ((i % 5) as f64 - 2.0));
            days.push(sess(&day, price, price, flag));
        }
        let (mut o, mut c) = (Vec::new(), Vec::new());
        let whole = scrip_steps(1, &days, Vec::new(), &[], &mut o, &mut c);
        for n in 1..=days.len() {
            let (mut o, mut c) = (Vec::new(), Vec::new());
            let part = scrip_steps(1, &days[..n], Vec::new(), &[], &mut o, &mut c);
            let expected: Vec<(usize, f64)> =
                whole.iter().filter(|(i, _)| **i < n).map(|(i, s)| (*i, s.price)).collect();
            let got: Vec<(usize, f64)> = part.iter().map(|(i, s)| (*i, s.price)).collect();
            assert_eq!(got, expected, "first {n} sessions");
        }
        assert_eq!(
            whole.values().map(|s| s.price).collect::<Vec<_>>(),
            [5.0, 2.0],
            "day 20's SS without a jump is no step"
        );
    }

    #[test]
    fn two_equal_purposes_of_one_export_are_two_actions_and_a_second_export_is_a_duplicate() {
        let mut interim = act("2015-03-11", "dividend", None, Some(5.0));
        let mut special = interim.clone();
        special.part_of_row();
        interim.raw_sha256 = "bse-file".into();
        special.raw_sha256 = "bse-file".into();
        let mut nse = act("2015-03-11", "dividend", None, Some(5.0));
        nse.exchange = "NSE".into();
        nse.raw_sha256 = "nse-file".into();
        let mut counts = BTreeMap::new();
        let out = dedup(vec![nse, interim, special], &mut counts);
        let kept: Vec<(&str, bool)> = out.iter().map(|a| (a.exchange.as_str(), a.superseded)).collect();
        assert_eq!(kept, [("BSE", false), ("BSE", false), ("NSE", true)]);
        assert_eq!(counts["duplicates"], 1);
    }

    #[test]
    fn a_newer_download_of_the_same_dates_supersedes_an_older_one() {
        let asked = [
            Asked {
                revision: "20260701T000000.000Z-aaaaaaaaaaaaaaaa".into(),
                from: d("2026-07-01"),
                to: d("2026-07-31"),
            },
            Asked {
                revision: "20260705T000000.000Z-bbbbbbbbbbbbbbbb".into(),
                from: d("2026-07-01"),
                to: d("2026-07-31"),
            },
        ];
        let mut old = act("2026-07-10", "bonus", Some(2.0), None);
        old.raw_sha256 = format!("{}{}", "a".repeat(16), "0".repeat(48));
        let mut new = act("2026-07-17", "bonus", Some(2.0), None);
        new.raw_sha256 = format!("{}{}", "b".repeat(16), "0".repeat(48));
        let mut actions = vec![old, new];
        let mut counts = BTreeMap::new();
        supersede(&mut actions, &asked, &mut counts);
        assert_eq!(actions.iter().map(|a| a.superseded).collect::<Vec<_>>(), [true, false], "BSE re-dated the bonus");
        let cov = coverage(&actions, &asked);
        assert!(cov.iter().any(|c| c.covers(1, d("2026-07-20"))), "a download speaks for every scrip");
    }

    #[test]
    fn a_small_export_covers_only_its_own_scrips() {
        let a = act("2015-04-08", "bonus", Some(2.0), None);
        let cov = coverage(&[a], &[]);
        assert!(cov[0].covers(532755, d("2015-04-08")));
        assert!(!cov[0].covers(511064, d("2015-04-08")), "a one-company export says nothing of others");
    }

    #[test]
    fn an_action_before_the_data_and_a_dividend_without_amount_are_listed_not_applied() {
        let days = [sess("2015-03-10", 100.0, 100.0, None), sess("2015-03-11", 100.0, 100.0, None)];
        let acts = vec![act("2015-01-02", "split", Some(10.0), None), act("2015-03-11", "dividend", None, None)];
        let (mut out, mut checks) = (Vec::new(), Vec::new());
        let steps = scrip_steps(1, &days, acts, &march(), &mut out, &mut checks);
        assert!(steps.is_empty());
        assert!(out.iter().all(|a| !a.applied && a.note.is_some()), "{out:?}");
        assert_eq!(kinds(&checks), ["unreadable_amount"]);
    }
}
