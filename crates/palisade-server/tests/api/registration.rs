//! Registration: validation, uniqueness under concurrency, legacy hashes.

use palisade_server::store::{NewUser, SqliteUserStore, UserStore};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, tokens};

#[tokio::test]
async fn twenty_concurrent_registrations_of_one_username_admit_exactly_one() {
    let app = spawn_app().await;
    let attempts = (0..20).map(|i| {
        let app = &app;
        async move {
            app.register(
                "racer",
                &format!("racer{i}@example.com"),
                "correct-horse-battery",
            )
            .await
        }
    });
    let responses = futures_util::future::join_all(attempts).await;
    let mut ok = 0;
    for res in responses {
        match res.status() {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => {
                let body: Value = res.json().await.expect("json");
                assert_eq!(body, json!({ "detail": "Username already registered" }));
            }
            other => panic!(
                "unexpected status {other}: {}",
                res.text().await.unwrap_or_default()
            ),
        }
    }
    assert_eq!(ok, 1);
    let store = SqliteUserStore::connect(&app.db_url).await.expect("db");
    assert!(
        store
            .find_by_username("racer")
            .await
            .expect("query")
            .is_some()
    );
}

#[tokio::test]
async fn usernames_and_emails_are_unique_case_insensitively() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("Erin", "erin@example.com", "correct-horse-battery")
            .await
            .status(),
        StatusCode::OK
    );
    let res = app
        .register("erin", "other@example.com", "correct-horse-battery")
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app
        .register("erin2", "ERIN@example.com", "correct-horse-battery")
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body, json!({ "detail": "Email already registered" }));
}

#[tokio::test]
async fn invalid_registrations_get_422_with_every_bad_field() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/auth/register",
            &json!({ "username": "a\nb", "email": "nope", "password": "" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.expect("json");
    let errors = body["detail"].as_array().expect("a list");
    let fields: Vec<&Value> = errors.iter().map(|e| &e["loc"][1]).collect();
    assert_eq!(
        fields,
        [&json!("username"), &json!("email"), &json!("password")]
    );
    for e in errors {
        assert_eq!(e["loc"][0], "body");
        assert_eq!(e["type"], "value_error");
        assert!(e["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let res = app
        .post_json("/auth/register", &json!({ "username": "frank" }))
        .await;
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body["detail"][0],
        json!({ "loc": ["body", "email"], "msg": "Field required", "type": "missing" })
    );
    assert_eq!(body["detail"][1]["loc"], json!(["body", "password"]));

    for common in ["password", "12345678", "qwertyuiop"] {
        let res = app.register("grace", "grace@example.com", common).await;
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{common} is refused"
        );
    }
    let res = app
        .register("grace", "grace@example.com", &"x".repeat(129))
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn malformed_bodies_get_422_not_500() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["detail"][0]["type"], "json_invalid");

    let res = app.post_json("/auth/login", &json!(["a", "list"])).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .post_json("/auth/login", &json!({ "username": 5, "password": "x" }))
        .await;
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["detail"][0]["type"], "string_type");
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_passlib_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id() {
    let app = spawn_app().await;
    let store = SqliteUserStore::connect(&app.db_url).await.expect("db");
    let legacy = bcrypt::hash_with_result("testpassword", 4)
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoB);
    store
        .create(NewUser {
            username: "testuser",
            email: "test@example.com",
            password_hash: &legacy,
        })
        .await
        .expect("insert");

    assert_eq!(
        app.login("testuser", "wrong-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let stored = store
        .find_by_username("testuser")
        .await
        .expect("query")
        .expect("user");
    assert_eq!(
        stored.password_hash, legacy,
        "a failed login changes nothing"
    );

    let t = tokens(app.login("testuser", "testpassword").await).await;
    assert_eq!(
        app.get_bearer("/protected", &t.access).await.status(),
        StatusCode::OK
    );
    let stored = store
        .find_by_username("testuser")
        .await
        .expect("query")
        .expect("user");
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        stored.password_hash
    );
    assert_eq!(
        app.login("testuser", "testpassword").await.status(),
        StatusCode::OK,
        "and still logs in"
    );
}
