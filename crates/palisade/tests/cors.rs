//! CORS: preflights, simple requests, refused origins, refused configurations.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, Response, StatusCode, header};
use palisade::cors::{CorsConfig, CorsError};
use tower::{Layer, ServiceExt, service_fn};
use tower_http::cors::CorsLayer;

fn layer() -> CorsLayer {
    CorsConfig::parse("https://app.example.com, http://localhost:3000")
        .expect("valid origins")
        .allow_credentials(true)
        .into_layer()
        .expect("valid policy")
}

async fn call(req: Request<Body>) -> Response<Body> {
    layer()
        .layer(service_fn(|_req: Request<Body>| async {
            let mut res = Response::new(Body::from("{}"));
            res.headers_mut()
                .insert("x-request-id", "abc".parse().expect("valid"));
            res.headers_mut()
                .insert("ratelimit", "\"api\";r=9;t=60".parse().expect("valid"));
            Ok::<_, Infallible>(res)
        }))
        .oneshot(req)
        .await
        .expect("infallible")
}

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/user/profile")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .body(Body::empty())
        .expect("request")
}

/// The comma-separated tokens of a header, lower-cased.
fn tokens(res: &Response<Body>, name: header::HeaderName) -> Vec<String> {
    res.headers()
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().expect("ascii").split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn an_allowed_origins_preflight_is_answered_and_cacheable() {
    let res = call(preflight("https://app.example.com")).await;

    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
    let headers = tokens(&res, header::ACCESS_CONTROL_ALLOW_HEADERS);
    for want in ["authorization", "content-type", "x-request-id"] {
        assert!(headers.contains(&want.to_owned()), "{want} in {headers:?}");
    }
    let methods = tokens(&res, header::ACCESS_CONTROL_ALLOW_METHODS);
    for want in ["get", "post", "delete"] {
        assert!(methods.contains(&want.to_owned()), "{want} in {methods:?}");
    }
    assert!(tokens(&res, header::VARY).contains(&"origin".to_owned()));
}

#[tokio::test]
async fn a_simple_request_exposes_the_request_id_and_rate_limit_headers() {
    let req = Request::get("/api/data")
        .header(header::ORIGIN, "http://localhost:3000")
        .body(Body::empty())
        .expect("request");
    let res = call(req).await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://localhost:3000"
    );
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
        "true"
    );
    let exposed = tokens(&res, header::ACCESS_CONTROL_EXPOSE_HEADERS);
    for want in [
        "x-request-id",
        "ratelimit",
        "ratelimit-policy",
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(exposed.contains(&want.to_owned()), "{want} in {exposed:?}");
    }
    assert_eq!(res.headers()["x-request-id"], "abc");
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_allow_origin() {
    for origin in [
        "https://evil.com",
        "https://app.example.com.evil.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "null",
    ] {
        let res = call(preflight(origin)).await;
        assert!(
            res.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none(),
            "preflight from {origin}"
        );
        let simple = Request::get("/")
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .expect("request");
        let res = call(simple).await;
        assert!(
            res.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none(),
            "request from {origin}"
        );
    }
}

#[tokio::test]
async fn a_wildcard_without_credentials_allows_any_origin() {
    let svc = CorsConfig::parse("*")
        .expect("valid")
        .max_age(Duration::from_secs(60))
        .into_layer()
        .expect("valid policy")
        .layer(service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    let res = svc
        .oneshot(preflight("https://anyone.test"))
        .await
        .expect("infallible");
    assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(res.headers()[header::ACCESS_CONTROL_MAX_AGE], "60");
    assert!(
        res.headers()
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none()
    );
}

#[test]
fn a_wildcard_with_credentials_is_a_configuration_error() {
    let config = CorsConfig::parse("*")
        .expect("valid list")
        .allow_credentials(true);
    assert_eq!(config.validate(), Err(CorsError::CredentialsWithWildcard));
    assert_eq!(
        config.into_layer().expect_err("refused"),
        CorsError::CredentialsWithWildcard
    );
}

#[test]
fn invalid_origins_are_errors_naming_the_value() {
    for list in [
        "https://app.example.com/",
        "app.example.com",
        "https://ok.example.com, ftp://files.example.com",
        "*, https://app.example.com",
    ] {
        let err = CorsConfig::parse(list).expect_err(list);
        let message = err.to_string();
        match err {
            CorsError::MixedWildcard => {}
            _ => assert!(
                list.split(", ")
                    .any(|o| message.contains(&format!("{o:?}"))),
                "{message}"
            ),
        }
    }
}

proptest::proptest! {
    /// Parsing never panics, and whatever is accepted is already normalised.
    #[test]
    fn origin_parsing_is_total_and_idempotent(origin in "\\PC{0,40}") {
        if let Ok(parsed) = palisade::cors::Origin::parse(&origin) {
            let again = palisade::cors::Origin::parse(parsed.as_str()).expect("re-parses");
            proptest::prop_assert_eq!(again.as_str(), parsed.as_str());
        }
    }
}
