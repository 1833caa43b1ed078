//! Security headers on every response, whatever produced it.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use palisade::cors::CorsConfig;
use palisade::limits::{HardeningLayer, LimitsConfig};
use palisade::request_id::RequestIdLayer;
use palisade::security_headers::{DOCS_CSP, PERMISSIONS_POLICY, PathHeaders, SecurityHeadersLayer};
use palisade::trusted_host::TrustedHostLayer;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Every header the layer sets by default on an API response, with its value.
fn expected(csp: &str, cache_control: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-content-type-options", "nosniff".to_owned()),
        ("x-frame-options", "DENY".to_owned()),
        (
            "strict-transport-security",
            "max-age=63072000; includeSubDomains".to_owned(),
        ),
        ("content-security-policy", csp.to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
        ("permissions-policy", PERMISSIONS_POLICY.to_owned()),
        ("cross-origin-opener-policy", "same-origin".to_owned()),
        ("cross-origin-resource-policy", "same-origin".to_owned()),
        ("cache-control", cache_control.to_owned()),
        ("x-xss-protection", "0".to_owned()),
    ]
}

#[track_caller]
fn assert_headers(headers: &HeaderMap, csp: &str, cache_control: &str, context: &str) {
    for (name, value) in expected(csp, cache_control) {
        let got: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(got.len(), 1, "{context}: exactly one {name}, got {got:?}");
        assert_eq!(got[0], value.as_str(), "{context}: {name}");
    }
    assert!(
        headers.get(header::SERVER).is_none(),
        "{context}: Server removed"
    );
    assert!(
        headers.get("x-powered-by").is_none(),
        "{context}: X-Powered-By removed"
    );
}

fn docs_layer() -> SecurityHeadersLayer {
    SecurityHeadersLayer::new()
        .path_prefix("/docs", PathHeaders::docs())
        .expect("valid prefix")
        .path_prefix("/redoc", PathHeaders::docs())
        .expect("valid prefix")
}

/// An inner service answering `status` with headers that name the software.
async fn leaky(status: StatusCode) -> Result<Response<Body>, Infallible> {
    let mut res = Response::new(Body::from(r#"{"detail":"x"}"#));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(header::SERVER, "uvicorn".parse().expect("valid"));
    headers.insert("x-powered-by", "FastAPI".parse().expect("valid"));
    headers.insert(
        header::X_XSS_PROTECTION,
        "1; mode=block".parse().expect("valid"),
    );
    Ok(res)
}

#[tokio::test]
async fn every_status_from_the_inner_service_gets_the_full_header_set() {
    for status in [200, 401, 404, 405, 413, 429, 500] {
        // Arrange
        let status = StatusCode::from_u16(status).expect("valid status");
        let svc = docs_layer().layer(service_fn(move |_req: Request<Body>| leaky(status)));

        // Act
        let res = svc
            .oneshot(
                Request::get("/protected")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");

        // Assert
        assert_eq!(res.status(), status);
        assert_headers(res.headers(), API_CSP, "no-store", status.as_str());
    }
}

#[tokio::test]
async fn docs_prefixes_get_the_docs_policy_and_nothing_else_does() {
    let svc = docs_layer().layer(service_fn(|_req: Request<Body>| leaky(StatusCode::OK)));
    let cases = [
        ("/docs", DOCS_CSP, "no-cache"),
        ("/docs/", DOCS_CSP, "no-cache"),
        ("/docs/swagger-ui-bundle.js", DOCS_CSP, "no-cache"),
        ("/redoc", DOCS_CSP, "no-cache"),
        ("/docsx", API_CSP, "no-store"),
        ("/api/docs", API_CSP, "no-store"),
        ("/openapi.json", API_CSP, "no-store"),
    ];
    for (path, csp, cache) in cases {
        let res = svc
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_headers(res.headers(), csp, cache, path);
    }
}

#[tokio::test]
async fn a_handlers_own_cache_control_is_kept_but_its_csp_is_not() {
    let svc = SecurityHeadersLayer::new().layer(service_fn(|_req: Request<Body>| async {
        let mut res = Response::new(Body::empty());
        res.headers_mut()
            .insert(header::CACHE_CONTROL, "max-age=60".parse().expect("valid"));
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            "default-src *".parse().expect("valid"),
        );
        Ok::<_, Infallible>(res)
    }));
    let res = svc
        .oneshot(Request::new(Body::empty()))
        .await
        .expect("infallible");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "max-age=60");
    assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], API_CSP);
}

#[tokio::test]
async fn headers_can_be_overridden_disabled_and_kept() {
    let layer = SecurityHeadersLayer::new()
        .try_set("referrer-policy", "strict-origin-when-cross-origin")
        .expect("valid")
        .disable(header::X_FRAME_OPTIONS)
        .keep(&header::SERVER)
        .strip(header::HeaderName::from_static("x-aspnet-version"));
    let svc = layer.layer(service_fn(|_req: Request<Body>| async {
        let mut res = Response::new(Body::empty());
        res.headers_mut()
            .insert(header::SERVER, "palisade".parse().expect("valid"));
        res.headers_mut()
            .insert("x-aspnet-version", "4".parse().expect("valid"));
        Ok::<_, Infallible>(res)
    }));
    let res = svc
        .oneshot(Request::new(Body::empty()))
        .await
        .expect("infallible");
    assert_eq!(
        res.headers()[header::REFERRER_POLICY],
        "strict-origin-when-cross-origin"
    );
    assert!(res.headers().get(header::X_FRAME_OPTIONS).is_none());
    assert_eq!(res.headers()[header::SERVER], "palisade");
    assert!(res.headers().get("x-aspnet-version").is_none());
}

#[test]
fn bad_configuration_is_an_error_not_a_panic() {
    assert!(
        SecurityHeadersLayer::new()
            .try_set("bad name", "x")
            .is_err()
    );
    assert!(
        SecurityHeadersLayer::new()
            .try_set("x-a", "line\nbreak")
            .is_err()
    );
    assert!(
        SecurityHeadersLayer::new()
            .content_security_policy("default-src 'self'\r\n")
            .is_err()
    );
    assert!(
        SecurityHeadersLayer::new()
            .path_prefix("docs", PathHeaders::docs())
            .is_err()
    );
}

/// The server's order, outermost first: headers, request id, host check, CORS, limits, routes.
fn full_stack()
-> impl tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/boom",
            get(|| async {
                if true {
                    panic!("database password is hunter2");
                }
                "unreachable"
            }),
        )
        .route("/slow", get(std::future::pending::<&'static str>));
    ServiceBuilder::new()
        .layer(docs_layer())
        .layer(RequestIdLayer::new())
        .layer(TrustedHostLayer::new(["example.com"]).expect("valid hosts"))
        .layer(
            CorsConfig::parse("https://app.example.com")
                .expect("valid origins")
                .allow_credentials(true)
                .into_layer()
                .expect("valid CORS"),
        )
        .layer(
            HardeningLayer::new(&LimitsConfig {
                max_body_bytes: 8,
                timeout: Duration::from_millis(50),
                ..LimitsConfig::default()
            })
            .expect("valid limits"),
        )
        .service(router)
}

#[tokio::test]
async fn responses_made_by_every_layer_of_the_stack_get_the_headers() {
    let cases: Vec<(&str, Request<Body>, StatusCode)> = vec![
        (
            "handler",
            Request::get("/").body(Body::empty()).expect("r"),
            StatusCode::OK,
        ),
        (
            "router 404",
            Request::get("/nope").body(Body::empty()).expect("r"),
            StatusCode::NOT_FOUND,
        ),
        (
            "router 405",
            Request::delete("/").body(Body::empty()).expect("r"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "body limit 413",
            Request::post("/echo")
                .header(header::CONTENT_LENGTH, "9")
                .body(Body::from("123456789"))
                .expect("r"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "panic 500",
            Request::get("/boom").body(Body::empty()).expect("r"),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            "timeout 503",
            Request::get("/slow").body(Body::empty()).expect("r"),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            "host 400",
            Request::get("/")
                .header(header::HOST, "evil.com")
                .body(Body::empty())
                .expect("r"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "CORS preflight",
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/")
                .header(header::ORIGIN, "https://app.example.com")
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
                .body(Body::empty())
                .expect("r"),
            StatusCode::OK,
        ),
    ];
    let svc = full_stack();
    for (name, mut req, status) in cases {
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut()
                .insert(header::HOST, "example.com".parse().expect("valid"));
        }
        let res = svc.clone().oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), status, "{name}");
        assert_headers(res.headers(), API_CSP, "no-store", name);
        assert!(
            res.headers().contains_key("x-request-id"),
            "{name}: request id"
        );
        if status.is_client_error() || status.is_server_error() {
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .expect("body");
            let json: serde_json::Value = if body.is_empty() {
                // axum's own 404/405 have no body; the server adds JSON fallbacks.
                serde_json::Value::Null
            } else {
                serde_json::from_slice(&body).expect("JSON error body")
            };
            assert!(
                !String::from_utf8_lossy(&body).contains("hunter2"),
                "{name}: leak"
            );
            if !matches!(status.as_u16(), 404 | 405) {
                assert!(json["detail"].is_string(), "{name}: {json}");
            }
        }
    }
}
