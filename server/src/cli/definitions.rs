//! Which definitions a command uses.
//!
//! `materialize` publishes from the local `feature_defs/` (the source in git). `query` and
//! `serve` see every view the store has published, with the newest published definition from
//! the store's registry, so they work against a storage root from any directory or machine.
//! Where a local definitions directory is present its views take precedence (that is what a
//! developer working on a view queries), and each one that differs from the store's newest
//! published definition is reported: as a warning here, and by `bhavstore features`.

use std::path::Path;

use bhavstore_features::registry::{self, Newest, RegistryError};
use bhavstore_features::{FeatureDefError, FeatureView};
use bhavstore_storage::Storage;

/// Why the definitions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    /// The local directory does not load.
    #[error(transparent)]
    Local(#[from] FeatureDefError),
    /// The store's registry does not read.
    #[error("the store's feature registry: {0}")]
    Registry(#[from] RegistryError),
}

/// How a local definition stands against the store's newest published one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Standing {
    /// Never published from this store.
    Unpublished,
    /// The same definition as the store's newest published version.
    Published {
        /// That version.
        version: String,
    },
    /// Different from the store's newest published version.
    Differs {
        /// The store's version.
        store_version: String,
        /// When it was published.
        published_at: String,
    },
}

/// The local views of `dir`: none when it is missing and not `required`.
pub(super) fn local(dir: &Path, required: bool) -> Result<Vec<FeatureView>, FeatureDefError> {
    if !dir.is_dir() {
        if required {
            return Err(FeatureDefError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "feature definitions directory not found"),
            });
        }
        tracing::debug!(dir = %dir.display(), "no local feature definitions directory");
        return Ok(Vec::new());
    }
    bhavstore_features::load_dir(dir)
}

/// How `view` stands against `newest`.
#[must_use]
pub(super) fn standing(view: &FeatureView, newest: &[Newest]) -> Standing {
    let Some(n) = newest.iter().find(|n| n.record.view == view.spec.name) else { return Standing::Unpublished };
    let same = n.record.definition().is_ok_and(|stored| stored.definition_key() == view.definition_key());
    if same {
        Standing::Published { version: n.record.version.clone() }
    } else {
        Standing::Differs {
            store_version: n.record.version.clone(),
            published_at: n.published_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    }
}

/// The definitions `query` and `serve` use (see the module docs).
pub(super) async fn served(
    storage: &Storage,
    dir: &Path,
    required: bool,
) -> Result<Vec<FeatureView>, DefinitionsError> {
    let mut out = local(dir, required)?;
    let newest = registry::newest_published(storage).await?;
    for l in &out {
        if let Standing::Differs { store_version, published_at } = standing(l, &newest) {
            tracing::warn!(
                view = %l.spec.name,
                %store_version,
                %published_at,
                local = %l.sql_path.display(),
                "the local definition differs from the store's newest published one; using the local one \
                 (its published state if it has one, else computed live). `bhavstore features` compares them"
            );
        }
    }
    for n in &newest {
        if !out.iter().any(|l| l.spec.name == n.record.view) {
            out.push(n.record.definition()?);
        }
    }
    Ok(out)
}
