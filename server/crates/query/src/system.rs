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
