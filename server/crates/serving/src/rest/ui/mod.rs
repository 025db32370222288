//! The web console, `/ui` on the REST listener: one page (hand-written HTML, CSS and JS embedded
//! in the binary; nothing is fetched from elsewhere) and the read-only JSON it draws from.
//!
//! Auth: the page and its two static files hold no data and are served to anyone (a browser
//! must load them before it can ask for a token). Every data endpoint (`/ui/api/...`) is behind
//! the same bearer-token check as the rest of the API: the page asks for the token once, keeps
//! it in the tab's `sessionStorage` (gone when the tab closes; never a cookie, so no CSRF) and
//! sends it as `Authorization: Bearer` with each `fetch()`, the live stream included (read with
//! `fetch()`, not `EventSource`, which cannot send headers). A strict Content-Security-Policy
//! (`'self'` only, no inline script) keeps data shown on the page from ever running as code.
//!
//! Every query is fixed here; what the browser sends is only ever a value (a parameter, a
//! column validated against the view's schema, or a storage key of validated names).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::DataFrame;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::serve::AppState;
use bhavstore_storage::paths;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Most rows one endpoint answers with.
const MAX_ROWS: usize = 20_000;

/// The console's routes, to be nested at `/ui`.
pub(super) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let api = Router::new()
        .route("/api/views", get(views))
        .route("/api/definition", get(definition))
        .route("/api/runs", get(runs))
        .route("/api/quality", get(quality))
        .route("/api/series", get(series))
        .route_layer(middleware::from_fn_with_state(Arc::clone(state), super::require_token));
    Router::new()
        .route("/", get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/app.js", get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/style.css", get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }))
        .merge(api)
}

/// A static file with headers that keep the page to its own origin.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A view or feature name as the definitions allow: letters, digits, `_`, at most 128.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// A version id: `v` and hex digits.
fn valid_version(s: &str) -> bool {
    s.len() > 1 && s.len() <= 65 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn name_param<'a>(what: &str, v: &'a str) -> Result<&'a str, ApiError> {
    let v = v.trim();
    if valid_name(v) {
        Ok(v)
    } else {
        Err(ApiError::bad_request(format!("{what} must be a name of letters, digits and _")))
    }
}

/// Record batches as JSON objects (explicit nulls; dates as `YYYY-MM-DD`).
fn rows(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>, ApiError> {
    super::json_rows(batches, "console")
}

/// Runs one of the fixed queries of this module with `params` as `$1`, `$2`, ...
async fn fixed(
    state: &AppState,
    sql: &'static str,
    params: Vec<ScalarValue>,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    let mut df = state.sql.sql(sql).await.map_err(|e| ApiError::internal("console query", e))?;
    if !params.is_empty() {
        df = df.with_param_values(params).map_err(|e| ApiError::internal("console query", e))?;
    }
    collect(df).await
}

async fn collect(df: DataFrame) -> Result<Vec<Map<String, Value>>, ApiError> {
    let batches = df.limit(0, Some(MAX_ROWS)).map_err(|e| ApiError::internal("console query", e))?;
    let batches = batches.collect().await.map_err(|e| ApiError::internal("console query", e))?;
    rows(&batches)
}

/// `GET /ui/api/views`: every daily view with its versions (published states from
/// `bhavstore_versions`, definitions from the store's registry) and the streaming views.
async fn views(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let published = fixed(
        &state,
        "SELECT view, version, is_current, definition_hash, manifests, latest_seq, latest_run_id, rows, \
         min_trade_date, max_trade_date, published_at FROM bhavstore_versions ORDER BY view, published_at",
        Vec::new(),
    )
    .await?;
    let streaming = state.streaming_views();
    let mut out: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    for r in published {
        let view = r.get("view").and_then(Value::as_str).unwrap_or_default().to_string();
        let entry = out
            .entry(view.clone())
            .or_insert_with(|| json!({"view": view, "streaming": streaming.contains(&view), "versions": []}));
        if let Some(v) = entry["versions"].as_array_mut() {
            let mut r = r;
            r.insert("recorded".into(), json!(false));
            v.push(Value::Object(r));
        }
    }
    // Versions whose definition the registry holds (a version may be recorded and not yet
    // published, e.g. its first run failed).
    let folders = state.storage.list_folders(paths::views_dir()).await.map_err(|e| ApiError::internal("views", e))?;
    for view in folders.into_iter().filter(|v| valid_name(v)) {
        let keys = state.storage.list(&paths::versions_dir(&view)).await.map_err(|e| ApiError::internal("views", e))?;
        let entry = out
            .entry(view.clone())
            .or_insert_with(|| json!({"view": view, "streaming": streaming.contains(&view), "versions": []}));
        let Some(list) = entry["versions"].as_array_mut() else { continue };
        for version in keys.iter().filter_map(|k| paths::version_of_record(k)) {
            match list.iter_mut().find(|v| v["version"] == version.as_str()) {
                Some(v) => v["recorded"] = json!(true),
                None => list.push(json!({"version": version, "recorded": true, "is_current": false})),
            }
        }
    }
    Ok(Json(json!({"views": out.into_values().collect::<Vec<_>>(), "streaming_views": streaming})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionRequest {
    view: String,
    version: String,
}

/// `GET /ui/api/definition?view=&version=`: the SQL and YAML the store recorded for a version.
async fn definition(
    State(state): State<Arc<AppState>>,
    query: Result<Query<DefinitionRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(req) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let view = name_param("view", &req.view)?;
    let version = req.version.trim();
    if !valid_version(version) {
        return Err(ApiError::bad_request("version must be a version id such as v746585d3650d"));
    }
    let key = paths::version_record(view, version);
    let Some(bytes) = state.storage.get(&key).await.map_err(|e| ApiError::internal("definition", e))? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_version",
            format!("the store has no definition of {view} {version}"),
        ));
    };
    let rec: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|e| ApiError::internal("definition", e))?;
    let pick = |k: &str| rec.get(k).cloned().unwrap_or(Value::Null);
    Ok(Json(json!({
        "view": view,
        "version": version,
        "definition_hash": pick("definition_hash"),
        "created_at": pick("created_at"),
        "functions": pick("functions"),
        "lookback_rows": pick("lookback_rows"),
        "incremental": pick("incremental"),
        "sql": pick("sql"),
        "yaml": pick("yaml"),
    })))
}

/// `GET /ui/api/runs`: the newest runs, newest first.
async fn runs(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let runs = fixed(
        &state,
        "SELECT \"run_id\", \"kind\", \"view\", \"version\", \"mode\", \"status\", \"rows\", \"min_trade_date\", \
         \"max_trade_date\", \"manifest_seq\", \"started_at\", \"finished_at\", \"compute_ms\", \"tail_ms\", \
         \"duration_ms\", \"error\", \"warnings\" \
         FROM bhavstore_runs ORDER BY started_at DESC LIMIT 1000",
        Vec::new(),
    )
    .await?;
    Ok(Json(json!({"runs": runs})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QualityRequest {
    view: String,
    version: Option<String>,
}

/// `GET /ui/api/quality?view=[&version=]`: PSI and NULL rate per feature and trade date of a
/// version (default: the current one), the newest run's figure where runs overlap.
async fn quality(
    State(state): State<Arc<AppState>>,
    query: Result<Query<QualityRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(req) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let view = name_param("view", &req.view)?.to_string();
    let version = match req.version.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) if valid_version(v) => v.to_string(),
        Some(_) => return Err(ApiError::bad_request("version must be a version id such as v746585d3650d")),
        None => fixed(
            &state,
            "SELECT version FROM bhavstore_versions WHERE view = $1 AND is_current",
            vec![ScalarValue::Utf8(Some(view.clone()))],
        )
        .await?
        .first()
        .and_then(|r| r.get("version").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_view", format!("{view} has no current published version"))
        })?,
    };
    let rows = fixed(
        &state,
        "SELECT feature, trade_date, run_id, row_count, null_count, null_rate, psi, psi_reference_sessions, \
         missing_entities, suspicious_returns FROM (\
           SELECT *, row_number() OVER (PARTITION BY feature, trade_date ORDER BY run_id DESC) AS newest \
           FROM bhavstore_quality WHERE view = $1 AND version = $2) \
         WHERE newest = 1 ORDER BY feature, trade_date",
        vec![ScalarValue::Utf8(Some(view.clone())), ScalarValue::Utf8(Some(version.clone()))],
    )
    .await?;
    Ok(Json(json!({"view": view, "version": version, "rows": rows})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesRequest {
    view: String,
    feature: String,
    entity_id: String,
}

/// `GET /ui/api/series?view=&feature=&entity_id=`: one feature of one entity over time, with
/// the raw close (`bhavcopy`) and the close and adjustment factor of `bhavcopy_adjusted`.
async fn series(
    State(state): State<Arc<AppState>>,
    query: Result<Query<SeriesRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(req) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let view = name_param("view", &req.view)?;
    let feature = name_param("feature", &req.feature)?;
    let entity_id = req.entity_id.trim();
    if entity_id.is_empty() || entity_id.len() > 64 {
        return Err(ApiError::bad_request("entity_id must be a scrip code, symbol or ISIN"));
    }
    // Only daily feature views (a published version) are series; system and source tables are not.
    let known = fixed(
        &state,
        "SELECT version FROM bhavstore_versions WHERE view = $1 AND is_current",
        vec![ScalarValue::Utf8(Some(view.to_string()))],
    )
    .await?;
    if known.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_view",
            format!("{view} is not a published daily view"),
        ));
    }
    let snap = state.online.snapshot();
    let scrip = snap
        .resolve(entity_id)
        .or_else(|| entity_id.parse::<i64>().ok())
        .ok_or_else(|| bhavstore_online::LookupError::UnknownEntity(entity_id.to_string()))?;
    let table = state.sql.table(view).await.map_err(|e| ApiError::internal("series", e))?;
    let schema = table.schema().clone();
    let has = |c: &str| schema.fields().iter().any(|f| f.name() == c);
    if !has("scrip_code") || !has("trade_date") {
        return Err(ApiError::bad_request(format!("{view} is not keyed by scrip_code and trade_date")));
    }
    if !has(feature) || feature == "scrip_code" || feature == "trade_date" {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_feature",
            format!("{view} has no feature {feature:?}"),
        ));
    }
    let by_scrip = |df: DataFrame, cols: Vec<Expr>| -> Result<DataFrame, ApiError> {
        df.filter(col("scrip_code").eq(lit(scrip)))
            .and_then(|d| d.select(cols))
            .and_then(|d| d.sort(vec![col("trade_date").sort(true, false)]))
            .map_err(|e| ApiError::internal("series", e))
    };
    let values = collect(by_scrip(
        table,
        vec![col("trade_date"), Expr::Column(Column::new_unqualified(feature)).alias("value")],
    )?)
    .await?;
    let raw = state.sql.table("bhavcopy").await.map_err(|e| ApiError::internal("series", e))?;
    let raw = collect(by_scrip(raw, vec![col("trade_date"), col("close")])?).await?;
    let adjusted = state.sql.table("bhavcopy_adjusted").await.map_err(|e| ApiError::internal("series", e))?;
    let adjusted = collect(by_scrip(adjusted, vec![col("trade_date"), col("close"), col("adj_factor")])?).await?;
    let name = snap_name(&state, scrip).await?;
    Ok(Json(json!({
        "view": view,
        "feature": feature,
        "entity_id": entity_id,
        "scrip_code": scrip,
        "name": name,
        "values": values,
        "raw": raw,
        "adjusted": adjusted,
    })))
}

/// The newest symbol and name of a scrip, for the page's title.
async fn snap_name(state: &AppState, scrip: i64) -> Result<Value, ApiError> {
    let df = state.sql.table("bhavcopy").await.map_err(|e| ApiError::internal("series", e))?;
    let df = df
        .filter(col("scrip_code").eq(lit(scrip)))
        .and_then(|d| d.sort(vec![col("trade_date").sort(false, false)]))
        .and_then(|d| d.select(vec![col("symbol"), col("name")]))
        .and_then(|d| d.limit(0, Some(1)))
        .map_err(|e| ApiError::internal("series", e))?;
    Ok(collect(df).await?.into_iter().next().map_or(Value::Null, Value::Object))
}

#[cfg(test)]
mod tests {
    use super::{valid_name, valid_version};

    #[test]
    fn names_and_versions_are_validated() {
        assert!(valid_name("price_features"));
        assert!(valid_name("sma_20"));
        assert!(!valid_name("../etc"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("x\"; drop"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name(""));
        assert!(valid_version("v746585d3650d"));
        assert!(!valid_version("v74658/../x"));
        assert!(!valid_version("746585"));
        assert!(!valid_version("v"));
    }
}
