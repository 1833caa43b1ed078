//! Trusted hosts: answer 400 to requests for a host the application does not serve (SPEC §6).
//!
//! [`TrustedHostLayer`] compares the request's host with an allow-list of [`HostPattern`]s
//! (the server's `ALLOWED_HOSTS`) before anything else sees it. This defeats Host-header attacks:
//! poisoned password-reset links and caches, and DNS rebinding against a service on a private
//! address ([OWASP WSTG-INPV-17](https://owasp.org/www-project-web-security-testing-guide/latest/4-Web_Application_Security_Testing/07-Input_Validation_Testing/17-Testing_for_Host_Header_Injection)).
//!
//! # Patterns
//!
//! - `example.com`: that host, on any port;
//! - `*.example.com`: any subdomain (`api.example.com`, `a.b.example.com`) but **not the apex**
//!   `example.com` itself, as in Starlette's `TrustedHostMiddleware` that the tutorial uses
//!   (list `example.com` too to allow both);
//! - `example.com:8443`, `*.example.com:8443`: only requests that name that port explicitly;
//! - `127.0.0.1`, `[::1]`, `[::1]:8000`: IP literals work like names;
//! - `*`: every request is allowed and nothing is checked (the layer is off).
//!
//! Comparison is case-insensitive and ignores one trailing dot (`Example.COM.` is
//! `example.com`), following DNS (RFC 4343) and RFC 9110 §4.2.3.
//!
//! # What is checked
//!
//! The `Host` header (HTTP/1.1) and the request target's authority (HTTP/2 `:authority`, or an
//! HTTP/1.1 absolute-form target) are both checked when present, and both must be allowed: a
//! server must prefer the absolute-form authority over `Host` (RFC 9112 §3.2.2), so a request
//! cannot smuggle a foreign host past the check in either place. A request with neither, with
//! more than one `Host` header (RFC 9112 §3.2), or with a malformed host (user info as in
//! `evil.com@example.com`, an empty value, spaces, a non-numeric port…) is rejected.
//!
//! A rejection is a 400 `{"detail": "Invalid host header"}` (the body of Starlette's
//! middleware) carrying the [`HostRejection`] in its extensions.
//!
//! `X-Forwarded-Host` is **never** read: behind a reverse proxy, have it pass the original
//! `Host` (nginx: `proxy_set_header Host $host;`).
//!
//! # Examples
//!
//! ```
//! use palisade::trusted_host::TrustedHostLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//! use http::{Request, Response, StatusCode};
//! use axum::body::Body;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = TrustedHostLayer::new(["example.com", "*.example.com"])?;
//! let svc = layer.layer(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
//! }));
//!
//! let ok = Request::builder().header("host", "api.example.com:443").body(Body::empty())?;
//! assert_eq!(svc.clone().oneshot(ok).await?.status(), StatusCode::OK);
//!
//! let foreign = Request::builder().header("host", "evil.com").body(Body::empty())?;
//! assert_eq!(svc.oneshot(foreign).await?.status(), StatusCode::BAD_REQUEST);
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::error_response;

/// A bad `ALLOWED_HOSTS` entry or list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustedHostError {
    /// The list is empty: no request could ever be served.
    #[error(
        "the allowed-host list is empty; give at least one host, e.g. \"example.com\", or \"*\" to allow any"
    )]
    Empty,
    /// An entry that is not a host pattern.
    #[error(
        "invalid host pattern {pattern:?}: {reason}; accepted: \"example.com\", \"*.example.com\", \
         either with \":port\", an IP address such as \"127.0.0.1\" or \"[::1]\", or \"*\""
    )]
    InvalidPattern {
        /// The rejected entry.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why [`TrustedHost`] refused a request; found in the extensions of its 400 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostRejection {
    /// Neither a `Host` header nor an authority in the request target.
    #[error("the request names no host")]
    Missing,
    /// More than one `Host` header (RFC 9112 §3.2).
    #[error("the request has more than one Host header")]
    Multiple,
    /// A host that is not a valid `host[:port]`.
    #[error("malformed host {0:?}")]
    Malformed(String),
    /// A well-formed host that no pattern allows.
    #[error("host {0:?} is not allowed")]
    NotAllowed(String),
}

/// A parsed, normalised `host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    /// Lower-case, without a trailing dot; IPv6 literals keep their brackets.
    host: String,
    port: Option<u16>,
}

impl HostPort {
    fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("empty host");
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (literal, after) = rest.split_once(']').ok_or("unclosed '[' in IPv6 literal")?;
            let ip: Ipv6Addr = literal.parse().map_err(|_| "invalid IPv6 literal")?;
            let port = match after {
                "" => None,
                p => Some(parse_port(p.strip_prefix(':').ok_or("junk after ']'")?)?),
            };
            (format!("[{ip}]"), port)
        } else {
            let (host, port) = match s.rsplit_once(':') {
                Some((host, port)) => (host, Some(parse_port(port)?)),
                None => (s, None),
            };
            (normalise_name(host)?, port)
        };
        Ok(Self { host, port })
    }
}

fn parse_port(p: &str) -> Result<u16, &'static str> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port is not a number from 1 to 65535");
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err("the port is not a number from 1 to 65535"),
        Ok(port) => Ok(port),
    }
}

/// Lower-cases a DNS name or IPv4 address and drops one trailing dot; refuses anything else.
fn normalise_name(name: &str) -> Result<String, &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty host");
    }
    if name.len() > 253 {
        return Err("the host is longer than 253 characters");
    }
    // RFC 1123 labels, plus `_` which real-world internal names use.
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (two dots in a row, or a leading dot)");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if !label.bytes().all(valid) {
            return Err("a character other than letters, digits, '-', '_' and '.'");
        }
    }
    // All-numeric dotted names must be real IPv4 addresses (no `1.2.3.999`).
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') && name.parse::<Ipv4Addr>().is_err() {
        return Err("invalid IPv4 address");
    }
    Ok(name.to_ascii_lowercase())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternKind {
    Any,
    Exact(HostPort),
    /// `suffix` starts with a dot: `.example.com`.
    Subdomains {
        suffix: String,
        port: Option<u16>,
    },
}

/// One `ALLOWED_HOSTS` entry. See the [module docs](self) for the syntax.
///
/// # Examples
///
/// ```
/// use palisade::trusted_host::HostPattern;
///
/// let pattern: HostPattern = "*.example.com".parse()?;
/// assert!(pattern.matches("API.example.com."));
/// assert!(!pattern.matches("example.com"));
/// assert!(!pattern.matches("example.com.evil.com"));
/// assert!("*.".parse::<HostPattern>().is_err());
/// # Ok::<(), palisade::trusted_host::TrustedHostError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(PatternKind);

impl FromStr for HostPattern {
    type Err = TrustedHostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| TrustedHostError::InvalidPattern {
            pattern: s.to_owned(),
            reason,
        };
        let trimmed = s.trim();
        if trimmed == "*" {
            return Ok(Self(PatternKind::Any));
        }
        if let Some(rest) = trimmed.strip_prefix("*.") {
            let parsed = HostPort::parse(rest).map_err(invalid)?;
            if parsed.host.starts_with('[') || parsed.host.contains('*') {
                return Err(invalid("a wildcard applies to DNS names only"));
            }
            return Ok(Self(PatternKind::Subdomains {
                suffix: format!(".{}", parsed.host),
                port: parsed.port,
            }));
        }
        if trimmed.contains('*') {
            return Err(invalid("'*' is allowed only alone or as a leading \"*.\""));
        }
        HostPort::parse(trimmed)
            .map(|hp| Self(PatternKind::Exact(hp)))
            .map_err(invalid)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, host, port) = match &self.0 {
            PatternKind::Any => return f.write_str("*"),
            PatternKind::Exact(hp) => ("", hp.host.as_str(), hp.port),
            PatternKind::Subdomains { suffix, port } => ("*", suffix.as_str(), *port),
        };
        write!(f, "{prefix}{host}")?;
        match port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl HostPattern {
    /// Whether this pattern allows `host` (a `Host` header value). Malformed hosts never match,
    /// except under `*`.
    pub fn matches(&self, host: &str) -> bool {
        match HostPort::parse(host) {
            Ok(hp) => self.matches_parsed(&hp),
            Err(_) => self.0 == PatternKind::Any,
        }
    }

    fn matches_parsed(&self, hp: &HostPort) -> bool {
        let port_ok = |want: Option<u16>| want.is_none() || want == hp.port;
        match &self.0 {
            PatternKind::Any => true,
            PatternKind::Exact(p) => p.host == hp.host && port_ok(p.port),
            PatternKind::Subdomains { suffix, port } => {
                hp.host.len() > suffix.len() && hp.host.ends_with(suffix.as_str()) && port_ok(*port)
            }
        }
    }
}

#[derive(Debug)]
struct HostSet {
    patterns: Vec<HostPattern>,
    any: bool,
}

impl HostSet {
    fn check<B>(&self, req: &Request<B>) -> Result<(), HostRejection> {
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let header = hosts.next();
        if hosts.next().is_some() {
            return Err(HostRejection::Multiple);
        }
        let header = header
            .map(|v| {
                v.to_str().map_err(|_| {
                    HostRejection::Malformed(String::from_utf8_lossy(v.as_bytes()).into_owned())
                })
            })
            .transpose()?;
        let authority = req.uri().authority().map(|a| a.as_str());
        if header.is_none() && authority.is_none() {
            return Err(HostRejection::Missing);
        }
        for host in header.into_iter().chain(authority) {
            let parsed =
                HostPort::parse(host).map_err(|_| HostRejection::Malformed(host.to_owned()))?;
            if !self.patterns.iter().any(|p| p.matches_parsed(&parsed)) {
                return Err(HostRejection::NotAllowed(host.to_owned()));
            }
        }
        Ok(())
    }
}

/// Rejects requests whose host is not allowed; see the [module docs](self). Cheap to clone.
#[derive(Clone, Debug)]
#[must_use]
pub struct TrustedHostLayer {
    hosts: Arc<HostSet>,
}

impl TrustedHostLayer {
    /// A layer allowing `patterns` (e.g. the comma-separated entries of `ALLOWED_HOSTS`).
    ///
    /// # Errors
    ///
    /// [`TrustedHostError::InvalidPattern`] naming the first bad entry, or
    /// [`TrustedHostError::Empty`] for an empty list.
    pub fn new<I, S>(patterns: I) -> Result<Self, TrustedHostError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = patterns
            .into_iter()
            .map(|p| p.as_ref().parse())
            .collect::<Result<Vec<HostPattern>, _>>()?;
        Self::from_patterns(patterns)
    }

    /// A layer allowing already parsed `patterns`.
    ///
    /// # Errors
    ///
    /// [`TrustedHostError::Empty`] for an empty list.
    pub fn from_patterns(
        patterns: impl IntoIterator<Item = HostPattern>,
    ) -> Result<Self, TrustedHostError> {
        let patterns: Vec<HostPattern> = patterns.into_iter().collect();
        if patterns.is_empty() {
            return Err(TrustedHostError::Empty);
        }
        let any = patterns.iter().any(|p| p.0 == PatternKind::Any);
        Ok(Self {
            hosts: Arc::new(HostSet { patterns, any }),
        })
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[HostPattern] {
        &self.hosts.patterns
    }
}

impl<S> Layer<S> for TrustedHostLayer {
    type Service = TrustedHost<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrustedHost {
            inner,
            hosts: self.hosts.clone(),
        }
    }
}

/// The service made by [`TrustedHostLayer`].
#[derive(Clone, Debug)]
pub struct TrustedHost<S> {
    inner: S,
    hosts: Arc<HostSet>,
}

impl<S> TrustedHost<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The 400 answered to a refused host.
fn reject(rejection: HostRejection) -> Response<Body> {
    // `?` escapes control characters, so a hostile Host cannot forge log lines (SPEC §9.13).
    tracing::debug!(reason = ?rejection, "request refused: untrusted host");
    let mut res = error_response::detail(StatusCode::BAD_REQUEST, "Invalid host header");
    res.extensions_mut().insert(rejection);
    res
}

impl<S, ReqBody> Service<Request<ReqBody>> for TrustedHost<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if !self.hosts.any
            && let Err(rejection) = self.hosts.check(&req)
        {
            return ResponseFuture {
                state: State::Rejected {
                    response: Some(reject(rejection)),
                },
            };
        }
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(req),
            },
        }
    }
}

pin_project! {
    /// The response future of [`TrustedHost`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Rejected { response: Option<Response<Body>> },
        Inner { #[pin] future: F },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Rejected { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: a caller bug; answer the same status again.
                None => Poll::Ready(Ok(error_response::detail(
                    StatusCode::BAD_REQUEST,
                    "Invalid host header",
                ))),
            },
            StateProj::Inner { future } => future.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> HostPattern {
        s.parse().expect("valid pattern")
    }

    #[test]
    fn patterns_parse_and_normalise() {
        assert_eq!(pattern("Example.COM.").to_string(), "example.com");
        assert_eq!(
            pattern("*.Example.com:8443").to_string(),
            "*.example.com:8443"
        );
        assert_eq!(pattern("[0:0::1]:8000").to_string(), "[::1]:8000");
        assert_eq!(pattern("*").to_string(), "*");
    }

    #[test]
    fn bad_patterns_are_errors_naming_the_value() {
        for bad in [
            "",
            "*.",
            "*example.com",
            "a.*.com",
            "example.com:",
            "example.com:0",
            "example.com:65536",
            "exa mple.com",
            "user@example.com",
            "[::1",
            "[zz]",
            "example..com",
            "1.2.3.999",
            "http://example.com",
        ] {
            let err = bad.parse::<HostPattern>().expect_err(bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn wildcard_does_not_match_apex_or_lookalikes() {
        let p = pattern("*.example.com");
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.example.com:9000"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("evilexample.com"));
        assert!(!p.matches("example.com.evil.com"));
        assert!(!p.matches(".example.com"));
    }

    #[test]
    fn ports_must_agree_when_the_pattern_names_one() {
        let p = pattern("example.com:8443");
        assert!(p.matches("example.com:8443"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("example.com:443"));
        assert!(pattern("example.com").matches("example.com:1234"));
    }
}
