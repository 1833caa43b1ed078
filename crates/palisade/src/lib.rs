//! # Palisade
//!
//! Tower/axum middleware that protects an HTTP API:
//!
//! - [`auth`]: JWT verification with a pinned algorithm, explicit token types, revocation and
//!   refresh-token families, run as a layer *before* the rate limiter so that limits can key on
//!   the verified user (and so that failed token checks are limited too).
//! - [`error_response`]: the `{"detail": …}` JSON error body every layer rejects with.
//! - [`rate_limit`]: GCRA / fixed-window limits over memory or Redis (Cluster), per-route
//!   policies, IETF `RateLimit` headers, and a failure mode for Redis outages.
//! - [`client_ip`]: the client address behind trusted proxies only, resolved once per request.
//! - [`security_headers`]: `nosniff`, HSTS, CSP (with a `/docs` override), deny-all
//!   `Permissions-Policy`… on every response; `Server` removed.
//! - [`cors`]: a validated CORS policy (no credentials with `*`) turned into tower-http's layer.
//! - [`trusted_host`]: `ALLOWED_HOSTS` with `*.example.com` wildcards; anything else gets 400.
//! - [`request_id`]: sane incoming `X-Request-ID`s kept, others replaced, returned and logged.
//! - [`limits`]: body size, header size, timeout, load shedding and panics, all answered in JSON.
//!
//! The library never reads the environment and holds no SQL: the application builds typed values
//! (usually from its own configuration) and hands them to the layers.
#![warn(missing_docs)]

pub mod auth;
pub mod error_response;

pub mod client_ip;
pub mod cors;
pub mod limits;
pub mod rate_limit;
mod redis_conn;
pub mod request_id;
pub mod security_headers;
pub mod trusted_host;
