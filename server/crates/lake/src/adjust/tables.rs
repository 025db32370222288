//! The SQL tables of corporate actions and adjusted prices, registered on every session:
//! `corporate_actions`, `corporate_action_checks` and `adjustment_epochs` read the newest
//! reconciliation at each scan; `bhavcopy_adjusted` and `bhavcopy_total_return` are views joining
//! `bhavcopy` with the epochs; `trading_calendar` is built at each scan from the day folders and
//! the stored holiday lists.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use datafusion::arrow::array::{AsArray, Date32Array};
use datafusion::arrow::array::{
    BooleanBuilder, Date32Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::view::ViewTable;
use datafusion::common::JoinType;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col, lit, when};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::{SessionContext, coalesce};

use super::basis::{PriceBasis, WindowUnit};
use super::manifest;
use super::reconcile::{actions_schema, checks_schema, epochs_schema};
use crate::LakeError;
use crate::availability::Availability;
use crate::clock::{MarketClock, to_days};
use crate::table::ScanTimeTable;
use bhavstore_formats::canonical::canonical_schema;
use bhavstore_storage::{Storage, paths};

/// `corporate_actions`.
pub const CORPORATE_ACTIONS: &str = "corporate_actions";
/// `corporate_action_checks`.
pub const CORPORATE_ACTION_CHECKS: &str = "corporate_action_checks";
/// `adjustment_epochs`.
pub const ADJUSTMENT_EPOCHS: &str = "adjustment_epochs";
/// `trading_calendar`.
pub const TRADING_CALENDAR: &str = "trading_calendar";
/// Reference kind of holiday lists.
pub const HOLIDAYS_KIND: &str = "holidays";

#[derive(Clone, Copy)]
enum Part {
    Actions,
    Checks,
    Epochs,
}

fn reconciled_table(storage: Storage, name: &'static str, part: Part) -> ScanTimeTable {
    let schema = match part {
        Part::Actions => actions_schema(),
        Part::Checks => checks_schema(),
        Part::Epochs => epochs_schema(),
    };
    let s2 = Arc::clone(&schema);
    ScanTimeTable::new(
        name,
        schema,
        Arc::new(move || {
            let (storage, schema) = (storage.clone(), Arc::clone(&s2));
            Box::pin(async move {
                let ext = |e: LakeError| DataFusionError::External(Box::new(e));
                let Some(m) = manifest::latest(&storage).await.map_err(ext)? else {
                    return Ok(vec![RecordBatch::new_empty(schema)]);
                };
                let file = match part {
                    Part::Actions => m.actions,
                    Part::Checks => m.checks,
                    Part::Epochs => m.epochs,
                };
                read_file(&storage, &file.key).await.map_err(ext)
            })
        }),
    )
}

/// Every batch of a small Parquet object.
pub(crate) async fn read_file(storage: &Storage, key: &str) -> Result<Vec<RecordBatch>, LakeError> {
    let bytes = storage.get(key).await?.ok_or_else(|| LakeError::Corrupt(format!("{key} is named but missing")))?;
    read_bytes(bytes, key)
}

/// Every batch of a small Parquet object already fetched (`key` names it in errors).
pub(crate) fn read_bytes(bytes: bytes::Bytes, key: &str) -> Result<Vec<RecordBatch>, LakeError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| LakeError::Corrupt(format!("{key}: {e}")))?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| LakeError::Corrupt(format!("{key}: {e}")))
}

/// Registers the tables of this module; `bhavcopy` is the registered day table.
pub(crate) fn register(
    ctx: &SessionContext,
    storage: &Storage,
    bhavcopy: Arc<dyn datafusion::catalog::TableProvider>,
) -> Result<(), LakeError> {
    let reg = |name: &'static str, table: Arc<dyn datafusion::catalog::TableProvider>| {
        ctx.register_table(name, table).map(|_| ()).map_err(|source| LakeError::Register { table: name, source })
    };
    reg(CORPORATE_ACTIONS, Arc::new(reconciled_table(storage.clone(), CORPORATE_ACTIONS, Part::Actions)))?;
    reg(CORPORATE_ACTION_CHECKS, Arc::new(reconciled_table(storage.clone(), CORPORATE_ACTION_CHECKS, Part::Checks)))?;
    let epochs: Arc<dyn datafusion::catalog::TableProvider> =
        Arc::new(reconciled_table(storage.clone(), ADJUSTMENT_EPOCHS, Part::Epochs));
    reg(ADJUSTMENT_EPOCHS, Arc::clone(&epochs))?;
    for basis in PriceBasis::ALL {
        let name = basis.table();
        let rows: Arc<dyn datafusion::catalog::TableProvider> = if basis == PriceBasis::Raw {
            Arc::clone(&bhavcopy)
        } else {
            let view = adjusted_view(Arc::clone(&bhavcopy), Arc::clone(&epochs), basis)
                .map_err(|source| LakeError::Register { table: name, source })?;
            let table: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(Opaque(Arc::new(view)));
            reg(name, Arc::clone(&table))?;
            table
        };
        let sessions = basis.input_table(WindowUnit::Session);
        let dense = session_view(Arc::clone(&bhavcopy), rows)
            .map_err(|source| LakeError::Register { table: sessions, source })?;
        reg(sessions, Arc::new(Opaque(Arc::new(dense))))?;
    }
    reg(TRADING_CALENDAR, Arc::new(calendar_table(storage.clone(), MarketClock::default())))?;
    Ok(())
}

/// `bhavcopy` with every price on the basis of its own date and `adj_factor`, the cumulative
/// factor of the actions effective on or before that date: `close * adj_factor` is one
/// continuous series across splits, and a window of it divided by the current row's
/// `adj_factor` is on the current row's basis. `prev_close` on an ex-session is BSE's previous
/// close divided by that session's step, so `close / prev_close` is the real move.
fn adjusted_view(
    bhavcopy: Arc<dyn datafusion::catalog::TableProvider>,
    epochs: Arc<dyn datafusion::catalog::TableProvider>,
    basis: PriceBasis,
) -> Result<ViewTable, DataFusionError> {
    let (factor, step) = match basis {
        PriceBasis::TotalReturn => ("tr_factor", "step_tr"),
        _ => ("adj_factor", "step_adj"),
    };
    let epochs = LogicalPlanBuilder::scan("e", provider_as_source(epochs), None)?.build()?;
    let joined = LogicalPlanBuilder::scan("b", provider_as_source(bhavcopy), None)?.join_on(
        epochs,
        JoinType::Left,
        vec![
            col("b.scrip_code").eq(col("e.scrip_code")),
            col("b.trade_date").gt_eq(col("e.valid_from")),
            col("b.trade_date").lt(col("e.valid_to")),
        ],
    )?;
    let mut exprs: Vec<Expr> = Vec::new();
    for f in canonical_schema().fields() {
        let name = f.name().as_str();
        let c = col(format!("b.{name}"));
        exprs.push(if name == "prev_close" {
            when(col("e.valid_from").eq(col("b.trade_date")), c.clone() / col(format!("e.{step}")))
                .otherwise(c)?
                .alias(name)
        } else {
            c.alias(name)
        });
    }
    exprs.push(coalesce(vec![col(format!("e.{factor}")), lit(1.0_f64)]).alias("adj_factor"));
    let plan = joined.project(exprs)?.build()?;
    Ok(ViewTable::new(plan, None))
}

/// `rows` with a row for every exchange session (a session is a day with a bhavcopy) from each
/// security's first traded session on: NULL prices and `traded` false where it did not trade.
/// Which rows exist up to a day depends only on the data up to that day (the first trade, the
/// sessions so far), so incremental runs over it equal full ones. `is_equity` of a gap row is
/// that of the security's first row, so `WHERE is_equity` keeps its gaps.
fn session_view(
    bhavcopy: Arc<dyn datafusion::catalog::TableProvider>,
    rows: Arc<dyn datafusion::catalog::TableProvider>,
) -> Result<ViewTable, DataFusionError> {
    use datafusion::functions_aggregate::expr_fn::{first_value, min};
    let sessions = LogicalPlanBuilder::scan("s", provider_as_source(Arc::clone(&bhavcopy)), None)?
        .project(vec![col("s.trade_date").alias("__session")])?
        .distinct()?
        .build()?;
    let firsts = LogicalPlanBuilder::scan("f", provider_as_source(bhavcopy), None)?
        .aggregate(
            vec![col("f.scrip_code").alias("__scrip")],
            vec![
                min(col("f.trade_date")).alias("__first"),
                first_value(col("f.is_equity"), vec![col("f.trade_date").sort(true, false)]).alias("__first_equity"),
            ],
        )?
        .build()?;
    let keys = LogicalPlanBuilder::from(firsts).join_on(
        sessions,
        JoinType::Inner,
        vec![col("__session").gt_eq(col("__first"))],
    )?;
    let rows_plan = LogicalPlanBuilder::scan("r", provider_as_source(Arc::clone(&rows)), None)?.build()?;
    let joined = keys.join_on(
        rows_plan,
        JoinType::Left,
        vec![col("__scrip").eq(col("r.scrip_code")), col("__session").eq(col("r.trade_date"))],
    )?;
    let mut exprs: Vec<Expr> = Vec::new();
    for f in rows.schema().fields() {
        let name = f.name().as_str();
        exprs.push(match name {
            "trade_date" => col("__session").alias(name),
            "scrip_code" => col("__scrip").alias(name),
            "is_equity" => coalesce(vec![col("r.is_equity"), col("__first_equity")]).alias(name),
            _ => col(format!("r.{name}")).alias(name),
        });
    }
    exprs.push(col("r.scrip_code").is_not_null().alias("traded"));
    let plan = joined.project(exprs)?.build()?;
    Ok(ViewTable::new(plan, None))
}

/// A view that planners see as one table: SQL over it names `bhavcopy_adjusted`, not the join
/// inside, so a feature view reading it is analysed (and run incrementally) like one over
/// `bhavcopy`. Scans and filter pushdown are the view's own.
#[derive(Debug)]
struct Opaque(Arc<ViewTable>);

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for Opaque {
    fn schema(&self) -> SchemaRef {
        datafusion::catalog::TableProvider::schema(self.0.as_ref())
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        // Inexact: the view applies them (pruning day partitions), and the plan keeps them too,
        // so the columns they read stay in the scan's projection: an incremental run narrows
        // this table to the projected columns and plans the view again on them.
        Ok(vec![datafusion::logical_expr::TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}

/// The `trading_calendar` schema.
#[must_use]
pub fn calendar_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("weekday", DataType::Utf8, false),
        Field::new("special_session", DataType::Boolean, false),
        Field::new("description", DataType::Utf8, true),
        Field::new("available_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
    ]))
}

/// What the calendar says of one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayStatus {
    /// BSE published a bhavcopy for it.
    Session,
    /// On a stored holiday list.
    Holiday(Option<String>),
    /// A coming weekday not on a holiday list.
    Expected,
}

/// The calendar: sessions with data, stored holidays, and the expected sessions of the coming
/// year (weekdays after the last session that are not holidays).
pub async fn calendar(storage: &Storage) -> Result<BTreeMap<NaiveDate, DayStatus>, LakeError> {
    let mut out: BTreeMap<NaiveDate, DayStatus> = BTreeMap::new();
    for (date, description) in holidays(storage).await? {
        out.insert(date, DayStatus::Holiday(description));
    }
    let mut last: Option<NaiveDate> = None;
    for folder in storage.list_folders(paths::BHAVCOPY_TABLE).await? {
        if let Some(d) = paths::trade_date_of(&folder) {
            out.insert(d, DayStatus::Session);
            last = last.max(Some(d));
        }
    }
    // Weekdays after the last session with data (at most a month back), through a year from
    // today, that no list names a holiday: sessions still to come, or not loaded yet.
    let today = Utc::now().date_naive();
    let start = last.map_or(today, |l| (l + Days::new(1)).max(today - Days::new(30)));
    let end = today + Days::new(365);
    let mut d = start;
    while d <= end {
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            out.entry(d).or_insert(DayStatus::Expected);
        }
        d = d + Days::new(1);
    }
    Ok(out)
}

/// Every date of the stored holiday lists, with its description. BSE revises its list (a
/// holiday moved by a day): for each year the newest list holding that year is the one in force.
pub async fn holidays(storage: &Storage) -> Result<Vec<(NaiveDate, Option<String>)>, LakeError> {
    let mut keys = storage.list(&paths::reference_table_dir(HOLIDAYS_KIND)).await?;
    keys.retain(|k| k.ends_with(".parquet"));
    // Keys are named by revision, which sorts by the time stored: newest first.
    keys.sort();
    keys.reverse();
    let mut claimed: std::collections::BTreeSet<i32> = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for key in keys {
        let mut days = Vec::new();
        for b in read_file(storage, &key).await? {
            let (Some(date), Some(desc)) = (b.column_by_name("date"), b.column_by_name("description")) else {
                return Err(LakeError::Corrupt(format!("{key}: not a holiday list")));
            };
            let date: &Date32Array = date.as_primitive::<Date32Type>();
            let desc = desc.as_string::<i32>();
            for i in 0..b.num_rows() {
                days.push((
                    crate::clock::from_days(date.value(i)),
                    datafusion::arrow::array::Array::is_valid(desc, i).then(|| desc.value(i).to_string()),
                ));
            }
        }
        let years: std::collections::BTreeSet<i32> = days.iter().map(|(d, _)| d.year()).collect();
        out.extend(days.into_iter().filter(|(d, _)| !claimed.contains(&d.year())));
        claimed.extend(years);
    }
    out.sort();
    Ok(out)
}

/// `trading_calendar`, with each session's availability under `clock` (the catalog registers
/// it again with the configured clock).
#[must_use]
pub fn calendar_table(storage: Storage, clock: MarketClock) -> ScanTimeTable {
    ScanTimeTable::new(
        TRADING_CALENDAR,
        calendar_schema(),
        Arc::new(move || {
            let (storage, clock) = (storage.clone(), clock.clone());
            Box::pin(async move {
                let ext = |e: LakeError| DataFusionError::External(Box::new(e));
                let days = calendar(&storage).await.map_err(ext)?;
                let availability = Availability::load(&storage, &clock).await.map_err(ext)?;
                let mut available = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                let mut date = Date32Builder::new();
                let mut status = StringBuilder::new();
                let mut weekday = StringBuilder::new();
                let mut special = BooleanBuilder::new();
                let mut desc = StringBuilder::new();
                for (d, s) in days {
                    let weekend = matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
                    date.append_value(to_days(d));
                    weekday.append_value(d.weekday().to_string());
                    special.append_value(weekend && s == DayStatus::Session);
                    available.append_option(
                        (s == DayStatus::Session).then(|| availability.available_at(d).timestamp_micros()),
                    );
                    match s {
                        DayStatus::Session => {
                            status.append_value("session");
                            desc.append_option(weekend.then_some("special weekend session"));
                        }
                        DayStatus::Holiday(text) => {
                            status.append_value("holiday");
                            desc.append_option(text);
                        }
                        DayStatus::Expected => {
                            status.append_value("expected");
                            desc.append_null();
                        }
                    }
                }
                Ok(vec![RecordBatch::try_new(
                    calendar_schema(),
                    vec![
                        Arc::new(date.finish()),
                        Arc::new(status.finish()),
                        Arc::new(weekday.finish()),
                        Arc::new(special.finish()),
                        Arc::new(desc.finish()),
                        Arc::new(available.finish()),
                    ],
                )?])
            })
        }),
    )
    .with_orders(vec![vec![col("date").sort(true, false)]])
}
