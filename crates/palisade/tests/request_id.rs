//! Request ids: kept, replaced, generated, visible to the handler and on every log line.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::{Request, Response};
use palisade::request_id::{RequestId, RequestIdLayer, RequestSpan};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use tower_http::trace::TraceLayer;

/// Sends `incoming` (if any) and returns (the id the handler saw in the extensions, the id the
/// handler saw in the header, the response header).
async fn round_trip(incoming: &[&[u8]]) -> (String, String, String) {
    let svc = RequestIdLayer::new().layer(service_fn(|req: Request<Body>| async move {
        let from_ext = req
            .extensions()
            .get::<RequestId>()
            .expect("RequestId extension")
            .to_string();
        let tower_http_id = req
            .extensions()
            .get::<tower_http::request_id::RequestId>()
            .expect("tower-http RequestId extension");
        assert_eq!(tower_http_id.header_value(), from_ext.as_str());
        let from_header = req.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let mut res = Response::new(Body::from(from_ext));
        // A handler's own id does not win over the request's.
        res.headers_mut()
            .insert("x-request-id", "handler-made".parse().expect("valid"));
        res.headers_mut()
            .insert("x-seen-in-header", from_header.parse().expect("valid"));
        Ok::<_, Infallible>(res)
    }));
    let mut req = Request::builder();
    for value in incoming {
        req = req.header("x-request-id", *value);
    }
    let res = svc
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let header = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let seen_header = res.headers()["x-seen-in-header"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(res.headers().get_all("x-request-id").iter().count(), 1);
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        String::from_utf8(body.to_vec()).expect("utf-8"),
        seen_header,
        header,
    )
}

#[track_caller]
fn assert_generated(id: &str) {
    let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 7, "{id}");
}

#[tokio::test]
async fn a_sane_incoming_id_is_kept() {
    for id in [
        "abc-123",
        "0190a6f4-9c1e-7b1a-9f6e-1d2c3b4a5f60",
        "A.b_C-9",
        &"x".repeat(128),
    ] {
        let (ext, seen, returned) = round_trip(&[id.as_bytes()]).await;
        assert_eq!(ext, id);
        assert_eq!(seen, id);
        assert_eq!(returned, id);
    }
}

#[tokio::test]
async fn a_bad_incoming_id_is_replaced() {
    let too_long = "x".repeat(129);
    let bad: [&[u8]; 9] = [
        too_long.as_bytes(),
        b"<script>alert(1)</script>",
        b"a b",
        b"a/b",
        b"a;b=c",
        b"\"quoted\"",
        b"caf\xc3\xa9",
        b"",
        b"%0d%0aSet-Cookie:x",
    ];
    for id in bad {
        let (ext, seen, returned) = round_trip(&[id]).await;
        assert_generated(&returned);
        assert_eq!(ext, returned, "the handler sees the replacement");
        assert_eq!(seen, returned, "the request header is replaced too");
    }
}

#[tokio::test]
async fn an_id_is_generated_when_absent_and_is_unique() {
    let (ext, seen, first) = round_trip(&[]).await;
    assert_generated(&first);
    assert_eq!(ext, first);
    assert_eq!(seen, first);
    let (_, _, second) = round_trip(&[]).await;
    assert_ne!(first, second);
}

#[tokio::test]
async fn several_incoming_ids_are_replaced() {
    let (_, _, returned) = round_trip(&[b"one", b"two"]).await;
    assert_generated(&returned);
}

/// Collects what the JSON formatter writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_id() {
    // Arrange: JSON logs into a buffer, the id layer outside TraceLayer, as the server does.
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .layer(TraceLayer::new_for_http().make_span_with(RequestSpan))
        .service(service_fn(|_req: Request<Body>| async {
            tracing::info!("inside the handler");
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));

    // Act
    let kept = Request::builder()
        .uri("/x?token=secret")
        .header("x-request-id", "trace-me-1")
        .body(Body::empty())
        .expect("request");
    svc.clone().oneshot(kept).await.expect("infallible");
    let replaced = Request::builder()
        .header("x-request-id", "<script>")
        .body(Body::empty())
        .expect("request");
    let res = svc.oneshot(replaced).await.expect("infallible");
    let generated = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();

    // Assert
    let output =
        String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("utf-8");
    let lines: Vec<serde_json::Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let handler_lines: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "inside the handler")
        .collect();
    assert_eq!(handler_lines.len(), 2, "{output}");
    assert_eq!(handler_lines[0]["span"]["request_id"], "trace-me-1");
    assert_eq!(handler_lines[0]["span"]["path"], "/x");
    assert_eq!(handler_lines[1]["span"]["request_id"], generated.as_str());
    assert!(
        !output.contains("<script>"),
        "the rejected id is never logged"
    );
    assert!(
        !output.contains("secret"),
        "the query string is never logged"
    );
}

proptest::proptest! {
    /// Only the safe alphabet, 1..=128 long, is ever kept.
    #[test]
    fn only_safe_ids_are_kept(id in "\\PC{0,140}") {
        let kept = RequestId::parse(&id).is_some();
        let safe = (1..=128).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        proptest::prop_assert_eq!(kept, safe);
    }
}
