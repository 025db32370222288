//! The `bhavstore` command: configuration layering, logging, the runtime and each subcommand.

mod args;
pub mod definitions;
mod error;
mod import_bars;

pub use error::CliError;
mod log;
mod output;
mod serve;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{FixedOffset, NaiveDate, Utc};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::{info, warn};

pub use args::{Cli, Command, OutputFormat};

use crate::config::Config;
use bhavstore_ingest::source::BseClient;
use bhavstore_ingest::{BackfillOptions, DayOutcome, Ingested, Ingestor, backfill, import};
use bhavstore_storage::Storage;
use bhavstore_storage::paths;

/// Stack of every runtime thread.
const WORKER_STACK_BYTES: usize = 16 << 20;

/// Entry point of the binary.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match build_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    log::init(&config.log.level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // Planning recurses on a statement's depth; statements are bounded
        // (server.limits.max_expression_depth) well within this stack, with room for the
        // deeper frames of debug builds.
        .thread_stack_size(WORKER_STACK_BYTES)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Layers defaults < YAML < `BHAVSTORE_*` < flags.
pub fn build_config(cli: &Cli) -> Result<Config, crate::config::ConfigError> {
    let mut config = match &cli.config {
        Some(path) => Config::from_yaml_file(path)?,
        None => Config::default(),
    };
    let unknown = config.apply_env(std::env::vars())?;
    for var in unknown {
        eprintln!("warning: ignoring unknown environment variable {var}");
    }
    if let Some(s) = &cli.storage {
        config.storage.url.clone_from(s);
    }
    if let Some(d) = &cli.feature_defs {
        config.features.dir.clone_from(d);
    }
    if let Some(l) = &cli.log {
        config.log.level.clone_from(l);
    }
    match &cli.command {
        Command::Ingest(a) => apply_source(&mut config, &a.source),
        Command::CorporateActions(a) => apply_source(&mut config, &a.source),
        Command::Holidays(a) => apply_source(&mut config, &a.source),
        Command::Backfill(a) => {
            apply_source(&mut config, &a.source);
            if let Some(j) = a.jobs {
                config.backfill.jobs = j;
            }
            if a.skip_weekends {
                config.backfill.skip_weekends = true;
            }
        }
        Command::Serve(a) => {
            apply_source(&mut config, &a.source);
            if let Some(h) = &a.http_addr {
                config.server.http_addr.clone_from(h);
            }
            if let Some(h) = &a.pg_addr {
                config.server.pg_addr.clone_from(h);
            }
            if let Some(h) = &a.flight_addr {
                config.server.flight_addr.clone_from(h);
            }
        }
        Command::Import(_)
        | Command::ImportBars(_)
        | Command::Revisions(_)
        | Command::Query(_)
        | Command::Features
        | Command::Materialize(_) => {}
    }
    config.validate()?;
    Ok(config)
}

fn apply_source(config: &mut Config, source: &args::SourceArgs) {
    if let Some(u) = &source.source_url {
        config.source.base_url.clone_from(u);
    }
    if let Some(u) = &source.api_url {
        config.source.api_base_url = Some(u.clone());
    }
}

async fn run(cli: Cli, config: Config) -> Result<ExitCode, CliError> {
    let storage = Storage::open(&config.storage)?;
    match cli.command {
        Command::Ingest(a) => ingest(&config, storage, a.date, a.revision.accept_revision).await,
        Command::Backfill(a) => run_backfill(&config, storage, &a).await,
        Command::CorporateActions(a) => run_corporate_actions(&config, storage, &a).await,
        Command::Holidays(_) => run_holidays(&config, storage).await,
        Command::Import(a) => run_import(&config, storage, &a.paths, a.revision.accept_revision).await,
        Command::ImportBars(a) => import_bars::run(&config, &storage, &a).await,
        Command::Revisions(a) => run_revisions(&config, storage, &a).await,
        Command::Query(a) => run_query(&config, &storage, &a.sql, a.format).await,
        Command::Features => run_features(&config, &storage).await,
        Command::Materialize(a) => run_materialize(&config, storage, &a.views, a.full).await,
        Command::Serve(a) => serve::run(&config, storage, a.no_schedule).await,
    }
}

/// Today's date in India, where BSE's trading day is.
#[must_use]
pub fn today_ist() -> NaiveDate {
    let ist = FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("valid offset");
    Utc::now().with_timezone(&ist).date_naive()
}

/// The ingestor the configuration and the command's flags describe.
fn ingestor_for(config: &Config, storage: Storage, accept_revision: bool) -> Ingestor {
    Ingestor::new(storage).with_config(&config.ingest).accepting_revisions(accept_revision)
}

/// Prints the warning of a revision loaded although it has fewer rows than the one it replaced.
fn print_row_loss(date: NaiveDate, report: &bhavstore_ingest::LoadReport) {
    if let Some(loss) = &report.row_loss {
        println!(
            "WARNING: {date}: revision {} has {} rows, fewer than the {} of revision {} it replaces; loaded because it was accepted",
            report.revision, loss.rows, loss.previous_rows, loss.previous_revision
        );
    }
}

/// Reconciles the corporate actions with the prices after new data, so `bhavcopy_adjusted` and
/// `corporate_action_checks` follow at once. A failure is reported, not fatal: the data is
/// stored, and the next materialization reconciles again.
async fn reconcile_actions(storage: &Storage) {
    match bhavstore_lake::adjust::reconcile(storage).await {
        Ok(r) => println!("{}", r.describe()),
        Err(e) => warn!(error = %e, "reconciling corporate actions failed; the next materialization tries again"),
    }
}

async fn run_corporate_actions(
    config: &Config,
    storage: Storage,
    a: &args::CorporateActionsArgs,
) -> Result<ExitCode, CliError> {
    if a.from > a.to {
        return Err(CliError::Usage(format!("--from {} is after --to {}", a.from, a.to)));
    }
    let client = BseClient::new(&config.source)?;
    let on_month = |d: &bhavstore_ingest::reference::Downloaded| match &d.result {
        Ok(r) => println!("{} .. {}: {}", d.from, d.to, r.describe()),
        Err(e) => println!("{} .. {}: error: {e}", d.from, d.to),
    };
    let months = bhavstore_ingest::reference::download_actions(&storage, &client, a.from, a.to, &on_month).await?;
    let failed = months.iter().filter(|d| d.result.is_err()).count();
    if months.iter().any(|d| d.result.is_ok()) {
        reconcile_actions(&storage).await;
    }
    println!("{} months asked of {}, {failed} failed", months.len(), config.source.api_base());
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn run_holidays(config: &Config, storage: Storage) -> Result<ExitCode, CliError> {
    let client = BseClient::new(&config.source)?;
    let loaded = bhavstore_ingest::reference::download_holidays(&storage, &client).await?;
    println!("{}", loaded.describe());
    Ok(ExitCode::SUCCESS)
}

async fn ingest(config: &Config, storage: Storage, date: NaiveDate, accept: bool) -> Result<ExitCode, CliError> {
    let client = BseClient::new(&config.source)?;
    let ingestor = ingestor_for(config, storage.clone(), accept);
    let outcome = ingestor.fetch_day(&client, date).await?;
    if matches!(outcome, DayOutcome::Fetched { .. }) {
        reconcile_actions(&storage).await;
    }
    match &outcome {
        DayOutcome::Fetched { report, superseded } => {
            println!("{}", outcome.describe(date));
            if let Some(old) = superseded {
                println!(
                    "{date}: BSE's file changed since it was last stored; revision {} now wins over sha256 {old}",
                    report.revision
                );
            }
            print_row_loss(date, report);
        }
        DayOutcome::Held(_) => {
            println!("WARNING: {}", outcome.describe(date));
            return Ok(ExitCode::FAILURE);
        }
        _ => println!("{}", outcome.describe(date)),
    }
    Ok(ExitCode::SUCCESS)
}

fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    tokio::spawn(async move {
        shutdown_signal().await;
        warn!("signal received: finishing the days in flight, starting no new ones");
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn run_backfill(config: &Config, storage: Storage, a: &args::BackfillArgs) -> Result<ExitCode, CliError> {
    let (from, to) = match (a.from, a.to, a.days) {
        (Some(f), Some(t), _) => (f, t),
        (_, _, Some(n)) if n > 0 => {
            let to = today_ist();
            (to - chrono::Duration::days(i64::from(n) - 1), to)
        }
        _ => return Err(CliError::Usage("give --from and --to, or --days N (N >= 1)".into())),
    };
    if from > to {
        return Err(CliError::Usage(format!("--from {from} is after --to {to}")));
    }
    let opts = BackfillOptions {
        from,
        to,
        jobs: config.backfill.jobs,
        skip_weekends: config.backfill.skip_weekends,
        refetch: a.refetch,
    };
    let total = backfill::days_in(&opts).len() as u64;
    let client = BseClient::new(&config.source)?;
    let ingestor = ingestor_for(config, storage.clone(), a.revision.accept_revision);
    info!(%from, %to, days = total, jobs = opts.jobs, source = %client.base(), storage = storage.display(), "backfill starting");
    let bar = progress_bar(total);
    log::set_active_bar(Some(bar.clone()));
    let on_day = |r: &backfill::DayResult| {
        bar.set_message(r.date.to_string());
        bar.inc(1);
        if bar.is_hidden() {
            // No terminal (cron, CI, a pipe): a log line per day is the progress report.
            let done = bar.position();
            match &r.outcome {
                DayOutcome::Fetched { report, .. } => {
                    info!(date = %r.date, done, of = total, rows = report.rows_loaded, quarantined = report.rows_quarantined, "day loaded")
                }
                DayOutcome::Failed { reason } => warn!(date = %r.date, done, of = total, "day failed: {reason}"),
                DayOutcome::Held(h) => warn!(date = %r.date, done, of = total, "{}", h.warning()),
                other => info!(date = %r.date, done, of = total, "{}", DayOutcome::label(other)),
            }
        }
    };
    let result = backfill::run(&ingestor, &client, &opts, &on_day, stop_on_signal()).await;
    bar.finish_and_clear();
    log::set_active_bar(None);
    let summary = result?;

    println!("backfill {from} .. {to} from {} into {}", client.base(), storage.display());
    println!("  fetched:            {}", summary.fetched());
    println!("  already stored:     {}", summary.already_stored());
    println!("  no file published:  {}", summary.no_file());
    println!("  held (fewer rows):  {}", summary.held());
    for d in &summary.days {
        match &d.outcome {
            DayOutcome::Held(h) => println!("    WARNING: {}", h.warning()),
            DayOutcome::Fetched { report, .. } => print_row_loss(d.date, report),
            _ => {}
        }
    }
    println!("  failed:             {}", summary.failed());
    for d in &summary.days {
        if let DayOutcome::Failed { reason } = &d.outcome {
            println!("    {}: {reason}", d.date);
        }
    }
    println!("  not attempted:      {}", summary.not_attempted());
    if summary.fetched() > 0 {
        reconcile_actions(&storage).await;
    }
    if summary.interrupted {
        println!("interrupted by a signal: run the same command again to resume");
    }
    let stored = storage.list(paths::BHAVCOPY_TABLE).await.map(|k| k.len()).unwrap_or(0);
    if let Some(msg) = &summary.unreachable {
        println!();
        println!("BSE could not be reached from this machine ({msg}).");
        println!(
            "Nothing more was downloaded. The {stored} sessions already stored stay queryable with `bhavstore query`;"
        );
        println!("to load bhavcopy files you already have, use `bhavstore import PATH...` (see README, \"Offline\").");
        if a.strict {
            return Ok(ExitCode::from(3));
        }
    } else {
        println!("sessions stored in total: {stored}");
    }
    Ok(if summary.failed() > 0 || summary.held() > 0 || summary.interrupted {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} days ({eta} left) {msg}")
    {
        bar.set_style(style);
    }
    bar
}

async fn run_import(
    config: &Config,
    storage: Storage,
    paths_in: &[std::path::PathBuf],
    accept: bool,
) -> Result<ExitCode, CliError> {
    let ingestor = ingestor_for(config, storage.clone(), accept);
    let on_file = |f: &import::ImportedFile| match &f.result {
        Ok(Ingested::Loaded { report, .. }) => {
            println!(
                "{}: {} loaded {} rows, {} quarantined, of {} data lines",
                f.source, report.trade_date, report.rows_loaded, report.rows_quarantined, report.data_lines
            );
            print_row_loss(report.trade_date, report);
        }
        Ok(u @ Ingested::Unchanged { trade_date, .. }) => match u.unchanged_note() {
            Some(note) => println!("{}: {trade_date} unchanged ({note})", f.source),
            None => println!("{}: {trade_date} unchanged (identical bytes already stored and current)", f.source),
        },
        Ok(Ingested::Held(held)) => println!("{}: WARNING: {}", f.source, held.warning()),
        Ok(Ingested::Reference(r)) => {
            println!("{}: {}", f.source, r.describe());
            for refused in r.refused.iter().take(20) {
                println!("{}: line {}: refused: {}", f.source, refused.line, refused.reason);
            }
        }
        Err(e) => println!("{}: error: {e}", f.source),
    };
    let report = import::import_paths(&ingestor, paths_in, &on_file).await?;
    if report.files.iter().any(|f| f.result.is_ok()) {
        reconcile_actions(&storage).await;
    }
    for (p, why) in &report.skipped {
        println!("{p}: skipped: {why}");
    }
    let (loaded, quarantined) = report.files.iter().fold((0u64, 0u64), |(l, q), f| match &f.result {
        Ok(Ingested::Loaded { report, .. }) => (l + report.rows_loaded, q + report.rows_quarantined),
        _ => (l, q),
    });
    println!(
        "imported {} files into {}: {loaded} rows loaded, {quarantined} quarantined, {} files failed, {} held, {} skipped",
        report.files.len(),
        storage.display(),
        report.failed(),
        report.held(),
        report.skipped.len()
    );
    Ok(if report.failed() > 0 || report.held() > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn run_revisions(config: &Config, storage: Storage, a: &args::RevisionsArgs) -> Result<ExitCode, CliError> {
    let ingestor = ingestor_for(config, storage, false);
    let date = a.date;
    if let Some(wanted) = &a.use_revision {
        let switched = bhavstore_ingest::revisions::use_revision(&ingestor, date, wanted).await?;
        let r = &switched.report;
        let was = match &switched.previous {
            Some((rev, rows)) if *rev == r.revision => format!(" (it was current already; reloaded, {rows} rows)"),
            Some((rev, rows)) => format!("; it was {rev} with {rows} rows"),
            None => String::new(),
        };
        println!(
            "{date}: revision {} (raw sha256 {}) is now current: {} rows loaded, {} quarantined, of {} data lines{was}",
            r.revision, r.raw_sha256, r.rows_loaded, r.rows_quarantined, r.data_lines
        );
        println!("run `bhavstore materialize` to recompute the feature views from {date}");
        return Ok(ExitCode::SUCCESS);
    }
    let revs = bhavstore_ingest::revisions::list(&ingestor, date).await?;
    if revs.is_empty() {
        println!("{date}: no revision stored");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<40} {:<10} {:>8}  {:<24} {:<64}  source", "revision", "status", "rows", "stored_at", "sha256");
    for r in &revs {
        println!(
            "{:<40} {:<10} {:>8}  {:<24} {:<64}  {}",
            r.revision,
            r.status.to_string(),
            r.rows.map_or_else(|| "?".to_string(), |n| n.to_string()),
            r.stored_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            r.sha256,
            r.source
        );
    }
    if revs.iter().any(|r| r.status == bhavstore_ingest::revisions::RevisionStatus::Held) {
        println!(
            "held revisions have fewer rows than the current one; load one with: bhavstore revisions {date} --use REVISION"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the feature directory was chosen by the user (then it must exist).
fn feature_dir_explicit(config: &Config) -> bool {
    config.features.dir != crate::config::FeaturesConfig::default().dir
}

/// The SQL catalog `query` and `serve` use, over the definitions [`definitions::served`]
/// chooses, and its publisher, which has sent nothing yet. With `live` (the server), intraday
/// bars are read into memory and the streaming views computed, and the catalog reads those.
pub(crate) async fn catalog_for(
    config: &Config,
    storage: &Storage,
    live: bool,
) -> Result<
    (
        bhavstore_query::Catalog,
        bhavstore_lake::Publisher,
        Vec<bhavstore_features::FeatureView>,
        Option<bhavstore_intraday::Intraday>,
    ),
    CliError,
> {
    let dir = std::path::Path::new(&config.features.dir);
    let views = definitions::served(storage, dir, feature_dir_explicit(config)).await?;
    let publisher = bhavstore_lake::Publisher::new();
    let mut live_tables = bhavstore_query::LiveTables::default();
    let intraday = if live {
        let prepared = bhavstore_features::prepare(storage, &views).await?;
        let intraday = bhavstore_intraday::Intraday::open(storage, &config.intraday, &prepared).await?;
        use bhavstore_intraday::tables;
        live_tables.base.push((bhavstore_lake::bars::INTRADAY_BARS, Arc::new(tables::bars(&intraday))));
        live_tables.base.push((bhavstore_lake::bars::INTRADAY_QUARANTINE, Arc::new(tables::quarantine(&intraday))));
        for v in intraday.views() {
            if let Some(t) = tables::view(&intraday, v.name()) {
                live_tables.views.insert(v.name().to_string(), Arc::new(t));
            }
        }
        Some(intraday)
    } else {
        None
    };
    let catalog =
        bhavstore_query::Catalog::open(storage, &views, config.online.clock()?, publisher.subscribe(), live_tables)
            .await?;
    Ok((catalog, publisher, views, intraday))
}

/// Says which views have no published state and are computed live.
pub(crate) fn log_live_views(catalog: &bhavstore_query::Catalog, published: &bhavstore_lake::Published) {
    for (name, version) in catalog.current_versions() {
        if published.get(&name).is_none() {
            tracing::info!(
                view = %name,
                %version,
                "no materialized state of this definition yet: computing the view live (run `bhavstore materialize`)"
            );
        }
    }
}

async fn run_features(config: &Config, storage: &Storage) -> Result<ExitCode, CliError> {
    let dir = std::path::Path::new(&config.features.dir);
    let views = bhavstore_features::load_dir(dir)?;
    let ctx = bhavstore_lake::session(storage)?;
    bhavstore_features::register_views(&ctx, &views).await?;
    let prepared = bhavstore_features::prepare_in(&ctx, &views).await?;
    let newest = match bhavstore_features::registry::newest_published(storage).await {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "cannot read the store's feature registry: published versions not compared");
            Vec::new()
        }
    };
    let mut differing = 0;
    for (v, p) in views.iter().zip(&prepared) {
        println!(
            "{} (entity {}, event time {}, ttl {}, owner {})",
            v.spec.name, v.spec.entity, v.spec.event_time, v.spec.ttl, v.spec.owner
        );
        let runs = match (&p.analysis.incremental, p.lookback_rows) {
            (Ok(_), Some(rows)) => format!("incremental, carrying {rows} rows per {}", v.spec.entity),
            (Err(why), _) => format!("full recompute only: {why}"),
            (Ok(_), None) => "full recompute only".to_string(),
        };
        println!("  version {} ({runs})", p.version.id);
        if let Some(basis) = p.basis() {
            let unit = p.window_unit().unwrap_or_default();
            println!(
                "  prices: {} (reads {}), windows count {}",
                basis.as_str(),
                p.input_table(),
                if unit == bhavstore_lake::adjust::WindowUnit::Session { "exchange sessions" } else { "rows" }
            );
        }
        match definitions::standing(v, &newest) {
            definitions::Standing::Unpublished => {
                println!("  store: never published (query and serve compute it live)")
            }
            definitions::Standing::Published { version } => println!("  store: published as {version}"),
            definitions::Standing::Differs { store_version, published_at } => {
                differing += 1;
                println!(
                    "  store: DIFFERS from the store's newest published version {store_version} ({published_at}); \
                     `bhavstore materialize` publishes this one; elsewhere query and serve use {store_version}"
                );
            }
        }
        println!("  {}", v.spec.description.trim());
        for f in &v.spec.features {
            println!("  - {}: {}", f.name, f.description.trim());
        }
    }
    println!("{} feature views in {}: all valid", views.len(), dir.display());
    for n in newest.iter().filter(|n| !views.iter().any(|v| v.spec.name == n.record.view)) {
        println!(
            "{} is published in the store ({}, {}) but has no local definition",
            n.record.view,
            n.record.version,
            n.published_at.format("%Y-%m-%dT%H:%M:%SZ")
        );
    }
    if differing > 0 {
        println!("{differing} local definitions differ from what the store serves");
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_query(config: &Config, storage: &Storage, sql: &str, format: OutputFormat) -> Result<ExitCode, CliError> {
    let (catalog, publisher, _, _) = catalog_for(config, storage, false).await?;
    if let Some((next, _)) = publisher.next(storage, &catalog.current_versions()).await? {
        publisher.send(next);
    }
    log_live_views(&catalog, &publisher.current());
    let ctx = catalog.session();
    let df = ctx.sql(sql).await?;
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    output::write_batches(&mut out, &schema, &batches, format)?;
    Ok(ExitCode::SUCCESS)
}

/// The materializer for the configured views and MLflow.
pub(crate) async fn materializer(
    config: &Config,
    storage: Storage,
) -> Result<bhavstore_materialize::Materializer, CliError> {
    let dir = std::path::Path::new(&config.features.dir);
    let views = bhavstore_features::load_dir(dir)?;
    let mlflow = bhavstore_mlflow::MlflowClient::from_config(&config.mlflow)?;
    bhavstore_materialize::Materializer::new(storage, views, config.materialize.clone(), mlflow)
        .await
        .map_err(CliError::from)
}

async fn run_materialize(
    config: &Config,
    storage: Storage,
    views: &[String],
    full: bool,
) -> Result<ExitCode, CliError> {
    let m = materializer(config, storage).await?;
    let results = m.run(views, full).await?;
    let mut failed = 0;
    for (view, result) in &results {
        match result {
            Ok(r) => {
                let range = match (r.min_trade_date, r.max_trade_date) {
                    (Some(a), Some(b)) => format!(" for {a}..{b}"),
                    _ => String::new(),
                };
                let seq = r.manifest_seq.map(|s| format!(", manifest {s}")).unwrap_or_default();
                println!(
                    "{view}@{}: {} ({}), {} rows{range}{seq}, run {} in {} ms",
                    r.version.as_deref().unwrap_or("-"),
                    r.status,
                    r.mode.as_deref().unwrap_or("-"),
                    r.rows,
                    r.run_id,
                    r.duration_ms.unwrap_or(0)
                );
                for w in &r.warnings {
                    println!("  warning: {w}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("{view}: failed: {e}");
            }
        }
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
