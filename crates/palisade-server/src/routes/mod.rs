//! The API of SPEC §3: one module per group of routes, merged here.

mod auth;
mod data;
mod extract;
mod health;
mod protected;

use axum::Router;

pub use extract::{CurrentUser, MaybeUser};

use crate::state::AppState;

/// Every route of the API.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(protected::router())
        .merge(data::router())
}
