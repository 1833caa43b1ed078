//! Request body size limit answering 413 JSON.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::Body as HttpBody;
use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};

use super::{LimitExceeded, LimitsError};

/// Limits request bodies to a number of bytes; see the [module docs](super).
///
/// A body announced larger (by `Content-Length`, or the body's own size hint) is refused before
/// the inner service runs. Any other body is wrapped in [`http_body_util::Limited`], so reading
/// past the limit fails inside the handler's extractor; axum turns that failure into a plain-text
/// 413, which this layer rewrites as 413 JSON on the way out.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct BodyLimitLayer {
    limit: usize,
}

impl BodyLimitLayer {
    /// At most `limit` bytes of body.
    ///
    /// # Errors
    ///
    /// [`LimitsError::Zero`] for a zero limit.
    pub fn new(limit: usize) -> Result<Self, LimitsError> {
        if limit == 0 {
            return Err(LimitsError::Zero("max_body_bytes"));
        }
        Ok(Self { limit })
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit {
            inner,
            limit: self.limit,
        }
    }
}

/// The service made by [`BodyLimitLayer`].
#[derive(Clone, Debug)]
pub struct BodyLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> BodyLimit<S> {
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

impl<S, ReqBody> Service<Request<ReqBody>> for BodyLimit<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    ReqBody: HttpBody<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let limit = self.limit as u64;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) || req.body().size_hint().lower() > limit {
            return ResponseFuture {
                state: State::Rejected {
                    response: Some(LimitExceeded::BodyTooLarge.into_response()),
                },
            };
        }
        let limit = self.limit;
        let req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(req),
            },
        }
    }
}

pin_project! {
    /// The response future of [`BodyLimit`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Rejected { response: Option<Response<Body>> },
        Inner { #[pin] future: F },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| LimitExceeded::BodyTooLarge.into_response()))),
            StateProj::Inner { future } => {
                let res = std::task::ready!(future.poll(cx))?;
                Poll::Ready(Ok(json_413(res)))
            }
        }
    }
}

/// axum's extractors answer a body over the limit with a plain-text 413
/// (`Failed to buffer the request body: length limit exceeded`); every error here is JSON
/// (SPEC §3), so a 413 that is not JSON yet is replaced.
fn json_413(res: Response<Body>) -> Response<Body> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return LimitExceeded::BodyTooLarge.into_response();
    }
    res
}
