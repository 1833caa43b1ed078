//! The service of [`RateLimitLayer`](super::RateLimitLayer).

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::FutureExt;
use http::{Request, Response};
use tower::Service;

use super::future::ResponseFuture;
use super::identity::Identity;
use super::limiter::RateLimiter;
use super::policy::Policy;

/// Checks each request against a policy before calling the inner service; rejects with a
/// response (429, or 503 in closed failure mode), never with an error.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: RateLimiter,
    policy: Arc<Policy>,
}

impl<S> RateLimit<S> {
    pub(crate) fn new(inner: S, limiter: RateLimiter, policy: Arc<Policy>) -> Self {
        Self {
            inner,
            limiter,
            policy,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let identity = Identity::from_request(&req, self.limiter.client_ip_config());
        // The service that was polled ready goes into the future; a fresh clone stays here
        // (tower-http's async_require_authorization does the same).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        let policy = Arc::clone(&self.policy);
        let check = async move { limiter.check(&policy, &identity).await }.boxed();
        ResponseFuture::new(check, inner, req, Arc::clone(&self.policy))
    }
}
