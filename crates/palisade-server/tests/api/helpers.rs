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
