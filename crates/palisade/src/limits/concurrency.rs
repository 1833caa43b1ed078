//! A concurrency limit that sheds load with 503 JSON and `Retry-After`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::rejection::retry_after_value;
use super::{LimitExceeded, LimitsError};

/// Serves at most `max` requests at once and answers the rest **at once** with 503
/// `{"detail": "Server is overloaded, retry later"}` and `Retry-After`, instead of queueing them
/// without bound (SPEC §6); see the [module docs](super).
///
/// Unlike `tower::limit::ConcurrencyLimitLayer`, whose every `layer()` call makes a new
/// semaphore (so `Router::layer`, which layers each route separately, would give each route its
/// own limit), all services made by one `MaxConcurrencyLayer` share one limit. A slot is held
/// until the response head is ready; streaming the body afterwards does not hold it.
#[derive(Clone, Debug)]
#[must_use]
pub struct MaxConcurrencyLayer {
    semaphore: Arc<Semaphore>,
    max: usize,
    retry_after: HeaderValue,
}

impl MaxConcurrencyLayer {
    /// At most `max` requests in flight, shed requests told to retry after 1 s.
    ///
    /// # Errors
    ///
    /// [`LimitsError::Zero`] for zero, [`LimitsError::TooManyPermits`] above what a Tokio
    /// semaphore holds.
    pub fn new(max: usize) -> Result<Self, LimitsError> {
        if max == 0 {
            return Err(LimitsError::Zero("max_concurrent_requests"));
        }
        if max > Semaphore::MAX_PERMITS {
            return Err(LimitsError::TooManyPermits(max));
        }
        Ok(Self {
            semaphore: Arc::new(Semaphore::new(max)),
            max,
            retry_after: HeaderValue::from_static("1"),
        })
    }

    /// The `Retry-After` sent with a 503, in whole seconds (at least 1).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = retry_after_value(after);
        self
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// How many requests are in flight now.
    pub fn in_flight(&self) -> usize {
        self.max - self.semaphore.available_permits()
    }
}

impl<S> Layer<S> for MaxConcurrencyLayer {
    type Service = MaxConcurrency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MaxConcurrency {
            inner,
            semaphore: self.semaphore.clone(),
            retry_after: self.retry_after.clone(),
        }
    }
}

/// The service made by [`MaxConcurrencyLayer`].
#[derive(Clone, Debug)]
pub struct MaxConcurrency<S> {
    inner: S,
    semaphore: Arc<Semaphore>,
    retry_after: HeaderValue,
}

impl<S> MaxConcurrency<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody> Service<Request<ReqBody>> for MaxConcurrency<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self.semaphore.clone().try_acquire_owned() {
            Ok(permit) => ResponseFuture {
                state: State::Inner {
                    future: self.inner.call(req),
                    permit: Some(permit),
                },
            },
            Err(_) => {
                tracing::warn!("request shed: concurrency limit reached");
                ResponseFuture {
                    state: State::Shed {
                        response: Some(LimitExceeded::overloaded(&self.retry_after)),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`MaxConcurrency`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Shed { response: Option<Response<Body>> },
        Inner { #[pin] future: F, permit: Option<OwnedSemaphorePermit> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Shed { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| LimitExceeded::Overloaded.into_response()))),
            StateProj::Inner { future, permit } => {
                let res = std::task::ready!(future.poll(cx));
                // Free the slot as soon as the response head is ready.
                permit.take();
                Poll::Ready(res)
            }
        }
    }
}
