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
pub use view::{AsOf, LookupError, OnlineView, Value, ValueAt};

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
    availability: Arc<bhavstore_lake::Availability>,
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
            // Same (version, seq) as the previous publication: the view built from it still holds.
            let reuse = held
                .filter(|_| previous.get(name).is_some_and(|p| p.key() == state.key()))
                .and_then(|h| h.views.get(name));
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
        out.availability = Arc::new(bhavstore_lake::Availability::load(storage, &clock).await?);
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

    /// The read at `at` under `rule`: the newest trade date known then.
    #[must_use]
    pub fn as_of(&self, at: chrono::DateTime<chrono::Utc>, rule: bhavstore_lake::AsOfRule) -> AsOf {
        let cutoff = match self.online() {
            Some(o) => o.availability.last_known_date(at, rule),
            None => bhavstore_lake::Availability::default().last_known_date(at, rule),
        };
        AsOf { at, cutoff }
    }

    /// When the values of trade date `d` became available.
    #[must_use]
    pub fn available_at(&self, d: chrono::NaiveDate) -> chrono::DateTime<chrono::Utc> {
        match self.online() {
            Some(o) => o.availability.available_at(d),
            None => bhavstore_lake::Availability::default().available_at(d),
        }
    }

    /// Resolves a scrip code, symbol or ISIN to the entity key.
    #[must_use]
    pub fn resolve(&self, entity_id: &str) -> Option<i64> {
        self.online()?.entities.resolve(entity_id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use chrono::{DateTime, NaiveDate, Utc};
    use datafusion::arrow::array::{Date32Array, Float64Array, Int32Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    use super::*;
    use bhavstore_features::FeatureView;
    use bhavstore_lake::Publisher;
    use bhavstore_lake::manifest::{self, FileRef, MANIFEST_FORMAT, Manifest, Segment};
    use bhavstore_storage::{StorageConfig, paths};

    const VERSION: &str = "v1";

    fn storage(dir: &tempfile::TempDir) -> Storage {
        Storage::open(&StorageConfig { url: format!("file://{}", dir.path().display()), s3: Default::default() })
            .unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Views `names`, each the close of every bhavcopy row, prepared on a store whose
    /// `bhavcopy` is empty: planning needs its schema, not its rows.
    async fn prepared(storage: &Storage, names: &[&str]) -> Vec<PreparedView> {
        let views: Vec<FeatureView> = names
            .iter()
            .map(|name| {
                let yaml = format!(
                    "name: {name}\ndescription: closes\nentity: scrip_code\nevent_time: trade_date\nttl: 5d\n\
                     owner: tests\nfeatures:\n  - name: close\n    description: closing price\n"
                );
                let sql = "SELECT scrip_code, trade_date, close FROM bhavcopy";
                FeatureView::parse(
                    name,
                    &yaml,
                    PathBuf::from(format!("{name}.yaml")),
                    sql,
                    format!("{name}.sql").into(),
                )
                .unwrap()
            })
            .collect();
        bhavstore_features::prepare(storage, &views).await.unwrap()
    }

    /// Writes rows (scrip code, trade date, close) of `view` as run `run_id`'s data file.
    async fn write_rows(storage: &Storage, view: &str, run_id: &str, rows: &[(i32, &str, f64)]) -> FileRef {
        let schema = Arc::new(Schema::new(vec![
            Field::new("scrip_code", DataType::Int32, false),
            Field::new("trade_date", DataType::Date32, false),
            Field::new("close", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(rows.iter().map(|r| r.0).collect::<Int32Array>()),
                Arc::new(rows.iter().map(|r| Some(bhavstore_lake::to_days(day(r.1)))).collect::<Date32Array>()),
                Arc::new(rows.iter().map(|r| Some(r.2)).collect::<Float64Array>()),
            ],
        )
        .unwrap();
        let stream = SessionContext::new().read_batch(batch).unwrap().execute_stream().await.unwrap();
        let key = paths::data_file(view, VERSION, run_id, 0);
        let written =
            bhavstore_lake::writer::write_stream(storage, &key, schema, stream, Some("trade_date")).await.unwrap();
        written.file.unwrap()
    }

    /// Publishes state `seq` of `view`: one segment per (file, first day, last day).
    async fn publish(storage: &Storage, view: &str, seq: u64, segments: &[(FileRef, &str, &str)]) {
        let segments: Vec<Segment> = segments
            .iter()
            .map(|(file, lo, hi)| Segment {
                run_id: format!("run{seq}"),
                min_trade_date: day(lo),
                max_trade_date: day(hi),
                rows: file.rows,
                files: vec![file.clone()],
            })
            .collect();
        let m = Manifest {
            format: MANIFEST_FORMAT,
            view: view.into(),
            version: VERSION.into(),
            definition_hash: "hash".into(),
            seq,
            run_id: format!("run{seq}"),
            kind: "full".into(),
            started_at: at("2024-03-05T12:00:00Z"),
            published_at: at("2024-03-05T12:01:00Z"),
            min_trade_date: segments.first().map(|s| s.min_trade_date),
            max_trade_date: segments.last().map(|s| s.max_trade_date),
            rows: segments.iter().map(|s| s.rows).sum(),
            segments,
            tail: None,
            inputs: BTreeMap::new(),
            loads_watermark: None,
            referenced_runs: Vec::new(),
            intraday_seq: None,
            adjustments: Default::default(),
        };
        manifest::publish(storage, &m).await.unwrap();
    }

    /// The next publication of `pvs`, prepared for the online store with `cfg` but not sent.
    async fn next(
        storage: &Storage,
        publisher: &Publisher,
        pvs: &[PreparedView],
        cfg: &OnlineConfig,
    ) -> Option<(Published, Vec<String>)> {
        let names: Vec<(String, String)> = pvs.iter().map(|pv| (pv.view.spec.name.clone(), VERSION.into())).collect();
        let (mut next, changed) = publisher.next(storage, &names).await.unwrap()?;
        OnlineStore::prepare(storage, pvs, &publisher.current(), &mut next, cfg).await.unwrap();
        Some((next, changed))
    }

    /// Views `changing`, `steady` (both published once) and `later` (never materialized); the
    /// file of `changing`'s first state, for its second to keep.
    async fn two_published_views(storage: &Storage) -> (Vec<PreparedView>, FileRef) {
        let pvs = prepared(storage, &["changing", "steady", "later"]).await;
        let rows = [(1, "2024-03-01", 10.0), (1, "2024-03-04", 11.0), (2, "2024-03-04", 20.0)];
        let a1 = write_rows(storage, "changing", "run1", &rows).await;
        publish(storage, "changing", 1, &[(a1.clone(), "2024-03-01", "2024-03-04")]).await;
        let b1 = write_rows(storage, "steady", "run1", &[(7, "2024-03-04", 70.0)]).await;
        publish(storage, "steady", 1, &[(b1, "2024-03-04", "2024-03-04")]).await;
        (pvs, a1)
    }

    /// The close of `entity` as of `t`, with the trade date it comes from.
    fn close(view: &OnlineView, entity: i64, t: &str) -> (Value, String) {
        let v = view.lookup(entity, "close", at(t)).unwrap();
        (v.value, v.trade_date.to_string())
    }

    /// 17:30 IST on Tuesday 2024-03-05, after that session closed.
    const MARCH_5_AFTER_CLOSE: &str = "2024-03-05T12:00:00Z";

    #[tokio::test]
    async fn readers_see_nothing_until_the_send_and_every_view_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        let (pvs, _) = two_published_views(&s).await;
        let publisher = Publisher::new();
        let store = OnlineStore::new(publisher.subscribe());
        let (prepared_pub, changed) = next(&s, &publisher, &pvs, &OnlineConfig::default()).await.unwrap();
        assert_eq!(changed, vec!["changing".to_string(), "steady".to_string()]);
        assert!(prepared_pub.extension::<OnlineViews>().is_some());
        assert!(publisher.current().extension::<OnlineViews>().is_none());

        // Prepared but not sent: readers still hold the empty first publication, which carries
        // no online data (not even the entity index that resolves plain scrip codes).
        let before = store.snapshot();
        assert_eq!((before.generation(), before.view_names()), (0, Vec::<String>::new()));
        assert!(before.view("changing").is_none());
        assert_eq!(before.resolve("500325"), None);

        publisher.send(prepared_pub);
        let after = store.snapshot();
        // `later` has nothing published: absent, not an error.
        assert_eq!((after.generation(), after.view_names()), (1, vec!["changing".to_string(), "steady".to_string()]));
        assert!(after.view("later").is_none());
        assert_eq!(after.resolve("500325"), Some(500_325));
        let changing = after.view("changing").unwrap();
        assert_eq!((changing.name(), changing.version(), changing.seq(), changing.rows()), ("changing", VERSION, 1, 3));
        assert_eq!(close(&changing, 1, MARCH_5_AFTER_CLOSE), (Value::Float(11.0), "2024-03-04".into()));
        assert_eq!(close(&changing, 1, "2024-03-02T12:00:00Z"), (Value::Float(10.0), "2024-03-01".into()));
        assert_eq!(close(&changing, 2, MARCH_5_AFTER_CLOSE), (Value::Float(20.0), "2024-03-04".into()));
        let steady = after.view("steady").unwrap();
        assert_eq!(close(&steady, 7, MARCH_5_AFTER_CLOSE), (Value::Float(70.0), "2024-03-04".into()));
    }

    #[tokio::test]
    async fn a_held_snapshot_keeps_its_publication_and_unchanged_views_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        let (pvs, a1) = two_published_views(&s).await;
        let cfg = OnlineConfig::default();
        let publisher = Publisher::new();
        let store = OnlineStore::new(publisher.subscribe());
        publisher.send(next(&s, &publisher, &pvs, &cfg).await.unwrap().0);
        let first = store.snapshot();
        let (changing1, steady1) = (first.view("changing").unwrap(), first.view("steady").unwrap());

        // `changing` gets a day; `steady` does not change.
        let a2 = write_rows(&s, "changing", "run2", &[(1, "2024-03-05", 12.0)]).await;
        publish(&s, "changing", 2, &[(a1, "2024-03-01", "2024-03-04"), (a2, "2024-03-05", "2024-03-05")]).await;
        let (second_pub, changed) = next(&s, &publisher, &pvs, &cfg).await.unwrap();
        assert_eq!(changed, vec!["changing".to_string()]);
        publisher.send(second_pub);

        // The snapshot taken before answers from the first publication, unchanged.
        assert_eq!(first.generation(), 1);
        assert!(Arc::ptr_eq(&first.view("changing").unwrap(), &changing1));
        assert_eq!(close(&changing1, 1, MARCH_5_AFTER_CLOSE), (Value::Float(11.0), "2024-03-04".into()));
        let second = store.snapshot();
        assert_eq!(second.generation(), 2);
        let changing2 = second.view("changing").unwrap();
        assert!(!Arc::ptr_eq(&changing2, &changing1));
        assert_eq!((changing2.seq(), changing2.rows()), (2, 4));
        assert_eq!(close(&changing2, 1, MARCH_5_AFTER_CLOSE), (Value::Float(12.0), "2024-03-05".into()));
        // The unchanged view is the same in-memory data, not a reload.
        assert!(Arc::ptr_eq(&second.view("steady").unwrap(), &steady1));

        // Nothing new since: no third publication.
        assert!(next(&s, &publisher, &pvs, &cfg).await.is_none());
    }

    #[tokio::test]
    async fn only_history_days_back_from_the_newest_session_are_held() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        let (pvs, _) = two_published_views(&s).await;
        let publisher = Publisher::new();
        let store = OnlineStore::new(publisher.subscribe());
        let cfg = OnlineConfig { history_days: 2, ..OnlineConfig::default() };
        publisher.send(next(&s, &publisher, &pvs, &cfg).await.unwrap().0);
        // Newest session 2024-03-04: the 1st is more than two days back and is left out.
        let changing = store.snapshot().view("changing").unwrap();
        assert_eq!(changing.rows(), 2);
        assert_eq!(
            changing.lookup(1, "close", at("2024-03-02T12:00:00Z")),
            Err(LookupError::BeforeHistory { at: at("2024-03-02T12:00:00Z"), oldest: day("2024-03-04") })
        );
    }
}
