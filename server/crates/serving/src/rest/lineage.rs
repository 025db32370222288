//! `GET /feature-store/lineage`: where a daily feature value comes from, answered by the
//! catalog's `lineage` table function with the parameters as values (no SQL is built).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use crate::serve::AppState;
use bhavstore_lake::from_days;

/// The parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LineageRequest {
    /// The daily view.
    pub feature_view: String,
    /// Scrip code, symbol or ISIN.
    pub entity_id: String,
    /// The trade date of the value, YYYY-MM-DD.
    pub date: String,
}

/// `GET /feature-store/lineage?feature_view=&entity_id=&date=`.
pub(super) async fn lineage(
    State(state): State<Arc<AppState>>,
    query: Result<Query<LineageRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Json_>, ApiError> {
    let Query(req) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let date = NaiveDate::parse_from_str(req.date.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(format!("date {:?} is not YYYY-MM-DD", req.date)))?;
    let snap = state.online.snapshot();
    let entity_id = req.entity_id.trim();
    let scrip = snap
        .resolve(entity_id)
        .or_else(|| entity_id.parse::<i64>().ok())
        .ok_or_else(|| bhavstore_online::LookupError::UnknownEntity(entity_id.to_string()))?;
    let function =
        state.sql.table_function(bhavstore_query::lineage::FUNCTION).map_err(|e| ApiError::internal("lineage", e))?;
    let args = [
        Expr::Literal(ScalarValue::Utf8(Some(req.feature_view.clone())), None),
        Expr::Literal(ScalarValue::Int64(Some(scrip)), None),
        Expr::Literal(ScalarValue::Utf8(Some(date.to_string())), None),
    ];
    let session = state.sql.state();
    let call = datafusion::catalog::TableFunctionArgs::new(&args, &session);
    let provider = function.create_table_provider_with_args(call).map_err(|e| {
        // Planning refuses only what the request names wrongly (an unknown or streaming view).
        ApiError::new(StatusCode::NOT_FOUND, "unknown_view", e.message().to_string())
    })?;
    let batches = state
        .sql
        .read_table(provider)
        .map_err(|e| ApiError::internal("lineage", e))?
        .collect()
        .await
        .map_err(|e| ApiError::internal("lineage", e))?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_value",
            format!("{} has no row of {entity_id} on or before {date}", req.feature_view),
        ));
    }
    Ok(Json(to_json(&batches, entity_id, scrip, date)))
}

fn to_json(batches: &[RecordBatch], entity_id: &str, scrip: i64, date: NaiveDate) -> Json_ {
    let mut head = json!({});
    let mut inputs = Vec::new();
    let mut actions = Vec::new();
    for b in batches {
        let s = |name: &str, i: usize| {
            b.column_by_name(name)
                .map(|c| c.as_string::<i32>())
                .and_then(|c| c.is_valid(i).then(|| c.value(i).to_string()))
        };
        let u = |name: &str, i: usize| {
            b.column_by_name(name)
                .map(|c| c.as_primitive::<UInt64Type>())
                .and_then(|c| c.is_valid(i).then(|| c.value(i)))
        };
        let d = |name: &str, i: usize| {
            b.column_by_name(name).map(|c| from_days(c.as_primitive::<Date32Type>().value(i)).to_string())
        };
        let f = |name: &str, i: usize| {
            b.column_by_name(name)
                .map(|c| c.as_primitive::<Float64Type>())
                .and_then(|c| c.is_valid(i).then(|| c.value(i)))
        };
        for i in 0..b.num_rows() {
            if head.as_object().is_some_and(serde_json::Map::is_empty) {
                head = json!({
                    "feature_view": s("view", i),
                    "version": s("version", i),
                    "definition_hash": s("definition_hash", i),
                    "manifest_seq": u("manifest_seq", i),
                    "run_id": s("run_id", i),
                    "prices": s("prices", i),
                });
            }
            inputs.push(json!({
                "trade_date": d("trade_date", i),
                "raw_key": s("raw_key", i),
                "raw_sha256": s("raw_sha256", i),
                "source_line": u("source_line", i),
                "adj_factor": f("adj_factor", i),
            }));
            if let Some(a) = s("corporate_actions", i) {
                actions.push(json!({"ex_session": d("trade_date", i), "actions": a}));
            }
        }
    }
    if let Some(o) = head.as_object_mut() {
        o.insert("entity_id".into(), json!(entity_id));
        o.insert("scrip_code".into(), json!(scrip));
        o.insert("date".into(), json!(date.to_string()));
        o.insert("inputs".into(), Json_::Array(inputs));
        o.insert("corporate_actions".into(), Json_::Array(actions));
    }
    head
}
