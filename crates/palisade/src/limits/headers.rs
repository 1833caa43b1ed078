//! Header count and size limit answering 431 JSON.

use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::future::Either;
use http::{Request, Response};
use tower::{Layer, Service};

use super::{LimitExceeded, LimitsError};

/// Answers 431 `{"detail": "Request header fields too large"}` (RFC 6585 §5) to requests with
/// more than `max_count` header fields or more than `max_bytes` of them, counted as on the
/// HTTP/1.1 wire (`name: value\r\n`); see the [module docs](super).
///
/// hyper has hard limits of its own (100 fields and a ~400 KiB read buffer for HTTP/1.1) and
/// answers a bare 431 past them, before any middleware runs; keep these limits below hyper's so
/// that clients get the JSON answer.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct HeaderLimitLayer {
    max_count: usize,
    max_bytes: usize,
}

impl HeaderLimitLayer {
    /// At most `max_count` header fields and `max_bytes` bytes of them.
    ///
    /// # Errors
    ///
    /// [`LimitsError::Zero`] for a zero limit.
    pub fn new(max_count: usize, max_bytes: usize) -> Result<Self, LimitsError> {
        if max_count == 0 {
            return Err(LimitsError::Zero("max_header_count"));
        }
        if max_bytes == 0 {
            return Err(LimitsError::Zero("max_header_bytes"));
        }
        Ok(Self {
            max_count,
            max_bytes,
        })
    }
}

impl<S> Layer<S> for HeaderLimitLayer {
    type Service = HeaderLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HeaderLimit {
            inner,
            limits: *self,
        }
    }
}

/// The service made by [`HeaderLimitLayer`].
#[derive(Clone, Debug)]
pub struct HeaderLimit<S> {
    inner: S,
    limits: HeaderLimitLayer,
}

impl<S> HeaderLimit<S> {
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

impl<S, ReqBody> Service<Request<ReqBody>> for HeaderLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<std::future::Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let headers = req.headers();
        let bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        // `HeaderMap::len` counts every value, repeated names included.
        if headers.len() > self.limits.max_count || bytes > self.limits.max_bytes {
            tracing::debug!(
                count = headers.len(),
                bytes,
                "request refused: header fields too large"
            );
            return Either::Left(std::future::ready(Ok(
                LimitExceeded::HeadersTooLarge.into_response()
            )));
        }
        Either::Right(self.inner.call(req))
    }
}
