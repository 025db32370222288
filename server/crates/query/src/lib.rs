//! The SQL catalog: the base session of the lake with the feature views and the system tables.
//!
//! A feature view's name reads the published state of its current definition from the
//! publisher's snapshot in force when the query is planned; until one is published it is
//! computed live from `bhavcopy`. Other states are reached with `view@selector` names
//! ([`versioned`]). Training sets come from `features_asof` ([`training`]), the origin of a
//! value from `lineage` ([`lineage`]); client SQL is bounded and kept read-only by [`sqlguard`].

mod dense;
pub mod lineage;
pub mod sqlguard;
pub mod system;
pub mod training;
mod training_bars;
pub mod versioned;

use std::collections::HashMap;
use std::sync::Arc;

use bhavstore_features::{FeatureDefError, FeatureView, PrepareError, PreparedView};
use bhavstore_lake::published::Receiver;
use bhavstore_lake::{LakeError, MarketClock, Published};
use bhavstore_storage::Storage;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

/// Errors building the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A feature definition is invalid.
    #[error(transparent)]
    FeatureDefs(#[from] FeatureDefError),
    /// A view could not be prepared (planned, analysed, versioned).
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// The base session could not be built.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// DataFusion refused a registration.
    #[error("registering {table}: {source}")]
    Register {
        /// The table or schema.
        table: &'static str,
        /// DataFusion's error.
        source: DataFusionError,
    },
}

/// Tables a server holds in memory, put in the catalog in place of the stored ones.
#[derive(Default)]
pub struct LiveTables {
    /// Base tables (`intraday_bars`, `intraday_quarantine`) registered before the views are
    /// planned, so the views read them.
    pub base: Vec<(&'static str, Arc<dyn datafusion::catalog::TableProvider>)>,
    /// Streaming views' rows, which their plain names read.
    pub views: HashMap<String, Arc<dyn datafusion::catalog::TableProvider>>,
}

/// The catalog every SQL protocol queries, with the views it was opened with, each planned
/// and prepared once on its own session.
#[derive(Clone)]
pub struct Catalog {
    ctx: SessionContext,
    prepared: Arc<Vec<PreparedView>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("views", &self.prepared.len()).finish_non_exhaustive()
    }
}

impl Catalog {
    /// The base session with `views` registered and prepared on it, the system tables, and
    /// `features_asof` on `clock`. Plain view names read the states `published` carries.
    pub async fn open(
        storage: &Storage,
        views: &[FeatureView],
        clock: MarketClock,
        published: Receiver<Arc<Published>>,
        tables: LiveTables,
    ) -> Result<Self, CatalogError> {
        let ctx = bhavstore_lake::session(storage)?;
        for (name, table) in tables.base {
            ctx.deregister_table(name).map_err(|source| CatalogError::Register { table: name, source })?;
            ctx.register_table(name, table).map_err(|source| CatalogError::Register { table: name, source })?;
        }
        bhavstore_features::register_views(&ctx, views).await?;
        let prepared = bhavstore_features::prepare_in(&ctx, views).await?;
        let mut current = Vec::new();
        let mut live = HashMap::new();
        let mut asof = HashMap::new();
        for pv in &prepared {
            let name = pv.view.spec.name.as_str();
            if let Ok(p) = ctx.table_provider(name).await {
                let schema = p.schema();
                let features = pv
                    .view
                    .spec
                    .features
                    .iter()
                    .filter_map(|f| schema.field_with_name(&f.name).ok().cloned())
                    .collect();
                asof.insert(
                    name.to_string(),
                    training::AsofView {
                        entity: pv.view.spec.entity.clone(),
                        event_time: pv.view.spec.event_time.clone(),
                        features,
                        ttl: pv.view.ttl,
                        bars: pv
                            .analysis
                            .tables
                            .contains(bhavstore_lake::bars::INTRADAY_BARS)
                            .then_some(pv.view.available_after),
                    },
                );
                live.insert(name.to_string(), p);
            }
            current.push((name.to_string(), pv.version.id.clone()));
        }
        // The calendar's availability follows the configured publish time.
        ctx.deregister_table(bhavstore_lake::adjust::TRADING_CALENDAR)
            .map_err(|source| CatalogError::Register { table: bhavstore_lake::adjust::TRADING_CALENDAR, source })?;
        ctx.register_table(
            bhavstore_lake::adjust::TRADING_CALENDAR,
            Arc::new(bhavstore_lake::adjust::calendar_table(storage.clone(), clock.clone())),
        )
        .map_err(|source| CatalogError::Register { table: bhavstore_lake::adjust::TRADING_CALENDAR, source })?;
        ctx.register_udtf(
            training::FUNCTION,
            Arc::new(training::AsofFunction::new(asof, clock).with_storage(storage.clone())),
        );
        ctx.register_udtf(
            lineage::FUNCTION,
            Arc::new(lineage::LineageFunction::new(storage.clone(), &prepared, published.clone())),
        );
        for (kind, table) in [
            (system::Kind::Runs, system::RUNS),
            (system::Kind::Quality, system::QUALITY),
            (system::Kind::Versions, system::VERSIONS),
        ] {
            ctx.register_table(table, Arc::new(system::SystemTable::new(kind, storage.clone(), current.clone())))
                .map_err(|source| CatalogError::Register { table, source })?;
        }
        let default_schema = || {
            ctx.catalog("bhavstore").and_then(|c| c.schema("public").map(|s| (c, s))).ok_or_else(|| {
                CatalogError::Register {
                    table: "(schema)",
                    source: DataFusionError::Plan("no bhavstore.public schema".into()),
                }
            })
        };
        let (catalog, inner) = default_schema()?;
        let names = prepared.iter().map(|p| p.view.spec.name.clone()).collect();
        let schema = Arc::new(
            versioned::VersionedSchema::new(inner, storage.clone(), names, live, published)
                .with_streaming(tables.views),
        );
        catalog
            .register_schema("public", Arc::clone(&schema) as _)
            .map_err(|source| CatalogError::Register { table: "(schema)", source })?;
        tracing::debug!(views = views.len(), "feature views registered");
        Ok(Self { ctx, prepared: Arc::new(prepared) })
    }

    /// [`Catalog::open`] with its own publisher, having published the newest state of every
    /// view once: for one-shot readers (`bhavstore query`, tests, benchmarks). Returns the
    /// publisher too, to publish again.
    pub async fn open_now(
        storage: &Storage,
        views: &[FeatureView],
        clock: MarketClock,
    ) -> Result<(Self, bhavstore_lake::Publisher), CatalogError> {
        let publisher = bhavstore_lake::Publisher::new();
        let catalog = Self::open(storage, views, clock, publisher.subscribe(), LiveTables::default()).await?;
        if let Some((next, _)) = publisher.next(storage, &catalog.current_versions()).await? {
            publisher.send(next);
        }
        Ok((catalog, publisher))
    }

    /// The session clients' SQL runs on.
    #[must_use]
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// The views, prepared (planned, analysed, versioned) on this catalog's session.
    #[must_use]
    pub fn prepared(&self) -> &[PreparedView] {
        &self.prepared
    }

    /// `(name, current version)` of every view: what the publisher tracks.
    #[must_use]
    pub fn current_versions(&self) -> Vec<(String, String)> {
        self.prepared.iter().map(|p| (p.view.spec.name.clone(), p.version.id.clone())).collect()
    }
}
