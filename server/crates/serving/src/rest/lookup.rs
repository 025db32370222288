//! `GET /feature-store/lookup` (one value) and `POST /feature-store/lookup/batch` (many
//! entities × many features), answered from the online store.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use crate::serve::AppState;
use crate::serve::Metrics;
use bhavstore_online::OnlineSnapshot;
use bhavstore_online::OnlineView;

/// Largest batch: entities × features.
const MAX_BATCH_VALUES: usize = 100_000;

/// One lookup, from the query string or a JSON body (the seed's clients send JSON on GET).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LookupRequest {
    /// Scrip code, symbol or ISIN (a JSON number is accepted).
    pub entity_id: Option<Json_>,
    /// The feature.
    pub feature_name: Option<String>,
    /// RFC 3339; default now.
    pub timestamp: Option<String>,
    /// The view; needed only when two views have a feature of that name.
    pub feature_view: Option<String>,
    /// `available` (default: a day's values once its bhavcopy was available) or `close` (at
    /// the market close of the day). Streaming views know a bar when it ends, under both.
    pub rule: Option<String>,
}

/// Parses the as-of rule, exactly as `/openapi.json` describes it: `available` or `close` in
/// any ASCII case; `None` or empty means `available`.
pub(super) fn parse_rule(rule: Option<&str>) -> Result<bhavstore_lake::AsOfRule, ApiError> {
    match rule {
        None | Some("") => Ok(bhavstore_lake::AsOfRule::default()),
        Some(r) if r.eq_ignore_ascii_case("available") || r.eq_ignore_ascii_case("close") => {
            bhavstore_lake::AsOfRule::parse(r).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "bad_rule", m))
        }
        Some(r) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_rule",
            format!("rule {:?}: use available (the default) or close", bhavstore_formats::detect::truncate(r, 100)),
        )),
    }
}

/// Parses an RFC 3339 timestamp, exactly as `/openapi.json` describes it; `None` or empty
/// means now.
pub(super) fn parse_time(ts: Option<&str>) -> Result<DateTime<Utc>, ApiError> {
    match ts {
        None | Some("") => Ok(Utc::now()),
        Some(s) => {
            DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|_| ApiError::bad_timestamp(s))
        }
    }
}

/// An entity id as `/openapi.json` describes it: text that is not only white space (trimmed),
/// or a scrip code as a JSON integer from 0 to 2^64 - 1.
fn entity_text(v: &Json_) -> Result<String, ApiError> {
    match v {
        Json_::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Json_::Number(n) if n.is_u64() => Ok(n.to_string()),
        // JSON Schema's integer includes integral numbers written with a fraction (`1737.0`).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Json_::Number(n)
            if n.as_f64().is_some_and(|f| f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f)) =>
        {
            Ok((n.as_f64().unwrap_or_default() as u64).to_string())
        }
        _ => Err(ApiError::bad_request(
            "entity_id must be a scrip code, symbol or ISIN (a non-empty string, or an integer from 0 to 2^64 - 1)",
        )),
    }
}

/// A feature name as `/openapi.json` describes it: not empty or only white space.
fn feature_text(name: &str) -> Result<&str, ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("feature_name must not be empty"));
    }
    Ok(name)
}

/// The view holding `feature`: the one named, or the only one that has it.
fn view_for(snap: &OnlineSnapshot, view: Option<&str>, feature: &str) -> Result<Arc<OnlineView>, ApiError> {
    if let Some(v) = view {
        return snap.view(v).ok_or_else(|| bhavstore_online::LookupError::UnknownView(v.to_string()).into());
    }
    let holders: Vec<Arc<OnlineView>> =
        snap.view_names().iter().filter_map(|n| snap.view(n)).filter(|v| v.has_feature(feature)).collect();
    match holders.as_slice() {
        [one] => Ok(Arc::clone(one)),
        [] => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_feature",
            format!("no feature view has a feature {feature:?}"),
        )),
        many => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ambiguous_feature",
            format!(
                "feature {feature:?} is in {}; say which with feature_view",
                many.iter().map(|v| v.name().to_string()).collect::<Vec<_>>().join(" and ")
            ),
        )),
    }
}

/// The streaming view that answers: the one named, or the only view (daily or streaming) with
/// the feature when that is a streaming one. `None`: a daily view answers.
fn live_view_for(
    state: &AppState,
    snap: &OnlineSnapshot,
    view: Option<&str>,
    feature: &str,
    entity_id: &str,
) -> Result<Option<Arc<bhavstore_intraday::LiveView>>, ApiError> {
    let Some(intraday) = &state.intraday else { return Ok(None) };
    if let Some(v) = view {
        return Ok(intraday.view(v));
    }
    let live: Vec<_> = intraday.views().iter().filter(|v| v.has_feature(feature)).cloned().collect();
    // A feature in both kinds of view (`close`): the entity says which, an `EXCHANGE:SYMBOL`
    // instrument or a BSE scrip code / symbol / ISIN; the daily views are looked at only when
    // the entity is not an instrument.
    if let [one] = live.as_slice()
        && bhavstore_intraday::input::valid_instrument(entity_id)
    {
        return Ok(Some(Arc::clone(one)));
    }
    let daily: Vec<String> =
        snap.view_names().into_iter().filter(|n| snap.view(n).is_some_and(|v| v.has_feature(feature))).collect();
    match (live.as_slice(), daily.is_empty()) {
        ([], _) | ([_], false) => Ok(None),
        ([one], true) => Ok(Some(Arc::clone(one))),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ambiguous_feature",
            format!(
                "feature {feature:?} is in {}; say which with feature_view",
                daily
                    .iter()
                    .cloned()
                    .chain(live.iter().map(|v| v.name().to_string()))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )),
    }
}

/// The newest value of a streaming view whose bar had ended at `at`.
fn live_value(
    view: &bhavstore_intraday::LiveView,
    entity_id: &str,
    feature: &str,
    at: DateTime<Utc>,
) -> Result<bhavstore_intraday::LiveValue, ApiError> {
    use bhavstore_intraday::LookupError as L;
    view.lookup(entity_id, feature, at.timestamp_micros()).map_err(|e| {
        let code = match &e {
            L::UnknownFeature { .. } => "unknown_feature",
            L::UnknownEntity(_) => "unknown_entity",
            L::NoValue { .. } => "no_value",
            L::Stale { .. } => "stale_value",
        };
        ApiError::new(StatusCode::NOT_FOUND, code, e.to_string())
    })
}

/// A lookup in a streaming view.
fn live_lookup(
    view: &bhavstore_intraday::LiveView,
    entity_id: &str,
    feature: &str,
    at: DateTime<Utc>,
) -> Result<Json_, ApiError> {
    let v = live_value(view, entity_id, feature, at)?;
    Ok(json!({
        "entity_id": entity_id,
        "feature_name": feature,
        "value": v.value,
        "timestamp": bhavstore_intraday::live::rfc3339(v.ts),
        "known_at": bhavstore_intraday::live::rfc3339(v.known_at),
        "trade_date": bhavstore_lake::from_days(v.trade_date).to_string(),
        "feature_view": view.name(),
        "version": view.version(),
        "live": true,
    }))
}

/// A batch lookup in a streaming view: every feature of every instrument as of `at`.
fn live_batch(
    state: &AppState,
    view: &bhavstore_intraday::LiveView,
    req: &BatchRequest,
    at: DateTime<Utc>,
) -> Result<Json_, ApiError> {
    if let Some(f) = req.feature_names.iter().find(|f| !view.has_feature(f)) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_feature",
            format!("feature view {:?} has no feature {f:?}", view.name()),
        ));
    }
    let mut results = Vec::with_capacity(req.entity_ids.len());
    for raw in &req.entity_ids {
        let id = entity_text(raw)?;
        let features: Result<serde_json::Map<String, Json_>, ApiError> = req
            .feature_names
            .iter()
            .map(|f| {
                let v = live_value(view, &id, f, at)?;
                let (ts, known_at) =
                    (bhavstore_intraday::live::rfc3339(v.ts), bhavstore_intraday::live::rfc3339(v.known_at));
                Ok((f.clone(), json!({"value": v.value, "timestamp": ts, "known_at": known_at})))
            })
            .collect();
        results.push(match features {
            Ok(features) => json!({"entity_id": id, "features": features}),
            Err(e) => json!({"entity_id": id, "error": e.code()}),
        });
    }
    Metrics::inc(&state.metrics.lookups_ok, results.len() as u64);
    Ok(
        json!({"feature_view": view.name(), "version": view.version(), "timestamp": rfc3339(at), "results": results, "live": true}),
    )
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `GET /feature-store/lookup`.
pub(super) async fn lookup(
    State(state): State<Arc<AppState>>,
    query: Result<Query<LookupRequest>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<Json<Json_>, ApiError> {
    let started = Instant::now();
    let result = lookup_inner(&state, query, &body);
    let m = &state.metrics;
    Metrics::inc(if result.is_ok() { &m.lookups_ok } else { &m.lookups_refused }, 1);
    Metrics::inc(&m.lookup_micros, u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    result.map(Json)
}

fn lookup_inner(
    state: &AppState,
    query: Result<Query<LookupRequest>, axum::extract::rejection::QueryRejection>,
    body: &Bytes,
) -> Result<Json_, ApiError> {
    let query = query.map_err(|e| ApiError::bad_request(e.body_text()))?.0;
    let req = if query.entity_id.is_none() && query.feature_name.is_none() && !body.is_empty() {
        serde_json::from_slice::<LookupRequest>(body).map_err(|e| ApiError::bad_request(format!("JSON body: {e}")))?
    } else {
        query
    };
    let entity_raw = req.entity_id.as_ref().ok_or_else(|| ApiError::bad_request("entity_id is required"))?;
    let entity_id = entity_text(entity_raw)?;
    let feature =
        feature_text(req.feature_name.as_deref().ok_or_else(|| ApiError::bad_request("feature_name is required"))?)?;
    let at = parse_time(req.timestamp.as_deref())?;
    let rule = parse_rule(req.rule.as_deref())?;
    // One publication for the whole answer, the one SQL clients see at this moment.
    let snap = state.online.snapshot();
    if let Some(live) = live_view_for(state, &snap, req.feature_view.as_deref(), feature, &entity_id)? {
        return live_lookup(&live, &entity_id, feature, at);
    }
    let view = view_for(&snap, req.feature_view.as_deref(), feature)?;
    let entity =
        snap.resolve(&entity_id).ok_or_else(|| bhavstore_online::LookupError::UnknownEntity(entity_id.clone()))?;
    let v = view.lookup_as_of(entity, feature, snap.as_of(at, rule))?;
    Ok(json!({
        "entity_id": entity_id,
        "feature_name": feature,
        "value": v.value,
        "timestamp": rfc3339(v.event_time),
        "trade_date": v.trade_date.to_string(),
        "available_at": rfc3339(snap.available_at(v.trade_date)),
        "rule": rule.as_str(),
        "feature_view": view.name(),
        "version": view.version(),
    }))
}

/// A batch lookup.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchRequest {
    /// Scrip codes, symbols or ISINs.
    pub entity_ids: Vec<Json_>,
    /// Features (all from one view, or name `feature_view`).
    pub feature_names: Vec<String>,
    /// RFC 3339; default now.
    pub timestamp: Option<String>,
    /// The view.
    pub feature_view: Option<String>,
    /// `available` (default) or `close`, as for one lookup.
    pub rule: Option<String>,
}

/// `POST /feature-store/lookup/batch`: every requested feature of every entity as of one time.
/// A problem with one entity is reported in its entry; the request as a whole succeeds.
pub(super) async fn batch(
    State(state): State<Arc<AppState>>,
    body: Result<Json<BatchRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Json_>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if req.entity_ids.is_empty() || req.feature_names.is_empty() {
        return Err(ApiError::bad_request("entity_ids and feature_names must not be empty"));
    }
    // Every entry is checked before anything is looked up, as `/openapi.json` describes them.
    for id in &req.entity_ids {
        entity_text(id)?;
    }
    for f in &req.feature_names {
        feature_text(f)?;
    }
    if req.entity_ids.len().saturating_mul(req.feature_names.len()) > MAX_BATCH_VALUES {
        return Err(ApiError::bad_request(format!("at most {MAX_BATCH_VALUES} entity × feature values per request")));
    }
    let at = parse_time(req.timestamp.as_deref())?;
    let rule = parse_rule(req.rule.as_deref())?;
    let snap = state.online.snapshot();
    let as_of = snap.as_of(at, rule);
    let first = req.entity_ids.first().map(entity_text).transpose()?.unwrap_or_default();
    if let Some(live) = live_view_for(&state, &snap, req.feature_view.as_deref(), &req.feature_names[0], &first)? {
        return live_batch(&state, &live, &req, at).map(Json);
    }
    let view = view_for(&snap, req.feature_view.as_deref(), &req.feature_names[0])?;
    if let Some(f) = req.feature_names.iter().find(|f| !view.has_feature(f)) {
        return Err(
            bhavstore_online::LookupError::UnknownFeature { view: view.name().into(), feature: f.clone() }.into()
        );
    }
    let mut results = Vec::with_capacity(req.entity_ids.len());
    for raw in &req.entity_ids {
        let id = entity_text(raw)?;
        let entry = match snap.resolve(&id) {
            None => {
                json!({"entity_id": id, "error": ApiError::from(bhavstore_online::LookupError::UnknownEntity(id.clone())).code()})
            }
            Some(entity) => {
                let mut features = serde_json::Map::new();
                let mut error = None;
                for f in &req.feature_names {
                    match view.lookup_as_of(entity, f, as_of) {
                        Ok(v) => {
                            features.insert(f.clone(), json!({"value": v.value, "timestamp": rfc3339(v.event_time)}));
                        }
                        Err(e) => {
                            error = Some(ApiError::from(e));
                            break;
                        }
                    }
                }
                match error {
                    Some(e) => json!({"entity_id": id, "error": e.code()}),
                    None => json!({"entity_id": id, "features": features}),
                }
            }
        };
        results.push(entry);
    }
    Metrics::inc(&state.metrics.lookups_ok, results.len() as u64);
    Ok(Json(json!({
        "feature_view": view.name(),
        "version": view.version(),
        "timestamp": rfc3339(at),
        "rule": rule.as_str(),
        "results": results,
    })))
}
