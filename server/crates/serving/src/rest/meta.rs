//! `/health`, `/metrics` (Prometheus text format) and `/openapi.json`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::serve::AppState;

/// `GET /health`: up, and which views the online store holds.
pub(super) async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let snap = state.online.snapshot();
    let views: Vec<Value> = snap
        .view_names()
        .iter()
        .filter_map(|n| snap.view(n))
        .map(|v| {
            json!({
                "view": v.name(),
                "version": v.version(),
                "manifest_seq": v.seq(),
                "rows": v.rows(),
                "newest_trade_date": v.newest().map(|d| d.to_string()),
            })
        })
        .collect();
    Json(json!({
        "status": "ok",
        "storage": state.storage.display(),
        "generation": snap.generation(),
        "views": views,
        "intraday": state.intraday.as_ref().map(|i| {
            let mut s = json!(i.status());
            s["streaming_views"] = json!(i.views().iter().map(|v| json!({"view": v.name(), "instruments": v.instruments(), "lookback_rows": v.lookback()})).collect::<Vec<_>>());
            s
        }),
    }))
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let m = &state.metrics;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    };
    counter(
        "bhavstore_lookups_total",
        "Lookups answered with a value.",
        m.lookups_ok.load(Ordering::Relaxed).to_string(),
    );
    counter(
        "bhavstore_lookups_refused_total",
        "Lookups refused (unknown, stale, bad input).",
        m.lookups_refused.load(Ordering::Relaxed).to_string(),
    );
    // Prometheus convention: base units, so seconds (held as microseconds).
    #[allow(clippy::cast_precision_loss)]
    let seconds = m.lookup_micros.load(Ordering::Relaxed) as f64 / 1e6;
    counter("bhavstore_lookup_seconds_total", "Time spent answering single lookups.", format!("{seconds}"));
    counter("bhavstore_ingest_requests_total", "Ingest requests.", m.ingests.load(Ordering::Relaxed).to_string());
    counter("bhavstore_online_reloads_total", "Online store reloads.", m.reloads.load(Ordering::Relaxed).to_string());
    let _ =
        writeln!(out, "# HELP bhavstore_online_rows Rows held in memory per view.\n# TYPE bhavstore_online_rows gauge");
    let snap = state.online.snapshot();
    for name in snap.view_names() {
        if let Some(v) = snap.view(&name) {
            let _ = writeln!(out, "bhavstore_online_rows{{view=\"{name}\",version=\"{}\"}} {}", v.version(), v.rows());
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// `GET /openapi.json`.
pub(super) async fn openapi() -> Json<Value> {
    Json(document())
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The OpenAPI 3.1 description of this API.
#[must_use]
pub fn document() -> Value {
    let ts = json!({"type": "string", "format": "date-time", "description": "RFC 3339; default now. The value returned is the one with the latest event time (market close of its trade date) at or before it."});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "bhavstore feature store", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Point-in-time feature lookups and ingestion. Errors are JSON with a stable code: bad_request, bad_timestamp, bad_data_source, unauthorized, unknown_view, unknown_feature, ambiguous_feature, unknown_entity, no_value, stale_value, before_online_history, unknown_run, ingest_failed, internal."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Lookup": {"type": "object", "properties": {
                    "entity_id": {"type": "string"}, "feature_name": {"type": "string"},
                    "value": {"description": "number, string, boolean or null (warm-up)"},
                    "timestamp": {"type": "string", "format": "date-time", "description": "event time of the value"},
                    "trade_date": {"type": "string", "format": "date"},
                    "available_at": {"type": "string", "format": "date-time", "description": "when that trade date's values became available"},
                    "rule": {"type": "string", "enum": ["available", "close"]},
                    "feature_view": {"type": "string"}, "version": {"type": "string"}}}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/feature-store/lookup": {"get": {
                "summary": "One feature of one entity as of a time (query string, or the same fields as a JSON body)",
                "parameters": [
                    {"name": "entity_id", "in": "query", "required": true, "schema": {"type": "string"}, "description": "BSE scrip code, or symbol / ISIN where the data has them"},
                    {"name": "feature_name", "in": "query", "required": true, "schema": {"type": "string"}},
                    {"name": "timestamp", "in": "query", "schema": ts},
                    {"name": "feature_view", "in": "query", "schema": {"type": "string"}, "description": "needed only when two views share the feature name"},
                    {"name": "rule", "in": "query", "schema": {"type": "string", "enum": ["available", "close"], "default": "available"}, "description": "available: a day's values once its bhavcopy was available (first download within 3 days, else online.publish_time); close: at the market close. The view's ttl applies to both; streaming views know a bar when it ends under both"}],
                "responses": {"200": {"description": "the value", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Lookup"}}}},
                              "400": error_response("bad_request, bad_timestamp, bad_rule, ambiguous_feature"),
                              "404": error_response("unknown_view, unknown_feature, unknown_entity, no_value, stale_value, before_online_history")}}},
            "/feature-store/lookup/batch": {"post": {
                "summary": "Many features of many entities as of one time",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["entity_ids", "feature_names"], "properties": {
                    "entity_ids": {"type": "array", "items": {"type": "string"}}, "feature_names": {"type": "array", "items": {"type": "string"}},
                    "timestamp": ts, "feature_view": {"type": "string"}, "rule": {"type": "string", "enum": ["available", "close"], "default": "available"}}}}}},
                "responses": {"200": {"description": "one entry per entity: features with value and timestamp, or an error code"},
                              "400": error_response("bad_request, bad_timestamp"), "404": error_response("unknown_view, unknown_feature")}}},
            "/feature-store/lineage": {"get": {
                "summary": "Where a daily feature value comes from: view version, definition hash, manifest and run, the raw object and sha256 of every trade date in the window behind the value, and the corporate actions applied",
                "parameters": [
                    {"name": "feature_view", "in": "query", "required": true, "schema": {"type": "string"}},
                    {"name": "entity_id", "in": "query", "required": true, "schema": {"type": "string"}, "description": "BSE scrip code, or symbol / ISIN"},
                    {"name": "date", "in": "query", "required": true, "schema": {"type": "string", "format": "date"}}],
                "responses": {"200": {"description": "{feature_view, version, definition_hash, manifest_seq, run_id, prices, entity_id, scrip_code, date, inputs: [{trade_date, raw_key, raw_sha256, source_line, adj_factor}], corporate_actions: [{ex_session, actions}]}"},
                              "400": error_response("bad_request"), "404": error_response("unknown_view, unknown_entity, no_value")}}},
            "/feature-store/ingest": {"post": {
                "summary": "Load a trade date from BSE or files from s3:// or file://, then materialize the view",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["feature_view", "data_source"], "properties": {
                    "feature_view": {"type": "string"}, "data_source": {"type": "string", "description": "YYYY-MM-DD, s3://bucket/prefix or file:///path"},
                    "features": {"type": "array", "items": {"type": "string"}}, "timestamp": {"type": "string", "format": "date-time"}}}}}},
                "responses": {"200": {"description": "{\"status\": \"success\", \"message\": ..., \"run_id\": ...}"},
                              "202": {"description": "still working: {\"status\": \"accepted\", \"run_id\", \"status_url\"}"},
                              "400": error_response("bad_request, bad_timestamp, bad_data_source"),
                              "404": error_response("unknown_view, unknown_feature"),
                              "422": error_response("ingest_failed")}}},
            "/feature-store/push": {"post": {
                "summary": "Push intraday bars into intraday_bars; the answer comes once every stored row is durable. Needs the write role when tokens are configured.",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["source", "rows"], "properties": {
                    "source": {"type": "string", "enum": ["intraday_bars"]},
                    "rows": {"type": "array", "items": {"type": "object", "required": ["instrument", "ts", "open", "high", "low", "close", "volume"], "additionalProperties": false, "properties": {
                        "instrument": {"type": "string", "description": "EXCHANGE:SYMBOL, e.g. NSE:TCS"},
                        "ts": {"type": "string", "description": "bar start, RFC 3339; naive times are IST"},
                        "open": {"type": "number"}, "high": {"type": "number"}, "low": {"type": "number"}, "close": {"type": "number"},
                        "volume": {"type": "integer", "minimum": 0}, "interval_s": {"type": "integer", "default": 60}}}}}}}}},
                "responses": {"200": {"description": "{status: ok|partial, accepted, new, duplicates, corrections, rejected: [{index, reason}], durable_at, log_seq}"},
                              "422": {"description": "status rejected: every row refused (same body)"},
                              "400": error_response("bad_request, unknown_source"), "401": error_response("unauthorized"),
                              "403": error_response("write_role_required"), "409": error_response("another_writer"),
                              "413": error_response("body_too_large, too_many_rows"), "415": error_response("unsupported_media_type"),
                              "503": error_response("storage_unavailable: nothing of the push was acknowledged")}}},
            "/feature-store/stream": {"get": {
                "summary": "Server-Sent Events: each new feature row of a streaming view (event features), subscribed once, dropped (event dropped) when more than intraday.stream_buffer rows behind",
                "parameters": [
                    {"name": "view", "in": "query", "required": true, "schema": {"type": "string"}},
                    {"name": "entity_id", "in": "query", "schema": {"type": "string"}, "description": "repeatable; none: every instrument"}],
                "responses": {"200": {"description": "text/event-stream"}, "404": error_response("unknown_view")}}},
            "/feature-store/runs/{id}": {"get": {"summary": "Progress of an ingest", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "run_id, status, message, started_at, finished_at, materialize_runs"}, "404": error_response("unknown_run")}}},
            "/health": {"get": {"summary": "Liveness and the views held in memory", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}}
        }
    })
}
