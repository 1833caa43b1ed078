//! Request timeout answering JSON (503 by default).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::{LimitExceeded, LimitsError};

/// Answers `{"detail": "Request timed out"}` when the inner service has not produced a response
/// within the timeout; see the [module docs](super).
///
/// The default status is **503**: the server, not the client, was too slow. 408 means the
/// *client* did not finish sending its request in time (RFC 9110 §15.5.9) and makes some clients
/// retry blindly; it can still be chosen with [`status`](Self::status), as can 504.
/// The clock covers reading the request body inside the handler too, so a client trickling its
/// body is cut off as well.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct RequestTimeoutLayer {
    timeout: Duration,
    status: StatusCode,
}

impl RequestTimeoutLayer {
    /// Times requests out after `timeout`.
    ///
    /// # Errors
    ///
    /// [`LimitsError::Zero`] for a zero timeout.
    pub fn new(timeout: Duration) -> Result<Self, LimitsError> {
        if timeout.is_zero() {
            return Err(LimitsError::Zero("timeout"));
        }
        Ok(Self {
            timeout,
            status: StatusCode::SERVICE_UNAVAILABLE,
        })
    }

    /// Answers timeouts with `status`: 408, 503 or 504.
    ///
    /// # Errors
    ///
    /// [`LimitsError::TimeoutStatus`] for any other status.
    pub fn status(mut self, status: StatusCode) -> Result<Self, LimitsError> {
        check_timeout_status(status)?;
        self.status = status;
        Ok(self)
    }
}

pub(super) fn check_timeout_status(status: StatusCode) -> Result<(), LimitsError> {
    match status {
        StatusCode::REQUEST_TIMEOUT
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Ok(()),
        other => Err(LimitsError::TimeoutStatus(other.as_u16())),
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            timeout: self.timeout,
            status: self.status,
        }
    }
}

/// The service made by [`RequestTimeoutLayer`].
#[derive(Clone, Debug)]
pub struct RequestTimeout<S> {
    inner: S,
    timeout: Duration,
    status: StatusCode,
}

impl<S> RequestTimeout<S> {
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

impl<S, ReqBody> Service<Request<ReqBody>> for RequestTimeout<S>
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
        ResponseFuture {
            inner: self.inner.call(req),
            sleep: tokio::time::sleep(self.timeout),
            status: self.status,
        }
    }
}

pin_project! {
    /// The response future of [`RequestTimeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        status: StatusCode,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(res) = this.inner.poll(cx) {
            return Poll::Ready(res);
        }
        std::task::ready!(this.sleep.poll(cx));
        // Dropping this future drops the inner one: the handler is cancelled.
        tracing::warn!("request timed out");
        Poll::Ready(Ok(LimitExceeded::Timeout.response_with_status(*this.status)))
    }
}
