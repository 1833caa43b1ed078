//! CORS from a validated configuration: no tower-http panic, no accidental wildcard (SPEC §6).
//!
//! [`CorsConfig`] is parsed from an origin list (the server's `CORS_ORIGINS`), checked, and turned
//! into a [`tower_http::cors::CorsLayer`] by [`CorsConfig::into_layer`]:
//!
//! - **explicit origins** such as `https://app.example.com` or `http://localhost:3000`, compared
//!   exactly as browsers serialise them (RFC 6454 §6.2: lower-case scheme and host, no default
//!   port, no path); or `*` alone for any origin;
//! - **credentials only with explicit origins.** `*` together with credentials is a
//!   [`CorsError::CredentialsWithWildcard`] at start-up. tower-http would panic in `layer()` for
//!   that combination, and Starlette (the tutorial's stack) silently reflects *any* origin,
//!   handing every website the user's session;
//! - methods and request headers are explicit lists (never `*`), so the other tower-http panics
//!   cannot happen either;
//! - preflights are cached with `Access-Control-Max-Age` (600 s by default, the most Chromium
//!   honours: [MDN](https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Access-Control-Max-Age));
//! - `X-Request-ID`, `Retry-After` and the rate-limit headers (`RateLimit`, `RateLimit-Policy`,
//!   `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`) are exposed to scripts.
//!
//! An empty list allows no cross-origin caller at all. A request from a disallowed origin is
//! still served (CORS is enforced by the browser), but its response carries no
//! `Access-Control-Allow-Origin`, so the browser hides it from the calling page.
//!
//! Layer order: put the CORS layer **after** (inside) the trusted-host check and **before**
//! (outside) authentication and the rate limiter, so that preflights, which carry no
//! credentials, are answered before anything asks for a token.
//!
//! # Examples
//!
//! ```
//! use palisade::cors::{CorsConfig, CorsError};
//!
//! let layer = CorsConfig::parse("https://app.example.com, http://localhost:3000")?
//!     .allow_credentials(true)
//!     .into_layer()?;
//! # let _ = layer;
//!
//! let err = CorsConfig::parse("*")?.allow_credentials(true).into_layer().expect_err("refused");
//! assert_eq!(err, CorsError::CredentialsWithWildcard);
//!
//! let err = CorsConfig::parse("https://app.example.com/").expect_err("has a path");
//! assert!(err.to_string().contains("\"https://app.example.com/\""));
//! # Ok::<(), CorsError>(())
//! ```

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// A bad CORS configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorsError {
    /// An origin that is not `scheme://host[:port]`.
    #[error(
        "invalid CORS origin {origin:?}: {reason}; accepted: \"https://host\" or \"http://host:port\" \
         (no path, no trailing slash), or \"*\" alone"
    )]
    InvalidOrigin {
        /// The rejected entry.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `*` listed together with explicit origins.
    #[error(
        "\"*\" cannot be combined with explicit CORS origins; list origins or give \"*\" alone"
    )]
    MixedWildcard,
    /// Credentials allowed for any origin (`*`): every website could act as the user.
    #[error(
        "CORS allows credentials with the origin \"*\"; list the allowed origins explicitly, \
         or turn credentials off"
    )]
    CredentialsWithWildcard,
}

/// A validated, normalised origin (`scheme://host[:port]`), as a browser sends it in `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(HeaderValue);

impl Origin {
    /// Validates and normalises one origin.
    ///
    /// # Errors
    ///
    /// [`CorsError::InvalidOrigin`] naming the value.
    ///
    /// # Examples
    ///
    /// ```
    /// use palisade::cors::Origin;
    /// assert_eq!(Origin::parse("HTTPS://App.Example.com:443")?.as_str(), "https://app.example.com");
    /// assert!(Origin::parse("null").is_err());
    /// # Ok::<(), palisade::cors::CorsError>(())
    /// ```
    pub fn parse(origin: &str) -> Result<Self, CorsError> {
        let invalid = |reason| CorsError::InvalidOrigin {
            origin: origin.to_owned(),
            reason,
        };
        let (scheme, rest) = origin
            .split_once("://")
            .ok_or_else(|| invalid("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => "443",
            "http" => "80",
            _ => return Err(invalid("the scheme is not http or https")),
        };
        if rest.contains(['/', '?', '#']) {
            return Err(invalid("an origin has no path, query or fragment"));
        }
        if rest.contains('@') {
            return Err(invalid("an origin has no user info"));
        }
        if rest.contains('*') {
            return Err(invalid("wildcard origins are not supported"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal without a port: the last ':' is inside the brackets.
            Some((host, port)) if !port.contains(']') => (host, Some(port)),
            _ => (rest, None),
        };
        let host_ok = !host.is_empty()
            && if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                literal.parse::<std::net::Ipv6Addr>().is_ok()
            } else {
                host.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
                    && !host.starts_with('.')
                    && !host.contains("..")
            };
        if !host_ok {
            return Err(invalid("the host is not a DNS name or IP address"));
        }
        let port = match port {
            Some(p) if p.parse::<u16>().is_ok_and(|n| n != 0) && !p.starts_with('+') => {
                Some(p).filter(|p| *p != default_port)
            }
            Some(_) => return Err(invalid("the port is not a number from 1 to 65535")),
            None => None,
        };
        let host = host.to_ascii_lowercase();
        let serialised = match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        HeaderValue::try_from(serialised)
            .map(Self)
            .map_err(|_| invalid("not a valid header value"))
    }

    /// The normalised origin.
    pub fn as_str(&self) -> &str {
        // Built from ASCII only.
        self.0.to_str().unwrap_or_default()
    }
}

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin (`*`). Never combined with credentials.
    Any,
    /// These origins only (empty: none).
    List(Vec<Origin>),
}

impl AllowedOrigins {
    /// Parses a `CORS_ORIGINS` value: origins separated by commas and/or whitespace, or `*`.
    ///
    /// # Errors
    ///
    /// The first bad origin, or [`CorsError::MixedWildcard`].
    pub fn parse(list: &str) -> Result<Self, CorsError> {
        let entries: Vec<&str> = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        Self::from_entries(entries)
    }

    /// Builds the list from separate entries (e.g. a TOML array).
    ///
    /// # Errors
    ///
    /// The first bad origin, or [`CorsError::MixedWildcard`].
    pub fn from_entries<I, S>(entries: I) -> Result<Self, CorsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let entries: Vec<S> = entries.into_iter().collect();
        let wildcard = entries.iter().any(|e| e.as_ref().trim() == "*");
        if wildcard {
            return if entries.len() == 1 {
                Ok(Self::Any)
            } else {
                Err(CorsError::MixedWildcard)
            };
        }
        let mut origins = Vec::with_capacity(entries.len());
        for entry in &entries {
            let origin = Origin::parse(entry.as_ref().trim())?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self::List(origins))
    }
}

/// The headers exposed to scripts on cross-origin responses.
pub const EXPOSED_HEADERS: [&str; 7] = [
    "x-request-id",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

/// A CORS policy; see the [module docs](self). Build with [`CorsConfig::new`] or
/// [`CorsConfig::parse`], adjust, then [`into_layer`](CorsConfig::into_layer).
#[derive(Debug, Clone)]
#[must_use]
pub struct CorsConfig {
    origins: AllowedOrigins,
    credentials: bool,
    methods: Vec<Method>,
    request_headers: Vec<HeaderName>,
    expose_headers: Vec<HeaderName>,
    max_age: Duration,
}

impl CorsConfig {
    /// A policy for `origins`, without credentials; methods `GET HEAD POST PUT PATCH DELETE`;
    /// request headers `Authorization`, `Content-Type` and `X-Request-ID`; the
    /// [`EXPOSED_HEADERS`]; a 600 s preflight cache.
    pub fn new(origins: AllowedOrigins) -> Self {
        Self {
            origins,
            credentials: false,
            methods: vec![
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ],
            request_headers: vec![
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                crate::request_id::X_REQUEST_ID,
            ],
            expose_headers: EXPOSED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            max_age: Duration::from_secs(600),
        }
    }

    /// [`CorsConfig::new`] over [`AllowedOrigins::parse`]`(list)`.
    ///
    /// # Errors
    ///
    /// As [`AllowedOrigins::parse`].
    pub fn parse(list: &str) -> Result<Self, CorsError> {
        AllowedOrigins::parse(list).map(Self::new)
    }

    /// Sends `Access-Control-Allow-Credentials: true` (cookies, `Authorization` from
    /// `fetch(…, {credentials: "include"})`). Refused with `*` by [`validate`](Self::validate).
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// Replaces the allowed methods.
    pub fn allow_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// Replaces the allowed request headers.
    pub fn allow_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.request_headers = headers.into_iter().collect();
        self
    }

    /// Replaces the exposed response headers.
    pub fn expose_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.expose_headers = headers.into_iter().collect();
        self
    }

    /// How long browsers may cache a preflight answer (`Access-Control-Max-Age`).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The allowed origins.
    pub fn origins(&self) -> &AllowedOrigins {
        &self.origins
    }

    /// Whether credentials are allowed.
    pub fn credentials(&self) -> bool {
        self.credentials
    }

    /// Checks the policy (the server's production guard calls it at start-up).
    ///
    /// # Errors
    ///
    /// [`CorsError::CredentialsWithWildcard`].
    pub fn validate(&self) -> Result<(), CorsError> {
        if self.credentials && self.origins == AllowedOrigins::Any {
            return Err(CorsError::CredentialsWithWildcard);
        }
        Ok(())
    }

    /// The tower-http layer for this policy. It never panics: every combination tower-http
    /// asserts against is refused here.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn into_layer(self) -> Result<CorsLayer, CorsError> {
        self.validate()?;
        let origin = match self.origins {
            AllowedOrigins::Any => AllowOrigin::any(),
            AllowedOrigins::List(list) => AllowOrigin::list(list.into_iter().map(|o| o.0)),
        };
        Ok(CorsLayer::new()
            .allow_origin(origin)
            .allow_credentials(self.credentials)
            .allow_methods(self.methods)
            .allow_headers(self.request_headers)
            .expose_headers(self.expose_headers)
            .max_age(self.max_age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_like_browsers_serialise_them() {
        let cases = [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://APP.example.com", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            ("http://localhost:80", "http://localhost"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:3000", "http://[::1]:3000"),
            ("http://[::1]", "http://[::1]"),
        ];
        for (input, want) in cases {
            assert_eq!(Origin::parse(input).expect(input).as_str(), want);
        }
    }

    #[test]
    fn bad_origins_name_the_value() {
        for bad in [
            "app.example.com",
            "ftp://x.com",
            "https://",
            "https://x.com/",
            "https://x.com/app",
            "https://u@x.com",
            "https://*.x.com",
            "https://x.com:0",
            "https://x.com:99999",
            "https://x.com:",
            "null",
            "https://x..com",
            "https://[zz]",
        ] {
            let err = Origin::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn lists_split_on_commas_and_spaces_and_refuse_mixed_wildcards() {
        let list = AllowedOrigins::parse(" https://a.com,https://b.com  http://c.com:81 ,")
            .expect("valid list");
        assert_eq!(
            list,
            AllowedOrigins::List(vec![
                Origin::parse("https://a.com").expect("valid"),
                Origin::parse("https://b.com").expect("valid"),
                Origin::parse("http://c.com:81").expect("valid"),
            ])
        );
        assert_eq!(
            AllowedOrigins::parse("").expect("empty"),
            AllowedOrigins::List(vec![])
        );
        assert_eq!(
            AllowedOrigins::parse("*").expect("any"),
            AllowedOrigins::Any
        );
        assert_eq!(
            AllowedOrigins::parse("*, https://a.com"),
            Err(CorsError::MixedWildcard)
        );
    }
}
