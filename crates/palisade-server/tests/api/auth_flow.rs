//! The tutorial's flow, end to end.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_401, spawn_app, tokens};

#[tokio::test]
async fn the_tutorial_flow_works_and_logout_ends_the_session() {
    let app = spawn_app().await;

    let res = app
        .register("newuser", "user@example.com", "securepass123")
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "message": "User registered successfully", "username": "newuser" })
    );

    let login = tokens(app.login("newuser", "securepass123").await).await;

    let res = app.get_bearer("/protected", &login.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["message"], "This is a protected route");
    assert_eq!(body["user"], "newuser");
    let user_id = body["user_id"]
        .as_str()
        .expect("user_id is a string")
        .to_owned();

    let res = app.get_bearer("/user/profile", &login.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "username": "newuser", "email": "user@example.com", "user_id": user_id })
    );

    let res = app.refresh(&login.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated = tokens(res).await;
    assert_ne!(rotated.refresh, login.refresh, "the refresh token rotates");
    assert_eq!(
        app.get_bearer("/protected", &rotated.access).await.status(),
        StatusCode::OK
    );

    let res = app.post_bearer("/auth/logout", &rotated.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body, json!({ "message": "Successfully logged out" }));

    assert_eq!(
        assert_401(app.get_bearer("/protected", &rotated.access).await).await,
        "Token has been revoked"
    );
    assert_eq!(
        assert_401(app.refresh(&rotated.refresh).await).await,
        "Token has been revoked"
    );
    // The first access token belongs to the same session: it ended too.
    assert_eq!(
        assert_401(app.get_bearer("/protected", &login.access).await).await,
        "Token has been revoked"
    );
}

#[tokio::test]
async fn api_data_is_open_to_anonymous_callers_but_not_to_bad_tokens() {
    let app = spawn_app().await;
    let t = app.user("alice").await;

    let res = app.get_auth("/api/data", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "data": "Limited public dataset", "premium": false })
    );

    let res = app.get_bearer("/api/data", &t.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "data": "Full dataset for authenticated users", "user": "alice", "premium": true })
    );

    assert_eq!(
        assert_401(app.get_bearer("/api/data", "not-a-token").await).await,
        "Could not validate credentials"
    );
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_answer() {
    let app = spawn_app().await;
    app.user("bob").await;
    let wrong = assert_401(app.login("bob", "not-the-password").await).await;
    let unknown = assert_401(app.login("nobody-here", "not-the-password").await).await;
    assert_eq!(wrong, "Incorrect username or password");
    assert_eq!(unknown, wrong);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user_only() {
    let app = spawn_app().await;
    let first = app.user("carol").await;
    let second = crate::helpers::tokens(app.login("carol", "correct-horse-battery").await).await;
    let other = app.user("dave").await;

    let res = app.post_bearer("/auth/logout-all", &second.access).await;
    assert_eq!(res.status(), StatusCode::OK);

    for t in [&first, &second] {
        assert_eq!(
            assert_401(app.get_bearer("/protected", &t.access).await).await,
            "Token has been revoked"
        );
        assert_eq!(
            assert_401(app.refresh(&t.refresh).await).await,
            "Token has been revoked"
        );
    }
    assert_eq!(
        app.get_bearer("/protected", &other.access).await.status(),
        StatusCode::OK
    );
    // A new login after "log out everywhere" works.
    let again = tokens(app.login("carol", "correct-horse-battery").await).await;
    assert_eq!(
        app.get_bearer("/protected", &again.access).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let app = spawn_app().await;
    let res = app.get_auth("/nope", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body, json!({ "detail": "Not Found" }));

    let res = app
        .client
        .delete(app.url("/auth/login"))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "POST");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body, json!({ "detail": "Method Not Allowed" }));
}

#[tokio::test]
async fn health_reports_the_current_time() {
    let app = spawn_app().await;
    let res = app.get_auth("/health", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "healthy");
    let ts = body["timestamp"].as_str().expect("timestamp");
    let parsed = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    assert!(
        (parsed.unix_timestamp() - crate::helpers::now()).abs() < 300,
        "{ts} is now, not a constant"
    );
    let root: Value = app.get_auth("/", None).await.json().await.expect("json");
    assert_eq!(root["status"], "healthy");
}
