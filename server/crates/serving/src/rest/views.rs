//! `GET /feature-store/views`: the feature views this server defines, whether or not they have
//! been materialized yet: entity, event time, features, the version of the definition, and the
//! streaming (intraday) views. Clients list views here instead of inferring them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::serve::AppState;

/// The defined views, in name order.
pub(super) async fn views(State(state): State<Arc<AppState>>) -> Json<Value> {
    let streaming = state.streaming_views();
    let mut views: Vec<Value> = state
        .materializer
        .views()
        .iter()
        .map(|p| {
            let s = &p.view.spec;
            json!({
                "name": s.name,
                "description": s.description,
                "entity": s.entity,
                "event_time": s.event_time,
                "ttl": s.ttl,
                "owner": s.owner,
                "tags": s.tags,
                "features": s.features.iter().map(|f| json!({"name": f.name, "description": f.description})).collect::<Vec<_>>(),
                "version": p.version.id,
                "definition_hash": p.version.definition_hash,
                "streaming": streaming.contains(&s.name),
            })
        })
        .collect();
    views.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(json!({"views": views, "streaming_views": streaming}))
}
