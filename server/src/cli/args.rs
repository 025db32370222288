//! Command-line arguments. Every flag that has a configuration key overrides it; see
//! [`crate::config`] for the precedence.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// bhavstore: BSE bhavcopy ingestion, SQL catalog and feature store.
#[derive(Debug, Parser)]
#[command(name = "bhavstore", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "Configuration precedence: defaults < YAML (--config) < BHAVSTORE_* environment < flags.\n\
S3 storage reads the standard AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ALLOW_HTTP.")]
pub struct Cli {
    /// YAML configuration file (unknown keys are an error).
    #[arg(long, global = true, env = "BHAVSTORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Storage root: a directory, file:///abs/path or s3://bucket/prefix [default: ./data].
    #[arg(long, global = true, value_name = "URL")]
    pub storage: Option<String>,

    /// Directory of feature view definitions (*.sql + *.yaml) [default: feature_defs].
    #[arg(long, global = true, value_name = "DIR")]
    pub feature_defs: Option<String>,

    /// Log filter, e.g. info, debug, bhavstore=debug [default: info; RUST_LOG wins].
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download one trading day's bhavcopy from BSE, store its raw bytes and load it.
    Ingest(IngestArgs),
    /// Download a range of trading days (resumable: days already stored are skipped).
    Backfill(BackfillArgs),
    /// Load bhavcopy files, zips or directories you already have (no network needed).
    Import(ImportArgs),
    /// Store intraday bar files you already have (`ts,open,high,low,close,volume`, one
    /// instrument per file) in `intraday_bars`, through the same checks and durable log as pushes.
    /// Run it while no server writes the same storage; a server picks the bars up at its next start.
    ImportBars(ImportBarsArgs),
    /// List the stored revisions of a day, or make one of them current (--use).
    Revisions(RevisionsArgs),
    /// Download BSE's corporate actions (splits, bonuses, dividends, rights ...) for a date
    /// range, a month at a time, keep the raw bytes and reconcile them with the prices
    /// (`corporate_actions`, `corporate_action_checks`, `bhavcopy_adjusted`). Exports you already
    /// have go through `bhavstore import`.
    CorporateActions(CorporateActionsArgs),
    /// Download BSE's list of trading holidays into the trading calendar (`trading_calendar`);
    /// the scheduler stops waiting for a bhavcopy on a listed holiday.
    Holidays(HolidaysArgs),
    /// Run SQL on the catalog: bhavcopy, bhavcopy_quarantine and every feature view.
    Query(QueryArgs),
    /// Validate the feature view definitions and list views and features.
    Features,
    /// Compute feature views into versioned Parquet: only the days not yet published (plus a
    /// revised day and everything after it), or everything with --full.
    Materialize(MaterializeArgs),
    /// Run the scheduler until SIGINT/SIGTERM: by default, download each weekday's bhavcopy
    /// shortly after 20:00 IST (retrying until the cut-off) and then materialize every view.
    Serve(ServeArgs),
}

/// `materialize`.
#[derive(Debug, Args)]
pub struct MaterializeArgs {
    /// Views to materialize (default: all of them), run in parallel.
    #[arg(value_name = "VIEW")]
    pub views: Vec<String>,
    /// Recompute every day instead of only the new ones.
    #[arg(long)]
    pub full: bool,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// REST API address, e.g. 127.0.0.1:8080 (port 0: any free port; the bound one is logged).
    /// Without configured tokens it is forced to 127.0.0.1.
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// Postgres wire address, e.g. 127.0.0.1:5433 (port 0: any free port). Without configured
    /// users it is forced to 127.0.0.1. An empty value turns the listener off.
    #[arg(long, value_name = "ADDR")]
    pub pg_addr: Option<String>,
    /// Arrow Flight SQL address, e.g. 127.0.0.1:50051 (port 0: any free port). Without
    /// configured users or tokens it is forced to 127.0.0.1. An empty value turns it off.
    #[arg(long, value_name = "ADDR")]
    pub flight_addr: Option<String>,
    /// Run the listeners without the scheduler.
    #[arg(long)]
    pub no_schedule: bool,
}

/// Where to download from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Base URL replacing https://www.bseindia.com (a mirror, or a local test server).
    #[arg(long, value_name = "URL")]
    pub source_url: Option<String>,
    /// Base URL replacing https://api.bseindia.com, BSE's API host (corporate actions,
    /// trading holidays).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
}

/// `corporate-actions`.
#[derive(Debug, Args)]
pub struct CorporateActionsArgs {
    /// First ex-date, YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: NaiveDate,
    /// Last ex-date, YYYY-MM-DD (the coming weeks' announced actions are listed too).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: NaiveDate,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// `holidays`.
#[derive(Debug, Args)]
pub struct HolidaysArgs {
    #[command(flatten)]
    pub source: SourceArgs,
}

/// How a revision that loses rows is treated.
#[derive(Debug, Args)]
pub struct RevisionArgs {
    /// Load a new revision of a day even when it has fewer rows than the current one (by
    /// default it is stored but held, with a warning, and the command fails).
    #[arg(long)]
    pub accept_revision: bool,
}

/// `ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Trade date, YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: NaiveDate,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub revision: RevisionArgs,
}

/// `revisions`.
#[derive(Debug, Args)]
pub struct RevisionsArgs {
    /// Trade date, YYYY-MM-DD.
    #[arg(value_name = "YYYY-MM-DD")]
    pub date: NaiveDate,
    /// Make this revision current (its name, or a prefix of its sha256 of at least 4 characters):
    /// the day is reloaded from its raw bytes and materialization recomputes from it.
    #[arg(long = "use", value_name = "REVISION|SHA256")]
    pub use_revision: Option<String>,
}

/// `backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// First date, YYYY-MM-DD (with --to).
    #[arg(long, value_name = "YYYY-MM-DD", requires = "to", conflicts_with = "days")]
    pub from: Option<NaiveDate>,
    /// Last date, YYYY-MM-DD, inclusive (with --from).
    #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
    pub to: Option<NaiveDate>,
    /// The last N calendar days up to today (India time), instead of --from/--to.
    #[arg(long, value_name = "N", required_unless_present = "from")]
    pub days: Option<u32>,
    /// Days downloaded at once [default: 4]. The request rate limit is shared by all of them.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Do not ask for Saturdays and Sundays (BSE holds rare weekend sessions).
    #[arg(long)]
    pub skip_weekends: bool,
    /// Ask BSE again for days already stored; a changed file becomes a new revision.
    #[arg(long)]
    pub refetch: bool,
    /// Exit with an error when BSE cannot be reached (by default that is reported, not failed).
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub revision: RevisionArgs,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files (.csv, .zip) or directories (walked recursively for .csv and .zip; symbolic links
    /// are followed only to places inside the directory named).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub revision: RevisionArgs,
}

/// `import-bars`.
#[derive(Debug, Args)]
pub struct ImportBarsArgs {
    /// Files, or directories (their `*.csv` files, recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The instrument of every file (`EXCHANGE:SYMBOL`); default: from each file's name,
    /// `{SYMBOL}_{YYYY-MM-DD}_1min.csv`, with --exchange.
    #[arg(long, value_name = "EXCHANGE:SYMBOL")]
    pub instrument: Option<String>,
    /// Exchange of instruments read from file names.
    #[arg(long, default_value = "NSE", value_name = "EXCHANGE")]
    pub exchange: String,
}

/// Output formats of `query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL to run.
    pub sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}
