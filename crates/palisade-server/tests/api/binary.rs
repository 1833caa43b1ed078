//! The `palisade` binary itself: start-up refusals, the request log, graceful shutdown.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::helpers::palisade_command;

/// Bounds how long a test waits for the binary; a hang is a failure, not a stuck CI run.
const PATIENCE: Duration = Duration::from_secs(60);

fn palisade(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = palisade_command(dir, env, args);
    cmd.env("BIND", "127.0.0.1:0").stdin(Stdio::null());
    // Explicit settings win over the default BIND above.
    cmd.envs(env.iter().copied());
    cmd
}

async fn refusal(env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = palisade(dir.path(), env, &["serve"])
        .spawn()
        .expect("spawn");
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_configuration_exits_with_code_2_naming_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("ENVIRONMENT", "production"), ("SECRET_KEY", "too-short")],
            "SECRET_KEY",
        ),
        (&[("ENVIRONMENT", "production")], "SECRET_KEY"),
        (
            &[("ACCESS_TOKEN_EXPIRE_MINUTES", "abc")],
            "ACCESS_TOKEN_EXPIRE_MINUTES=\"abc\"",
        ),
        (
            &[("DATABASE_URL", "sqlite:///no/such/directory/users.db")],
            "DATABASE_URL",
        ),
        (
            &[("DATABASE_URL", "mysql://localhost/users")],
            "DATABASE_URL",
        ),
        (&[("ENVIRONMENT", "staging")], "ENVIRONMENT"),
        (&[("CORS_ORIGINS", "*")], "CORS_ORIGINS"),
    ];
    for (env, needle) in cases {
        let (code, stderr) = refusal(env).await;
        assert_eq!(code, 2, "{env:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{env:?}: {stderr:?} should name {needle}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
    let (_, stderr) = refusal(&[("ENVIRONMENT", "production"), ("SECRET_KEY", "too-short")]).await;
    assert!(
        !stderr.contains("too-short"),
        "the secret is never printed: {stderr}"
    );
}

struct Server {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    address: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = palisade(dir.path(), env, &["serve"])
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let mut server = Server {
            child,
            lines: BufReader::new(stdout).lines(),
            address: String::new(),
            _dir: dir,
        };
        let listening = server
            .next_log(|l| l["fields"]["message"] == "listening" || l["message"] == "listening")
            .await;
        server.address = format!("http://{}", listening["address"].as_str().expect("address"));
        server
    }

    /// Every JSON log line up to and including the next one matching `pred`.
    async fn logs_until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        self.next_log(|l| {
            seen.push(l.clone());
            pred(l)
        })
        .await;
        seen
    }

    /// The next JSON log line matching `pred`.
    async fn next_log(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .expect("read")
                    .expect("log line before exit");
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("not one JSON object: {line:?}"));
                if pred(&value) {
                    return value;
                }
            }
        })
        .await
        .expect("log line arrives")
    }
}

#[tokio::test]
async fn the_binary_logs_one_json_line_per_request_and_stops_on_sigterm() {
    let mut server = Server::start(&[("LOG_FORMAT", "json")]).await;
    let client = reqwest::Client::new();

    // A development secret was generated into a private file and announced.
    let secret_file = server._dir.path().join(".palisade-secret");
    assert!(secret_file.exists());

    let res = client
        .get(format!("{}/health", server.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 200);
    let line = server.next_log(|l| l["message"] == "request").await;
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "\"/health\"");
    assert_eq!(line["status"], 200);
    assert!(line["latency_ms"].is_number());
    assert!(line["span"]["request_id"].is_string());

    // A username with a newline cannot forge a log line: every line stays one JSON object
    // (next_log fails on anything else) and the failed-login line does not carry the name.
    let res = client
        .post(format!("{}/auth/login", server.address))
        .json(&serde_json::json!({ "username": "bob\nINFO forged: admin logged in", "password": "x" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 401);
    let failed = server.next_log(|l| l["message"] == "failed login").await;
    assert!(!failed.to_string().contains("forged"));
    let logged = server.next_log(|l| l["message"] == "request").await;
    assert_eq!(logged["status"], 401);

    let pid = server.child.id().expect("pid").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(killed.success());
    server.next_log(|l| l["message"] == "stopped").await;
    let status = tokio::time::timeout(PATIENCE, server.child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
}

/// Sends a failed login carrying `incoming` as `X-Request-ID` (or none) and returns the id the
/// response names and every log line of the request (they are written while it is handled,
/// ending with its `request` line; requests are sent one at a time).
async fn failed_login(
    server: &mut Server,
    client: &reqwest::Client,
    incoming: Option<&str>,
) -> (String, Vec<Value>) {
    let mut req = client
        .post(format!("{}/auth/login", server.address))
        .json(&serde_json::json!({ "username": "nobody", "password": "wrong-password-123" }));
    if let Some(id) = incoming {
        req = req.header("x-request-id", id);
    }
    let res = req.send().await.expect("sent");
    assert_eq!(res.status(), 401);
    let id = res
        .headers()
        .get("x-request-id")
        .expect("X-Request-ID on the response")
        .to_str()
        .expect("ASCII")
        .to_owned();
    let lines = server.logs_until(|l| l["message"] == "request").await;
    (id, lines)
}

/// Asserts that `lines` are the failed login's lines, each carrying `id`.
fn assert_every_line_carries(id: &str, lines: &[Value], context: &str) {
    assert!(
        lines.iter().any(|l| l["message"] == "failed login"),
        "{context}: the handler's own line is among {lines:?}"
    );
    assert_eq!(
        lines.last().map(|l| l["status"].clone()),
        Some(Value::from(401)),
        "{context}: the request line ends them"
    );
    for line in lines {
        assert_eq!(
            line["span"]["request_id"], id,
            "{context}: every line of the request names its id: {line}"
        );
    }
}

#[tokio::test]
async fn request_ids_are_kept_replaced_or_generated_and_on_every_log_line_of_their_request() {
    // Arrange
    let mut server = Server::start(&[("LOG_FORMAT", "json")]).await;
    let client = reqwest::Client::new();
    let longest = "a".repeat(128);
    let too_long = "b".repeat(129);

    // Kept: at most 128 characters of [A-Za-z0-9._-].
    for incoming in ["trace-01J.abc_XYZ", longest.as_str()] {
        // Act
        let (id, lines) = failed_login(&mut server, &client, Some(incoming)).await;
        // Assert
        assert_eq!(id, incoming, "a sane id is kept");
        assert_every_line_carries(&id, &lines, incoming);
    }

    // Replaced: markup, too long, spaces.
    for incoming in ["<script>alert(1)</script>", too_long.as_str(), "a b"] {
        // Act
        let (id, lines) = failed_login(&mut server, &client, Some(incoming)).await;
        // Assert
        assert_ne!(id, incoming, "an unsafe id is replaced");
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "replaced by a UUID: {id}"
        );
        assert_every_line_carries(&id, &lines, incoming);
        for line in &lines {
            assert!(
                !line.to_string().contains(incoming),
                "the rejected id is not logged: {line}"
            );
        }
    }

    // Generated: none sent.
    let (first, lines) = failed_login(&mut server, &client, None).await;
    assert_eq!(
        uuid::Uuid::parse_str(&first).map(|u| u.get_version_num()),
        Ok(7),
        "a UUIDv7 is generated: {first}"
    );
    assert_every_line_carries(&first, &lines, "generated");
    let (second, lines) = failed_login(&mut server, &client, None).await;
    assert_ne!(first, second, "each request gets its own id");
    assert_every_line_carries(&second, &lines, "generated again");
}
