//! Logs: `tracing`, human-readable or one JSON object per line (`LOG_FORMAT`), one line per
//! request (SPEC §7).
//!
//! User-supplied strings are recorded as `?value` (Debug), which escapes control characters, so a
//! newline in a username cannot forge a log line (SPEC §9.13); the JSON format escapes them too.
//! Passwords and tokens are never recorded.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Settings};

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`, or `debug`
/// with `DEBUG=true`). Calling it twice is harmless (the second call does nothing).
pub fn init(settings: &Settings) {
    let default = if settings.debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The request id the request-id layer validated, replaced or generated.
fn request_id(req: &Request) -> String {
    req.extensions()
        .get::<palisade::request_id::RequestId>()
        .map_or_else(|| "-".to_owned(), |id| id.as_str().to_owned())
}

/// Runs the request inside a span carrying its request id (so every line logged while handling
/// it names the id) and logs one line when the response is ready.
pub async fn log_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let client = req
        .extensions()
        .get::<palisade::client_ip::ClientIp>()
        .map(|ip| ip.addr().to_string());
    let span = tracing::info_span!("request", request_id = %request_id(&req));
    let response = next.run(req).instrument(span.clone()).await;
    let _entered = span.enter();
    tracing::info!(
        method = %method,
        path = ?path,
        route = route.as_deref().unwrap_or("-"),
        client = client.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
