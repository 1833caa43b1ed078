//! `spawn_app()` and typed request helpers.

use std::sync::Once;

use palisade_server::config::{Settings, Source};
use palisade_server::startup::Application;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// The secret every test app signs with, so tests can mint their own tokens.
pub(crate) const SECRET: &str = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

static TRACING: Once = Once::new();

/// A running server.
pub(crate) struct TestApp {
    pub(crate) address: String,
    pub(crate) client: reqwest::Client,
    /// The app's SQLite URL, to inspect stored state.
    pub(crate) db_url: String,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Tokens from a login.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
}

/// Starts the server with the defaults and `extra` settings on top.
pub(crate) async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = format!("sqlite://{}", dir.path().join("users.db").display());
    let db = db_url.clone();
    let mut pairs: Vec<(String, String)> = vec![
        ("SECRET_KEY".into(), SECRET.into()),
        ("DATABASE_URL".into(), db),
        ("BIND".into(), "127.0.0.1:0".into()),
        // Tests of other features make more logins than the production defaults allow from
        // one address; the rate-limit tests set their own limits.
        ("REGISTER_RATE_LIMIT".into(), "1000/minute".into()),
        ("AUTH_RATE_LIMIT".into(), "1000/minute".into()),
        // Argon2 is slow on a loaded 2-core CI machine; tests of the timeout set their own.
        ("REQUEST_TIMEOUT".into(), "5m".into()),
    ];
    pairs.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let settings = Settings::from_source(&Source::from_pairs(pairs)).expect("valid test settings");
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::new(),
        db_url,
        _dir: dir,
        _shutdown: tx,
    }
}

/// Starts the server with the default test settings.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

impl TestApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub(crate) async fn register(&self, username: &str, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/register",
            &json!({ "username": username, "email": email, "password": password }),
        )
        .await
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/auth/login",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Registers `username` and logs in.
    pub(crate) async fn user(&self, username: &str) -> Tokens {
        let email = format!("{username}@example.com");
        let res = self
            .register(username, &email, "correct-horse-battery")
            .await;
        assert_eq!(res.status(), StatusCode::OK, "register {username}");
        let res = self.login(username, "correct-horse-battery").await;
        assert_eq!(res.status(), StatusCode::OK, "login {username}");
        tokens(res).await
    }

    /// GET with `Authorization: <authorization>` (or none).
    pub(crate) async fn get_auth(&self, path: &str, authorization: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        req.send().await.expect("request sent")
    }

    pub(crate) async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.get_auth(path, Some(&format!("Bearer {token}"))).await
    }

    pub(crate) async fn post_bearer(&self, path: &str, token: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// GET with extra request headers (`X-Forwarded-For`, `Forwarded`, `Authorization`…).
    pub(crate) async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = self.client.get(self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.expect("request sent")
    }

    /// GET as the client `forwarded_for` behind a proxy (`X-Forwarded-For: <forwarded_for>`),
    /// with a bearer token if given. Meaningful when the app trusts `127.0.0.1` as a proxy.
    pub(crate) async fn get_as(
        &self,
        path: &str,
        forwarded_for: &str,
        token: Option<&str>,
    ) -> Response {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("x-forwarded-for", forwarded_for)];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        self.get_with(path, &headers).await
    }

    /// `POST /auth/login` with extra request headers.
    pub(crate) async fn login_with(
        &self,
        username: &str,
        password: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self
            .client
            .post(self.url("/auth/login"))
            .json(&json!({ "username": username, "password": password }));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.expect("request sent")
    }

    pub(crate) async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/auth/refresh", &json!({ "refresh_token": refresh_token }))
            .await
    }
}

pub(crate) async fn tokens(res: Response) -> Tokens {
    let body: Value = res.json().await.expect("json body");
    assert_eq!(body["token_type"], "bearer");
    Tokens {
        access: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    }
}

/// Asserts a 401 with `{"detail": <string>}` and `WWW-Authenticate: Bearer`; returns the detail.
pub(crate) async fn assert_401(res: Response) -> String {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers().get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    let body: Value = res.json().await.expect("json body");
    body["detail"]
        .as_str()
        .expect("detail is a string")
        .to_owned()
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        .try_into()
        .expect("fits")
}

/// The real `palisade` binary in `dir` with exactly `env` (plus `PATH`), output captured.
pub(crate) fn palisade_command(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_palisade"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Bounds how long a test waits on the network or a child process; a hang fails the test
/// instead of stalling CI.
pub(crate) const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Asserts the full set of security headers of SPEC §6 / issue 4 on an API response, plus an
/// `X-Request-ID`, and no header naming the software. `context` names the request in failures.
pub(crate) fn assert_security_headers(headers: &http::HeaderMap, context: &str) {
    let expected = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        (
            "strict-transport-security",
            "max-age=63072000; includeSubDomains",
        ),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("cache-control", "no-store"),
        ("x-xss-protection", "0"),
    ];
    for (name, value) in expected {
        let got: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(
            got,
            vec![value],
            "{context}: header {name} should be exactly {value:?}"
        );
    }
    // Deny-all: every listed feature has an empty allow-list, and the usual ones are listed.
    let policy = headers
        .get("permissions-policy")
        .unwrap_or_else(|| panic!("{context}: no Permissions-Policy"))
        .to_str()
        .expect("ASCII Permissions-Policy");
    let features: Vec<&str> = policy.split(',').map(str::trim).collect();
    for directive in &features {
        assert!(
            directive.ends_with("=()"),
            "{context}: Permissions-Policy allows something: {directive:?}"
        );
    }
    for feature in ["camera", "microphone", "geolocation", "payment", "usb"] {
        assert!(
            features.contains(&format!("{feature}=()").as_str()),
            "{context}: Permissions-Policy does not deny {feature}: {policy:?}"
        );
    }
    for name in ["server", "x-powered-by"] {
        assert!(
            headers.get(name).is_none(),
            "{context}: a {name} header names the software: {:?}",
            headers.get(name)
        );
    }
    let id = headers
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{context}: no X-Request-ID"))
        .to_str()
        .expect("ASCII X-Request-ID");
    assert!(
        is_valid_request_id(id),
        "{context}: X-Request-ID {id:?} is not 1-128 of [A-Za-z0-9._-]"
    );
}

/// The request-id format of SPEC §6: 1 to 128 characters of `[A-Za-z0-9._-]`.
pub(crate) fn is_valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A response read off a raw connection.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// An HTTP/1.1 connection driven by hand, for what reqwest will not send: a missing or
/// duplicated `Host`, a body that never finishes, `Expect: 100-continue`.
pub(crate) struct RawConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Connects to the app at `address` (`http://127.0.0.1:port`).
    pub(crate) async fn connect(address: &str) -> Self {
        let authority = address.trim_start_matches("http://");
        let stream = tokio::time::timeout(PATIENCE, tokio::net::TcpStream::connect(authority))
            .await
            .expect("connects in time")
            .expect("connects");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.expect("write request");
        self.stream.flush().await.expect("flush request");
    }

    /// Reads more bytes into the buffer; false at end of stream.
    async fn fill(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0_u8; 8192];
        let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .expect("read response");
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads one response head (status and headers), including an interim `1xx` one.
    pub(crate) async fn read_head(&mut self) -> (u16, http::HeaderMap) {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            assert!(
                self.fill().await,
                "connection closed before a response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("ASCII head");
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = http::HeaderMap::new();
        for line in lines {
            let (name, value) = line.split_once(':').expect("header line");
            headers.append(
                http::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
                http::HeaderValue::from_str(value.trim()).expect("header value"),
            );
        }
        (status, headers)
    }

    /// Reads one final response (skipping `1xx`), with its body.
    pub(crate) async fn read_response(&mut self) -> RawResponse {
        let (status, headers) = loop {
            let (status, headers) = self.read_head().await;
            if status >= 200 {
                break (status, headers);
            }
        };
        let body = if let Some(len) = headers.get("content-length") {
            let len: usize = len
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .expect("numeric content-length");
            while self.buf.len() < len {
                assert!(self.fill().await, "connection closed inside the body");
            }
            self.buf.drain(..len).collect()
        } else if headers
            .get("transfer-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"))
        {
            self.read_chunked().await
        } else {
            while self.fill().await {}
            std::mem::take(&mut self.buf)
        };
        RawResponse {
            status,
            headers,
            body,
        }
    }

    async fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                assert!(self.fill().await, "connection closed inside a chunk size");
            };
            let size_line = String::from_utf8(self.buf[..line_end].to_vec()).expect("ASCII");
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .expect("hex chunk size");
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                assert!(self.fill().await, "connection closed inside a chunk");
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return body;
            }
        }
    }
}

/// Sends `request` (which should say `Connection: close`) on a new connection and reads the
/// response.
pub(crate) async fn raw_request(address: &str, request: &str) -> RawResponse {
    let mut conn = RawConn::connect(address).await;
    conn.send(request.as_bytes()).await;
    conn.read_response().await
}
