//! The JSON error body shared by every Palisade rejection.
//!
//! FastAPI writes errors as `{"detail": "…"}`; clients of the tutorial's API parse that shape, so
//! every layer that answers on its own (401, 400 for a foreign Host, 413, 503…) uses it too
//! (SPEC §3).

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};

/// Builds a `{"detail": detail}` JSON response with `status`.
///
/// # Examples
///
/// ```
/// use http::StatusCode;
/// let res = palisade::error_response::detail(StatusCode::BAD_REQUEST, "Invalid host header");
/// assert_eq!(res.status(), StatusCode::BAD_REQUEST);
/// assert_eq!(res.headers()["content-type"], "application/json");
/// ```
pub fn detail(status: StatusCode, detail: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "detail": detail }))
}

/// Builds a JSON response with `status` and the serialized `value` as its body.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    // Serializing a `serde_json::Value` cannot fail (its map keys are always strings).
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
