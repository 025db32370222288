//! `GET /feature-store/lineage`: where a daily feature value comes from, answered by the
//! catalog's `lineage` table function with the parameters as values (no SQL is built).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use crate::serve::AppState;

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
    if req.feature_view.trim().is_empty() || req.entity_id.trim().is_empty() {
        return Err(ApiError::bad_request("feature_view and entity_id must not be empty"));
    }
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
    Ok(Json(to_json(&batches, entity_id, scrip, date)?))
}

/// The table's rows as JSON: what names the value once, then one input per trade date.
fn to_json(batches: &[RecordBatch], entity_id: &str, scrip: i64, date: NaiveDate) -> Result<Json_, ApiError> {
    let rows = super::json_rows(batches, "lineage")?;
    let pick = |row: &serde_json::Map<String, Json_>, keys: &[&str]| -> Json_ {
        keys.iter().map(|k| ((*k).to_string(), row.get(*k).cloned().unwrap_or(Json_::Null))).collect()
    };
    let mut head = rows
        .first()
        .map_or_else(|| json!({}), |r| pick(r, &["version", "definition_hash", "manifest_seq", "run_id", "prices"]));
    let inputs: Vec<Json_> =
        rows.iter().map(|r| pick(r, &["trade_date", "raw_key", "raw_sha256", "source_line", "adj_factor"])).collect();
    let actions: Vec<Json_> = rows
        .iter()
        .filter(|r| r.get("corporate_actions").is_some_and(|a| !a.is_null()))
        .map(|r| json!({"ex_session": r["trade_date"], "actions": r["corporate_actions"]}))
        .collect();
    if let Some(o) = head.as_object_mut() {
        o.insert("feature_view".into(), rows.first().and_then(|r| r.get("view")).cloned().unwrap_or(Json_::Null));
        o.insert("entity_id".into(), json!(entity_id));
        o.insert("scrip_code".into(), json!(scrip));
        o.insert("date".into(), json!(date.to_string()));
        o.insert("inputs".into(), Json_::Array(inputs));
        o.insert("corporate_actions".into(), Json_::Array(actions));
    }
    Ok(head)
}
