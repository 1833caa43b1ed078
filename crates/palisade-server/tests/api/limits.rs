//! Issue 4, "Must show": an oversized body, a request past the timeout, an overload and too many
//! headers, each answered with its status, a JSON body and the security headers.
//!
//! Requests that must stay open are written by hand on a raw connection. `Expect: 100-continue`
//! tells the test when the handler has started reading the body (hyper answers `100 Continue`
//! at that moment), so nothing here sleeps or guesses at timing.

use serde_json::json;

use crate::helpers::{RawConn, assert_security_headers, raw_request, spawn_app_with};

/// The head of a `POST /auth/login` announcing `len` bytes of JSON body, asking for
/// `100 Continue` before sending it.
fn login_head(len: usize) -> String {
    format!(
        "POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
    )
}

const LOGIN_BODY: &str = r#"{"username": "nobody", "password": "wrong-password-123"}"#;

#[tokio::test]
async fn an_announced_oversized_body_gets_413_json() {
    // Arrange
    let app = spawn_app_with(&[("MAX_BODY_BYTES", "1024")]).await;

    // Act
    let res = app
        .client
        .post(app.url("/auth/register"))
        .header("content-type", "application/json")
        .body(vec![b' '; 1025])
        .send()
        .await
        .expect("sent");

    // Assert
    assert_eq!(res.status(), 413);
    assert_security_headers(res.headers(), "413");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body, json!({ "detail": "Request body too large" }));
}

#[tokio::test]
async fn a_chunked_body_that_grows_past_the_limit_gets_413_json() {
    // Arrange: no Content-Length, so only reading the body can find out.
    let app = spawn_app_with(&[("MAX_BODY_BYTES", "1024")]).await;
    let chunk = " ".repeat(2000);
    let request = format!(
        "POST /auth/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );

    // Act
    let res = raw_request(&app.address, &request).await;

    // Assert
    assert_eq!(res.status, 413);
    assert_security_headers(&res.headers, "chunked 413");
    assert_eq!(res.json(), json!({ "detail": "Request body too large" }));
}

#[tokio::test]
async fn a_request_past_the_timeout_gets_503_json() {
    // Arrange
    let app = spawn_app_with(&[("REQUEST_TIMEOUT", "250ms")]).await;
    let mut conn = RawConn::connect(&app.address).await;

    // Act: the handler starts reading a body that never finishes arriving, so the only way
    // this request can end is the timeout.
    conn.send(login_head(LOGIN_BODY.len()).as_bytes()).await;
    let (interim, _) = conn.read_head().await;
    assert_eq!(interim, 100, "the handler is reading the body");
    conn.send(&LOGIN_BODY.as_bytes()[..10]).await;
    let res = conn.read_response().await;

    // Assert
    assert_eq!(res.status, 503);
    assert_security_headers(&res.headers, "timeout");
    assert_eq!(res.json(), json!({ "detail": "Request timed out" }));
}

#[tokio::test]
async fn an_overload_is_shed_with_503_json_and_retry_after() {
    // Arrange: one slot, taken by a login whose handler is waiting for its body.
    let app = spawn_app_with(&[("MAX_CONCURRENT_REQUESTS", "1")]).await;
    let mut holder = RawConn::connect(&app.address).await;
    holder.send(login_head(LOGIN_BODY.len()).as_bytes()).await;
    let (interim, _) = holder.read_head().await;
    assert_eq!(interim, 100, "the first request holds the slot");

    // Act
    let shed = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent");

    // Assert
    assert_eq!(shed.status(), 503);
    assert_security_headers(shed.headers(), "overload");
    assert_eq!(
        shed.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body: serde_json::Value = shed.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "detail": "Server is overloaded, retry later" })
    );

    // The first request was not disturbed, and its end frees the slot.
    holder.send(LOGIN_BODY.as_bytes()).await;
    let held = holder.read_response().await;
    assert_eq!(
        held.status,
        401,
        "{:?}",
        String::from_utf8_lossy(&held.body)
    );
    let after = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent");
    assert_eq!(after.status(), 200);
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431_json() {
    // Arrange
    let app = spawn_app_with(&[("MAX_HEADER_COUNT", "8"), ("MAX_HEADER_BYTES", "1024")]).await;
    let mut many = app.client.get(app.url("/health"));
    for i in 0..20 {
        many = many.header(format!("x-extra-{i}"), "1");
    }
    let large = app
        .client
        .get(app.url("/health"))
        .header("x-large", "a".repeat(2000));

    for (label, req) in [("too many", many), ("too large", large)] {
        // Act
        let res = req.send().await.expect("sent");

        // Assert
        assert_eq!(res.status(), 431, "{label}");
        assert_security_headers(res.headers(), label);
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(
            body,
            json!({ "detail": "Request header fields too large" }),
            "{label}"
        );
    }
}
