//! `GET /protected` and `GET /user/profile`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::CurrentUser;
use crate::error::{ApiError, Result};
use crate::state::AppState;

pub(super) fn router(limited: &super::Limited<'_>) -> Router<AppState> {
    Router::new()
        .route(
            "/protected",
            get(protected).route_layer(limited.layer("protected")),
        )
        .route(
            "/user/profile",
            get(profile).route_layer(limited.layer("profile")),
        )
}

async fn protected(CurrentUser(user): CurrentUser) -> Json<Value> {
    Json(json!({
        "message": "This is a protected route",
        "user": user.username,
        "user_id": user.user_id,
    }))
}

async fn profile(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Value>> {
    // A valid token for a user that is not in this database (e.g. a tutorial token minted for a
    // user who never migrated) authenticates nobody.
    let unknown = || ApiError::Unauthorized("Could not validate credentials");
    let id: i64 = user.user_id.parse().map_err(|_| unknown())?;
    let found = state
        .users
        .find_by_id(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(unknown)?;
    Ok(Json(json!({
        "username": found.username,
        "email": found.email,
        "user_id": found.id.to_string(),
    })))
}
