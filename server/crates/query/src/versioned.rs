//! Feature tables by name: `price_features` is the newest published state of the current
//! definition; a suffix after `@` picks another state (quote the name in SQL):
//!
//! | name | reads |
//! | --- | --- |
//! | `"price_features@v1a2b3c4d5e6f"` | the newest state of that version |
//! | `"price_features@r20261127T143000.123Z-0a1b2c"` | the state that run published (time travel) |
//! | `"price_features@2026-11-27T15:00:00Z"` | the newest state published at or before that instant (any version) |
//! | `"price_features@2026-11-27"` | the same, at the end of that UTC day |
//! | `"price_features@live"` | the view computed now from `bhavcopy` (nothing materialized) |
//!
//! Resolution is asynchronous and happens when a query names the table, so it always sees the
//! manifests as they are now.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result, plan_err};

use bhavstore_lake::manifest::{self, Manifest};
use bhavstore_lake::published::Receiver;
use bhavstore_lake::table::manifest_table;
use bhavstore_lake::{LakeError, Published};
use bhavstore_storage::{Storage, paths};

/// The default schema, plus `view@selector` names.
#[derive(Debug)]
pub struct VersionedSchema {
    inner: Arc<dyn SchemaProvider>,
    storage: Storage,
    views: Vec<String>,
    live: std::collections::HashMap<String, Arc<dyn TableProvider>>,
    /// Streaming views' rows as the server computes them; their plain names read these.
    streaming: std::collections::HashMap<String, Arc<dyn TableProvider>>,
    /// The publisher's snapshots: a plain name reads the state in force when it is resolved,
    /// the same one the online store answers from.
    published: Receiver<Arc<Published>>,
}

impl VersionedSchema {
    /// Wraps `inner`; `views` are the feature views that accept selectors, `live` their SQL
    /// views computed from `bhavcopy`.
    pub fn new(
        inner: Arc<dyn SchemaProvider>,
        storage: Storage,
        views: Vec<String>,
        live: std::collections::HashMap<String, Arc<dyn TableProvider>>,
        published: Receiver<Arc<Published>>,
    ) -> Self {
        Self { inner, storage, views, live, streaming: std::collections::HashMap::new(), published }
    }

    /// Plain names of streaming views read `streaming`'s tables (what the server computed
    /// live from every acknowledged bar) instead of the published state.
    #[must_use]
    pub fn with_streaming(mut self, streaming: std::collections::HashMap<String, Arc<dyn TableProvider>>) -> Self {
        self.streaming = streaming;
        self
    }

    fn published(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.published.borrow().get(name).map(|s| Arc::clone(&s.table) as Arc<dyn TableProvider>)
    }
}

#[async_trait]
impl SchemaProvider for VersionedSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some((view, selector)) = name.split_once('@') else {
            if let Some(t) = self.streaming.get(name) {
                return Ok(Some(Arc::clone(t)));
            }
            if let Some(t) = self.published(name) {
                return Ok(Some(t));
            }
            return self.inner.table(name).await;
        };
        if !self.views.iter().any(|v| v == view) {
            return plan_err!("{view:?} is not a feature view, so {name:?} names nothing");
        }
        if selector == "live" {
            return Ok(self.live.get(view).cloned());
        }
        let m = resolve(&self.storage, view, selector).await.map_err(to_df)?;
        Ok(Some(Arc::new(manifest_table(&self.storage, &m).await.map_err(to_df)?)))
    }

    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

fn to_df(e: LakeError) -> DataFusionError {
    match e {
        LakeError::Engine(e) => e,
        other => DataFusionError::Plan(other.to_string()),
    }
}

/// Versions of a view that have been materialized, oldest record first.
pub async fn versions(storage: &Storage, view: &str) -> Result<Vec<String>, LakeError> {
    Ok(storage.list(&paths::versions_dir(view)).await?.iter().filter_map(|k| paths::version_of_record(k)).collect())
}

/// Every manifest of a view, all versions.
pub async fn all_manifests(storage: &Storage, view: &str) -> Result<Vec<Manifest>, LakeError> {
    let mut out = Vec::new();
    for version in versions(storage, view).await? {
        for seq in manifest::list_seqs(storage, view, &version).await? {
            out.push(manifest::read(storage, view, &version, seq).await?);
        }
    }
    Ok(out)
}

async fn resolve(storage: &Storage, view: &str, selector: &str) -> Result<Manifest, LakeError> {
    let not_found = |what: String| LakeError::Empty(format!("{view}: {what}"));
    if selector.starts_with('v') && !selector.contains(':') {
        return manifest::latest(storage, view, selector)
            .await?
            .ok_or_else(|| not_found(format!("no published state of version {selector:?} (see bhavstore_versions)")));
    }
    if selector.starts_with('r') {
        return all_manifests(storage, view)
            .await?
            .into_iter()
            .find(|m| m.run_id == selector)
            .ok_or_else(|| not_found(format!("no manifest published by run {selector:?} (see bhavstore_runs)")));
    }
    let at = parse_instant(selector).ok_or_else(|| {
        not_found(format!("{selector:?} is not a version (v…), a run id (r…), an RFC 3339 time or a YYYY-MM-DD date"))
    })?;
    all_manifests(storage, view)
        .await?
        .into_iter()
        .filter(|m| m.published_at <= at)
        .max_by_key(|m| m.published_at)
        .ok_or_else(|| not_found(format!("nothing was published at or before {at}")))
}

fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc());
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_milli_opt(23, 59, 59, 999)?.and_utc())
}
