//! The limits configuration and its errors.

use std::time::Duration;

use http::StatusCode;

/// A bad limits configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// A limit of zero would refuse every request.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A concurrency limit above what a Tokio semaphore can hold.
    #[error("max_concurrent_requests {0} is too large (at most {max})", max = tokio::sync::Semaphore::MAX_PERMITS)]
    TooManyPermits(usize),
    /// A timeout status other than 408, 503 or 504.
    #[error("timeout status {0} is not accepted; use 408, 503 or 504")]
    TimeoutStatus(u16),
}

/// Settings for [`HardeningLayer`](super::HardeningLayer). `Default` gives the SPEC defaults.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use palisade::limits::{HardeningLayer, LimitsConfig};
///
/// let config = LimitsConfig { timeout: Duration::from_secs(10), ..LimitsConfig::default() };
/// let layer = HardeningLayer::new(&config)?;
/// # let _ = layer;
/// # Ok::<(), palisade::limits::LimitsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Largest request body, in bytes (default 1 MiB). Over it: 413.
    pub max_body_bytes: usize,
    /// Most header fields in a request (default 64). Over it: 431.
    pub max_header_count: usize,
    /// Most bytes of header fields, counted as `name: value\r\n` (default 32 KiB). Over it: 431.
    pub max_header_bytes: usize,
    /// Longest time to produce a response (default 30 s).
    pub timeout: Duration,
    /// Status of a timed-out request: 503 (default), 408 or 504.
    pub timeout_status: StatusCode,
    /// Most requests in flight at once (default 512). Over it: 503 at once.
    pub max_concurrent_requests: usize,
    /// `Retry-After` sent with a shed request (default 1 s).
    pub retry_after: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_header_count: 64,
            max_header_bytes: 32 * 1024,
            timeout: Duration::from_secs(30),
            timeout_status: StatusCode::SERVICE_UNAVAILABLE,
            max_concurrent_requests: 512,
            retry_after: Duration::from_secs(1),
        }
    }
}
