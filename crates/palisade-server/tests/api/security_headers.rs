//! Issue 4, "Must show": the full security-header set on every route of SPEC §3, for each of
//! 200, 401, 404, 405, 413 and 429, on CORS preflights and on host rejections.

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::helpers::{
    RawResponse, TestApp, Tokens, assert_security_headers, raw_request, spawn_app_with,
};

/// Every route of SPEC §3 that exists: method and path.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/health"),
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("POST", "/auth/logout-all"),
    ("GET", "/protected"),
    ("GET", "/user/profile"),
    ("GET", "/api/data"),
];

/// `MAX_BODY_BYTES` for these tests (the smallest accepted value).
const MAX_BODY: usize = 1024;

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("valid method")
}

/// One request of the table and the status it must get.
struct Probe {
    label: String,
    status: u16,
    request: RequestBuilder,
}

impl Probe {
    fn new(route: &(&str, &str), status: u16, request: RequestBuilder) -> Self {
        Self {
            label: format!("{} {} -> {status}", route.0, route.1),
            status,
            request,
        }
    }
}

/// Sends `probe` and checks its status, the header set and a JSON body; returns the body.
async fn check(probe: Probe) -> Value {
    let res = probe.request.send().await.expect("request sent");
    assert_eq!(res.status().as_u16(), probe.status, "{}", probe.label);
    assert_security_headers(res.headers(), &probe.label);
    assert_eq!(
        res.headers()
            .get("content-type")
            .map(|v| v.to_str().expect("ASCII")),
        Some("application/json"),
        "{}: JSON content type",
        probe.label
    );
    if probe.status == 401 {
        assert_eq!(
            res.headers().get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..]),
            "{}",
            probe.label
        );
    }
    let label = probe.label;
    let body: Value = res
        .json()
        .await
        .unwrap_or_else(|e| panic!("{label}: body is not JSON: {e}"));
    assert!(body.is_object(), "{label}: {body}");
    if probe.status >= 400 && probe.status != 429 {
        assert!(
            body["detail"].is_string() || body["detail"].is_array(),
            "{label}: error body has a detail: {body}"
        );
    }
    body
}

/// The request of `route` that succeeds, given a fresh user for each route that spends its
/// tokens (logout, logout-all, refresh).
async fn success(app: &TestApp, route: &(&str, &str), n: usize) -> RequestBuilder {
    let (m, path) = *route;
    let req = app.client.request(method(m), app.url(path));
    let fresh = |name: &str| format!("{name}{n}");
    match path {
        "/auth/register" => {
            let name = fresh("newcomer");
            req.json(&json!({ "username": name, "email": format!("{name}@example.com"), "password": "correct-horse-battery" }))
        }
        "/auth/login" => {
            let name = fresh("returning");
            app.user(&name).await;
            req.json(&json!({ "username": name, "password": "correct-horse-battery" }))
        }
        "/auth/refresh" => {
            let Tokens { refresh, .. } = app.user(&fresh("refresher")).await;
            req.json(&json!({ "refresh_token": refresh }))
        }
        "/auth/logout" | "/auth/logout-all" | "/protected" | "/user/profile" => {
            let Tokens { access, .. } = app.user(&fresh("member")).await;
            req.bearer_auth(access)
        }
        _ => req,
    }
}

/// The request of `route` that gets 401, or `None` for routes that never ask for credentials.
fn unauthorized(app: &TestApp, route: &(&str, &str)) -> Option<RequestBuilder> {
    let (m, path) = *route;
    let req = app.client.request(method(m), app.url(path));
    match path {
        "/" | "/health" | "/auth/register" => None,
        "/auth/login" => {
            Some(req.json(&json!({ "username": "nobody", "password": "wrong-password-123" })))
        }
        "/auth/refresh" => Some(req.json(&json!({ "refresh_token": "not-a-token" }))),
        // A token that is present but invalid is 401 even where anonymous callers are welcome.
        "/api/data" => Some(req.bearer_auth("not-a-token")),
        _ => Some(req),
    }
}

#[tokio::test]
async fn every_route_carries_the_security_headers_on_200_401_404_405_and_413() {
    // Arrange
    let app = spawn_app_with(&[("MAX_BODY_BYTES", "1024")]).await;

    for (n, route) in ROUTES.iter().enumerate() {
        let (m, path) = *route;
        // Act + Assert: 200
        let body = check(Probe::new(route, 200, success(&app, route, n).await)).await;
        assert!(!body.as_object().is_some_and(|o| o.is_empty()), "{body}");

        // 401
        if let Some(req) = unauthorized(&app, route) {
            check(Probe::new(route, 401, req)).await;
        }

        // 404: a path under (or beside) the route that does not exist.
        let missing = format!("{}/no-such-thing", path.trim_end_matches('/'));
        let req = app.client.request(method(m), app.url(&missing));
        check(Probe::new(&(m, &missing), 404, req)).await;

        // 405: the route with a method it does not accept.
        let other = if m == "GET" { "DELETE" } else { "GET" };
        let body = check(Probe::new(
            &(other, path),
            405,
            app.client.request(method(other), app.url(path)),
        ))
        .await;
        assert_eq!(body, json!({ "detail": "Method Not Allowed" }));

        // 413: a body one byte over MAX_BODY_BYTES, whatever the route.
        let req = app
            .client
            .request(method(m), app.url(path))
            .header("content-type", "application/json")
            .body(vec![b' '; MAX_BODY + 1]);
        let body = check(Probe::new(route, 413, req)).await;
        assert_eq!(body, json!({ "detail": "Request body too large" }));
    }
}

#[tokio::test]
async fn every_route_carries_the_security_headers_on_429() {
    // Arrange: one request per minute on every route.
    let env: Vec<(String, String)> = [
        "ROOT",
        "HEALTH",
        "REGISTER",
        "LOGIN",
        "REFRESH",
        "LOGOUT",
        "LOGOUT_ALL",
        "PROTECTED",
        "PROFILE",
        "DATA",
    ]
    .iter()
    .map(|r| (format!("RATE_LIMITS_{r}"), "1/minute".to_owned()))
    .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(&env).await;

    for route in ROUTES {
        let (m, path) = *route;
        let request = || {
            app.client
                .request(method(m), app.url(path))
                .json(&json!({}))
        };
        // Act: the first request spends the only one allowed.
        let first = request().send().await.expect("request sent");
        assert_ne!(first.status(), 429, "{m} {path}: first request");

        // Assert
        let body = check(Probe::new(route, 429, request())).await;
        assert_eq!(body["error"], "Rate limit exceeded", "{m} {path}: {body}");
        assert!(body["retry_after"].is_number(), "{m} {path}: {body}");
    }
}

#[tokio::test]
async fn cors_preflights_carry_the_security_headers() {
    // Arrange
    let app = spawn_app_with(&[("CORS_ORIGINS", "https://app.example.com")]).await;
    let preflight = |origin: &str| {
        app.client
            .request(Method::OPTIONS, app.url("/user/profile"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
    };

    // Act
    let allowed = preflight("https://app.example.com")
        .send()
        .await
        .expect("sent");
    let refused = preflight("https://evil.example.net")
        .send()
        .await
        .expect("sent");

    // Assert
    assert_eq!(allowed.status(), 200);
    assert_security_headers(allowed.headers(), "allowed preflight");
    let h = allowed.headers();
    assert_eq!(
        h.get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(&b"https://app.example.com"[..])
    );
    assert_eq!(
        h.get("access-control-allow-credentials")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(
        h.get("access-control-max-age").map(|v| v.as_bytes()),
        Some(&b"600"[..])
    );

    assert_security_headers(refused.headers(), "refused preflight");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn host_rejections_carry_the_security_headers() {
    // Arrange
    let app = spawn_app_with(&[]).await;

    // Act
    let res: RawResponse = raw_request(
        &app.address,
        "GET /health HTTP/1.1\r\nHost: evil.example.net\r\nConnection: close\r\n\r\n",
    )
    .await;

    // Assert
    assert_eq!(res.status, 400);
    assert_security_headers(&res.headers, "host rejection");
    assert_eq!(res.json(), json!({ "detail": "Invalid host header" }));
}
