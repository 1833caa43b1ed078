//! `GET /` and `GET /health`.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::state::AppState;

pub(super) fn router(limited: &super::Limited<'_>) -> Router<AppState> {
    Router::new()
        .route("/", get(root).route_layer(limited.layer("root")))
        .route("/health", get(health).route_layer(limited.layer("health")))
}

async fn root() -> Json<Value> {
    Json(json!({ "message": "Welcome to Palisade", "status": "healthy" }))
}

/// Liveness: the process answers. The timestamp is the real time (the tutorial's was a constant).
async fn health() -> Json<Value> {
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    Json(json!({ "status": "healthy", "timestamp": now }))
}
