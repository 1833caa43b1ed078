//! Issue 4, "Must show": CORS in a real browser. Headless Chromium loads a page from an allowed
//! origin (another local port) whose script makes a credentialed `fetch` to `/user/profile`;
//! the same page from a disallowed origin must fail in the browser. The test reads what the
//! page's script wrote into the DOM (`--dump-dom`), not the server's logs.
//!
//! Chromium is Debian's `chromium` package, which `scripts/test` installs when it is missing.
//! `CHROMIUM` names another binary. Without a browser this test fails: it never passes silently.

use std::process::Stdio;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::helpers::{PATIENCE, spawn_app_with};

/// Serves `html` at `/` on `listener` until the test's runtime ends.
fn serve_page(listener: TcpListener, html: String) {
    let app = Router::new().route("/", get(move || async move { Html(html) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// The page: a credentialed fetch of the profile; the outcome is written into `#result` as
/// `status=<n> request-id=<X-Request-ID as the script sees it> body=<text>` or
/// `error=<name>: <message>`.
fn page(api: &str, token: &str) -> String {
    let api = serde_json::to_string(api).expect("JSON string");
    let token = serde_json::to_string(token).expect("JSON string");
    format!(
        r#"<!doctype html>
<html><head><title>cors probe</title></head>
<body><pre id="result">pending</pre>
<script>
const out = document.getElementById("result");
fetch({api} + "/user/profile", {{
  credentials: "include",
  headers: {{ Authorization: "Bearer " + {token} }},
}})
  .then(async (r) => {{
    out.textContent = "status=" + r.status + " request-id=" + r.headers.get("x-request-id")
      + " body=" + (await r.text());
  }})
  .catch((e) => {{ out.textContent = "error=" + e.name + ": " + e.message; }});
</script></body></html>"#
    )
}

/// Loads `url` in headless Chromium and returns the text of `#result` after the page's script
/// has run.
async fn browser_result(url: &str) -> String {
    let chromium = std::env::var_os("CHROMIUM").unwrap_or_else(|| "chromium".into());
    let profile = tempfile::tempdir().expect("temp profile dir");
    let child = tokio::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            // Virtual time only advances while nothing is loading, so the fetch finishes
            // before the DOM is dumped, whatever the machine's speed.
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run headless Chromium ({chromium:?}: {e}). This test needs a browser: \
                 install Debian's `chromium` package (scripts/test does), or set CHROMIUM to one"
            )
        });
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("Chromium finishes in time")
        .expect("Chromium output");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("id=\"result\""),
        "Chromium did not render the page ({:?}); stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let start = dom.find("id=\"result\">").expect("result element") + "id=\"result\">".len();
    let end = dom[start..].find("</pre>").expect("end of result") + start;
    dom[start..end].to_owned()
}

#[tokio::test]
async fn a_credentialed_fetch_succeeds_from_an_allowed_origin_and_fails_from_another() {
    // Arrange: two page servers on their own ports; only the first is an allowed origin.
    let allowed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let disallowed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let allowed_origin = format!(
        "http://127.0.0.1:{}",
        allowed.local_addr().expect("addr").port()
    );
    let disallowed_origin = format!(
        "http://127.0.0.1:{}",
        disallowed.local_addr().expect("addr").port()
    );
    let app = spawn_app_with(&[
        ("CORS_ORIGINS", allowed_origin.as_str()),
        ("CORS_ALLOW_CREDENTIALS", "true"),
    ])
    .await;
    let tokens = app.user("browser_user").await;
    let html = page(&app.address, &tokens.access);
    serve_page(allowed, html.clone());
    serve_page(disallowed, html);

    // Act
    let from_allowed = browser_result(&format!("{allowed_origin}/")).await;
    let from_disallowed = browser_result(&format!("{disallowed_origin}/")).await;

    // Assert: the allowed page read the profile, and the exposed X-Request-ID.
    let rest = from_allowed
        .strip_prefix("status=200 request-id=")
        .unwrap_or_else(|| panic!("the allowed origin's fetch succeeds: {from_allowed:?}"));
    let (request_id, body) = rest
        .split_once(" body=")
        .unwrap_or_else(|| panic!("a body: {from_allowed:?}"));
    // Unexposed, the script would read `null`; the server generates UUIDs.
    assert!(
        uuid::Uuid::parse_str(request_id).is_ok(),
        "X-Request-ID is exposed to the script: {request_id:?}"
    );
    let profile: serde_json::Value =
        serde_json::from_str(&html_unescape(body)).expect("profile JSON");
    assert_eq!(profile["username"], "browser_user");
    assert_eq!(profile["email"], "browser_user@example.com");

    // The other page's fetch failed in the browser: no status, no body, a TypeError.
    assert!(
        from_disallowed.starts_with("error=TypeError"),
        "the disallowed origin's fetch is blocked by CORS: {from_disallowed:?}"
    );
}

/// Undoes the escaping `--dump-dom` applies to text content.
fn html_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
