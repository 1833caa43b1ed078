//! Request IDs: keep a sane incoming `X-Request-ID` or make one, return it, log it (SPEC §6).
//!
//! [`RequestIdLayer`] looks at the request's `X-Request-ID`:
//!
//! - kept when it is 1 to 128 characters of `[A-Za-z0-9._-]` ([`RequestId::parse`]): enough for
//!   UUIDs, ULIDs and the ids proxies and tracing systems generate, and nothing that could
//!   break a log line, a header or an HTML page it ends up in;
//! - replaced by a fresh UUIDv7 otherwise (too long, other characters, several headers), and
//!   made when absent. Version 7 sorts by creation time, which helps when reading logs.
//!
//! The id then goes:
//!
//! - into the request's headers (the validated value, so inner code never sees the bad one);
//! - into the request's extensions as a [`RequestId`] (handlers: `Extension<RequestId>`), and as
//!   a [`tower_http::request_id::RequestId`] for tower-http middleware that looks for it;
//! - onto the response's `X-Request-ID` header, whatever produced the response.
//!
//! tower-http's `SetRequestIdLayer` is not used: it keeps any incoming id unvalidated
//! (`<script>` is echoed back), and validating in front of it would take a second layer for
//! what is one concern; this module does the three steps in one service.
//!
//! # Logging the id
//!
//! Put this layer **outside** (before, in a `ServiceBuilder`) `tower_http::trace::TraceLayer`,
//! so the id is in the extensions when the span is made. [`RequestSpan`] is a ready
//! `make_span_with` that records it on the span, so every event of the request carries
//! `request_id` (with `tracing_subscriber`'s JSON format, each line lists its spans' fields):
//!
//! ```
//! use palisade::request_id::{RequestIdLayer, RequestSpan};
//! use tower::ServiceBuilder;
//! use tower_http::trace::TraceLayer;
//!
//! let layers = ServiceBuilder::new()
//!     .layer(RequestIdLayer::new())
//!     .layer(TraceLayer::new_for_http().make_span_with(RequestSpan));
//! # let _ = layers;
//! ```
//!
//! A span of one's own reads the id the same way:
//!
//! ```
//! use palisade::request_id::RequestId;
//! use http::Request;
//!
//! fn make_span<B>(req: &Request<B>) -> tracing::Span {
//!     let id = req.extensions().get::<RequestId>().map(RequestId::as_str).unwrap_or("-");
//!     tracing::info_span!("request", method = %req.method(), path = req.uri().path(), request_id = id)
//! }
//! # let _ = make_span::<()>;
//! ```
//!
//! # Examples
//!
//! ```
//! use palisade::request_id::{RequestId, RequestIdLayer};
//! use tower::{Layer, ServiceExt, service_fn};
//! use http::{Request, Response};
//! use axum::body::Body;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let svc = RequestIdLayer::new().layer(service_fn(|req: Request<Body>| async move {
//!     let id = req.extensions().get::<RequestId>().expect("set by the layer").clone();
//!     Ok::<_, std::convert::Infallible>(Response::new(Body::from(id.as_str().to_owned())))
//! }));
//!
//! let req = Request::builder().header("x-request-id", "abc-123").body(Body::empty())?;
//! let res = svc.clone().oneshot(req).await?;
//! assert_eq!(res.headers()["x-request-id"], "abc-123");
//!
//! let req = Request::builder().header("x-request-id", "<script>").body(Body::empty())?;
//! let res = svc.oneshot(req).await?;
//! assert_ne!(res.headers()["x-request-id"], "<script>");
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// The header carrying the id, `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id that is kept.
pub const MAX_LEN: usize = 128;

/// A validated request id: 1 to [`MAX_LEN`] characters of `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Validates an incoming id; `None` when it must be replaced.
    ///
    /// # Examples
    ///
    /// ```
    /// use palisade::request_id::RequestId;
    /// assert!(RequestId::parse("0190a6f4-9c1e-7b1a-9f6e-1d2c3b4a5f60").is_some());
    /// assert!(RequestId::parse("").is_none());
    /// assert!(RequestId::parse("a b").is_none());
    /// assert!(RequestId::parse(&"a".repeat(129)).is_none());
    /// ```
    pub fn parse(id: &str) -> Option<Self> {
        Self::from_bytes(id.as_bytes())
    }

    fn from_bytes(id: &[u8]) -> Option<Self> {
        let sane = (1..=MAX_LEN).contains(&id.len())
            && id
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !sane {
            return None;
        }
        HeaderValue::from_bytes(id).ok().map(Self)
    }

    /// A fresh id: a hyphenated UUIDv7.
    pub fn generate() -> Self {
        let id = uuid::Uuid::now_v7();
        let mut buf = uuid::Uuid::encode_buffer();
        // A hyphenated UUID is 36 ASCII hex digits and hyphens: always a valid header value.
        Self(
            HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)).unwrap_or_else(|_| {
                HeaderValue::from_static("00000000-0000-0000-0000-000000000000")
            }),
        )
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        // Only ASCII was accepted, so this never falls back.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Validates, generates, stores and returns request ids; see the [module docs](self).
#[derive(Clone, Debug)]
#[must_use]
pub struct RequestIdLayer {
    header: HeaderName,
}

impl Default for RequestIdLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestIdLayer {
    /// Uses the `X-Request-ID` header.
    pub fn new() -> Self {
        Self {
            header: X_REQUEST_ID,
        }
    }

    /// Uses another header (e.g. `x-correlation-id`).
    pub fn header_name(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = SetRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId {
            inner,
            header: self.header.clone(),
        }
    }
}

/// The service made by [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct SetRequestId<S> {
    inner: S,
    header: HeaderName,
}

impl<S> SetRequestId<S> {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SetRequestId<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let mut incoming = req.headers().get_all(&self.header).iter();
        // Several ids are as bad as a malformed one: which would be "the" id?
        let kept = match (incoming.next(), incoming.next()) {
            (Some(value), None) => RequestId::from_bytes(value.as_bytes()),
            _ => None,
        };
        let id = kept.unwrap_or_else(RequestId::generate);
        req.headers_mut()
            .insert(self.header.clone(), id.header_value().clone());
        req.extensions_mut()
            .insert(tower_http::request_id::RequestId::new(
                id.header_value().clone(),
            ));
        req.extensions_mut().insert(id.clone());
        ResponseFuture {
            inner: self.inner.call(req),
            header: self.header.clone(),
            id,
        }
    }
}

pin_project! {
    /// The response future of [`SetRequestId`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        header: HeaderName,
        id: RequestId,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        res.headers_mut()
            .insert(this.header.clone(), this.id.header_value().clone());
        Poll::Ready(Ok(res))
    }
}

/// A `make_span_with` for `tower_http::trace::TraceLayer`: an `INFO` span named `request` with
/// `method`, `path` (never the query string, which may hold secrets) and `request_id`.
///
/// Two more fields are declared empty, for inner layers to fill with
/// `tracing::Span::current().record(..)`: `client_ip` and `user_id`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestSpan;

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> tracing::Span {
        let id = req
            .extensions()
            .get::<RequestId>()
            .map(RequestId::as_str)
            .unwrap_or("-");
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = req.uri().path(),
            request_id = id,
            client_ip = tracing::field::Empty,
            user_id = tracing::field::Empty,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_ids() {
        let id = RequestId::generate();
        assert_eq!(id.as_str().len(), 36);
        assert_eq!(RequestId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn only_the_safe_alphabet_is_kept() {
        assert!(RequestId::parse("A-z_0.9").is_some());
        assert!(RequestId::parse(&"x".repeat(MAX_LEN)).is_some());
        for bad in ["", "a/b", "a%20b", "é", "a\tb", "<script>", "a:b"] {
            assert!(RequestId::parse(bad).is_none(), "{bad:?}");
        }
    }
}
