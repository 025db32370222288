//! The published state of the feature views as one value with one owner.
//!
//! A view's published state is its newest manifest and a table over exactly that manifest's
//! files ([`PublishedState`]). [`Published`] is the state of every view at one moment.
//! [`Publisher`] is its only writer: it reads each view's newest manifest **once**, and readers
//! (the SQL catalog, the online store, every protocol above them) take the whole snapshot from
//! its channel, so one publication moves all of them together and no reader mixes two states.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bhavstore_storage::Storage;
use tokio::sync::watch;

use crate::LakeError;
use crate::manifest::{self, Manifest};
use crate::table::{ParquetFilesTable, manifest_table};

pub use tokio::sync::watch::Receiver;

/// One view's published state: its newest manifest and the table over its files.
#[derive(Debug, Clone)]
pub struct PublishedState {
    /// The manifest (view, version, seq, files).
    pub manifest: Arc<Manifest>,
    /// A table over exactly the manifest's files.
    pub table: Arc<ParquetFilesTable>,
}

impl PublishedState {
    /// Reads the state `m` describes (the schema of its first file).
    pub async fn load(storage: &Storage, m: Manifest) -> Result<Self, LakeError> {
        let table = manifest_table(storage, &m).await?;
        Ok(Self { manifest: Arc::new(m), table: Arc::new(table) })
    }

    /// `(version, seq)`: what identifies this state.
    #[must_use]
    pub fn key(&self) -> (&str, u64) {
        (&self.manifest.version, self.manifest.seq)
    }
}

/// The published state of every view at one moment; views with nothing published are absent.
///
/// Layers above the lake attach what they derive from a snapshot (the online store's in-memory
/// views) as an extension before it is sent, so a reader finds the tables and the derived data
/// of the same publication behind one pointer.
#[derive(Clone, Default)]
pub struct Published {
    /// Increases by one with every snapshot the publisher sends.
    pub generation: u64,
    /// Published state per view name.
    pub views: BTreeMap<String, PublishedState>,
    extensions: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("generation", &self.generation)
            .field("views", &self.views)
            .field("extensions", &self.extensions.len())
            .finish()
    }
}

impl Published {
    /// The state of `view`, if one is published.
    #[must_use]
    pub fn get(&self, view: &str) -> Option<&PublishedState> {
        self.views.get(view)
    }

    /// Attaches `value`, replacing one of the same type.
    pub fn insert_extension<T: Any + Send + Sync>(&mut self, value: T) {
        self.extensions.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The attached value of type `T`.
    #[must_use]
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.extensions.get(&TypeId::of::<T>()).and_then(|v| v.downcast_ref::<T>())
    }
}

/// The one writer of [`Published`]. Cloning shares the channel.
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: Arc<watch::Sender<Arc<Published>>>,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    /// A publisher whose first snapshot is empty.
    #[must_use]
    pub fn new() -> Self {
        Self { tx: Arc::new(watch::Sender::new(Arc::new(Published::default()))) }
    }

    /// A receiver of every snapshot from now on.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// The snapshot in force.
    #[must_use]
    pub fn current(&self) -> Arc<Published> {
        Arc::clone(&self.tx.borrow())
    }

    /// Reads the newest manifest of each `(view, version)` once and returns the snapshot that
    /// would follow the current one, with the names of the views whose state changed; `None`
    /// when nothing changed. Nothing is sent: the caller prepares what it derives from the
    /// new states (the online store), then calls [`Publisher::send`].
    pub async fn next(
        &self,
        storage: &Storage,
        views: &[(String, String)],
    ) -> Result<Option<(Published, Vec<String>)>, LakeError> {
        let current = self.current();
        let mut next =
            Published { generation: current.generation + 1, views: BTreeMap::new(), extensions: HashMap::new() };
        let mut changed = Vec::new();
        for (name, version) in views {
            let held = current.get(name);
            let newest = manifest::list_seqs(storage, name, version).await?.last().copied();
            let state = match (newest, held) {
                (None, _) => None,
                (Some(seq), Some(h)) if h.key() == (version.as_str(), seq) => Some(h.clone()),
                (Some(seq), _) => {
                    let m = manifest::read(storage, name, version, seq).await?;
                    if m.files().next().is_none() {
                        None
                    } else {
                        changed.push(name.clone());
                        Some(PublishedState::load(storage, m).await?)
                    }
                }
            };
            if let Some(state) = state {
                next.views.insert(name.clone(), state);
            } else if held.is_some() {
                changed.push(name.clone());
            }
        }
        Ok((!changed.is_empty()).then_some((next, changed)))
    }

    /// Makes `next` the snapshot in force for every reader at once.
    pub fn send(&self, next: Published) {
        self.tx.send_replace(Arc::new(next));
    }
}
