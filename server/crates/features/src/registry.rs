//! The store's own registry of definitions: the SQL and YAML of every version a run has
//! started, kept next to its manifests (`features/{view}/_versions/{version}.json`). With it a
//! store describes itself: `query` and `serve` against a storage root see the published views
//! and their history from any directory or machine, without the repository's `feature_defs/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bhavstore_lake::LakeError;
use bhavstore_storage::{Storage, StorageError, paths};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{FeatureDefError, FeatureView, PreparedView};

/// Errors reading or writing the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading manifests failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// A record does not parse.
    #[error("registry record {key}: {message}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A record's definition no longer loads.
    #[error("registry record {key}: {source}")]
    Definition {
        /// The record's key.
        key: String,
        /// Why.
        source: FeatureDefError,
    },
}

/// What the store keeps of one version of a view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The view.
    pub view: String,
    /// The version id.
    pub version: String,
    /// Full hash of the definition.
    pub definition_hash: String,
    /// When the first run of this version started.
    pub created_at: DateTime<Utc>,
    /// bhavstore functions the plan calls, with their versions.
    pub functions: BTreeMap<String, u32>,
    /// Rows per entity carried between runs.
    pub lookback_rows: Option<usize>,
    /// Rows per entity the SQL reads back, or why it runs in full.
    pub incremental: Result<usize, String>,
    /// The SQL text.
    pub sql: String,
    /// The YAML text.
    pub yaml: String,
}

impl VersionRecord {
    /// The record of a prepared view.
    #[must_use]
    pub fn of(pv: &PreparedView) -> Self {
        Self {
            view: pv.view.spec.name.clone(),
            version: pv.version.id.clone(),
            definition_hash: pv.version.definition_hash.clone(),
            created_at: Utc::now(),
            functions: pv.analysis.functions.clone(),
            lookback_rows: pv.lookback_rows,
            incremental: pv.analysis.incremental.clone(),
            sql: pv.view.sql.clone(),
            yaml: pv.view.yaml_text.clone(),
        }
    }

    /// The definition it holds, as a view loaded from the store.
    pub fn definition(&self) -> Result<FeatureView, RegistryError> {
        let key = paths::version_record(&self.view, &self.version);
        let origin = PathBuf::from(format!("store:{key}"));
        FeatureView::parse(&self.view, &self.yaml, origin.join("yaml"), &self.sql, origin.join("sql"))
            .map_err(|source| RegistryError::Definition { key, source })
    }
}

/// Writes the record of `pv` unless one exists (records never change once written).
pub async fn record_version(storage: &Storage, pv: &PreparedView) -> Result<(), RegistryError> {
    let rec = VersionRecord::of(pv);
    let key = paths::version_record(&rec.view, &rec.version);
    let body = serde_json::to_vec_pretty(&rec)
        .map_err(|e| RegistryError::Corrupt { key: key.clone(), message: e.to_string() })?;
    storage.put_create(&key, Bytes::from(body)).await?;
    Ok(())
}

/// Reads one record.
pub async fn read_record(storage: &Storage, view: &str, version: &str) -> Result<Option<VersionRecord>, RegistryError> {
    let key = paths::version_record(view, version);
    let Some(bytes) = storage.get(&key).await? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| RegistryError::Corrupt { key, message: e.to_string() })
}

/// The newest published version of a view: the record of the version whose newest manifest
/// was published last, with that publication time.
#[derive(Debug, Clone)]
pub struct Newest {
    /// Its record.
    pub record: VersionRecord,
    /// When its newest manifest was published.
    pub published_at: DateTime<Utc>,
    /// That manifest's seq.
    pub seq: u64,
}

/// Every view with a published state in the store, and its newest published version.
pub async fn newest_published(storage: &Storage) -> Result<Vec<Newest>, RegistryError> {
    let mut out = Vec::new();
    for view in storage.list_folders(paths::views_dir()).await? {
        let versions: Vec<String> = storage
            .list(&paths::versions_dir(&view))
            .await?
            .iter()
            .filter_map(|k| paths::version_of_record(k))
            .collect();
        let mut best: Option<(DateTime<Utc>, u64, String)> = None;
        for version in versions {
            if let Some(m) = bhavstore_lake::manifest::latest(storage, &view, &version).await?
                && best.as_ref().is_none_or(|(t, _, _)| m.published_at > *t)
            {
                best = Some((m.published_at, m.seq, version));
            }
        }
        if let Some((published_at, seq, version)) = best
            && let Some(record) = read_record(storage, &view, &version).await?
        {
            out.push(Newest { record, published_at, seq });
        }
    }
    Ok(out)
}
