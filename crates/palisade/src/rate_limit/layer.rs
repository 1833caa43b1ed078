//! [`RateLimitLayer`]: one per route (or group of routes), sharing one [`RateLimiter`].

use std::sync::Arc;

use tower::Layer;

use super::limiter::RateLimiter;
use super::policy::Policy;
use super::service::RateLimit;

/// Enforces one [`Policy`] with a shared [`RateLimiter`]. See the [module docs](super).
#[derive(Debug, Clone)]
#[must_use]
pub struct RateLimitLayer {
    limiter: RateLimiter,
    policy: Arc<Policy>,
}

impl RateLimitLayer {
    /// A layer enforcing `policy` with `limiter` (also [`RateLimiter::layer`]).
    pub fn new(limiter: RateLimiter, policy: Policy) -> Self {
        Self {
            limiter,
            policy: Arc::new(policy),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.limiter.clone(), Arc::clone(&self.policy))
    }
}
