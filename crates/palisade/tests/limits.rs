//! Limits answered in JSON: body size, header size, timeout, overload and panics.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::{Request, Response, StatusCode, header};
use palisade::limits::{
    BodyLimitLayer, HardeningLayer, HeaderLimitLayer, LimitExceeded, LimitsConfig, LimitsError,
    MaxConcurrencyLayer, RequestTimeoutLayer, catch_panic, handle_error,
};
use tokio::sync::{Notify, oneshot};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

async fn json(res: Response<Body>) -> serde_json::Value {
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("JSON body")
}

/// Asserts a rejection: its status, the typed reason in its extensions, and its JSON detail.
async fn assert_rejected(
    res: Response<Body>,
    status: StatusCode,
    reason: LimitExceeded,
    detail: &str,
) {
    assert_eq!(res.status(), status);
    assert_eq!(res.extensions().get::<LimitExceeded>(), Some(&reason));
    assert_eq!(json(res).await, serde_json::json!({ "detail": detail }));
}

fn echo_router() -> Router {
    Router::new().route(
        "/echo",
        post(|axum::Json(v): axum::Json<serde_json::Value>| async move { axum::Json(v) }),
    )
}

#[tokio::test]
async fn an_announced_oversized_body_gets_413_json_without_reaching_the_handler() {
    let svc =
        BodyLimitLayer::new(16)
            .expect("valid")
            .layer(service_fn(|_req: Request<Body>| async {
                panic!("the handler must not run");
                #[allow(unreachable_code)]
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }));
    let req = Request::post("/echo")
        .header(header::CONTENT_LENGTH, "17")
        .body(Body::from("x".repeat(17)))
        .expect("request");

    let res = svc.oneshot(req).await.expect("infallible");

    assert_rejected(
        res,
        StatusCode::PAYLOAD_TOO_LARGE,
        LimitExceeded::BodyTooLarge,
        "Request body too large",
    )
    .await;
}

#[tokio::test]
async fn a_streamed_oversized_body_rejected_by_axums_json_extractor_is_413_json() {
    // No Content-Length and no size hint: only reading the body finds out, inside `Json`.
    let chunks = futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, Infallible>(bytes::Bytes::from_static(b"[1,2,3,4,"))),
    );
    let req = Request::post("/echo")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(chunks))
        .expect("request");
    let svc = BodyLimitLayer::new(32).expect("valid").layer(echo_router());

    let res = svc.oneshot(req).await.expect("infallible");

    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        json(res).await,
        serde_json::json!({"detail": "Request body too large"})
    );
}

#[tokio::test]
async fn a_body_within_the_limit_passes() {
    let svc = BodyLimitLayer::new(32).expect("valid").layer(echo_router());
    let req = Request::post("/echo")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"a":1}"#))
        .expect("request");
    let res = svc.oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json(res).await, serde_json::json!({"a": 1}));
}

#[tokio::test]
async fn a_handler_past_the_timeout_gets_503_json() {
    let svc = RequestTimeoutLayer::new(Duration::from_millis(20))
        .expect("valid")
        .layer(service_fn(|_req: Request<Body>| async {
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));

    let res = svc
        .oneshot(Request::new(Body::empty()))
        .await
        .expect("infallible");

    assert_rejected(
        res,
        StatusCode::SERVICE_UNAVAILABLE,
        LimitExceeded::Timeout,
        "Request timed out",
    )
    .await;
}

#[tokio::test]
async fn the_timeout_status_can_be_408_but_not_anything() {
    let layer = RequestTimeoutLayer::new(Duration::from_millis(10))
        .expect("valid")
        .status(StatusCode::REQUEST_TIMEOUT)
        .expect("408 is accepted");
    let svc = layer.layer(service_fn(|_req: Request<Body>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let res = svc
        .oneshot(Request::new(Body::empty()))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);

    let err = RequestTimeoutLayer::new(Duration::from_secs(1))
        .expect("valid")
        .status(StatusCode::OK)
        .expect_err("200 is not a timeout");
    assert_eq!(err, LimitsError::TimeoutStatus(200));
}

#[tokio::test]
async fn an_overloaded_server_sheds_with_503_json_and_retry_after() {
    // Arrange: one slot, held by a request blocked on `release` until the test says so.
    let release = Arc::new(Notify::new());
    let (entered_tx, entered_rx) = oneshot::channel::<()>();
    let entered_tx = Arc::new(std::sync::Mutex::new(Some(entered_tx)));
    let layer = MaxConcurrencyLayer::new(1)
        .expect("valid")
        .retry_after(Duration::from_secs(5));
    let svc = layer.clone().layer(service_fn({
        let release = release.clone();
        move |_req: Request<Body>| {
            let release = release.clone();
            let entered = entered_tx.lock().expect("not poisoned").take();
            async move {
                if let Some(entered) = entered {
                    let _ = entered.send(());
                    release.notified().await;
                }
                Ok::<_, Infallible>(Response::new(Body::from("done")))
            }
        }
    }));
    let first = tokio::spawn(svc.clone().oneshot(Request::new(Body::empty())));
    entered_rx.await.expect("first request entered the handler");
    assert_eq!(layer.in_flight(), 1);

    // Act
    let shed = svc
        .clone()
        .oneshot(Request::new(Body::empty()))
        .await
        .expect("infallible");

    // Assert
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()[header::RETRY_AFTER], "5");
    assert_eq!(
        shed.extensions().get::<LimitExceeded>(),
        Some(&LimitExceeded::Overloaded)
    );
    assert_eq!(
        json(shed).await,
        serde_json::json!({"detail": "Server is overloaded, retry later"})
    );

    release.notify_one();
    let first = first.await.expect("task").expect("infallible");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(layer.in_flight(), 0);
    let after = svc
        .oneshot(Request::new(Body::empty()))
        .await
        .expect("infallible");
    assert_eq!(after.status(), StatusCode::OK, "the slot is free again");
}

#[tokio::test]
async fn every_service_of_one_layer_shares_the_limit() {
    // `Router::layer` calls `layer()` once per route: the limit must still be global.
    let release = Arc::new(Notify::new());
    let (entered_tx, entered_rx) = oneshot::channel::<()>();
    let entered_tx = Arc::new(std::sync::Mutex::new(Some(entered_tx)));
    let router = Router::new()
        .route(
            "/a",
            get({
                let release = release.clone();
                move || async move {
                    if let Some(tx) = entered_tx.lock().expect("not poisoned").take() {
                        let _ = tx.send(());
                    }
                    release.notified().await;
                    "a"
                }
            }),
        )
        .route("/b", get(|| async { "b" }))
        .layer(MaxConcurrencyLayer::new(1).expect("valid"));
    let a = tokio::spawn(
        router
            .clone()
            .oneshot(Request::get("/a").body(Body::empty()).expect("r")),
    );
    entered_rx.await.expect("entered /a");

    let b = router
        .clone()
        .oneshot(Request::get("/b").body(Body::empty()).expect("r"))
        .await
        .expect("infallible");
    assert_eq!(b.status(), StatusCode::SERVICE_UNAVAILABLE);

    release.notify_one();
    assert_eq!(
        a.await.expect("task").expect("infallible").status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_panic_becomes_500_json_without_the_message() {
    let svc = catch_panic().layer(service_fn(|_req: Request<Body>| async {
        if true {
            panic!("SELECT password FROM users -- secret");
        }
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));

    let res = svc
        .oneshot(Request::new(Body::empty()))
        .await
        .expect("infallible");

    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = axum::body::to_bytes(Body::new(res.into_body()), usize::MAX)
        .await
        .expect("body");
    assert_eq!(&bytes[..], br#"{"detail":"Internal Server Error"}"#);
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431_json() {
    let svc = HeaderLimitLayer::new(4, 200)
        .expect("valid")
        .layer(service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    let mut many = Request::builder();
    for i in 0..5 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let res = svc
        .clone()
        .oneshot(many.body(Body::empty()).expect("r"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(json(res).await["detail"], "Request header fields too large");

    let big = Request::builder()
        .header("cookie", "x".repeat(200))
        .body(Body::empty())
        .expect("r");
    let res = svc.clone().oneshot(big).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    let fine = Request::builder()
        .header("x-a", "b")
        .body(Body::empty())
        .expect("r");
    assert_eq!(
        svc.oneshot(fine).await.expect("infallible").status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_hardening_stack_answers_every_limit_in_json() {
    let router = Router::new()
        .route("/echo", post(|body: String| async move { body }))
        .route("/slow", get(std::future::pending::<&'static str>))
        .route(
            "/boom",
            get(|| async {
                if true {
                    panic!("boom");
                }
                "unreachable"
            }),
        );
    let layer = HardeningLayer::new(&LimitsConfig {
        max_body_bytes: 4,
        timeout: Duration::from_millis(20),
        ..LimitsConfig::default()
    })
    .expect("valid");
    let mut svc = layer.layer(router);

    let cases = [
        (
            Request::post("/echo")
                .header(header::CONTENT_LENGTH, "5")
                .body(Body::from("12345")),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Request::get("/slow").body(Body::empty()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Request::get("/boom").body(Body::empty()),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            Request::post("/echo").body(Body::from("1234")),
            StatusCode::OK,
        ),
    ];
    for (req, status) in cases {
        let req = req.expect("request");
        let path = req.uri().path().to_owned();
        let res = ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .expect("ready")
            .call(req)
            .await
            .expect("infallible");
        assert_eq!(res.status(), status, "{path}");
        if status != StatusCode::OK {
            assert!(json(res).await["detail"].is_string(), "{path}");
        }
    }
}

#[test]
fn bad_limits_are_errors_not_panics() {
    let zero_body = LimitsConfig {
        max_body_bytes: 0,
        ..LimitsConfig::default()
    };
    assert_eq!(
        HardeningLayer::new(&zero_body)
            .expect_err("zero")
            .to_string(),
        "max_body_bytes must be greater than zero"
    );
    let zero_timeout = LimitsConfig {
        timeout: Duration::ZERO,
        ..LimitsConfig::default()
    };
    assert!(HardeningLayer::new(&zero_timeout).is_err());
    let huge = LimitsConfig {
        max_concurrent_requests: usize::MAX,
        ..LimitsConfig::default()
    };
    assert!(matches!(
        HardeningLayer::new(&huge),
        Err(LimitsError::TooManyPermits(_))
    ));
    let zero = LimitsConfig {
        max_concurrent_requests: 0,
        ..LimitsConfig::default()
    };
    assert!(HardeningLayer::new(&zero).is_err());
}

#[tokio::test]
async fn tower_errors_map_to_json() {
    let overloaded: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
    let res = handle_error(overloaded).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");

    let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
    assert_eq!(
        handle_error(elapsed).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    let other: BoxError = "db connection string postgres://u:p@h".into();
    let res = handle_error(other).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        json(res).await,
        serde_json::json!({"detail": "Internal Server Error"})
    );
}
