//! Rate limiting: GCRA and fixed window over an in-memory or Redis store (SPEC §4).
//!
//! The pieces are kept apart (STYLE §2): limit strings ([`Rate`], [`Limits`]), pure
//! algorithms ([`Algorithm`], [`Quota`], [`Decision`]), an async [`Store`] ([`MemoryStore`],
//! [`RedisStore`]), a [`Clock`], and the tower plumbing: one shared [`RateLimiter`] (store,
//! failure mode, over-limit cache, health) and one [`RateLimitLayer`] per route [`Policy`].
//!
//! **Who is counted** ([`Identity`]): the verified user id when the auth layer, which must run
//! *before* this one, found a valid access token; otherwise the client's IP bucket
//! ([`ClientIp`](crate::client_ip::ClientIp): the socket peer, or the rightmost untrusted
//! forwarded hop when the peer is a trusted proxy; IPv6 by /64). Requests with an invalid token
//! count against their IP.
//!
//! **What clients see:** on every response of a limited route, `RateLimit-Policy`/`RateLimit`
//! (draft-ietf-httpapi-ratelimit-headers-10) and `X-RateLimit-Limit/Remaining/Reset` for the
//! most restrictive limit; over a limit, a 429 with the tutorial's body
//! (`{"error": "Rate limit exceeded", "message": "Rate limit exceeded: 10 per 1 minute",
//! "retry_after": 42}`) and `Retry-After`.
//!
//! **Redis down:** [`FailureMode`] `local` (default) falls back to memory with each limit
//! divided by the instance count, `open` admits, `closed` answers 503 JSON. Every Redis call
//! has a timeout, the outage is logged once and visible through [`RateLimiter::is_degraded`] /
//! [`RateLimiter::health`], and the limiter returns to Redis by itself once it answers.
//!
//! **Time:** the Redis store uses the Redis server's `TIME` by default, so instances with
//! skewed clocks agree ([`TimeSource`]); the memory store uses the limiter's [`Clock`].
//!
//! # Examples
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use palisade::rate_limit::{FailureMode, Policy, RateLimiter, RedisStore};
//! use palisade::client_ip::{ClientIpConfig, ClientIpLayer};
//! use std::net::SocketAddr;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379/0").build()?;
//! let limiter = RateLimiter::builder(store)
//!     .failure_mode("local".parse::<FailureMode>()?)
//!     .instances(3)
//!     .build();
//! let login = Policy::new("login", "10/minute".parse()?)?;
//! let global = Policy::new("global", "100/minute;1000/day".parse()?)?;
//!
//! let app = Router::new()
//!     .route("/auth/login", post(|| async { "ok" }))
//!     .route_layer(limiter.layer(login))
//!     .merge(Router::new().route("/", axum::routing::get(|| async { "hi" }))
//!         .route_layer(limiter.layer(global)))
//!     // Resolve the client address once, for the limiter and for logs.
//!     .layer(ClientIpLayer::new(
//!         ClientIpConfig::new().trusted_proxies(["10.0.0.0/8".parse()?]),
//!     ));
//! // Serve with the peer address so the limiter can see it:
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! Testing with a memory store and a fake clock:
//!
//! ```
//! use palisade::rate_limit::{FakeClock, Identity, MemoryStore, Policy, RateLimiter, Verdict};
//! # tokio::runtime::Builder::new_current_thread().build().expect("rt").block_on(async {
//! let limiter = RateLimiter::builder(MemoryStore::new())
//!     .clock(FakeClock::new(1_700_000_000_000_000))
//!     .build();
//! let policy = Policy::new("login", "2/minute".parse().expect("rate")).expect("name");
//! let who = Identity::authenticated("42", "alice", None);
//! assert!(matches!(limiter.check(&policy, &who).await, Verdict::Allowed(_)));
//! assert!(matches!(limiter.check(&policy, &who).await, Verdict::Allowed(_)));
//! assert!(matches!(limiter.check(&policy, &who).await, Verdict::Limited(_)));
//! # });
//! ```

mod algorithm;
mod clock;
mod future;
mod identity;
mod layer;
mod limiter;
mod policy;
mod rate;
mod response;
mod service;
mod store;

pub use algorithm::{Algorithm, Decision, LimitStatus, Quota, UnknownAlgorithm};
pub use clock::{Clock, FakeClock, SystemClock, Timestamp};
pub use future::ResponseFuture;
pub use identity::Identity;
pub use layer::RateLimitLayer;
pub use limiter::{
    DecisionSource, FailureMode, RateLimiter, RateLimiterBuilder, Report, StoreHealth,
    UnknownFailureMode, Verdict,
};
pub use policy::{Policy, PolicyError};
pub use rate::{Limits, ParseRateError, Rate, TimeUnit};
pub use response::{RateLimitExceeded, rate_limit_headers, too_many_requests, unavailable};
pub use service::RateLimit;
pub use store::{MemoryStore, RedisStore, RedisStoreBuilder, Store, StoreError, TimeSource};
