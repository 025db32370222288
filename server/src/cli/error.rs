//! What can stop a command, typed up to here, and the exit code each means (README, "Exit
//! codes"): `2` for configuration and usage, `1` for a failure.

use std::process::ExitCode;

use datafusion::error::DataFusionError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration does not load or is out of range.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The arguments do not make a command.
    #[error("{0}")]
    Usage(String),
    /// The market clock settings are unusable.
    #[error(transparent)]
    Clock(#[from] bhavstore_lake::ClockError),
    /// The schedule is invalid or a job failed.
    #[error(transparent)]
    Schedule(#[from] bhavstore_schedule::ScheduleError),
    /// Users or passwords of `server:` do not resolve.
    #[error(transparent)]
    Credentials(#[from] bhavstore_serving::serve::CredentialsError),
    /// `server.limits` is out of range.
    #[error(transparent)]
    Limits(#[from] bhavstore_serving::serve::limits::LimitsError),
    /// The query engine's memory or spill settings are unusable.
    #[error(transparent)]
    QueryEngine(#[from] bhavstore_serving::serve::engine::EngineError),
    /// A revision could not be listed or made current.
    #[error(transparent)]
    Revision(#[from] bhavstore_ingest::revisions::RevisionError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] bhavstore_storage::StorageError),
    /// The BSE client could not be built.
    #[error(transparent)]
    Fetch(#[from] bhavstore_ingest::source::FetchError),
    /// Ingesting failed.
    #[error(transparent)]
    Ingest(#[from] bhavstore_ingest::IngestError),
    /// The definitions do not load.
    #[error(transparent)]
    Definitions(#[from] super::definitions::DefinitionsError),
    /// A feature definition is invalid.
    #[error(transparent)]
    FeatureDefs(#[from] bhavstore_features::FeatureDefError),
    /// A view could not be prepared.
    #[error(transparent)]
    Prepare(#[from] bhavstore_features::PrepareError),
    /// Reading the lake failed.
    #[error(transparent)]
    Lake(#[from] bhavstore_lake::LakeError),
    /// The SQL catalog could not be opened.
    #[error(transparent)]
    Catalog(#[from] bhavstore_query::CatalogError),
    /// Materializing failed.
    #[error(transparent)]
    Materialize(#[from] bhavstore_materialize::MaterializeError),
    /// MLflow is misconfigured.
    #[error(transparent)]
    Mlflow(#[from] bhavstore_mlflow::MlflowError),
    /// The online store could not be loaded.
    #[error("loading the online store: {0}")]
    Online(#[from] bhavstore_online::OnlineError),
    /// A query failed.
    #[error(transparent)]
    Engine(#[from] DataFusionError),
    /// Intraday bars could not be read, stored or computed.
    #[error("intraday: {0}")]
    Intraday(#[from] bhavstore_intraday::IntradayError),
    /// A listener could not start.
    #[error("{what}: {source}")]
    Listener {
        /// Which listener, and where.
        what: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Output(String),
}

impl CliError {
    /// The process exit code this error ends the command with.
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Config(_)
            | Self::Usage(_)
            | Self::Clock(_)
            | Self::Credentials(_)
            | Self::Limits(_)
            | Self::QueryEngine(_)
            | Self::Schedule(
                bhavstore_schedule::ScheduleError::Timezone { .. } | bhavstore_schedule::ScheduleError::Job { .. },
            ) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}
