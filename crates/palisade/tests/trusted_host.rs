//! The Host matrix: exact, wildcard, ports, foreign, missing and malformed hosts.

use std::convert::Infallible;

use axum::body::Body;
use http::{Request, Response, StatusCode, header};
use palisade::trusted_host::{HostRejection, TrustedHostError, TrustedHostLayer};
use tower::{Layer, ServiceExt, service_fn};

fn layer() -> TrustedHostLayer {
    TrustedHostLayer::new([
        "example.com",
        "*.example.com",
        "localhost:8000",
        "[::1]:8000",
    ])
    .expect("valid patterns")
}

async fn call(layer: &TrustedHostLayer, req: Request<Body>) -> Response<Body> {
    layer
        .layer(service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::from("ok")))
        }))
        .oneshot(req)
        .await
        .expect("infallible")
}

fn with_host(host: &[u8]) -> Request<Body> {
    Request::builder()
        .uri("/")
        .header(header::HOST, host)
        .body(Body::empty())
        .expect("request")
}

#[track_caller]
fn assert_rejected_shape(res: &Response<Body>) {
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
}

async fn body_json(res: Response<Body>) -> serde_json::Value {
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("JSON body")
}

#[tokio::test]
async fn the_host_matrix() {
    let allowed: &[&[u8]] = &[
        b"example.com",
        b"EXAMPLE.com",
        b"example.com.",
        b"example.com:443",
        b"example.com:8080",
        b"api.example.com",
        b"a.b.example.com:9000",
        b"localhost:8000",
        b"[::1]:8000",
        b"[0:0:0:0:0:0:0:1]:8000",
    ];
    let refused: &[&[u8]] = &[
        b"evil.com",
        b"example.com.evil.com",
        b"evilexample.com",
        b"example.org",
        b"localhost",
        b"localhost:8001",
        b"[::1]",
        b"127.0.0.1",
        b"evil.com@example.com",
        b"example.com@evil.com",
        b"",
        b" ",
        b"example.com:",
        b"example.com:http",
        b"example.com:99999",
        b"exa mple.com",
        b"example..com",
        b".example.com",
        b"*.example.com",
        b"example.com/path",
        b"example.com\\x",
        b"ex\xc3\xa4mple.com",
    ];
    let layer = layer();
    for host in allowed {
        let res = call(&layer, with_host(host)).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{:?}",
            String::from_utf8_lossy(host)
        );
    }
    for host in refused {
        let res = call(&layer, with_host(host)).await;
        assert_rejected_shape(&res);
        assert!(
            res.extensions().get::<HostRejection>().is_some(),
            "{:?} carries its rejection",
            String::from_utf8_lossy(host)
        );
        assert_eq!(
            body_json(res).await,
            serde_json::json!({"detail": "Invalid host header"})
        );
    }
}

#[tokio::test]
async fn a_missing_host_is_refused() {
    let res = call(&layer(), Request::new(Body::empty())).await;
    assert_eq!(
        res.extensions().get::<HostRejection>(),
        Some(&HostRejection::Missing)
    );
    assert_rejected_shape(&res);
    assert_eq!(body_json(res).await["detail"], "Invalid host header");
}

#[tokio::test]
async fn two_host_headers_are_refused() {
    let req = Request::builder()
        .header(header::HOST, "example.com")
        .header(header::HOST, "example.com")
        .body(Body::empty())
        .expect("request");
    let res = call(&layer(), req).await;
    assert_eq!(
        res.extensions().get::<HostRejection>(),
        Some(&HostRejection::Multiple)
    );
}

#[tokio::test]
async fn the_http2_authority_counts_when_there_is_no_host_header() {
    // HTTP/2 requests carry `:authority`, which hyper puts in the URI, and no Host header.
    let ok = Request::get("https://api.example.com/x")
        .body(Body::empty())
        .expect("r");
    assert_eq!(call(&layer(), ok).await.status(), StatusCode::OK);

    let foreign = Request::get("https://evil.com/x")
        .body(Body::empty())
        .expect("r");
    assert_rejected_shape(&call(&layer(), foreign).await);

    let userinfo = Request::get("https://evil.com@example.com/")
        .body(Body::empty())
        .expect("r");
    assert_rejected_shape(&call(&layer(), userinfo).await);
}

#[tokio::test]
async fn an_allowed_host_header_cannot_cover_a_foreign_authority() {
    let req = Request::get("http://evil.com/")
        .header(header::HOST, "example.com")
        .body(Body::empty())
        .expect("request");
    let res = call(&layer(), req).await;
    assert_eq!(
        res.extensions().get::<HostRejection>(),
        Some(&HostRejection::NotAllowed("evil.com".to_owned()))
    );
}

#[tokio::test]
async fn a_star_allows_everything() {
    let layer = TrustedHostLayer::new(["*"]).expect("valid");
    assert_eq!(
        call(&layer, with_host(b"anything.test")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&layer, Request::new(Body::empty())).await.status(),
        StatusCode::OK
    );
}

#[test]
fn bad_configuration_is_an_error_naming_the_value() {
    let none: [&str; 0] = [];
    assert_eq!(
        TrustedHostLayer::new(none).expect_err("empty"),
        TrustedHostError::Empty
    );
    let err = TrustedHostLayer::new(["example.com", "*.ex*ample.com"]).expect_err("bad pattern");
    assert!(err.to_string().contains("\"*.ex*ample.com\""), "{err}");
}

proptest::proptest! {
    /// Whatever arrives in a Host header, matching never panics, and only hosts made of the
    /// accepted characters can match.
    #[test]
    fn any_host_value_is_handled_without_panicking(host in "\\PC{0,40}") {
        let pattern: palisade::trusted_host::HostPattern = "*.example.com".parse().expect("valid");
        let matched = pattern.matches(&host);
        if matched {
            proptest::prop_assert!(host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b)));
        }
    }

    /// Any subdomain label we generate is matched by the wildcard, in any case, with any port.
    #[test]
    fn generated_subdomains_match(label in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", port in 1u16..) {
        let pattern: palisade::trusted_host::HostPattern = "*.example.com".parse().expect("valid");
        let upper = format!("{}.EXAMPLE.com:{port}", label.to_ascii_uppercase());
        proptest::prop_assert!(pattern.matches(&upper));
    }
}
