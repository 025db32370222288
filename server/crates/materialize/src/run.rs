//! One run of one view: decide what to compute, compute it, write it, publish it, clean up.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use bhavstore_udfs::resumable::{RecursionStates, StatesByCall};
use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::prelude::{DataFrame, SessionContext, col, lit};

use super::chunked;
use super::lock::ViewLock;
use super::{MaterializeError, Materializer, PreparedView, quality};
use bhavstore_lake::manifest::{self, FileRef, MANIFEST_FORMAT, Manifest, Segment};
use bhavstore_lake::quote_ident;
use bhavstore_lake::records::{RunRecord, new_run_id};
use bhavstore_lake::table::ParquetFilesTable;
use bhavstore_lake::writer::write_stream;
use bhavstore_lake::year_files::YearFiles;
use bhavstore_storage::Storage;
use bhavstore_storage::paths;
use datafusion::common::runtime::SpawnedTask;

/// What a run will compute.
#[derive(Debug, PartialEq)]
enum Decision {
    /// Nothing changed since the latest manifest.
    UpToDate,
    /// Everything from scratch.
    Full { why: String },
    /// New days on top of `base` (the latest manifest, or an older one for a revision).
    FromBase { base: Box<Manifest>, revised_from: Option<NaiveDate> },
}

/// Everything [`decide`] looks at, read from storage beforehand by [`gather`].
struct DecideInputs<'a> {
    /// The newest manifest of the version (None: nothing published yet).
    latest: Option<&'a Manifest>,
    /// Newest sha256 per trade date the change log shows since `latest`'s watermark.
    changes: &'a BTreeMap<NaiveDate, String>,
    /// `--full`.
    full: bool,
    /// Rows per entity carried between runs (None: the view runs in full only).
    lookback_rows: Option<usize>,
    /// Recursive calls an incremental run resumes from saved states: a base must have saved them.
    resumed: usize,
    /// The view's analysis: rows it reads back, or why it cannot run incrementally.
    incremental: &'a Result<usize, String>,
    /// States of the version, newest first, down to the first one that predates
    /// [`DecideInputs::first_revised`]; empty when no computed day was revised.
    earlier: Vec<EarlierState>,
    /// For a view over intraday bars: the intraday log position now. Such a view follows the
    /// intraday log, not the bhavcopy change log.
    intraday_seq: Option<u64>,
    /// For a view on adjusted prices: the reconciliation digest per ex-session now.
    adjustments: Option<&'a BTreeMap<NaiveDate, String>>,
}

/// A published state a revision could restart from.
struct EarlierState {
    manifest: Manifest,
    /// Whether its tail is still stored; looked up only for a state that predates the revised
    /// day (false for the others, which [`decide`] skips).
    tail_kept: bool,
}

impl DecideInputs<'_> {
    /// The earliest already-computed day whose input changed, when the decision hinges on it
    /// (an incremental view with a published state and no `--full`): it tells [`gather`]
    /// whether to read earlier states at all.
    fn first_revised(&self) -> Option<NaiveDate> {
        let latest = self.latest?;
        if self.full || self.lookback_rows.is_none() {
            return None;
        }
        let last = latest.max_trade_date;
        // The map is ordered by date: the first match is the earliest revised day.
        let loaded = self
            .changes
            .iter()
            .find(|(d, sha)| last.is_some_and(|l| **d <= l) && latest.inputs.get(*d) != Some(*sha))
            .map(|(d, _)| *d);
        // An action added, removed or changed on a computed ex-session revises that session.
        let adjusted = self.adjustments.and_then(|now| {
            let computed = |d: &NaiveDate| last.is_some_and(|l| *d <= l);
            let changed_now = now.iter().find(|(d, h)| computed(d) && latest.adjustments.get(*d) != Some(*h));
            let gone = latest.adjustments.keys().find(|d| !now.contains_key(*d));
            changed_now.map(|(d, _)| *d).into_iter().chain(gone.copied()).min()
        });
        loaded.into_iter().chain(adjusted).min()
    }
}

/// Why a view with resumed recursive calls runs in full over a state that saved none.
const NO_STATES: &str = "the latest state saved no states of the recursive functions (written by an older bhavstore)";

/// Whether continuing from `m` can resume `resumed` recursive calls: it saved their states.
fn carries_states(m: &Manifest, resumed: usize) -> bool {
    resumed == 0 || m.tail.as_ref().is_some_and(|t| t.recursions.is_some())
}

/// Whether state `m` holds nothing from `day` on, so a recompute of `day` can start from it.
fn predates(m: &Manifest, day: NaiveDate) -> bool {
    m.max_trade_date.is_none_or(|d| d < day)
}

/// The changes the change log shows since a watermark.
struct Changes {
    /// Newest sha256 per trade date among the new entries.
    by_date: BTreeMap<NaiveDate, String>,
    /// Last key read (the new watermark).
    watermark: Option<String>,
}

async fn read_changes(storage: &Storage, after: Option<&str>) -> Result<Changes, MaterializeError> {
    let keys = match after {
        Some(w) => storage.list_after(paths::LOADS, w).await?,
        None => storage.list(paths::LOADS).await?,
    };
    let mut by_date = BTreeMap::new();
    for k in &keys {
        if let Some((date, sha)) = paths::parse_load_entry(k) {
            by_date.insert(date, sha);
        }
    }
    Ok(Changes { by_date, watermark: keys.last().cloned().or_else(|| after.map(str::to_string)) })
}

pub(super) async fn run_view(m: &Materializer, pv: &PreparedView, full: bool) -> Result<RunRecord, MaterializeError> {
    let storage = &m.storage;
    let name = pv.view.spec.name.as_str();
    let version = pv.version.id.as_str();
    let run_id = new_run_id();
    let mut record = RunRecord::start(&run_id, "materialize", Some(name), Some(version));
    let lock = match ViewLock::acquire(storage, name, &run_id).await {
        Ok(l) => l,
        Err(e) => {
            // Not recorded as a run: nothing was attempted.
            tracing::warn!(view = name, error = %e, "materialization not started");
            return Err(e);
        }
    };
    record.save(storage).await?;
    super::failpoint::reach(super::failpoint::LOCKED).await;
    let started = Instant::now();
    let span = tracing::info_span!("materialize", view = name, version, run_id = %run_id);
    let result = tracing::Instrument::instrument(execute(m, pv, full, &mut record), span).await;
    record.finished_at = Some(Utc::now());
    record.duration_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    match &result {
        Ok(()) => {
            if record.status == "running" {
                record.status = if record.warnings.is_empty() { "succeeded".into() } else { "warning".into() };
            }
        }
        Err(e) => {
            record.status = "failed".into();
            record.error = Some(e.to_string());
        }
    }
    let saved = record.save(storage).await;
    lock.release(storage).await;
    result?;
    if let Err(e) = saved {
        // The manifest is out: the run did its work, and readers of bhavstore_runs complete
        // the record from the manifest. Losing the record is a warning, not a failure.
        tracing::warn!(view = name, error = %e, "published, but the run record could not be saved");
        record.warnings.push(format!("published, but the run record could not be saved: {e}"));
        record.status = "warning".into();
    }
    tracing::info!(
        view = name,
        version,
        run_id = %record.run_id,
        mode = record.mode.as_deref().unwrap_or("-"),
        status = %record.status,
        rows = record.rows,
        ms = record.duration_ms.unwrap_or(0),
        "materialization finished"
    );
    Ok(record)
}

async fn execute(
    m: &Materializer,
    pv: &PreparedView,
    full: bool,
    record: &mut RunRecord,
) -> Result<(), MaterializeError> {
    let storage = &m.storage;
    let view = &pv.view.spec;
    let version = &pv.version.id;
    bhavstore_features::registry::record_version(storage, pv).await?;
    let latest = manifest::latest(storage, &view.name, version).await?;
    let changes = read_changes(storage, latest.as_ref().and_then(|l| l.loads_watermark.as_deref())).await?;
    // The position is read before the bars, so bars written meanwhile make the next run recompute.
    let intraday_seq = if pv.analysis.tables.contains(bhavstore_lake::bars::INTRADAY_BARS) {
        Some(bhavstore_lake::bars::stored::log_position(storage).await?)
    } else {
        None
    };
    // Read before the input: actions reconciled meanwhile make the next run recompute.
    let adjustments = if pv.analysis.uses_actions() {
        Some(bhavstore_lake::adjust::manifest::latest(storage).await?.map(|a| a.digest).unwrap_or_default())
    } else {
        None
    };
    let inputs = gather(storage, pv, full, latest.as_ref(), &changes, intraday_seq, adjustments.as_ref()).await?;
    let decision = decide(&inputs);
    let _full_run = match decision {
        Decision::Full { .. } => Some(m.full_runs.lock().await),
        _ => None,
    };
    let base = match decision {
        Decision::UpToDate => {
            record.mode = Some("none".into());
            tracing::info!(view = %view.name, "nothing new since the latest manifest");
            return Ok(());
        }
        Decision::Full { why } => {
            tracing::info!(view = %view.name, why, "full recompute");
            record.mode = Some("full".into());
            None
        }
        Decision::FromBase { base, revised_from } => {
            record.mode = Some(if revised_from.is_some() { "recompute" } else { "incremental" }.into());
            if let Some(d) = revised_from {
                tracing::info!(view = %view.name, revised = %d, from = ?base.max_trade_date, "a computed day was revised: recomputing from the newest state before it");
            }
            Some(base)
        }
    };
    let after = base.as_ref().and_then(|b| b.max_trade_date);
    // Recorded now so a run that dies midway still says what it was doing.
    record.save(storage).await?;

    // The input the view sees: all of bhavcopy, or the base's tail plus the days after it.
    let ctx = bhavstore_lake::session(storage)?;
    // A window sorts its whole partition, which it then holds anyway: sorted at once it costs
    // a fraction of sorting each input batch and merging hundreds of runs (5.6 vs 0.25 CPU-s
    // for a 25 M-row history).
    ctx.state_ref().write().config_mut().options_mut().execution.sort_in_place_threshold_bytes = SORT_IN_PLACE_BYTES;
    if let Some(b) = &base {
        let tail = b.tail.as_ref().ok_or_else(|| MaterializeError::Corrupt("base manifest has no tail".into()))?;
        let new_days = changes.by_date.keys().filter(|d| after.is_none_or(|a| **d > a)).count();
        let in_memory = new_days <= IN_MEMORY_DAYS;
        narrow_input(&ctx, storage, pv.input_table(), &tail.file, after, &pv.input_columns, in_memory).await?;
    }
    // An incremental input holds only this view's columns (and incremental views read only
    // bhavcopy), so only this view is planned on it; a full run may read other views.
    let to_register: Vec<bhavstore_features::FeatureView> =
        if base.is_some() { vec![pv.view.clone()] } else { m.all_views.to_vec() };
    bhavstore_features::register_views(&ctx, &to_register).await.map_err(bhavstore_features::PrepareError::from)?;

    // The recursive calls continue from the states the base saved (a full run starts fresh).
    let seeds = match base.as_ref().and_then(|b| b.tail.as_ref()).and_then(|t| t.recursions.as_ref()) {
        Some(file) => super::recursions::read(storage, file).await?,
        None => StatesByCall::new(),
    };
    let states = Arc::new(RecursionStates::new(seeds));
    let t0 = Instant::now();
    let mut df = if pv.lookback_rows.is_some() {
        super::recursions::view_frame(&ctx, pv, &states).await?
    } else {
        ctx.table(view.name.as_str()).await?
    };
    if let Some(d) = after {
        df = df.filter(col(quote_ident(&view.event_time)).gt(lit(date_scalar(d))))?;
    }
    let out_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    // Views whose windows are all per entity over one daily table run in groups of entities.
    let chunkable = base.is_none() && pv.lookback_rows.is_some() && pv.analysis.daily_input().is_some();
    let files = if chunkable {
        write_chunked(&ctx, storage, pv, &record.run_id, &out_schema, m.cfg.chunk_rows, &states).await?
    } else {
        write_output(storage, &view.name, version, &record.run_id, df, &view.event_time, base.is_none()).await?
    };
    record.compute_ms = Some(ms(t0));
    super::failpoint::reach(super::failpoint::DATA_WRITTEN).await;

    let t1 = Instant::now();
    let tail = match pv.lookback_rows {
        Some(rows) => {
            let mut tail = super::tail::write_tail(&ctx, storage, pv, &record.run_id, rows).await?;
            if pv.analysis.resumed > 0 {
                let finals = states.finals();
                tail.recursions =
                    Some(super::recursions::write(storage, pv, &record.run_id, &finals, &out_schema).await?);
            }
            Some(tail)
        }
        None => None,
    };
    record.tail_ms = Some(ms(t1));
    super::failpoint::reach(super::failpoint::TAIL_WRITTEN).await;

    // Assemble and publish the new state.
    let mut segments = base.as_ref().map(|b| b.segments.clone()).unwrap_or_default();
    let new_rows: u64 = files.iter().map(|(f, _)| f.rows).sum();
    let dates: Vec<(NaiveDate, NaiveDate)> = files.iter().filter_map(|(_, d)| *d).collect();
    if let (Some(lo), Some(hi)) = (dates.iter().map(|d| d.0).min(), dates.iter().map(|d| d.1).max()) {
        segments.push(Segment {
            run_id: record.run_id.clone(),
            min_trade_date: lo,
            max_trade_date: hi,
            rows: new_rows,
            files: files.iter().map(|(f, _)| f.clone()).collect(),
        });
        record.min_trade_date = Some(lo);
        record.max_trade_date = Some(hi);
    }
    record.rows = new_rows;
    let mut inputs = latest_inputs(latest.as_ref());
    inputs.extend(changes.by_date.iter().map(|(d, s)| (*d, s.clone())));
    let max_date = segments.last().map(|s| s.max_trade_date);
    inputs.retain(|d, _| max_date.is_some_and(|m| *d <= m));
    let mut referenced: Vec<String> = latest.as_ref().map(|l| l.referenced_runs.clone()).unwrap_or_default();
    referenced.push(record.run_id.clone());
    let seq = latest.as_ref().map_or(1, |l| l.seq + 1);
    let published = Manifest {
        format: MANIFEST_FORMAT,
        view: view.name.clone(),
        version: version.clone(),
        definition_hash: pv.version.definition_hash.clone(),
        seq,
        run_id: record.run_id.clone(),
        kind: record.mode.clone().unwrap_or_default(),
        started_at: record.started_at,
        published_at: Utc::now(),
        min_trade_date: segments.first().map(|s| s.min_trade_date),
        max_trade_date: max_date,
        rows: segments.iter().map(|s| s.rows).sum(),
        segments,
        tail,
        inputs,
        loads_watermark: changes.watermark.clone(),
        referenced_runs: referenced,
        intraday_seq,
        adjustments: adjustments
            .map(|a| a.into_iter().filter(|(d, _)| max_date.is_some_and(|m| *d <= m)).collect())
            .unwrap_or_default(),
    };
    manifest::publish(storage, &published).await?;
    record.manifest_seq = Some(seq);
    super::failpoint::reach(super::failpoint::PUBLISHED).await;
    tracing::info!(view = %view.name, version = %version, seq, rows = new_rows, total_rows = published.rows, "manifest published");

    cleanup(storage, &view.name, version, &published, m.cfg.keep_tails).await;
    // Daily runs add one small segment each; merged once enough lie in one year. A failure
    // leaves the published state as it is.
    match super::compact::maybe_compact(storage, pv, &published, Arc::clone(&out_schema), m.cfg.compact_after).await {
        Ok(Some(seq)) => record.manifest_seq = Some(seq),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(view = %view.name, error = %e, "segments could not be compacted");
            record.warnings.push(format!("segments not compacted: {e}"));
        }
    }

    // Quality is about the published data; a failure to compute it does not unpublish anything.
    match quality::assess(&ctx, storage, pv, &published, out_schema, &m.cfg.quality).await {
        Ok((rows, warnings)) => {
            record.warnings = warnings;
            bhavstore_lake::records::save_quality(storage, &record.run_id, &rows).await?;
            if let Some(client) = &m.mlflow {
                log_to_mlflow(client, pv, &published, record, &rows).await;
            }
        }
        Err(e) => {
            tracing::warn!(view = %view.name, error = %e, "quality figures could not be computed");
            record.warnings.push(format!("quality figures not computed: {e}"));
        }
    }
    Ok(())
}

fn ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn date_scalar(d: NaiveDate) -> ScalarValue {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    ScalarValue::Date32(Some(i32::try_from((d - epoch).num_days()).unwrap_or(i32::MAX)))
}

fn latest_inputs(latest: Option<&Manifest>) -> BTreeMap<NaiveDate, String> {
    latest.map(|l| l.inputs.clone()).unwrap_or_default()
}

/// Reads what [`decide`] needs beyond `latest` and `changes`: when a computed day was revised,
/// the version's states newest first, stopping at the first that predates the revised day (the
/// only one whose tail is looked up), so older manifests are never read.
async fn gather<'a>(
    storage: &Storage,
    pv: &'a PreparedView,
    full: bool,
    latest: Option<&'a Manifest>,
    changes: &'a Changes,
    intraday_seq: Option<u64>,
    adjustments: Option<&'a BTreeMap<NaiveDate, String>>,
) -> Result<DecideInputs<'a>, MaterializeError> {
    let mut inputs = DecideInputs {
        latest,
        changes: &changes.by_date,
        full,
        lookback_rows: pv.lookback_rows,
        resumed: pv.analysis.resumed,
        incremental: &pv.analysis.incremental,
        earlier: Vec::new(),
        intraday_seq,
        adjustments,
    };
    if let (Some(latest), Some(revised), None) = (latest, inputs.first_revised(), intraday_seq) {
        inputs.earlier = earlier_states(storage, &pv.view.spec.name, &latest.version, revised).await?;
    }
    Ok(inputs)
}

async fn earlier_states(
    storage: &Storage,
    view: &str,
    version: &str,
    revised: NaiveDate,
) -> Result<Vec<EarlierState>, MaterializeError> {
    let mut out = Vec::new();
    for seq in manifest::list_seqs(storage, view, version).await?.into_iter().rev() {
        let manifest = manifest::read(storage, view, version, seq).await?;
        if !predates(&manifest, revised) {
            out.push(EarlierState { manifest, tail_kept: false });
            continue;
        }
        let tail_kept = match &manifest.tail {
            Some(tail) => storage.size(&tail.file.key).await?.is_some(),
            None => false,
        };
        out.push(EarlierState { manifest, tail_kept });
        break;
    }
    Ok(out)
}

/// What the run computes, from what [`gather`] read.
fn decide(inputs: &DecideInputs<'_>) -> Decision {
    let Some(latest) = inputs.latest else { return Decision::Full { why: "first run of this version".into() } };
    if inputs.full {
        return Decision::Full { why: "--full asked".into() };
    }
    if let Some(position) = inputs.intraday_seq {
        return if latest.intraday_seq == Some(position) {
            Decision::UpToDate
        } else {
            Decision::Full { why: format!("new intraday bars since log position {}", latest.intraday_seq.unwrap_or(0)) }
        };
    }
    if inputs.lookback_rows.is_none() {
        let last = latest.max_trade_date;
        let actions_changed = inputs.adjustments.is_some_and(|now| {
            let computed: BTreeMap<&NaiveDate, &String> =
                now.iter().filter(|(d, _)| last.is_some_and(|l| **d <= l)).collect();
            computed != latest.adjustments.iter().collect::<BTreeMap<_, _>>()
        });
        if actions_changed && inputs.changes.is_empty() {
            return Decision::Full { why: "the corporate actions of computed days changed".into() };
        }
        return if inputs.changes.is_empty() {
            Decision::UpToDate
        } else {
            Decision::Full {
                why: format!(
                    "the view cannot run incrementally: {}",
                    inputs.incremental.clone().err().unwrap_or_default()
                ),
            }
        };
    }
    let Some(first_revised) = inputs.first_revised() else {
        let last = latest.max_trade_date;
        let new_days = inputs.changes.keys().any(|d| last.is_none_or(|l| *d > l));
        if new_days && !carries_states(latest, inputs.resumed) {
            return Decision::Full { why: NO_STATES.into() };
        }
        return if new_days {
            Decision::FromBase { base: Box::new(latest.clone()), revised_from: None }
        } else {
            Decision::UpToDate
        };
    };
    // The newest state that does not include the revised day, if its tail is still kept.
    for state in &inputs.earlier {
        if !predates(&state.manifest, first_revised) {
            continue;
        }
        if state.manifest.tail.is_none() || !state.tail_kept || !carries_states(&state.manifest, inputs.resumed) {
            break;
        }
        return Decision::FromBase { base: Box::new(state.manifest.clone()), revised_from: Some(first_revised) };
    }
    Decision::Full { why: format!("{first_revised} was revised and no kept state predates it") }
}

/// Sorts of up to this many bytes of input are done in one piece (see [`execute`]).
const SORT_IN_PLACE_BYTES: usize = 8 << 30;

/// Name of the whole input table in a run whose input (`bhavcopy` or an adjusted table) is
/// narrowed to tail + new days.
pub(super) const FULL_INPUT: &str = "__bhavcopy_all";

/// An incremental run over at most this many new days holds its narrowed input in memory.
const IN_MEMORY_DAYS: usize = 31;

/// Replaces the view's input table `input` in `ctx` by the tail plus the days after `after`,
/// both with only the columns the view reads. `in_memory`: read once into memory (a tail and a
/// few days are a few MB), since the run reads it three times (the view, then the new tail's
/// cut-offs and rows), and each read of the stored days lists every day folder and joins the
/// adjustment epochs again.
async fn narrow_input(
    ctx: &SessionContext,
    storage: &Storage,
    input: &str,
    tail: &FileRef,
    after: Option<NaiveDate>,
    columns: &[String],
    in_memory: bool,
) -> Result<(), MaterializeError> {
    let all = ctx.table(input).await?;
    ctx.deregister_table(input)?;
    ctx.register_table(FULL_INPUT, all.into_view())?;
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let newer = ctx.table(FULL_INPUT).await?;
    let newer = match after {
        Some(d) => newer.filter(col("trade_date").gt(lit(date_scalar(d))))?,
        None => newer,
    }
    .select_columns(&cols)?;
    let schema: SchemaRef = Arc::new(newer.schema().as_arrow().clone());
    ctx.register_table("__tail", Arc::new(ParquetFilesTable::new(storage, schema, std::slice::from_ref(tail))?))?;
    let narrowed = ctx.table("__tail").await?.union(newer)?;
    if in_memory {
        let schema: SchemaRef = Arc::new(narrowed.schema().as_arrow().clone());
        let batches = narrowed.collect_partitioned().await?;
        ctx.register_table(input, Arc::new(datafusion::datasource::MemTable::try_new(schema, batches)?))?;
    } else {
        ctx.register_table(input, narrowed.into_view())?;
    }
    Ok(())
}

type Files = Vec<(FileRef, Option<(NaiveDate, NaiveDate)>)>;

/// The column files are laid out and described by: the event time when it is a date, else the
/// view's trade_date (intraday views are keyed by a bar's timestamp).
pub(super) fn date_column<'a>(schema: &SchemaRef, event_time: &'a str) -> &'a str {
    let is_date = |c: &str| {
        schema.field_with_name(c).is_ok_and(|f| f.data_type() == &datafusion::arrow::datatypes::DataType::Date32)
    };
    if is_date(event_time) || !is_date("trade_date") { event_time } else { "trade_date" }
}

/// Writes the view's rows. A full run writes one file per calendar year, from every output
/// partition in parallel; an incremental run's few thousand rows go to one file.
async fn write_output(
    storage: &Storage,
    view: &str,
    version: &str,
    run_id: &str,
    df: DataFrame,
    event_time: &str,
    full: bool,
) -> Result<Files, MaterializeError> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let date_col = date_column(&schema, event_time);
    if full {
        let files = year_files(storage, view, version, run_id, &schema, date_col)?;
        drain_all(&files, df.execute_stream_partitioned().await?).await?;
        return finish_year_files(files).await;
    }
    let key = paths::data_file(view, version, run_id, 0);
    let w = write_stream(storage, &key, schema, df.execute_stream().await?, Some(date_col)).await?;
    Ok(w.file.map(|f| (f, w.dates)).into_iter().collect())
}

/// A full run of a view whose windows are all per entity, in bounded memory: the input split
/// by entity on local disk, the view run over a group of entities at a time (see [`chunked`]).
async fn write_chunked(
    ctx: &SessionContext,
    storage: &Storage,
    pv: &PreparedView,
    run_id: &str,
    schema: &SchemaRef,
    chunk_rows: usize,
    states: &Arc<RecursionStates>,
) -> Result<Files, MaterializeError> {
    let spec = &pv.view.spec;
    let tmp = bhavstore_lake::spill::temp_dir(&format!("materialize-{run_id}-{}", spec.name));
    let spill = chunked::split_input(ctx, pv, &tmp).await?;
    let chunks = chunked::chunks(&spill, chunk_rows);
    let rows: usize = spill.rows().iter().sum();
    tracing::debug!(view = %spec.name, rows, chunks = chunks.len(), "input split by entity");
    let files = year_files(storage, &spec.name, &pv.version.id, run_id, schema, date_column(schema, &spec.event_time))?;
    for buckets in chunks {
        let chunk_ctx = bhavstore_lake::session(storage)?;
        chunk_ctx.state_ref().write().config_mut().options_mut().execution.sort_in_place_threshold_bytes =
            SORT_IN_PLACE_BYTES;
        chunk_ctx.deregister_table(pv.input_table())?;
        chunk_ctx.register_table(pv.input_table(), Arc::new(chunked::table(&spill, &buckets)?))?;
        bhavstore_features::register_views(&chunk_ctx, std::slice::from_ref(&pv.view))
            .await
            .map_err(bhavstore_features::PrepareError::from)?;
        let df = super::recursions::view_frame(&chunk_ctx, pv, states).await?;
        drain_all(&files, df.execute_stream_partitioned().await?).await?;
    }
    finish_year_files(files).await
}

fn year_files(
    storage: &Storage,
    view: &str,
    version: &str,
    run_id: &str,
    schema: &SchemaRef,
    date_col: &str,
) -> Result<Arc<YearFiles>, MaterializeError> {
    let (view, version, run_id) = (view.to_string(), version.to_string(), run_id.to_string());
    let key_of = move |year: i32| paths::data_file_year(&view, &version, &run_id, 0, year);
    Ok(Arc::new(YearFiles::new(storage, key_of, Arc::clone(schema), date_col)?))
}

/// Writes every stream into `files`, each stream on its own task (each drives its partition).
async fn drain_all(
    files: &Arc<YearFiles>,
    streams: Vec<datafusion::execution::SendableRecordBatchStream>,
) -> Result<(), MaterializeError> {
    let tasks = streams.into_iter().map(|s| {
        let files = Arc::clone(files);
        SpawnedTask::spawn(async move { files.drain(s).await })
    });
    for done in futures::future::try_join_all(tasks.map(SpawnedTask::join_unwind))
        .await
        .map_err(|e| MaterializeError::Write(e.to_string()))?
    {
        done?;
    }
    Ok(())
}

async fn finish_year_files(files: Arc<YearFiles>) -> Result<Files, MaterializeError> {
    let files = Arc::try_unwrap(files).map_err(|_| MaterializeError::Write("a writer is still in use".into()))?;
    Ok(files.finish().await?.into_iter().filter_map(|w| w.file.map(|f| (f, w.dates))).collect())
}

/// Deletes files no manifest of the version refers to (left by failed or killed runs), and the
/// tails of all but the newest `keep_tails` runs. Runs under the view's lock, so no other run of
/// the view is writing. Failures are logged: they leave garbage, never damage.
async fn cleanup(storage: &Storage, view: &str, version: &str, published: &Manifest, keep_tails: usize) {
    let referenced: BTreeSet<&str> = published.referenced_runs.iter().map(String::as_str).collect();
    let list = async |dir: &str| match storage.list(dir).await {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!(dir, error = %e, "cleanup: listing failed");
            None
        }
    };
    let (data_dir, state_dir) = (paths::data_dir(view, version), paths::state_dir(view, version));
    let (data, state) = (list(&data_dir).await, list(&state_dir).await);
    // The newest `keep_tails` runs that left a tail: a compaction publishes no tail of its own,
    // so counting every referenced run would keep one tail fewer after each one.
    let with_tail: BTreeSet<String> =
        state.iter().flatten().filter_map(|k| paths::run_of_file(&state_dir, k)).collect();
    let kept_tails: BTreeSet<&str> = published
        .referenced_runs
        .iter()
        .rev()
        .filter(|r| with_tail.contains(r.as_str()))
        .take(keep_tails.max(1))
        .map(String::as_str)
        .collect();
    for (dir, keys, keep) in [(&data_dir, data, &referenced), (&state_dir, state, &kept_tails)] {
        let Some(keys) = keys else { continue };
        let mut removed = 0usize;
        for key in keys {
            let Some(run) = paths::run_of_file(dir, &key) else { continue };
            if keep.contains(run.as_str()) {
                continue;
            }
            match storage.delete(&key).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(key, error = %e, "cleanup: delete failed"),
            }
        }
        if removed > 0 {
            tracing::info!(dir, removed, "removed files no manifest needs (orphans of failed runs, old tails)");
        }
    }
}

async fn log_to_mlflow(
    client: &bhavstore_mlflow::MlflowClient,
    pv: &PreparedView,
    published: &Manifest,
    record: &RunRecord,
    quality: &[super::QualityRecord],
) {
    let spec = &pv.view.spec;
    let mut params = vec![
        ("view".to_string(), spec.name.clone()),
        ("version".to_string(), pv.version.id.clone()),
        ("mode".to_string(), record.mode.clone().unwrap_or_default()),
        ("lookback_rows".to_string(), pv.lookback_rows.map_or_else(|| "full".to_string(), |n| n.to_string())),
        ("windows".to_string(), pv.analysis.functions.keys().cloned().collect::<Vec<_>>().join(",")),
        ("trade_date_min".to_string(), record.min_trade_date.map(|d| d.to_string()).unwrap_or_default()),
        ("trade_date_max".to_string(), record.max_trade_date.map(|d| d.to_string()).unwrap_or_default()),
        ("manifest_seq".to_string(), published.seq.to_string()),
    ];
    params.retain(|(_, v)| !v.is_empty());
    let mut metrics = vec![
        ("rows".to_string(), record.rows as f64),
        ("total_rows".to_string(), published.rows as f64),
        (
            "duration_s".to_string(),
            Utc::now().signed_duration_since(record.started_at).num_milliseconds() as f64 / 1000.0,
        ),
    ];
    for q in quality {
        let prefix = q.feature.clone().unwrap_or_else(|| "view".into());
        if let Some(v) = q.null_rate {
            metrics.push((format!("{prefix}.null_rate"), v));
        }
        if let Some(v) = q.psi {
            metrics.push((format!("{prefix}.psi"), v));
        }
        if let Some(v) = q.missing_entities {
            metrics.push(("missing_entities".into(), v as f64));
        }
        if let Some(v) = q.suspicious_returns {
            metrics.push(("suspicious_returns".into(), v as f64));
        }
    }
    let tags = vec![
        ("definition_hash".to_string(), pv.version.definition_hash.clone()),
        ("bhavstore.run_id".to_string(), record.run_id.clone()),
        ("bhavstore.status".to_string(), if record.warnings.is_empty() { "succeeded" } else { "warning" }.to_string()),
    ];
    let manifest_json = serde_json::to_vec_pretty(published).unwrap_or_default();
    let run = bhavstore_mlflow::RunRecord {
        experiment: spec.name.clone(),
        run_name: record.run_id.clone(),
        start_time: record.started_at,
        end_time: Utc::now(),
        succeeded: true,
        params,
        metrics,
        tags,
        artifacts: vec![("manifest.json".to_string(), Bytes::from(manifest_json))],
    };
    match client.log_run(&run).await {
        Ok(id) => tracing::info!(view = %spec.name, mlflow_run = %id, "logged to MLflow"),
        Err(e) => tracing::warn!(view = %spec.name, error = %e, "MLflow logging failed; the run itself is kept"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bhavstore_lake::manifest::TailRef;
    use bhavstore_storage::StorageConfig;

    /// What the analysis says of an incremental view.
    static INCREMENTAL: Result<usize, String> = Ok(20);

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// The sha256 a day's input had when it was computed; a revision changes it.
    fn sha(d: &str) -> String {
        format!("sha-{d}")
    }

    /// State `seq`, computed from `days` (each with its original sha), with a tail or not.
    fn state(seq: u64, days: &[&str], tail: bool) -> Manifest {
        let at = chrono::DateTime::from_timestamp(1_710_000_000 + seq as i64, 0).unwrap();
        Manifest {
            format: MANIFEST_FORMAT,
            view: "v".into(),
            version: "v1".into(),
            definition_hash: "hash".into(),
            seq,
            run_id: format!("run{seq}"),
            kind: "incremental".into(),
            started_at: at,
            published_at: at,
            min_trade_date: days.first().map(|d| day(d)),
            max_trade_date: days.last().map(|d| day(d)),
            rows: 0,
            segments: Vec::new(),
            tail: tail.then(|| TailRef {
                file: FileRef { key: paths::tail_file("v", "v1", &format!("run{seq}")), size: 1, rows: 1 },
                lookback_rows: 20,
                recursions: None,
            }),
            inputs: days.iter().map(|d| (day(d), sha(d))).collect(),
            loads_watermark: None,
            referenced_runs: Vec::new(),
            intraday_seq: None,
            adjustments: BTreeMap::new(),
        }
    }

    /// Change-log entries: (trade date, sha256 loaded).
    fn changes(entries: &[(&str, &str)]) -> BTreeMap<NaiveDate, String> {
        entries.iter().map(|(d, s)| (day(d), (*s).to_string())).collect()
    }

    /// An incremental view, no `--full`, nothing earlier gathered.
    fn inputs<'a>(latest: Option<&'a Manifest>, changes: &'a BTreeMap<NaiveDate, String>) -> DecideInputs<'a> {
        DecideInputs {
            latest,
            changes,
            full: false,
            lookback_rows: Some(20),
            resumed: 0,
            incremental: &INCREMENTAL,
            earlier: Vec::new(),
            intraday_seq: None,
            adjustments: None,
        }
    }

    fn kept(manifest: Manifest) -> EarlierState {
        EarlierState { manifest, tail_kept: true }
    }

    fn full(why: &str) -> Decision {
        Decision::Full { why: why.into() }
    }

    fn from(base: &Manifest, revised_from: Option<&str>) -> Decision {
        Decision::FromBase { base: Box::new(base.clone()), revised_from: revised_from.map(day) }
    }

    /// A view whose recursive calls are resumed continues only from a state that saved theirs;
    /// a state written before states were saved (or without its file) means a full run.
    #[test]
    fn resumed_recursions_continue_only_from_a_state_that_saved_them() {
        let with_states = |seq, days: &[&str]| {
            let mut m = state(seq, days, true);
            if let Some(t) = m.tail.as_mut() {
                t.recursions = Some(FileRef { key: paths::recursions_file("v", "v1", &m.run_id), size: 1, rows: 1 });
            }
            m
        };
        let new = changes(&[("2024-03-04", "a")]);
        let old = state(1, &["2024-03-01"], true);
        let mut i = inputs(Some(&old), &new);
        i.resumed = 2;
        assert_eq!(decide(&i), full(NO_STATES));
        let saved = with_states(2, &["2024-03-01"]);
        i.latest = Some(&saved);
        assert_eq!(decide(&i), from(&saved, None));
        // A revision restarts only from an earlier state that saved them too.
        let revised = changes(&[("2024-03-04", "b")]);
        let latest = with_states(3, &["2024-03-01", "2024-03-04"]);
        let mut i = inputs(Some(&latest), &revised);
        i.resumed = 2;
        i.earlier = vec![kept(latest.clone()), kept(old.clone())];
        assert_eq!(decide(&i), full("2024-03-04 was revised and no kept state predates it"));
        i.earlier = vec![kept(latest.clone()), kept(saved.clone())];
        assert_eq!(decide(&i), from(&saved, Some("2024-03-04")));
    }

    #[test]
    fn first_run_computes_everything_whatever_else_is_asked() {
        let new = changes(&[("2024-03-01", "a")]);
        assert_eq!(decide(&inputs(None, &new)), full("first run of this version"));
        let none = changes(&[]);
        let mut i = inputs(None, &none);
        i.full = true;
        i.lookback_rows = None;
        assert_eq!(decide(&i), full("first run of this version"));
    }

    #[test]
    fn a_view_over_intraday_bars_follows_the_intraday_log_not_the_change_log() {
        let mut latest = state(1, &["2024-03-01"], true);
        latest.intraday_seq = Some(7);
        // bhavcopy days changed, the intraday log did not: nothing new.
        let new = changes(&[("2024-03-04", "a")]);
        let mut i = inputs(Some(&latest), &new);
        i.intraday_seq = Some(7);
        assert_eq!(decide(&i), Decision::UpToDate);
        i.intraday_seq = Some(9);
        assert_eq!(decide(&i), full("new intraday bars since log position 7"));
        i.full = true;
        assert_eq!(decide(&i), full("--full asked"));
    }

    #[test]
    fn a_changed_corporate_action_on_a_computed_day_revises_from_its_ex_session() {
        let mut older = state(1, &["2024-03-01"], true);
        older.adjustments = [(day("2024-03-01"), "x".to_string())].into();
        let mut latest = state(2, &["2024-03-01", "2024-03-04", "2024-03-05"], true);
        latest.adjustments = [(day("2024-03-01"), "x".to_string())].into();
        let none = changes(&[]);
        let same = latest.adjustments.clone();
        let mut i = inputs(Some(&latest), &none);
        i.adjustments = Some(&same);
        assert_eq!(decide(&i), Decision::UpToDate, "the same actions: nothing to do");
        // An action reported late for 2024-03-04 (a computed day).
        let late: BTreeMap<NaiveDate, String> =
            [(day("2024-03-01"), "x".to_string()), (day("2024-03-04"), "y".to_string())].into();
        i.adjustments = Some(&late);
        assert_eq!(i.first_revised(), Some(day("2024-03-04")));
        i.earlier = vec![kept(older.clone())];
        assert_eq!(decide(&i), from(&older, Some("2024-03-04")));
        // One whose ex-session is not computed yet changes nothing now.
        let ahead: BTreeMap<NaiveDate, String> =
            [(day("2024-03-01"), "x".to_string()), (day("2024-03-06"), "z".to_string())].into();
        i.adjustments = Some(&ahead);
        assert_eq!(i.first_revised(), None);
        // An action withdrawn (a list now covers the date and has none) revises too.
        let gone: BTreeMap<NaiveDate, String> = BTreeMap::new();
        i.adjustments = Some(&gone);
        assert_eq!(i.first_revised(), Some(day("2024-03-01")));
        // A view that runs only in full recomputes when a computed day's actions changed.
        i.lookback_rows = None;
        i.adjustments = Some(&late);
        assert_eq!(decide(&i), full("the corporate actions of computed days changed"));
    }

    #[test]
    fn no_change_log_entries_is_nothing_new() {
        let latest = state(1, &["2024-03-01", "2024-03-04"], true);
        let none = changes(&[]);
        assert_eq!(decide(&inputs(Some(&latest), &none)), Decision::UpToDate);
    }

    #[test]
    fn reloading_a_computed_day_with_the_same_file_is_nothing_new() {
        let latest = state(1, &["2024-03-01", "2024-03-04"], true);
        let same = changes(&[("2024-03-04", &sha("2024-03-04"))]);
        assert_eq!(decide(&inputs(Some(&latest), &same)), Decision::UpToDate);
    }

    #[test]
    fn new_days_run_incrementally_on_the_latest_state() {
        let latest = state(2, &["2024-03-01", "2024-03-04"], true);
        // An unchanged reload of a computed day next to the new one is not a revision.
        let new = changes(&[("2024-03-04", &sha("2024-03-04")), ("2024-03-05", "new")]);
        assert_eq!(decide(&inputs(Some(&latest), &new)), from(&latest, None));
    }

    #[test]
    fn a_published_state_without_rows_takes_every_day_as_new() {
        let empty = state(1, &[], true);
        let new = changes(&[("2024-03-01", "a")]);
        assert_eq!(decide(&inputs(Some(&empty), &new)), from(&empty, None));
    }

    #[test]
    fn full_flag_recomputes_even_with_nothing_new() {
        let latest = state(1, &["2024-03-01"], true);
        let none = changes(&[]);
        let mut i = inputs(Some(&latest), &none);
        i.full = true;
        assert_eq!(decide(&i), full("--full asked"));
    }

    #[test]
    fn a_full_only_view_recomputes_on_any_change_and_rests_otherwise() {
        let latest = state(1, &["2024-03-01", "2024-03-04"], false);
        let full_only = Err("it reads another feature view".to_string());
        let (none, new_day, revised) =
            (changes(&[]), changes(&[("2024-03-05", "new")]), changes(&[("2024-03-04", "revised")]));
        let mut i = inputs(Some(&latest), &none);
        i.lookback_rows = None;
        i.incremental = &full_only;
        assert_eq!(decide(&i), Decision::UpToDate);
        // A new day and a revised one alike: no state to build on, so no earlier state is read.
        for c in [&new_day, &revised] {
            i.changes = c;
            assert_eq!(i.first_revised(), None);
            assert_eq!(decide(&i), full("the view cannot run incrementally: it reads another feature view"));
        }
    }

    #[test]
    fn a_revision_restarts_from_the_newest_state_before_the_earliest_revised_day() {
        let s1 = state(1, &["2024-03-01"], true);
        let s2 = state(2, &["2024-03-01", "2024-03-04"], true);
        let s3 = state(3, &["2024-03-01", "2024-03-04", "2024-03-05"], true);
        // 03-05 and 03-04 revised, 03-06 new: everything from 03-04 on is recomputed on s1.
        let c = changes(&[("2024-03-04", "revised"), ("2024-03-05", "revised"), ("2024-03-06", "new")]);
        let mut i = inputs(Some(&s3), &c);
        assert_eq!(i.first_revised(), Some(day("2024-03-04")));
        i.earlier = vec![kept(s3.clone()), kept(s2), kept(s1.clone())];
        assert_eq!(decide(&i), from(&s1, Some("2024-03-04")));
    }

    #[test]
    fn a_revision_whose_restart_state_lost_its_tail_recomputes_everything() {
        let s1 = state(1, &["2024-03-01"], true);
        let s2 = state(2, &["2024-03-01", "2024-03-04"], true);
        let c = changes(&[("2024-03-04", "revised")]);
        let mut i = inputs(Some(&s2), &c);
        i.earlier = vec![kept(s2.clone()), EarlierState { manifest: s1, tail_kept: false }];
        assert_eq!(decide(&i), full("2024-03-04 was revised and no kept state predates it"));
    }

    #[test]
    fn a_revision_whose_restart_state_has_no_tail_recomputes_everything() {
        let s1 = state(1, &["2024-03-01"], false);
        let s2 = state(2, &["2024-03-01", "2024-03-04"], true);
        let c = changes(&[("2024-03-04", "revised")]);
        let mut i = inputs(Some(&s2), &c);
        i.earlier = vec![kept(s2.clone()), kept(s1)];
        assert_eq!(decide(&i), full("2024-03-04 was revised and no kept state predates it"));
    }

    #[test]
    fn a_revision_of_the_first_computed_day_recomputes_everything() {
        let s1 = state(1, &["2024-03-01"], true);
        let s2 = state(2, &["2024-03-01", "2024-03-04"], true);
        let c = changes(&[("2024-03-01", "revised")]);
        let mut i = inputs(Some(&s2), &c);
        // An older state that is skipped (it holds the day) is not a restart point, tail or not.
        i.earlier = vec![kept(s2.clone()), kept(s1)];
        assert_eq!(decide(&i), full("2024-03-01 was revised and no kept state predates it"));
    }

    fn storage(dir: &tempfile::TempDir) -> Storage {
        Storage::open(&StorageConfig { url: dir.path().display().to_string(), ..StorageConfig::default() }).unwrap()
    }

    /// The gathering reads states newest first and stops at the first that predates the
    /// revised day: an older manifest is never read (here it would not even parse).
    #[tokio::test]
    async fn earlier_states_stop_at_the_first_state_before_the_revised_day() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        s.put(&paths::manifest("v", "v1", 1), Bytes::from_static(b"not a manifest")).await.unwrap();
        let s2 = state(2, &["2024-03-01"], true);
        let s3 = state(3, &["2024-03-01", "2024-03-04"], true);
        manifest::publish(&s, &s2).await.unwrap();
        manifest::publish(&s, &s3).await.unwrap();
        let tail = &s2.tail.as_ref().unwrap().file.key;
        s.put(tail, Bytes::from_static(b"tail")).await.unwrap();

        let got = earlier_states(&s, "v", "v1", day("2024-03-04")).await.unwrap();
        let seen: Vec<(u64, bool)> = got.iter().map(|e| (e.manifest.seq, e.tail_kept)).collect();
        assert_eq!(seen, vec![(3, false), (2, true)]);

        // The same once the tail is gone, and the decision that follows.
        s.delete(tail).await.unwrap();
        let got = earlier_states(&s, "v", "v1", day("2024-03-04")).await.unwrap();
        let seen: Vec<(u64, bool)> = got.iter().map(|e| (e.manifest.seq, e.tail_kept)).collect();
        assert_eq!(seen, vec![(3, false), (2, false)]);
        let c = changes(&[("2024-03-04", "revised")]);
        let mut i = inputs(Some(&s3), &c);
        i.earlier = got;
        assert_eq!(decide(&i), full("2024-03-04 was revised and no kept state predates it"));
    }
}
