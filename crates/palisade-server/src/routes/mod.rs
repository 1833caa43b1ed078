//! The API of SPEC §3: one module per group of routes, merged here.

mod auth;
mod data;
mod extract;
mod health;
mod protected;

use axum::Router;
use palisade::rate_limit::{RateLimitLayer, RateLimiter};

pub use extract::{CurrentUser, MaybeUser};

use crate::config::RateLimitSettings;
use crate::state::AppState;

/// Every route of the API, each behind its rate-limit policy.
pub fn router(limited: &Limited<'_>) -> Router<AppState> {
    Router::new()
        .merge(health::router(limited))
        .merge(auth::router(limited))
        .merge(protected::router(limited))
        .merge(data::router(limited))
}

/// The shared limiter and the configured policies, handing out one layer per route.
#[derive(Debug, Clone, Copy)]
pub struct Limited<'a> {
    limiter: &'a RateLimiter,
    settings: &'a RateLimitSettings,
}

impl<'a> Limited<'a> {
    /// Wraps the limiter and the policies.
    pub fn new(limiter: &'a RateLimiter, settings: &'a RateLimitSettings) -> Self {
        Self { limiter, settings }
    }

    /// The layer enforcing policy `name`, one of [`crate::config::ROUTES`].
    fn layer(&self, name: &str) -> RateLimitLayer {
        let policy = self
            .settings
            .policy(name)
            .unwrap_or_else(|| panic!("route policy {name} is not in config::ROUTES"));
        self.limiter.layer(policy.clone())
    }
}
