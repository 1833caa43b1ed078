//! What clients see: the 429 body of SPEC §3 and the rate-limit headers of §4.

use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};

use super::limiter::Report;
use crate::error_response;

/// The typed rejection, put in the extensions of every 429 the layer sends (for logs and
/// metrics middleware).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded: {limit} (policy {policy:?}, retry after {retry_after:?})")]
pub struct RateLimitExceeded {
    /// The policy's name.
    pub policy: String,
    /// The limit that was hit, as `10 per 1 minute`.
    pub limit: String,
    /// How long until a request would be admitted.
    pub retry_after: Duration,
}

/// Whole seconds, rounded up: clients that wait this long are admitted.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_micros()
        .div_ceil(1_000_000)
        .try_into()
        .unwrap_or(u64::MAX)
}

fn value(n: impl ToString) -> HeaderValue {
    // Digits and a validated policy name (ASCII letters, digits, `-_.`) are always valid.
    HeaderValue::from_str(&n.to_string()).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The headers sent on every response of a limited route, for the most restrictive quota:
///
/// - `RateLimit-Policy: "login";q=10;w=60` and `RateLimit: "login";r=3;t=42`
///   (draft-ietf-httpapi-ratelimit-headers-10 structured fields: quota, window in seconds,
///   remaining, seconds until reset);
/// - `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until reset,
///   not an epoch timestamp).
pub fn rate_limit_headers(policy: &str, report: &Report) -> HeaderMap {
    let i = report.decision.most_restrictive();
    let mut headers = HeaderMap::with_capacity(5);
    let (Some(quota), Some(status)) = (report.quotas.get(i), report.decision.limits.get(i)) else {
        return headers;
    };
    let limit = quota.limit();
    let window = quota.rate().period().as_secs();
    let reset = ceil_secs(status.reset);
    let remaining = status.remaining.min(limit);
    headers.insert(
        HeaderName::from_static("ratelimit-policy"),
        value(format!("\"{policy}\";q={limit};w={window}")),
    );
    headers.insert(
        HeaderName::from_static("ratelimit"),
        value(format!("\"{policy}\";r={remaining};t={reset}")),
    );
    headers.insert(HeaderName::from_static("x-ratelimit-limit"), value(limit));
    headers.insert(
        HeaderName::from_static("x-ratelimit-remaining"),
        value(remaining),
    );
    headers.insert(HeaderName::from_static("x-ratelimit-reset"), value(reset));
    headers
}

/// The 429 response: the tutorial's body
/// `{"error": "Rate limit exceeded", "message": "Rate limit exceeded: 10 per 1 minute",
/// "retry_after": 42}`, `Retry-After`, the rate-limit headers, and a [`RateLimitExceeded`] in
/// the extensions.
pub fn too_many_requests(policy: &str, report: &Report) -> Response<Body> {
    let i = report.decision.most_restrictive();
    let limit = report
        .quotas
        .get(i)
        .map(|q| q.rate().to_string())
        .unwrap_or_default();
    let retry_after = report.decision.retry_after();
    let secs = ceil_secs(retry_after).max(1);
    let mut res = error_response::json(
        StatusCode::TOO_MANY_REQUESTS,
        &serde_json::json!({
            "error": "Rate limit exceeded",
            "message": format!("Rate limit exceeded: {limit}"),
            "retry_after": secs,
        }),
    );
    res.headers_mut().extend(rate_limit_headers(policy, report));
    res.headers_mut().insert(header::RETRY_AFTER, value(secs));
    res.extensions_mut().insert(RateLimitExceeded {
        policy: policy.to_owned(),
        limit,
        retry_after,
    });
    res
}

/// The 503 sent in [`FailureMode::Closed`](super::FailureMode::Closed) during an outage.
pub fn unavailable() -> Response<Body> {
    error_response::detail(
        StatusCode::SERVICE_UNAVAILABLE,
        "Rate limiting is temporarily unavailable",
    )
}
