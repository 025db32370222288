//! The online store: recent feature values of every view held in memory for point-in-time
//! ("as of") lookups that never touch Parquet.
//!
//! A daily row's **event time** is the market close of its trade date (15:30 IST by default). A
//! lookup at time `t` returns the value with the latest event time `<= t`, and refuses it as
//! stale when that is older than the view's `ttl`. So a lookup at 10:00 IST on a trading day sees
//! the previous session's close, never that day's.
//!
//! Each view's data is one immutable [`OnlineView`], built from one manifest and swapped in
//! whole, so a lookup sees the old or the new version, never a mix.

mod config;
mod entity;
mod view;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

pub use config::OnlineConfig;
pub use entity::EntityIndex;
pub use view::{LookupError, MarketClock, OnlineView, Value, ValueAt, from_days, to_days};

use crate::materialize::MaterializeError;
use crate::storage::Storage;

/// Errors building the online store.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// Reading the published data failed.
    #[error(transparent)]
    Materialize(#[from] MaterializeError),
    /// DataFusion failed reading it.
    #[error("reading feature data: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    /// The configuration is unusable.
    #[error("online store configuration: {0}")]
    Config(String),
}

/// Every view's online data, swapped atomically per view.
#[derive(Debug, Default)]
pub struct OnlineStore {
    views: RwLock<HashMap<String, Arc<OnlineView>>>,
    entities: RwLock<Arc<EntityIndex>>,
}

impl OnlineStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs a view's data, replacing the previous one in one step.
    pub fn install(&self, view: OnlineView) {
        let name = view.name().to_string();
        if let Ok(mut views) = self.views.write() {
            views.insert(name, Arc::new(view));
        }
    }

    /// Installs the entity aliases (symbols, ISINs).
    pub fn install_entities(&self, index: EntityIndex) {
        if let Ok(mut e) = self.entities.write() {
            *e = Arc::new(index);
        }
    }

    /// The current data of `view`.
    #[must_use]
    pub fn view(&self, view: &str) -> Option<Arc<OnlineView>> {
        self.views.read().ok()?.get(view).cloned()
    }

    /// Names of the views held.
    #[must_use]
    pub fn view_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.views.read().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }

    /// Resolves a scrip code, symbol or ISIN to the entity key.
    #[must_use]
    pub fn resolve(&self, entity_id: &str) -> Option<i64> {
        self.entities.read().ok()?.resolve(entity_id)
    }

    /// The value of `feature` for `entity_id` as of `at`.
    pub fn lookup(
        &self,
        view: &str,
        entity_id: &str,
        feature: &str,
        at: DateTime<Utc>,
    ) -> Result<ValueAt, LookupError> {
        let v = self.view(view).ok_or_else(|| LookupError::UnknownView(view.to_string()))?;
        let entity = self.resolve(entity_id).ok_or_else(|| LookupError::UnknownEntity(entity_id.to_string()))?;
        v.lookup(entity, feature, at)
    }

    /// Loads every current view of `storage` (newest manifest of each current version) and the
    /// entity aliases.
    pub async fn load(
        &self,
        storage: &Storage,
        views: &[crate::materialize::PreparedView],
        cfg: &OnlineConfig,
    ) -> Result<(), OnlineError> {
        let clock = view::MarketClock::from_config(cfg)?;
        for pv in views {
            let name = &pv.view.spec.name;
            match crate::materialize::manifest::latest(storage, name, &pv.version.id).await? {
                Some(m) if m.files().next().is_some() => {
                    let v = OnlineView::build(storage, pv, &m, cfg.history_days, clock.clone()).await?;
                    tracing::info!(view = %name, version = %pv.version.id, seq = m.seq, rows = v.rows(), "online store loaded");
                    self.install(v);
                }
                _ => tracing::info!(view = %name, "online store: view not materialized yet"),
            }
        }
        self.install_entities(EntityIndex::load(storage).await?);
        Ok(())
    }
}
