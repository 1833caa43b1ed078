//! `GET /api/data`: optional authentication.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::MaybeUser;
use crate::state::AppState;

pub(super) fn router(limited: &super::Limited<'_>) -> Router<AppState> {
    Router::new().route("/api/data", get(data).route_layer(limited.layer("data")))
}

async fn data(MaybeUser(user): MaybeUser) -> Json<Value> {
    Json(match user {
        Some(user) => json!({
            "data": "Full dataset for authenticated users",
            "user": user.username,
            "premium": true,
        }),
        None => json!({ "data": "Limited public dataset", "premium": false }),
    })
}
