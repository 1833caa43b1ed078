//! Security response headers on every response (SPEC §6).
//!
//! [`SecurityHeadersLayer`] sets a fixed set of headers on **every** response that passes
//! through it, whatever produced the response: a handler, a 404 fallback, a 401 from an
//! extractor, a 413/408/503/500 from [`limits`](crate::limits), a CORS preflight answered by
//! [`cors`](crate::cors), a 400 from [`trusted_host`](crate::trusted_host) or a 429 from the rate
//! limiter. That only holds if it is the **outermost** layer of the stack: put it first in the
//! `ServiceBuilder`.
//!
//! | Header | Default | Why |
//! |---|---|---|
//! | `X-Content-Type-Options` | `nosniff` | no MIME sniffing of JSON into HTML/script ([MDN](https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Content-Type-Options)) |
//! | `X-Frame-Options` | `DENY` | no framing (click-jacking), for browsers without CSP `frame-ancestors` |
//! | `Strict-Transport-Security` | `max-age=63072000; includeSubDomains` | two years, as the OWASP Secure Headers project recommends; browsers ignore it over plain HTTP (RFC 6797 §8.1), so it is safe to send always |
//! | `Content-Security-Policy` | `default-src 'none'; frame-ancestors 'none'` | a JSON API loads nothing (OWASP REST Security cheat sheet) |
//! | `Referrer-Policy` | `no-referrer` | an API and its docs need no `Referer`; the strictest value leaks nothing ([MDN](https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Referrer-Policy)) |
//! | `Permissions-Policy` | every feature of the OWASP list `=()` | deny-all: nothing served here uses a camera, geolocation… |
//! | `Cross-Origin-Opener-Policy` | `same-origin` | isolates the browsing context (Spectre, `window.opener`) |
//! | `Cross-Origin-Resource-Policy` | `same-origin` | other sites cannot embed responses with `no-cors` requests; CORS reads (see [`cors`](crate::cors)) are unaffected |
//! | `Cache-Control` | `no-store` (only when the response has none) | API answers (tokens, profiles) are never stored by browsers or shared caches |
//! | `X-XSS-Protection` | `0` | the old XSS auditors are gone, and `1; mode=block` created leaks in the browsers that had them ([OWASP](https://cheatsheetseries.owasp.org/cheatsheets/HTTP_Headers_Cheat_Sheet.html#x-xss-protection)) |
//!
//! It also **removes** `Server` and `X-Powered-By` (and any header given to
//! [`SecurityHeadersLayer::strip`]) so that no response names the software behind it.
//!
//! Every header except `Cache-Control` **overrides** whatever the inner service set: the policy
//! belongs to this layer. `Cache-Control` is set only when absent, because a handler knows best
//! how its own answer may be cached. [`SecurityHeadersLayer::set`],
//! [`set_if_missing`](SecurityHeadersLayer::set_if_missing) and
//! [`disable`](SecurityHeadersLayer::disable) change any of this.
//!
//! # Per-path overrides: `/docs` and `/redoc`
//!
//! Swagger UI and ReDoc are HTML pages that run scripts, so the API's `default-src 'none'` would
//! blank them. [`SecurityHeadersLayer::path_prefix`] applies a [`PathHeaders`] override to one
//! path prefix (matched on whole segments: `/docs` matches `/docs`, `/docs/` and `/docs/x.js`, not
//! `/docsx`; the longest matching prefix wins). [`PathHeaders::docs`] is a preset with
//! [`DOCS_CSP`] and `Cache-Control: no-cache`. [`DOCS_CSP`] allows scripts from the same origin
//! only: a docs page must load its initialisation code from a file, not an inline `<script>`
//! (for ReDoc that means serving the `Redoc.init(…)` call as a small same-origin `.js` file).
//!
//! # Examples
//!
//! ```
//! use palisade::security_headers::{PathHeaders, SecurityHeadersLayer};
//! use tower::{Layer, ServiceExt, service_fn};
//! use http::{Request, Response};
//! use axum::body::Body;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = SecurityHeadersLayer::new()
//!     .path_prefix("/docs", PathHeaders::docs())?
//!     .path_prefix("/redoc", PathHeaders::docs())?;
//! let svc = layer.layer(service_fn(|_req: Request<Body>| async {
//!     let mut res = Response::new(Body::from("{}"));
//!     res.headers_mut().insert("server", "uvicorn".parse().expect("valid"));
//!     Ok::<_, std::convert::Infallible>(res)
//! }));
//!
//! let res = svc.clone().oneshot(Request::new(Body::empty())).await?;
//! assert_eq!(res.headers()["x-content-type-options"], "nosniff");
//! assert_eq!(res.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
//! assert!(res.headers().get("server").is_none());
//!
//! let docs = Request::builder().uri("/docs/").body(Body::empty())?;
//! let res = svc.oneshot(docs).await?;
//! assert_eq!(res.headers()["content-security-policy"], palisade::security_headers::DOCS_CSP);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// The API's Content-Security-Policy: load nothing, be framed by nobody
/// (OWASP REST Security cheat sheet, "Security Headers").
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The Content-Security-Policy for self-hosted Swagger UI and ReDoc pages.
///
/// - `script-src 'self'`: the bundles are served by the application itself (the docs must work
///   offline, SPEC §3), and no inline script is allowed;
/// - `style-src 'self' 'unsafe-inline'`: both UIs set inline `style` attributes, and ReDoc
///   injects `<style>` elements (styled-components);
/// - `img-src 'self' data:` and `font-src 'self' data:`: the UIs embed icons as `data:` URIs;
/// - `connect-src 'self'`: the pages fetch `/openapi.json`;
/// - `worker-src 'self' blob:`: ReDoc builds its search index in a worker created from a
///   `blob:` URL;
/// - `base-uri`, `form-action`, `frame-ancestors` and `object-src` stay closed.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The deny-all `Permissions-Policy`: every feature listed by the OWASP Secure Headers project
/// (`headers_add.json`), each with an empty allow-list.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), \
cross-origin-isolated=(), display-capture=(), encrypted-media=(), fullscreen=(), geolocation=(), \
gyroscope=(), keyboard-map=(), magnetometer=(), microphone=(), midi=(), payment=(), \
picture-in-picture=(), publickey-credentials-get=(), screen-wake-lock=(), sync-xhr=(), usb=(), \
web-share=(), xr-spatial-tracking=(), clipboard-read=(), clipboard-write=(), gamepad=(), hid=(), \
idle-detection=(), interest-cohort=(), serial=(), unload=()";

/// `Strict-Transport-Security`: two years with subdomains (OWASP Secure Headers project).
/// `preload` is left to the operator: it is a commitment registered with browser vendors.
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

/// A bad [`SecurityHeadersLayer`] configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityHeadersError {
    /// A path prefix that does not start with `/` (it could never match a request path).
    #[error("invalid path prefix {0:?}: a prefix starts with '/', e.g. \"/docs\"")]
    InvalidPrefix(String),
    /// A header name that is not a valid HTTP field name.
    #[error("invalid header name {0:?}")]
    InvalidHeaderName(String),
    /// A header value with characters not allowed in an HTTP field value.
    #[error(
        "invalid value {value:?} for header {name}: only visible ASCII and spaces are accepted"
    )]
    InvalidHeaderValue {
        /// The header the value was meant for.
        name: String,
        /// The rejected value.
        value: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Replace whatever the inner service set.
    Override,
    /// Set only when the response has no such header.
    IfMissing,
}

#[derive(Clone, Debug)]
struct Rule {
    name: HeaderName,
    /// `None`: the header is disabled (neither set nor removed).
    value: Option<HeaderValue>,
    mode: Mode,
}

/// An ordered set of header rules, one per name.
#[derive(Clone, Debug, Default)]
struct Rules(Vec<Rule>);

impl Rules {
    fn put(&mut self, rule: Rule) {
        match self.0.iter_mut().find(|r| r.name == rule.name) {
            Some(existing) => *existing = rule,
            None => self.0.push(rule),
        }
    }

    /// `self` with every rule of `overrides` applied on top.
    fn merged(&self, overrides: &Rules) -> Rules {
        let mut merged = self.clone();
        for rule in &overrides.0 {
            merged.put(rule.clone());
        }
        merged
    }
}

/// Header overrides for one path prefix, given to [`SecurityHeadersLayer::path_prefix`].
///
/// # Examples
///
/// ```
/// use palisade::security_headers::{PathHeaders, SecurityHeadersLayer};
/// use http::{HeaderValue, header};
///
/// let layer = SecurityHeadersLayer::new().path_prefix(
///     "/static",
///     PathHeaders::new()
///         .set(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"))
///         .disable(header::CONTENT_SECURITY_POLICY),
/// );
/// assert!(layer.is_ok());
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct PathHeaders {
    rules: Rules,
}

impl PathHeaders {
    /// No overrides: the prefix gets the layer's headers unchanged.
    pub fn new() -> Self {
        Self::default()
    }

    /// The preset for Swagger UI / ReDoc pages: [`DOCS_CSP`] and `Cache-Control: no-cache`
    /// (the pages hold no user data; the browser may keep them but must revalidate).
    pub fn docs() -> Self {
        Self::new()
            .set(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_CSP),
            )
            .set(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))
    }

    /// Sets `name: value` under this prefix, replacing what the inner service set.
    pub fn set(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.rules.put(Rule {
            name,
            value: Some(value),
            mode: Mode::Override,
        });
        self
    }

    /// Sets `name: value` under this prefix when the response has no `name` header.
    pub fn set_if_missing(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.rules.put(Rule {
            name,
            value: Some(value),
            mode: Mode::IfMissing,
        });
        self
    }

    /// Does not set `name` under this prefix (whatever the inner service set is kept).
    pub fn disable(mut self, name: HeaderName) -> Self {
        self.rules.put(Rule {
            name,
            value: None,
            mode: Mode::Override,
        });
        self
    }
}

#[derive(Debug)]
struct Policy {
    base: Rules,
    /// Effective rules per prefix (base merged with the override), longest prefix first.
    prefixes: Vec<(String, Rules)>,
    strip: Vec<HeaderName>,
}

impl Policy {
    fn rules_for(&self, path: &str) -> Option<usize> {
        self.prefixes
            .iter()
            .position(|(prefix, _)| prefix_matches(prefix, path))
    }

    fn apply<B>(&self, rules: Option<usize>, res: &mut Response<B>) {
        let rules = match rules.and_then(|i| self.prefixes.get(i)) {
            Some((_, rules)) => rules,
            None => &self.base,
        };
        let headers = res.headers_mut();
        for name in &self.strip {
            headers.remove(name);
        }
        for rule in &rules.0 {
            let Some(value) = &rule.value else { continue };
            match rule.mode {
                Mode::Override => {
                    headers.insert(rule.name.clone(), value.clone());
                }
                Mode::IfMissing => {
                    if !headers.contains_key(&rule.name) {
                        headers.insert(rule.name.clone(), value.clone());
                    }
                }
            }
        }
    }
}

/// Whole-segment prefix match: `/docs` matches `/docs`, `/docs/` and `/docs/a`, not `/docsa`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.is_empty(),
        None => false,
    }
}

/// Sets security headers on every response and strips `Server`/`X-Powered-By`.
/// See the [module docs](self). Cheap to clone.
#[derive(Clone, Debug)]
#[must_use]
pub struct SecurityHeadersLayer {
    base: Rules,
    prefixes: Vec<(String, PathHeaders)>,
    strip: Vec<HeaderName>,
    /// Rebuilt by every builder call, then shared by every service the layer makes.
    policy: Arc<Policy>,
}

impl Default for SecurityHeadersLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SecurityHeadersLayer {
    /// The secure defaults listed in the [module docs](self), with no path overrides.
    pub fn new() -> Self {
        let mut base = Rules::default();
        let defaults: [(HeaderName, &'static str, Mode); 10] = [
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff", Mode::Override),
            (header::X_FRAME_OPTIONS, "DENY", Mode::Override),
            (header::STRICT_TRANSPORT_SECURITY, HSTS, Mode::Override),
            (header::CONTENT_SECURITY_POLICY, API_CSP, Mode::Override),
            (header::REFERRER_POLICY, "no-referrer", Mode::Override),
            (
                HeaderName::from_static("permissions-policy"),
                PERMISSIONS_POLICY,
                Mode::Override,
            ),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                "same-origin",
                Mode::Override,
            ),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                "same-origin",
                Mode::Override,
            ),
            (header::CACHE_CONTROL, "no-store", Mode::IfMissing),
            (header::X_XSS_PROTECTION, "0", Mode::Override),
        ];
        for (name, value, mode) in defaults {
            base.put(Rule {
                name,
                value: Some(HeaderValue::from_static(value)),
                mode,
            });
        }
        let strip = vec![header::SERVER, HeaderName::from_static("x-powered-by")];
        Self::build(base, Vec::new(), strip)
    }

    fn build(base: Rules, prefixes: Vec<(String, PathHeaders)>, strip: Vec<HeaderName>) -> Self {
        let mut effective: Vec<(String, Rules)> = prefixes
            .iter()
            .map(|(prefix, o)| (prefix.clone(), base.merged(&o.rules)))
            .collect();
        // Longest prefix first, so that `/docs/oauth` can override `/docs`.
        effective.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        let policy = Arc::new(Policy {
            base: base.clone(),
            prefixes: effective,
            strip: strip.clone(),
        });
        Self {
            base,
            prefixes,
            strip,
            policy,
        }
    }

    fn rebuild(self) -> Self {
        Self::build(self.base, self.prefixes, self.strip)
    }

    /// Sets `name: value` on every response, replacing what the inner service set.
    pub fn set(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.base.put(Rule {
            name,
            value: Some(value),
            mode: Mode::Override,
        });
        self.rebuild()
    }

    /// Sets `name: value` on every response that has no `name` header.
    pub fn set_if_missing(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.base.put(Rule {
            name,
            value: Some(value),
            mode: Mode::IfMissing,
        });
        self.rebuild()
    }

    /// Like [`set`](Self::set), from strings (for values read from configuration).
    ///
    /// # Errors
    ///
    /// When `name` or `value` is not valid in an HTTP header.
    pub fn try_set(self, name: &str, value: &str) -> Result<Self, SecurityHeadersError> {
        let name = HeaderName::try_from(name)
            .map_err(|_| SecurityHeadersError::InvalidHeaderName(name.to_owned()))?;
        let value =
            HeaderValue::try_from(value).map_err(|_| SecurityHeadersError::InvalidHeaderValue {
                name: name.to_string(),
                value: value.to_owned(),
            })?;
        Ok(self.set(name, value))
    }

    /// Replaces the API `Content-Security-Policy` ([`API_CSP`] by default).
    ///
    /// # Errors
    ///
    /// When `policy` is not a valid header value.
    pub fn content_security_policy(self, policy: &str) -> Result<Self, SecurityHeadersError> {
        self.try_set(header::CONTENT_SECURITY_POLICY.as_str(), policy)
    }

    /// Stops setting `name` (any value the inner service set is kept).
    pub fn disable(mut self, name: HeaderName) -> Self {
        self.base.put(Rule {
            name,
            value: None,
            mode: Mode::Override,
        });
        self.rebuild()
    }

    /// Also removes `name` from every response (like `Server` and `X-Powered-By`).
    pub fn strip(mut self, name: HeaderName) -> Self {
        if !self.strip.contains(&name) {
            self.strip.push(name);
        }
        self.rebuild()
    }

    /// Stops removing `name` (e.g. to let a `Server` header through).
    pub fn keep(mut self, name: &HeaderName) -> Self {
        self.strip.retain(|n| n != name);
        self.rebuild()
    }

    /// Applies `overrides` to responses for paths under `prefix` (whole segments; the longest
    /// matching prefix wins). Calling it again for the same prefix replaces its overrides.
    ///
    /// # Errors
    ///
    /// [`SecurityHeadersError::InvalidPrefix`] when `prefix` does not start with `/`.
    pub fn path_prefix(
        mut self,
        prefix: &str,
        overrides: PathHeaders,
    ) -> Result<Self, SecurityHeadersError> {
        if !prefix.starts_with('/') {
            return Err(SecurityHeadersError::InvalidPrefix(prefix.to_owned()));
        }
        self.prefixes.retain(|(p, _)| p != prefix);
        self.prefixes.push((prefix.to_owned(), overrides));
        Ok(self.rebuild())
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service made by [`SecurityHeadersLayer`].
#[derive(Clone, Debug)]
pub struct SecurityHeaders<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> SecurityHeaders<S> {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let rules = self.policy.rules_for(req.uri().path());
        ResponseFuture {
            inner: self.inner.call(req),
            policy: self.policy.clone(),
            rules,
        }
    }
}

pin_project! {
    /// The response future of [`SecurityHeaders`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        policy: Arc<Policy>,
        rules: Option<usize>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        this.policy.apply(*this.rules, &mut res);
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("/docs", "/docs"));
        assert!(prefix_matches("/docs", "/docs/"));
        assert!(prefix_matches("/docs", "/docs/swagger-ui.css"));
        assert!(prefix_matches("/docs/", "/docs/x"));
        assert!(!prefix_matches("/docs", "/docsx"));
        assert!(!prefix_matches("/docs", "/api/docs"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn prefixes_must_start_with_a_slash() {
        let err = SecurityHeadersLayer::new()
            .path_prefix("docs", PathHeaders::docs())
            .expect_err("no leading slash");
        assert_eq!(err, SecurityHeadersError::InvalidPrefix("docs".to_owned()));
    }
}
