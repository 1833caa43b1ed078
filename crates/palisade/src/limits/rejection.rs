//! What a request that hit a limit gets back.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};

use crate::error_response;

/// Which limit a request hit. It travels in the extensions of the JSON response the request
/// got, so that outer layers (logging, metrics) can tell the rejections apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// The body is larger than allowed: 413.
    #[error("request body too large")]
    BodyTooLarge,
    /// Too many header fields, or too many bytes of them: 431 (RFC 6585 §5).
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// The request took longer than the timeout: 503 by default, or 408/504 if configured.
    #[error("request timed out")]
    Timeout,
    /// All concurrency slots were taken and the request was shed: 503 with `Retry-After`.
    #[error("server overloaded")]
    Overloaded,
    /// The handler panicked: 500, no details.
    #[error("handler panicked")]
    Panicked,
}

impl LimitExceeded {
    /// The `detail` of the JSON body.
    pub fn detail(self) -> &'static str {
        match self {
            Self::BodyTooLarge => "Request body too large",
            Self::HeadersTooLarge => "Request header fields too large",
            Self::Timeout => "Request timed out",
            Self::Overloaded => "Server is overloaded, retry later",
            Self::Panicked => "Internal Server Error",
        }
    }

    /// The default status for this rejection.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Timeout | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Panicked => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `{"detail": …}` response with the default [`status`](Self::status).
    ///
    /// # Examples
    ///
    /// ```
    /// use palisade::limits::LimitExceeded;
    /// let res = LimitExceeded::BodyTooLarge.into_response();
    /// assert_eq!(res.status(), 413);
    /// assert_eq!(res.headers()["content-type"], "application/json");
    /// ```
    pub fn into_response(self) -> Response<Body> {
        self.response_with_status(self.status())
    }

    pub(crate) fn response_with_status(self, status: StatusCode) -> Response<Body> {
        let mut res = error_response::detail(status, self.detail());
        res.extensions_mut().insert(self);
        res
    }

    pub(crate) fn overloaded(retry_after: &HeaderValue) -> Response<Body> {
        let mut res = Self::Overloaded.into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, retry_after.clone());
        res
    }
}

/// `Retry-After` in whole seconds (RFC 9110 §10.2.3), at least 1.
pub(crate) fn retry_after_value(after: std::time::Duration) -> HeaderValue {
    HeaderValue::from(after.as_secs().max(1))
}
