//! Issue 4, "Must show": the Host matrix (exact, wildcard, with port, foreign, missing) over
//! real HTTP/1.1, written by hand so the `Host` header can be anything or nothing.

use serde_json::json;

use crate::helpers::{assert_security_headers, raw_request, spawn_app_with};

/// `GET /health` with the given header lines (each ending in `\r\n`).
fn health_with(host_lines: &str) -> String {
    format!("GET /health HTTP/1.1\r\n{host_lines}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn allowed_hosts_are_served_and_every_other_host_gets_400_json() {
    // Arrange
    let app =
        spawn_app_with(&[("ALLOWED_HOSTS", "example.com,*.example.com,localhost:8080")]).await;
    let cases: &[(&str, &str, u16)] = &[
        // exact, on any port, case and trailing dot ignored
        ("exact", "Host: example.com\r\n", 200),
        ("exact with a port", "Host: example.com:8000\r\n", 200),
        ("exact, other case", "Host: EXAMPLE.com.\r\n", 200),
        // wildcard: subdomains at any depth, not the apex by itself (listed separately here)
        ("wildcard", "Host: api.example.com\r\n", 200),
        ("wildcard, deeper", "Host: a.b.example.com:443\r\n", 200),
        // a pattern with a port allows that port only
        ("with its port", "Host: localhost:8080\r\n", 200),
        ("without its port", "Host: localhost\r\n", 400),
        ("with another port", "Host: localhost:9090\r\n", 400),
        // foreign
        ("foreign", "Host: evil.com\r\n", 400),
        ("foreign suffix", "Host: example.com.evil.com\r\n", 400),
        ("foreign lookalike", "Host: evilexample.com\r\n", 400),
        ("the server's own address", "Host: 127.0.0.1\r\n", 400),
        ("user info", "Host: evil.com@example.com\r\n", 400),
        ("empty", "Host: \r\n", 400),
        (
            "two Host headers",
            "Host: example.com\r\nHost: evil.com\r\n",
            400,
        ),
        // missing
        ("missing", "", 400),
    ];

    for (label, lines, status) in cases {
        // Act
        let res = raw_request(&app.address, &health_with(lines)).await;

        // Assert
        assert_eq!(res.status, *status, "{label}: {lines:?}");
        assert_security_headers(&res.headers, label);
        if *status == 400 {
            assert_eq!(
                res.json(),
                json!({ "detail": "Invalid host header" }),
                "{label}"
            );
        } else {
            assert_eq!(res.json()["status"], "healthy", "{label}");
        }
    }
}

#[tokio::test]
async fn a_foreign_authority_in_the_request_target_is_refused_even_with_an_allowed_host() {
    // Arrange
    let app = spawn_app_with(&[("ALLOWED_HOSTS", "example.com")]).await;

    // Act: absolute-form target (RFC 9112 §3.2.2), which a server must prefer over Host.
    let res = raw_request(
        &app.address,
        "GET http://evil.com/health HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )
    .await;

    // Assert
    assert_eq!(res.status, 400);
    assert_security_headers(&res.headers, "absolute-form target");
    assert_eq!(res.json(), json!({ "detail": "Invalid host header" }));
}
