//! System tables, read fresh on every query: `bhavstore_runs`, `bhavstore_quality` and
//! `bhavstore_versions`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use bhavstore_lake::manifest;
use bhavstore_lake::records::{load_quality, load_runs};
use bhavstore_storage::Storage;

/// Which system table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `bhavstore_runs`
    Runs,
    /// `bhavstore_quality`
    Quality,
    /// `bhavstore_versions`
    Versions,
}

/// Name of the run history table.
pub const RUNS: &str = "bhavstore_runs";
/// Name of the quality table.
pub const QUALITY: &str = "bhavstore_quality";
/// Name of the versions table.
pub const VERSIONS: &str = "bhavstore_versions";

/// A system table.
#[derive(Debug)]
pub struct SystemTable {
    kind: Kind,
    storage: Storage,
    /// (view, current version id) of every feature view.
    current: Vec<(String, String)>,
    schema: SchemaRef,
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn f(name: &str, dt: DataType) -> Field {
    Field::new(name, dt, true)
}

impl SystemTable {
    /// A system table over `storage`; `current` lists the current version of every view.
    #[must_use]
    pub fn new(kind: Kind, storage: Storage, current: Vec<(String, String)>) -> Self {
        use DataType::{Boolean, Date32, Float64, UInt64, Utf8};
        let fields = match kind {
            Kind::Runs => vec![
                f("run_id", Utf8),
                f("kind", Utf8),
                f("view", Utf8),
                f("version", Utf8),
                f("mode", Utf8),
                f("status", Utf8),
                f("rows", UInt64),
                f("min_trade_date", Date32),
                f("max_trade_date", Date32),
                f("manifest_seq", UInt64),
                f("started_at", ts()),
                f("finished_at", ts()),
                f("compute_ms", UInt64),
                f("tail_ms", UInt64),
                f("duration_ms", UInt64),
                f("error", Utf8),
                f("warnings", Utf8),
                f("pid", UInt64),
                f("host", Utf8),
            ],
            Kind::Quality => vec![
                f("run_id", Utf8),
                f("view", Utf8),
                f("version", Utf8),
                f("trade_date", Date32),
                f("feature", Utf8),
                f("row_count", UInt64),
                f("null_count", UInt64),
                f("null_rate", Float64),
                f("missing_entities", UInt64),
                f("suspicious_returns", UInt64),
                f("psi", Float64),
                f("psi_reference_sessions", UInt64),
            ],
            Kind::Versions => vec![
                f("view", Utf8),
                f("version", Utf8),
                f("is_current", Boolean),
                f("definition_hash", Utf8),
                f("manifests", UInt64),
                f("latest_seq", UInt64),
                f("latest_run_id", Utf8),
                f("rows", UInt64),
                f("min_trade_date", Date32),
                f("max_trade_date", Date32),
                f("published_at", ts()),
            ],
        };
        Self { kind, storage, current, schema: Arc::new(Schema::new(fields)) }
    }

    async fn batch(&self) -> Result<RecordBatch> {
        let err = |e: bhavstore_lake::LakeError| DataFusionError::Execution(e.to_string());
        let cols: Vec<ArrayRef> = match self.kind {
            Kind::Runs => {
                let r = load_runs(&self.storage).await.map_err(err)?;
                vec![
                    s(r.iter().map(|x| Some(x.run_id.clone()))),
                    s(r.iter().map(|x| Some(x.kind.clone()))),
                    s(r.iter().map(|x| x.view.clone())),
                    s(r.iter().map(|x| x.version.clone())),
                    s(r.iter().map(|x| x.mode.clone())),
                    s(r.iter().map(|x| Some(x.status.clone()))),
                    u(r.iter().map(|x| Some(x.rows))),
                    d(r.iter().map(|x| x.min_trade_date)),
                    d(r.iter().map(|x| x.max_trade_date)),
                    u(r.iter().map(|x| x.manifest_seq)),
                    t(r.iter().map(|x| Some(x.started_at))),
                    t(r.iter().map(|x| x.finished_at)),
                    u(r.iter().map(|x| x.compute_ms)),
                    u(r.iter().map(|x| x.tail_ms)),
                    u(r.iter().map(|x| x.duration_ms)),
                    s(r.iter().map(|x| x.error.clone())),
                    s(r.iter().map(|x| (!x.warnings.is_empty()).then(|| x.warnings.join("; ")))),
                    u(r.iter().map(|x| Some(u64::from(x.pid)))),
                    s(r.iter().map(|x| Some(x.host.clone()))),
                ]
            }
            Kind::Quality => {
                let q = load_quality(&self.storage).await.map_err(err)?;
                vec![
                    s(q.iter().map(|x| Some(x.run_id.clone()))),
                    s(q.iter().map(|x| Some(x.view.clone()))),
                    s(q.iter().map(|x| Some(x.version.clone()))),
                    d(q.iter().map(|x| Some(x.trade_date))),
                    s(q.iter().map(|x| x.feature.clone())),
                    u(q.iter().map(|x| Some(x.row_count))),
                    u(q.iter().map(|x| x.null_count)),
                    fl(q.iter().map(|x| x.null_rate)),
                    u(q.iter().map(|x| x.missing_entities)),
                    u(q.iter().map(|x| x.suspicious_returns)),
                    fl(q.iter().map(|x| x.psi)),
                    u(q.iter().map(|x| x.psi_reference_sessions)),
                ]
            }
            Kind::Versions => {
                let mut rows = Vec::new();
                for (view, current) in &self.current {
                    let versions = super::versioned::versions(&self.storage, view).await.map_err(err)?;
                    for version in versions {
                        let seqs = manifest::list_seqs(&self.storage, view, &version).await.map_err(err)?;
                        let latest = match seqs.last() {
                            Some(&seq) => Some(manifest::read(&self.storage, view, &version, seq).await.map_err(err)?),
                            None => None,
                        };
                        rows.push((view.clone(), version.clone(), &version == current, seqs.len() as u64, latest));
                    }
                }
                vec![
                    s(rows.iter().map(|r| Some(r.0.clone()))),
                    s(rows.iter().map(|r| Some(r.1.clone()))),
                    Arc::new(rows.iter().map(|r| Some(r.2)).collect::<BooleanArray>()),
                    s(rows.iter().map(|r| r.4.as_ref().map(|m| m.definition_hash.clone()))),
                    u(rows.iter().map(|r| Some(r.3))),
                    u(rows.iter().map(|r| r.4.as_ref().map(|m| m.seq))),
                    s(rows.iter().map(|r| r.4.as_ref().map(|m| m.run_id.clone()))),
                    u(rows.iter().map(|r| r.4.as_ref().map(|m| m.rows))),
                    d(rows.iter().map(|r| r.4.as_ref().and_then(|m| m.min_trade_date))),
                    d(rows.iter().map(|r| r.4.as_ref().and_then(|m| m.max_trade_date))),
                    t(rows.iter().map(|r| r.4.as_ref().map(|m| m.published_at))),
                ]
            }
        };
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), cols)?)
    }
}

fn s(v: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(v.collect::<StringArray>())
}
fn u(v: impl Iterator<Item = Option<u64>>) -> ArrayRef {
    Arc::new(v.collect::<UInt64Array>())
}
fn fl(v: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(v.collect::<Float64Array>())
}
fn d(v: impl Iterator<Item = Option<NaiveDate>>) -> ArrayRef {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    Arc::new(v.map(|x| x.map(|x| i32::try_from((x - epoch).num_days()).unwrap_or(i32::MAX))).collect::<Date32Array>())
}
fn t(v: impl Iterator<Item = Option<DateTime<Utc>>>) -> ArrayRef {
    Arc::new(v.map(|x| x.map(|x| x.timestamp_millis())).collect::<TimestampMillisecondArray>().with_timezone("UTC"))
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.batch().await?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::clone(&self.schema), projection.cloned())?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use datafusion::assert_batches_eq;
    use datafusion::prelude::SessionContext;

    use super::*;
    use bhavstore_lake::host::host_name;
    use bhavstore_lake::manifest::{MANIFEST_FORMAT, Manifest, Segment};
    use bhavstore_lake::records::{QualityRecord, RunRecord, save_quality};
    use bhavstore_storage::{StorageConfig, paths};

    /// A pid no process has (above the kernel's maximum).
    const DEAD_PID: u32 = 0x7fff_fff0;

    fn storage(dir: &tempfile::TempDir) -> Storage {
        Storage::open(&StorageConfig { url: format!("file://{}", dir.path().display()), s3: Default::default() })
            .unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// A materialization of `price@v1` by this host, started at `started`.
    fn run(run_id: &str, status: &str, pid: u32, started: &str) -> RunRecord {
        RunRecord {
            status: status.into(),
            pid,
            host: host_name(),
            started_at: at(started),
            ..RunRecord::start(run_id, "materialize", Some("price"), Some("v1"))
        }
    }

    /// State `seq` of `view@version`, written by `run_id` in one segment: published on day
    /// `seq` of March 2024 at noon, covering January 1st to February `seq`, `100 * seq` rows.
    fn state(view: &str, version: &str, seq: u64, run_id: &str) -> Manifest {
        let published_at = at("2024-03-01T12:00:00Z") + chrono::Duration::days(seq as i64 - 1);
        let (min, max) = (day("2024-01-01"), day("2024-02-01") + chrono::Duration::days(seq as i64 - 1));
        Manifest {
            format: MANIFEST_FORMAT,
            view: view.into(),
            version: version.into(),
            definition_hash: format!("hash-{version}"),
            seq,
            run_id: run_id.into(),
            kind: if seq == 1 { "full" } else { "incremental" }.into(),
            started_at: published_at - chrono::Duration::minutes(1),
            published_at,
            min_trade_date: Some(min),
            max_trade_date: Some(max),
            rows: 100 * seq,
            segments: vec![Segment {
                run_id: run_id.into(),
                min_trade_date: min,
                max_trade_date: max,
                rows: 100 * seq,
                files: Vec::new(),
            }],
            tail: None,
            inputs: BTreeMap::new(),
            loads_watermark: None,
            referenced_runs: vec![run_id.into()],
            intraday_seq: None,
            adjustments: Default::default(),
        }
    }

    async fn query(storage: &Storage, kind: Kind, current: &[(&str, &str)], sql: &str) -> Vec<RecordBatch> {
        let name = match kind {
            Kind::Runs => RUNS,
            Kind::Quality => QUALITY,
            Kind::Versions => VERSIONS,
        };
        let current = current.iter().map(|(v, id)| ((*v).to_string(), (*id).to_string())).collect();
        let ctx = SessionContext::new();
        ctx.register_table(name, Arc::new(SystemTable::new(kind, storage.clone(), current))).unwrap();
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    }

    #[tokio::test]
    async fn runs_are_listed_oldest_first_with_dead_running_runs_settled() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        let mut done = run("r1", "succeeded", DEAD_PID, "2024-03-01T11:00:00Z");
        done.mode = Some("full".into());
        done.rows = 100;
        done.min_trade_date = Some(day("2024-01-01"));
        done.max_trade_date = Some(day("2024-02-01"));
        done.manifest_seq = Some(1);
        done.finished_at = Some(at("2024-03-01T12:00:01Z"));
        done.warnings = vec!["null rate of close 0.5".into(), "psi of close 0.3".into()];
        let mut failed = run("r2", "failed", DEAD_PID, "2024-03-02T09:00:00Z");
        failed.error = Some("query engine: boom".into());
        // Died after publishing seq 2 (its own segment: 5 rows of February 2nd).
        let published = run("r3", "running", DEAD_PID, "2024-03-02T11:00:00Z");
        // Died before publishing anything; the newest manifest predates it.
        let abandoned = run("r4", "running", DEAD_PID, "2024-03-03T11:00:00Z");
        let alive = run("r5", "running", std::process::id(), "2024-03-04T11:00:00Z");
        // Another host's process cannot be checked from here: its record stays as written.
        let elsewhere =
            RunRecord { host: "some-other-host".into(), ..run("r6", "running", DEAD_PID, "2024-03-05T11:00:00Z") };
        // Saved out of order: the table orders by run id (ids are time-ordered).
        for r in [&elsewhere, &alive, &abandoned, &published, &failed, &done] {
            r.save(&s).await.unwrap();
        }
        s.put(&paths::run_record("r0"), Bytes::from_static(b"{not json")).await.unwrap();
        let mut seq2 = state("price", "v1", 2, "r3");
        seq2.rows = 105;
        seq2.segments = vec![
            state("price", "v1", 1, "r1").segments.remove(0),
            Segment {
                run_id: "r3".into(),
                min_trade_date: day("2024-02-02"),
                max_trade_date: day("2024-02-02"),
                rows: 5,
                files: Vec::new(),
            },
        ];
        manifest::publish(&s, &state("price", "v1", 1, "r1")).await.unwrap();
        manifest::publish(&s, &seq2).await.unwrap();

        let rows = query(
            &s,
            Kind::Runs,
            &[],
            "SELECT run_id, mode, status, rows, min_trade_date, max_trade_date, manifest_seq, finished_at \
             FROM bhavstore_runs",
        )
        .await;
        assert_batches_eq!(
            [
                "+--------+-------------+-----------+------+----------------+----------------+--------------+----------------------+",
                "| run_id | mode        | status    | rows | min_trade_date | max_trade_date | manifest_seq | finished_at          |",
                "+--------+-------------+-----------+------+----------------+----------------+--------------+----------------------+",
                "| r1     | full        | succeeded | 100  | 2024-01-01     | 2024-02-01     | 1            | 2024-03-01T12:00:01Z |",
                "| r2     |             | failed    | 0    |                |                |              |                      |",
                "| r3     | incremental | succeeded | 5    | 2024-02-02     | 2024-02-02     | 2            | 2024-03-02T12:00:00Z |",
                "| r4     |             | abandoned | 0    |                |                |              |                      |",
                "| r5     |             | running   | 0    |                |                |              |                      |",
                "| r6     |             | running   | 0    |                |                |              |                      |",
                "+--------+-------------+-----------+------+----------------+----------------+--------------+----------------------+",
            ],
            &rows
        );
        let rows = query(
            &s,
            Kind::Runs,
            &[],
            "SELECT run_id, error, warnings FROM bhavstore_runs \
             WHERE error IS NOT NULL OR warnings IS NOT NULL ORDER BY run_id",
        )
        .await;
        assert_batches_eq!(
            [
                "+--------+--------------------+-------------------------------------------------------------------------------+",
                "| run_id | error              | warnings                                                                      |",
                "+--------+--------------------+-------------------------------------------------------------------------------+",
                "| r1     |                    | null rate of close 0.5; psi of close 0.3                                      |",
                "| r2     | query engine: boom |                                                                               |",
                "| r3     |                    | the run stopped after publishing; this record was completed from its manifest |",
                "+--------+--------------------+-------------------------------------------------------------------------------+",
            ],
            &rows
        );
    }

    #[tokio::test]
    async fn quality_lists_every_record_of_every_run_in_run_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        let view_level = |run_id: &str, trade_date: &str, rows: u64, missing: u64| QualityRecord {
            run_id: run_id.into(),
            view: "price".into(),
            version: "v1".into(),
            trade_date: day(trade_date),
            feature: None,
            row_count: rows,
            null_count: None,
            null_rate: None,
            missing_entities: Some(missing),
            suspicious_returns: Some(0),
            psi: None,
            psi_reference_sessions: None,
        };
        let close = QualityRecord {
            feature: Some("close".into()),
            null_count: Some(1),
            null_rate: Some(0.25),
            missing_entities: None,
            suspicious_returns: None,
            psi: Some(0.125),
            psi_reference_sessions: Some(20),
            ..view_level("r1", "2024-03-01", 4, 0)
        };
        save_quality(&s, "r2", &[view_level("r2", "2024-03-04", 3, 1)]).await.unwrap();
        save_quality(&s, "r1", &[view_level("r1", "2024-03-01", 4, 0), close]).await.unwrap();
        s.put(&paths::quality_record("r0"), Bytes::from_static(b"[{}]")).await.unwrap();

        let rows = query(&s, Kind::Quality, &[], "SELECT * FROM bhavstore_quality").await;
        assert_batches_eq!(
            [
                "+--------+-------+---------+------------+---------+-----------+------------+-----------+------------------+--------------------+-------+------------------------+",
                "| run_id | view  | version | trade_date | feature | row_count | null_count | null_rate | missing_entities | suspicious_returns | psi   | psi_reference_sessions |",
                "+--------+-------+---------+------------+---------+-----------+------------+-----------+------------------+--------------------+-------+------------------------+",
                "| r1     | price | v1      | 2024-03-01 |         | 4         |            |           | 0                | 0                  |       |                        |",
                "| r1     | price | v1      | 2024-03-01 | close   | 4         | 1          | 0.25      |                  |                    | 0.125 | 20                     |",
                "| r2     | price | v1      | 2024-03-04 |         | 3         |            |           | 1                | 0                  |       |                        |",
                "+--------+-------+---------+------------+---------+-----------+------------+-----------+------------------+--------------------+-------+------------------------+",
            ],
            &rows
        );
    }

    #[tokio::test]
    async fn versions_describe_each_recorded_version_by_its_newest_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        // The table lists the registry's record keys; their contents are not read.
        for (view, version) in [("price", "v1old"), ("price", "v2new"), ("price", "v3none"), ("vol", "v9")] {
            s.put(&paths::version_record(view, version), Bytes::from_static(b"{}")).await.unwrap();
        }
        for m in [
            state("price", "v1old", 1, "r1"),
            state("price", "v1old", 2, "r2"),
            state("price", "v2new", 1, "r3"),
            state("vol", "v9", 1, "r4"),
        ] {
            manifest::publish(&s, &m).await.unwrap();
        }

        // Views in the catalog's order; `empty` has no recorded version and gives no row.
        let current = [("vol", "v9"), ("price", "v2new"), ("empty", "v0")];
        let rows = query(&s, Kind::Versions, &current, "SELECT * FROM bhavstore_versions").await;
        assert_batches_eq!(
            [
                "+-------+---------+------------+-----------------+-----------+------------+---------------+------+----------------+----------------+----------------------+",
                "| view  | version | is_current | definition_hash | manifests | latest_seq | latest_run_id | rows | min_trade_date | max_trade_date | published_at         |",
                "+-------+---------+------------+-----------------+-----------+------------+---------------+------+----------------+----------------+----------------------+",
                "| vol   | v9      | true       | hash-v9         | 1         | 1          | r4            | 100  | 2024-01-01     | 2024-02-01     | 2024-03-01T12:00:00Z |",
                "| price | v1old   | false      | hash-v1old      | 2         | 2          | r2            | 200  | 2024-01-01     | 2024-02-02     | 2024-03-02T12:00:00Z |",
                "| price | v2new   | true       | hash-v2new      | 1         | 1          | r3            | 100  | 2024-01-01     | 2024-02-01     | 2024-03-01T12:00:00Z |",
                "| price | v3none  | false      |                 | 0         |            |               |      |                |                |                      |",
                "+-------+---------+------------+-----------------+-----------+------------+---------------+------+----------------+----------------+----------------------+",
            ],
            &rows
        );
    }
}
