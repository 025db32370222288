//! `lineage(view, entity, date)`: where a feature value comes from. One row per trade date in
//! the window behind the value (the view's look-back in rows of that entity, ending at `date`):
//! the raw object and its sha256, the line of the row in it, the adjustment factor in force and
//! the corporate actions effective that day; every row also names the view's version,
//! definition hash, and the manifest and run that published the value.
//!
//! SQL: `SELECT * FROM lineage('price_features', 511064, '2015-03-12')`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, AsArray, Date32Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Schema, SchemaRef, UInt64Type};
use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;

use bhavstore_features::PreparedView;
use bhavstore_lake::published::Receiver;
use bhavstore_lake::table::ScanTimeTable;
use bhavstore_lake::{Published, from_days, to_days};
use bhavstore_storage::{Storage, paths};

/// Name of the table function.
pub const FUNCTION: &str = "lineage";

/// `lineage(view, entity, date)`.
#[derive(Debug)]
pub struct LineageFunction {
    storage: Storage,
    views: HashMap<String, PreparedView>,
    published: Receiver<Arc<Published>>,
}

impl LineageFunction {
    /// Over the daily views of `views`; values are traced in the states `published` carries.
    #[must_use]
    pub fn new(storage: Storage, views: &[PreparedView], published: Receiver<Arc<Published>>) -> Self {
        let views =
            views.iter().filter(|pv| pv.basis().is_some()).map(|pv| (pv.view.spec.name.clone(), pv.clone())).collect();
        Self { storage, views, published }
    }
}

/// The output schema.
#[must_use]
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("view", DataType::Utf8, false),
        Field::new("version", DataType::Utf8, false),
        Field::new("definition_hash", DataType::Utf8, false),
        Field::new("manifest_seq", DataType::UInt64, true),
        Field::new("run_id", DataType::Utf8, true),
        Field::new("entity", DataType::Int64, false),
        Field::new("date", DataType::Date32, false),
        Field::new("trade_date", DataType::Date32, false),
        Field::new("raw_key", DataType::Utf8, true),
        Field::new("raw_sha256", DataType::Utf8, false),
        Field::new("source_line", DataType::UInt64, false),
        Field::new("prices", DataType::Utf8, false),
        Field::new("adj_factor", DataType::Float64, true),
        Field::new("corporate_actions", DataType::Utf8, true),
    ]))
}

fn literal_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        Expr::Literal(v, _) if !v.is_null() => Some(v.to_string()),
        _ => None,
    }
}

impl TableFunctionImpl for LineageFunction {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        let [view, entity, date] = args else {
            return plan_err!("{FUNCTION}(view, entity, date) takes three arguments, got {}", args.len());
        };
        let (Some(view), Some(entity), Some(date)) = (literal_text(view), literal_text(entity), literal_text(date))
        else {
            return plan_err!("{FUNCTION}: the view, the entity (scrip code) and the date must be literals");
        };
        let Some(pv) = self.views.get(&view) else {
            let mut known: Vec<_> = self.views.keys().cloned().collect();
            known.sort();
            return plan_err!("{FUNCTION}: no daily feature view {view:?} (views: {})", known.join(", "));
        };
        let Ok(entity) = entity.trim().parse::<i64>() else {
            return plan_err!("{FUNCTION}: entity {entity:?} is not a scrip code");
        };
        let Ok(date) = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d") else {
            return plan_err!("{FUNCTION}: date {date:?} is not YYYY-MM-DD");
        };
        let published = Arc::clone(&self.published.borrow());
        let trace = Arc::new(Trace { storage: self.storage.clone(), pv: pv.clone(), entity, date, published });
        // Computed when scanned, like any table whose rows come from storage at that moment.
        Ok(Arc::new(ScanTimeTable::new(
            FUNCTION,
            schema(),
            Arc::new(move || {
                let trace = Arc::clone(&trace);
                Box::pin(async move { Ok(vec![trace.rows().await?]) })
            }),
        )))
    }
}

/// One call: the value whose origin is traced, and the publication it is traced in.
#[derive(Debug)]
struct Trace {
    storage: Storage,
    pv: PreparedView,
    entity: i64,
    date: NaiveDate,
    published: Arc<Published>,
}

impl Trace {
    async fn rows(&self) -> Result<RecordBatch> {
        let ext = |e: bhavstore_lake::LakeError| DataFusionError::External(Box::new(e));
        let ctx = bhavstore_lake::session(&self.storage).map_err(ext)?;
        let input = self.pv.input_table();
        let adjusted = self.pv.basis().is_some_and(bhavstore_lake::adjust::PriceBasis::uses_actions);
        let limit = self.pv.lookback_rows.map_or_else(String::new, |n| format!("LIMIT {n}"));
        let factor = if adjusted { "adj_factor" } else { "CAST(NULL AS DOUBLE)" };
        // A session-unit window counts sessions the scrip missed too; only traded ones have a file.
        let sessions = self.pv.window_unit() == Some(bhavstore_lake::adjust::WindowUnit::Session);
        let traded = if sessions { "traded" } else { "true" };
        let sql = format!(
            "SELECT trade_date, raw_sha256, source_line, f FROM (SELECT trade_date, raw_sha256, source_line, \
             {factor} AS f, {traded} AS t FROM {input} WHERE scrip_code = {e} AND trade_date <= DATE '{d}' \
             ORDER BY trade_date DESC {limit}) WHERE t",
            e = self.entity,
            d = self.date,
        );
        let mut window: Vec<(NaiveDate, String, u64, Option<f64>)> = Vec::new();
        for b in ctx.sql(&sql).await?.collect().await? {
            let dates = b.column(0).as_primitive::<Date32Type>();
            let shas = b.column(1).as_string::<i32>();
            let lines = b.column(2).as_primitive::<UInt64Type>();
            let factors = b.column(3).as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                window.push((
                    from_days(dates.value(i)),
                    shas.value(i).to_string(),
                    lines.value(i),
                    factors.is_valid(i).then(|| factors.value(i)),
                ));
            }
        }
        window.reverse();
        let keys = raw_keys(&self.storage, &window).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        let dividends = self.pv.basis() == Some(bhavstore_lake::adjust::PriceBasis::TotalReturn);
        let actions = if adjusted && let Some(first) = window.first() {
            applied_actions(&ctx, self.entity, first.0, self.date, dividends).await?
        } else {
            HashMap::new()
        };
        let state = self.published.get(&self.pv.view.spec.name);
        let manifest = state.map(|s| &s.manifest).filter(|m| m.version == self.pv.version.id);
        let run = manifest.and_then(|m| {
            m.segments
                .iter()
                .find(|s| s.min_trade_date <= self.date && self.date <= s.max_trade_date)
                .map(|s| s.run_id.clone())
        });
        let n = window.len();
        let text = |v: &str| {
            let mut b = StringBuilder::new();
            for _ in 0..n {
                b.append_value(v);
            }
            b.finish()
        };
        let mut seq = UInt64Builder::new();
        let mut run_id = StringBuilder::new();
        let mut entity = Int64Builder::new();
        let mut date = Date32Builder::new();
        let mut trade_date = Date32Builder::new();
        let mut raw_key = StringBuilder::new();
        let mut raw_sha = StringBuilder::new();
        let mut line = UInt64Builder::new();
        let mut factor = Float64Builder::new();
        let mut acts = StringBuilder::new();
        for (d, sha, l, f) in &window {
            seq.append_option(manifest.map(|m| m.seq));
            run_id.append_option(run.as_deref());
            entity.append_value(self.entity);
            date.append_value(to_days(self.date));
            trade_date.append_value(to_days(*d));
            raw_key.append_option(keys.get(&(*d, sha.clone())).map(String::as_str));
            raw_sha.append_value(sha);
            line.append_value(*l);
            factor.append_option(*f);
            acts.append_option(actions.get(d).map(String::as_str));
        }
        let basis = self.pv.basis().map_or("raw", bhavstore_lake::adjust::PriceBasis::as_str);
        Ok(RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(text(&self.pv.view.spec.name)),
                Arc::new(text(&self.pv.version.id)),
                Arc::new(text(&self.pv.version.definition_hash)),
                Arc::new(seq.finish()),
                Arc::new(run_id.finish()),
                Arc::new(entity.finish()),
                Arc::new(date.finish()),
                Arc::new(trade_date.finish()),
                Arc::new(raw_key.finish()),
                Arc::new(raw_sha.finish()),
                Arc::new(line.finish()),
                Arc::new(text(basis)),
                Arc::new(factor.finish()),
                Arc::new(acts.finish()),
            ],
        )?)
    }
}

/// The raw object behind each (trade date, sha256): one listing per year of the window, no
/// reads. A revision folder is named `{stored_at}-{sha256[..16]}`.
async fn raw_keys(
    storage: &Storage,
    window: &[(NaiveDate, String, u64, Option<f64>)],
) -> Result<HashMap<(NaiveDate, String), String>, bhavstore_storage::StorageError> {
    let mut years: Vec<i32> = window.iter().map(|w| chrono::Datelike::year(&w.0)).collect();
    years.dedup();
    let wanted: HashMap<(NaiveDate, String), &String> =
        window.iter().map(|(d, sha, ..)| ((*d, sha[..16.min(sha.len())].to_string()), sha)).collect();
    let mut out = HashMap::new();
    for year in years {
        for key in storage.list(&format!("{}/{year}", paths::RAW_EQUITY)).await? {
            if key.ends_with(paths::META_FILE) {
                continue;
            }
            // raw/bse/equity/YYYY/MM/DD/{revision}/{file}
            let parts: Vec<&str> = key.split('/').collect();
            let n = parts.len();
            if n < 6 {
                continue;
            }
            let Ok(date) = NaiveDate::parse_from_str(&parts[n - 5..n - 2].join("-"), "%Y-%m-%d") else { continue };
            let Some(short) = parts[n - 2].rsplit('-').next() else { continue };
            if let Some(sha) = wanted.get(&(date, short.to_string())) {
                out.insert((date, (*sha).clone()), key.clone());
            }
        }
    }
    Ok(out)
}

/// The applied corporate actions of `entity` by ex-session, in `(first, last]`: the ones that
/// change the basis of the window's earlier rows.
async fn applied_actions(
    ctx: &datafusion::prelude::SessionContext,
    entity: i64,
    first: NaiveDate,
    last: NaiveDate,
    dividends: bool,
) -> Result<HashMap<NaiveDate, String>> {
    // Views on split-adjusted prices apply no dividend.
    let kinds = if dividends { "" } else { "AND kind <> 'dividend'" };
    let sql = format!(
        "SELECT ex_session, kind, price_factor, amount, origin, purpose_text, source_name, raw_sha256 \
         FROM corporate_actions WHERE scrip_code = {entity} AND applied {kinds} \
         AND ex_session > DATE '{first}' AND ex_session <= DATE '{last}' ORDER BY ex_session, kind"
    );
    let mut out: HashMap<NaiveDate, String> = HashMap::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let d = b.column(0).as_primitive::<Date32Type>();
        let s = |i: usize| b.column(i).as_string::<i32>().clone();
        let (kind, origin, text, source, sha) = (s(1), s(4), s(5), s(6), s(7));
        let factor = b.column(2).as_primitive::<Float64Type>();
        let amount = b.column(3).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let what = if factor.is_valid(i) {
                format!("factor {}", factor.value(i))
            } else if amount.is_valid(i) {
                format!("amount {}", amount.value(i))
            } else {
                String::new()
            };
            let line = format!(
                "{} {what} ({}: {}; {} sha256 {})",
                kind.value(i),
                origin.value(i),
                text.value(i),
                source.value(i),
                sha.value(i)
            );
            let e = out.entry(from_days(d.value(i))).or_default();
            if !e.is_empty() {
                e.push_str("; ");
            }
            e.push_str(&line);
        }
    }
    Ok(out)
}
