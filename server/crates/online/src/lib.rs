//! The online store: recent feature values of every view held in memory for point-in-time
//! ("as of") lookups that never touch Parquet.
//!
//! A daily row's **event time** is the market close of its trade date (15:30 IST by default). A
//! lookup at time `t` returns the value with the latest event time `<= t`, and refuses it as
//! stale when that is older than the view's `ttl`. So a lookup at 10:00 IST on a trading day sees
//! the previous session's close, never that day's.
//!
//! Each view's data is one immutable [`OnlineView`], built from one published state before the
//! publication is sent and attached to it, so a lookup sees the old or the new publication,
//! never a mix, and always the same one as SQL clients.

mod config;
mod entity;
mod view;

use std::collections::HashMap;
use std::sync::Arc;

use bhavstore_features::PreparedView;
use bhavstore_lake::published::Receiver;
use bhavstore_lake::{ClockError, LakeError, Published};

pub use config::OnlineConfig;
pub use entity::EntityIndex;
pub use view::{LookupError, OnlineView, Value, ValueAt};

use bhavstore_storage::Storage;

/// Errors building the online store.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// Reading the published data failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// DataFusion failed reading it.
    #[error("reading feature data: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    /// The market clock settings are unusable.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// A published view's data does not have the shape the store needs.
    #[error("view {view}: {what}")]
    Shape {
        /// The view.
        view: String,
        /// What is wrong.
        what: String,
    },
}

/// What the online store derives from one publication: every view's recent rows in memory and
/// the entity aliases. It travels attached to the [`Published`] snapshot it was built from.
#[derive(Debug, Default)]
pub struct OnlineViews {
    views: HashMap<String, Arc<OnlineView>>,
    entities: Arc<EntityIndex>,
}

/// Reads the online store from the publisher's snapshots: every call sees one publication,
/// the same one SQL and Flight clients see.
#[derive(Debug, Clone)]
pub struct OnlineStore {
    rx: Receiver<Arc<Published>>,
}

/// One publication's online data, held for the length of a request.
#[derive(Debug, Clone)]
pub struct OnlineSnapshot {
    published: Arc<Published>,
}

impl OnlineStore {
    /// A store that follows `rx` (from [`bhavstore_lake::Publisher::subscribe`]).
    #[must_use]
    pub fn new(rx: Receiver<Arc<Published>>) -> Self {
        Self { rx }
    }

    /// The publication in force; take it once per request so every answer comes from it.
    #[must_use]
    pub fn snapshot(&self) -> OnlineSnapshot {
        OnlineSnapshot { published: Arc::clone(&self.rx.borrow()) }
    }

    /// Whether `published` carries online data (a snapshot sent before the store was built,
    /// by a one-shot catalog, does not).
    #[must_use]
    pub fn is_prepared(published: &Published) -> bool {
        published.extension::<OnlineViews>().is_some()
    }

    /// Builds the online data of `next` (reusing views of `previous` whose state did not
    /// change) and attaches it to `next`, before the publisher sends it.
    pub async fn prepare(
        storage: &Storage,
        views: &[PreparedView],
        previous: &Published,
        next: &mut Published,
        cfg: &OnlineConfig,
    ) -> Result<(), OnlineError> {
        let clock = cfg.clock()?;
        let held = previous.extension::<OnlineViews>();
        let mut out = OnlineViews::default();
        for pv in views {
            let name = &pv.view.spec.name;
            let Some(state) = next.get(name) else {
                tracing::info!(view = %name, "online store: view not materialized yet");
                continue;
            };
            let reuse = held
                .and_then(|h| h.views.get(name))
                .filter(|v| previous.get(name).is_some_and(|p| p.key() == state.key()) && v.version() == state.key().0);
            let v = match reuse {
                Some(v) => Arc::clone(v),
                None => {
                    let v = OnlineView::build(pv, state, cfg.history_days, clock.clone()).await?;
                    tracing::info!(view = %name, version = %state.manifest.version, seq = state.manifest.seq, rows = v.rows(), "online store loaded");
                    Arc::new(v)
                }
            };
            out.views.insert(name.clone(), v);
        }
        out.entities = Arc::new(EntityIndex::load(storage).await?);
        next.insert_extension(out);
        Ok(())
    }
}

impl OnlineSnapshot {
    fn online(&self) -> Option<&OnlineViews> {
        self.published.extension::<OnlineViews>()
    }

    /// The generation of the publication this snapshot holds.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.published.generation
    }

    /// The data of `view` in this publication.
    #[must_use]
    pub fn view(&self, view: &str) -> Option<Arc<OnlineView>> {
        self.online()?.views.get(view).cloned()
    }

    /// Names of the views held, sorted.
    #[must_use]
    pub fn view_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.online().map(|o| o.views.keys().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }

    /// Resolves a scrip code, symbol or ISIN to the entity key.
    #[must_use]
    pub fn resolve(&self, entity_id: &str) -> Option<i64> {
        self.online()?.entities.resolve(entity_id)
    }
}
