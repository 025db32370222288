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

/// `GET /openapi.json`: the operations this server serves, as configured (security only when
/// it has tokens, the intraday operations only when it takes intraday bars).
pub(super) async fn openapi(State(state): State<Arc<AppState>>) -> Json<Value> {
    // The examples name a view and a feature this server has, so tools that try the examples
    // (Schemathesis' examples phase) reach real answers and not only 404s.
    let example = state.materializer.views().first().and_then(|v| {
        let spec = &v.view.spec;
        spec.features.first().map(|f| (spec.name.clone(), f.name.clone()))
    });
    Json(document(state.credentials.has_tokens(), state.intraday.is_some(), example.as_ref()))
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// A text that is not empty or only white space (the server trims it).
fn text() -> Value {
    json!({"type": "string", "minLength": 1, "pattern": "\\S"})
}

/// Paths answered without a token even when the server has tokens.
const OPEN_PATHS: [&str; 2] = ["/health", "/openapi.json"];

/// The OpenAPI 3.1 description of this API. `secured`: the server has bearer tokens, so every
/// operation but `/health` and `/openapi.json` needs one (and answers 401 without it).
/// `intraday`: the server takes intraday bars (`/feature-store/push`, `/feature-store/stream`).
/// `example`: a view and one of its features, shown as examples of the lookup parameters.
#[must_use]
pub fn document(secured: bool, intraday: bool, example: Option<&(String, String)>) -> Value {
    let ts = json!({"anyOf": [{"type": "string", "format": "date-time"}, {"const": ""}], "description": "RFC 3339; empty or absent: now. The value returned is the one with the latest event time (market close of its trade date) at or before it."});
    // `available` or `close`, in any ASCII case; empty or absent: available.
    let rule = json!({"type": "string", "pattern": "^(|[Aa][Vv][Aa][Ii][Ll][Aa][Bb][Ll][Ee]|[Cc][Ll][Oo][Ss][Ee])$", "default": "available", "examples": ["available", "close"]});
    // In a JSON body an optional field may also be null, meaning absent.
    let or_null = |v: &Value| json!({"anyOf": [v, {"type": "null"}]});
    let entity = json!({"anyOf": [text(), {"type": "integer", "minimum": 0, "maximum": u64::MAX}], "description": "BSE scrip code (string or integer), symbol or ISIN"});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "bhavstore feature store", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Point-in-time feature lookups and ingestion. Errors are JSON {\"error\": {\"code\", \"message\"}} with a stable code: bad_request, bad_timestamp, bad_rule, bad_data_source, unauthorized, not_found, method_not_allowed, timeout, unknown_view, unknown_feature, ambiguous_feature, unknown_entity, no_value, stale_value, before_online_history, unknown_run, ingest_failed, internal."},
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Lookup": {"type": "object", "required": ["entity_id", "feature_name", "value", "timestamp", "feature_view", "version"], "properties": {
                    "entity_id": {"type": "string"}, "feature_name": {"type": "string"},
                    "value": {"description": "number, string, boolean or null (warm-up)"},
                    "timestamp": {"type": "string", "format": "date-time", "description": "event time of the value"},
                    "trade_date": {"type": "string", "format": "date"},
                    "available_at": {"type": "string", "format": "date-time", "description": "when that trade date's values became available"},
                    "rule": {"type": "string", "enum": ["available", "close"]},
                    "feature_view": {"type": "string"}, "version": {"type": "string"}}}
            }
        },
        "paths": {
            "/feature-store/lookup": {"get": {
                "summary": "One feature of one entity as of a time (query string, or the same fields as a JSON body)",
                "parameters": [
                    {"name": "entity_id", "in": "query", "required": true, "schema": text(), "description": "BSE scrip code, or symbol / ISIN where the data has them"},
                    {"name": "feature_name", "in": "query", "required": true, "schema": text()},
                    {"name": "timestamp", "in": "query", "schema": ts},
                    {"name": "feature_view", "in": "query", "schema": {"type": "string"}, "description": "needed only when two views share the feature name"},
                    {"name": "rule", "in": "query", "schema": rule, "description": "available: a day's values once its bhavcopy was available (first download within 3 days, else online.publish_time); close: at the market close. The view's ttl applies to both; streaming views know a bar when it ends under both"}],
                "responses": {"200": json_response("the value", json!({"$ref": "#/components/schemas/Lookup"})),
                              "400": error_response("bad_request, bad_timestamp, bad_rule, ambiguous_feature"),
                              "404": error_response("unknown_view, unknown_feature, unknown_entity, no_value, stale_value, before_online_history")}}},
            "/feature-store/lookup/batch": {"post": {
                "summary": "Many features of many entities as of one time (at most 100000 entity × feature values)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "required": ["entity_ids", "feature_names"], "properties": {
                    "entity_ids": {"type": "array", "minItems": 1, "items": entity}, "feature_names": {"type": "array", "minItems": 1, "items": text()},
                    "timestamp": or_null(&ts), "feature_view": or_null(&json!({"type": "string"})), "rule": or_null(&rule)}}}}},
                "responses": {"200": json_response("one entry per entity: features with value and timestamp, or an error code",
                                  json!({"type": "object", "required": ["feature_view", "version", "timestamp", "results"], "properties": {
                                      "feature_view": {"type": "string"}, "version": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"},
                                      "rule": {"type": "string"}, "results": {"type": "array", "items": {"type": "object", "required": ["entity_id"]}}}})),
                              "400": error_response("bad_request, bad_timestamp, bad_rule, ambiguous_feature"), "404": error_response("unknown_view, unknown_feature")}}},
            "/feature-store/lineage": {"get": {
                "summary": "Where a daily feature value comes from: view version, definition hash, manifest and run, the raw object and sha256 of every trade date in the window behind the value, and the corporate actions applied",
                "parameters": [
                    {"name": "feature_view", "in": "query", "required": true, "schema": text()},
                    {"name": "entity_id", "in": "query", "required": true, "schema": text(), "description": "BSE scrip code, or symbol / ISIN"},
                    {"name": "date", "in": "query", "required": true, "schema": {"type": "string", "format": "date"}}],
                "responses": {"200": json_response("{feature_view, version, definition_hash, manifest_seq, run_id, prices, entity_id, scrip_code, date, inputs: [{trade_date, raw_key, raw_sha256, source_line, adj_factor}], corporate_actions: [{ex_session, actions}]}", json!({"type": "object"})),
                              "400": error_response("bad_request"), "404": error_response("unknown_view, unknown_entity, no_value")}}},
            "/feature-store/ingest": {"post": {
                "summary": "Load a trade date from BSE or files from s3:// or file://, then materialize the view",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "required": ["feature_view", "data_source"], "properties": {
                    "feature_view": text(),
                    "data_source": {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "pattern": "^(s3|file)://"}], "description": "a trade date YYYY-MM-DD (fetched from BSE), s3://bucket/prefix or file:///path inside server.import_roots"},
                    "features": {"type": "array", "items": {"type": "string"}}, "timestamp": or_null(&ts)}}}}},
                "responses": {"200": json_response("done", json!({"type": "object", "required": ["status", "run_id"], "properties": {"status": {"const": "success"}, "message": {"type": "string"}, "run_id": {"type": "string"}}})),
                              "202": json_response("still working", json!({"type": "object", "required": ["status", "run_id", "status_url"], "properties": {"status": {"const": "accepted"}, "run_id": {"type": "string"}, "status_url": {"type": "string"}}})),
                              "400": error_response("bad_request, bad_timestamp, bad_data_source"),
                              "403": error_response("location_not_allowed: outside server.import_roots"),
                              "404": error_response("unknown_view, unknown_feature, location_not_found"),
                              "422": json_response("ingest_failed", json!({"type": "object", "required": ["error", "run_id"]})),
                              "503": error_response("too_many_runs, timeout")}}},
            "/feature-store/runs/{id}": {"get": {"summary": "Progress of an ingest", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": json_response("the run", json!({"type": "object", "required": ["run_id", "status"], "properties": {"run_id": {"type": "string"}, "status": {"type": "string"}, "message": {"type": "string"}, "materialize_runs": {"type": "array"}, "materializations": {"type": "array", "items": {"type": "object", "description": "a bhavstore_runs record: run_id, view, version, mode, status, rows, min_trade_date, max_trade_date, warnings, ..."}}}})),
                              "400": error_response("bad_request"), "404": error_response("unknown_run")}}},
            "/feature-store/views": {"get": {"summary": "The feature views this server defines (materialized or not): entity, event time, features, definition version, and which are streaming",
                "responses": {"200": json_response("the views", json!({"type": "object", "required": ["views", "streaming_views"], "properties": {
                    "views": {"type": "array", "items": {"type": "object", "required": ["name", "entity", "event_time", "features", "version", "definition_hash", "streaming"]}},
                    "streaming_views": {"type": "array", "items": {"type": "string"}}}}))}}},
            "/health": {"get": {"summary": "Liveness and the views held in memory",
                "responses": {"200": json_response("ok", json!({"type": "object", "required": ["status", "views"], "properties": {"status": {"const": "ok"}, "views": {"type": "array"}}}))}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": json_response("OpenAPI 3.1", json!({"type": "object"}))}}}
        }
    });
    if let Some((view, feature)) = example {
        let entity = "500325";
        for (path, name, value) in [
            ("/feature-store/lookup", "entity_id", entity),
            ("/feature-store/lookup", "feature_name", feature),
            ("/feature-store/lookup", "feature_view", view),
            ("/feature-store/lineage", "entity_id", entity),
            ("/feature-store/lineage", "feature_view", view),
        ] {
            if let Some(params) = doc["paths"][path]["get"]["parameters"].as_array_mut()
                && let Some(p) = params.iter_mut().find(|p| p["name"] == name)
            {
                p["example"] = json!(value);
            }
        }
        if let Some(p) = doc["paths"]["/feature-store/lineage"]["get"]["parameters"].as_array_mut()
            && let Some(p) = p.iter_mut().find(|p| p["name"] == "date")
        {
            p["example"] = json!("2015-03-02");
        }
        doc["paths"]["/feature-store/lookup/batch"]["post"]["requestBody"]["content"]["application/json"]["example"] = json!({"entity_ids": [entity, "500002"], "feature_names": [feature], "feature_view": view, "timestamp": "2015-03-02T12:00:00Z"});
    }
    if intraday {
        doc["paths"]["/feature-store/push"] = json!({"post": {
            "summary": "Push intraday bars into intraday_bars; the answer comes once every stored row is durable. Needs the write role when tokens are configured.",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "required": ["source", "rows"], "properties": {
                "source": {"type": "string", "enum": ["intraday_bars"]},
                "rows": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["instrument", "ts", "open", "high", "low", "close", "volume"], "additionalProperties": false, "properties": {
                    "instrument": {"type": "string", "description": "EXCHANGE:SYMBOL, e.g. NSE:TCS"},
                    "ts": {"type": "string", "description": "bar start, RFC 3339; naive times are IST"},
                    "open": {"type": "number"}, "high": {"type": "number"}, "low": {"type": "number"}, "close": {"type": "number"},
                    "volume": {"type": "integer", "minimum": 0}, "interval_s": {"type": "integer", "default": 60}}}}}}}}},
            "responses": {"200": json_response("{status: ok|partial, accepted, new, duplicates, corrections, rejected: [{index, reason}], durable_at, log_seq}", json!({"type": "object", "required": ["status"]})),
                          "422": json_response("status rejected: every row refused (same body)", json!({"type": "object", "required": ["status"]})),
                          "400": error_response("bad_request, unknown_source"),
                          "403": error_response("write_role_required"), "409": error_response("another_writer"),
                          "413": error_response("body_too_large, too_many_rows"), "415": error_response("unsupported_media_type"),
                          "503": error_response("storage_unavailable: nothing of the push was acknowledged")}}});
        doc["paths"]["/feature-store/stream"] = json!({"get": {
            "summary": "Server-Sent Events: each new feature row of a streaming view (event features), subscribed once, dropped (event dropped) when more than intraday.stream_buffer rows behind",
            "parameters": [
                {"name": "view", "in": "query", "required": true, "schema": {"type": "string"}},
                {"name": "entity_id", "in": "query", "schema": {"type": "string"}, "description": "repeatable; none: every instrument"}],
            "responses": {"200": {"description": "the events", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                          "400": error_response("bad_request"), "404": error_response("unknown_view")}}});
    }
    let Some(paths) = doc["paths"].as_object_mut() else { return doc };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for op in item.values_mut() {
            let guarded = secured && !OPEN_PATHS.contains(&path.as_str());
            if guarded {
                op["security"] = json!([{"bearer": []}]);
            }
            let responses = &mut op["responses"];
            // Every request is bounded by server.limits.http_request_timeout_secs.
            if responses.get("503").is_none() {
                responses["503"] =
                    error_response("timeout: the request took longer than server.limits.http_request_timeout_secs");
            }
            if guarded {
                responses["401"] = error_response("unauthorized: no bearer token, or not one of server.tokens");
            }
        }
    }
    if secured {
        doc["components"]["securitySchemes"] = json!({"bearer": {"type": "http", "scheme": "bearer"}});
    }
    doc
}
