//! The whole hardening stack in one layer.

use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use futures_util::TryFutureExt;
use futures_util::future::MapOk;
use http::{Request, Response};
use tower::{BoxError, Layer, Service};
use tower_http::body::UnsyncBoxBody;
use tower_http::catch_panic::CatchPanic;

use super::{
    BodyLimit, BodyLimitLayer, HeaderLimit, HeaderLimitLayer, LimitsConfig, LimitsError,
    MaxConcurrency, MaxConcurrencyLayer, PanicResponse, RequestTimeout, RequestTimeoutLayer,
};

/// The services [`HardeningLayer`] stacks around `S`, outermost first.
pub type HardeningStack<S> =
    CatchPanic<HeaderLimit<RequestTimeout<MaxConcurrency<BodyLimit<S>>>>, PanicResponse>;

/// Every limit of this module in one layer, built from a [`LimitsConfig`]; outermost first:
///
/// 1. [`catch_panic`](super::catch_panic): a panic anywhere inside becomes 500 JSON;
/// 2. [`HeaderLimitLayer`]: 431 before any work is done;
/// 3. [`RequestTimeoutLayer`]: the clock covers waiting for the inner layers and the handler,
///    body reading included;
/// 4. [`MaxConcurrencyLayer`]: 503 + `Retry-After` when full (one limit shared by every service
///    this layer makes);
/// 5. [`BodyLimitLayer`]: 413 for announced oversize bodies, a `Limited` body otherwise.
///
/// Responses come out with axum's [`Body`].
///
/// # Examples
///
/// ```
/// use palisade::limits::{HardeningLayer, LimitsConfig};
/// use tower::{Layer, ServiceExt, service_fn};
/// use http::{Request, Response, StatusCode};
/// use axum::body::Body;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = HardeningLayer::new(&LimitsConfig { max_body_bytes: 4, ..Default::default() })?;
/// let svc = layer.layer(service_fn(|_req: Request<Body>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
/// }));
/// let req = Request::builder().header("content-length", "5").body(Body::from("12345"))?;
/// assert_eq!(svc.oneshot(req).await?.status(), StatusCode::PAYLOAD_TOO_LARGE);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct HardeningLayer {
    body: BodyLimitLayer,
    headers: HeaderLimitLayer,
    timeout: RequestTimeoutLayer,
    concurrency: MaxConcurrencyLayer,
}

impl HardeningLayer {
    /// Checks `config` and builds the layer.
    ///
    /// # Errors
    ///
    /// The first bad setting.
    pub fn new(config: &LimitsConfig) -> Result<Self, LimitsError> {
        Ok(Self {
            body: BodyLimitLayer::new(config.max_body_bytes)?,
            headers: HeaderLimitLayer::new(config.max_header_count, config.max_header_bytes)?,
            timeout: RequestTimeoutLayer::new(config.timeout)?.status(config.timeout_status)?,
            concurrency: MaxConcurrencyLayer::new(config.max_concurrent_requests)?
                .retry_after(config.retry_after),
        })
    }

    /// The concurrency limiter, e.g. to export [`in_flight`](MaxConcurrencyLayer::in_flight)
    /// as a metric.
    pub fn concurrency(&self) -> &MaxConcurrencyLayer {
        &self.concurrency
    }
}

impl<S> Layer<S> for HardeningLayer {
    type Service = Hardened<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.body.layer(inner);
        let inner = self.concurrency.layer(inner);
        let inner = self.timeout.layer(inner);
        let inner = self.headers.layer(inner);
        Hardened {
            inner: super::catch_panic().layer(inner),
        }
    }
}

/// The service made by [`HardeningLayer`].
#[derive(Clone, Debug)]
pub struct Hardened<S> {
    inner: HardeningStack<S>,
}

type BoxedResponse = Response<UnsyncBoxBody<Bytes, BoxError>>;

fn into_axum_body(res: BoxedResponse) -> Response<Body> {
    res.map(Body::new)
}

impl<S, ReqBody> Service<Request<ReqBody>> for Hardened<S>
where
    HardeningStack<S>: Service<Request<ReqBody>, Response = BoxedResponse>,
{
    type Response = Response<Body>;
    type Error = <HardeningStack<S> as Service<Request<ReqBody>>>::Error;
    type Future = MapOk<
        <HardeningStack<S> as Service<Request<ReqBody>>>::Future,
        fn(BoxedResponse) -> Response<Body>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        self.inner
            .call(req)
            .map_ok(into_axum_body as fn(BoxedResponse) -> Response<Body>)
    }
}
