//! Request limits that answer with `{"detail": …}` JSON instead of bare statuses (SPEC §6).
//!
//! | Layer | Limit | Answer |
//! |---|---|---|
//! | [`BodyLimitLayer`] | body size (default 1 MiB) | 413 `Request body too large` |
//! | [`HeaderLimitLayer`] | header count / bytes (64 / 32 KiB) | 431 `Request header fields too large` |
//! | [`RequestTimeoutLayer`] | time to respond (30 s) | 503 `Request timed out` (408/504 configurable) |
//! | [`MaxConcurrencyLayer`] | requests in flight (512) | 503 `Server is overloaded, retry later` + `Retry-After` |
//! | [`catch_panic`] | panics | 500 `Internal Server Error`, nothing else |
//!
//! [`HardeningLayer`] stacks all of them from one [`LimitsConfig`]. Each layer answers with a
//! response (`Error = S::Error`), so no `HandleErrorLayer` is needed; [`handle_error`] is there
//! for services that use tower's own `TimeoutLayer`/`LoadShedLayer`, whose failures are
//! `BoxError`s. Every rejection carries a [`LimitExceeded`] in its response extensions.
//!
//! # Body limits and axum extractors
//!
//! An oversized body **without** a `Content-Length` (chunked, or HTTP/2 without one) can only be
//! noticed while it is read, which happens inside the handler's `Json`/`Bytes` extractor; axum
//! then rejects with a *plain-text* 413. [`BodyLimitLayer`] rewrites any non-JSON 413 passing
//! back through it into the JSON one, so the server needs nothing more as long as the handlers
//! sit inside this layer. Two things remain for the server:
//!
//! - axum's extractors also apply their own default limit of 2 MiB
//!   (`axum::extract::DefaultBodyLimit`). With a `max_body_bytes` above 2 MiB, add
//!   `.layer(DefaultBodyLimit::disable())` to the `Router`, or the effective limit stays 2 MiB;
//! - a JSON-extractor wrapper (`AppJson`, STYLE §4) that maps `JsonRejection` to
//!   `{"detail": …}` with `rejection.status()` keeps 413 as 413; it must not turn every rejection
//!   into 400/422.
//!
//! # Order
//!
//! Put these layers **inside** the security-headers, request-id and trace layers (so their
//! answers get the headers, the id and a log line) and **outside** authentication and the rate
//! limiter (so that a flood is shed before it costs a token check or a Redis round trip).
//!
//! # Examples
//!
//! ```
//! use palisade::limits::{HardeningLayer, LimitsConfig};
//! use axum::{Router, routing::get};
//!
//! # fn main() -> Result<(), palisade::limits::LimitsError> {
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .layer(HardeningLayer::new(&LimitsConfig::default())?);
//! # let _ = app;
//! # Ok(()) }
//! ```

mod body;
mod concurrency;
mod config;
mod headers;
mod panic;
mod rejection;
mod stack;
mod timeout;

pub use body::{BodyLimit, BodyLimitLayer, ResponseFuture as BodyLimitFuture};
pub use concurrency::{
    MaxConcurrency, MaxConcurrencyLayer, ResponseFuture as MaxConcurrencyFuture,
};
pub use config::{LimitsConfig, LimitsError};
pub use headers::{HeaderLimit, HeaderLimitLayer};
pub use panic::{PanicResponse, catch_panic, handle_error};
pub use rejection::LimitExceeded;
pub use stack::{Hardened, HardeningLayer, HardeningStack};
pub use timeout::{RequestTimeout, RequestTimeoutLayer, ResponseFuture as RequestTimeoutFuture};
