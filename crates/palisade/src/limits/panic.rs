//! Panics → 500 JSON, and tower's `BoxError`s → JSON.

use std::any::Any;

use axum::body::Body;
use http::{Response, StatusCode};
use tower::BoxError;
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};

use super::LimitExceeded;
use crate::error_response;

/// The [`ResponseForPanic`] of [`catch_panic`]: logs the panic message at `ERROR` and answers
/// 500 `{"detail": "Internal Server Error"}`. The message never reaches the client: it may
/// hold anything (SQL, paths, secrets).
#[derive(Clone, Copy, Debug, Default)]
pub struct PanicResponse;

impl ResponseForPanic for PanicResponse {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, err: Box<dyn Any + Send + 'static>) -> Response<Body> {
        let message = err
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| err.downcast_ref::<&str>().copied())
            .unwrap_or("<non-string panic payload>");
        // `?` escapes newlines: a panic message cannot forge log lines.
        tracing::error!(panic = ?message, "handler panicked");
        LimitExceeded::Panicked.into_response()
    }
}

/// tower-http's `CatchPanicLayer` answering with [`PanicResponse`].
///
/// Its responses have a boxed body (`UnsyncBoxBody`); [`HardeningLayer`](super::HardeningLayer)
/// includes it and turns the body back into axum's `Body`.
///
/// # Examples
///
/// ```
/// use tower::{Layer, ServiceExt, service_fn};
/// use http::{Request, Response};
/// use axum::body::Body;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let svc = palisade::limits::catch_panic().layer(service_fn(|_req: Request<Body>| async {
///     if true { panic!("secret detail") }
///     Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
/// }));
/// let res = svc.oneshot(Request::new(Body::empty())).await?;
/// assert_eq!(res.status(), 500);
/// # Ok(()) }
/// ```
pub fn catch_panic() -> CatchPanicLayer<PanicResponse> {
    CatchPanicLayer::custom(PanicResponse)
}

/// Maps the `BoxError`s of tower's own middleware to JSON responses, for
/// `axum::error_handling::HandleErrorLayer::new(palisade::limits::handle_error)` in front of
/// `tower::timeout::TimeoutLayer`, `tower::load_shed::LoadShedLayer` and the like:
///
/// - `tower::load_shed::error::Overloaded` → 503 with `Retry-After: 1`;
/// - `tower::timeout::error::Elapsed` → 503 `Request timed out`;
/// - anything else → 500 `Internal Server Error` (logged, never sent).
///
/// The layers of this module do not need it: they answer with responses, never errors.
///
/// # Examples
///
/// ```
/// use tower::BoxError;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
/// let res = palisade::limits::handle_error(err).await;
/// assert_eq!(res.status(), 503);
/// assert_eq!(res.headers()["retry-after"], "1");
/// # }
/// ```
pub async fn handle_error(err: BoxError) -> Response<Body> {
    if err.is::<tower::load_shed::error::Overloaded>() {
        return LimitExceeded::overloaded(&http::HeaderValue::from_static("1"));
    }
    if err.is::<tower::timeout::error::Elapsed>() {
        return LimitExceeded::Timeout.into_response();
    }
    tracing::error!(error = %err, "unhandled middleware error");
    error_response::detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}
