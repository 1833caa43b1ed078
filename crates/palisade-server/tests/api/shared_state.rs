//! Several instances sharing Redis (and one database) agree on sessions: a logout or a spent
//! refresh token on one is seen by the others (SPEC §1, §5).

use palisade_test_support::RedisServer;
use reqwest::StatusCode;

use crate::helpers::{TestApp, assert_401, spawn_app_with, tokens};

async fn two_instances(redis: &RedisServer, db: &std::path::Path) -> (TestApp, TestApp) {
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let db_url = format!("sqlite://{}", db.join("shared.db").display());
    let env = [
        ("REDIS_URL", redis.url()),
        ("REDIS_KEY_PREFIX", prefix),
        ("DATABASE_URL", db_url),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (spawn_app_with(&env).await, spawn_app_with(&env).await)
}

#[tokio::test]
async fn a_logout_on_one_instance_is_honoured_by_the_others() {
    let redis = RedisServer::start().expect("redis-server");
    let db = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_instances(&redis, db.path()).await;

    let t = a.user("shared").await;
    assert_eq!(
        b.get_bearer("/protected", &t.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        a.post_bearer("/auth/logout", &t.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        assert_401(b.get_bearer("/protected", &t.access).await).await,
        "Token has been revoked"
    );
    assert_eq!(
        assert_401(b.refresh(&t.refresh).await).await,
        "Token has been revoked"
    );
}

#[tokio::test]
async fn a_refresh_token_spent_on_one_instance_is_reuse_on_another() {
    let redis = RedisServer::start().expect("redis-server");
    let db = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_instances(&redis, db.path()).await;

    let t = a.user("rotator").await;
    let rotated = tokens(a.refresh(&t.refresh).await).await;
    assert_eq!(
        assert_401(b.refresh(&t.refresh).await).await,
        "Token has been revoked"
    );
    // The re-use ended the whole session, everywhere.
    assert_eq!(
        assert_401(a.refresh(&rotated.refresh).await).await,
        "Token has been revoked"
    );
    assert_eq!(
        assert_401(b.get_bearer("/protected", &rotated.access).await).await,
        "Token has been revoked"
    );
}

#[tokio::test]
async fn with_redis_down_tokens_fail_closed_with_503_and_login_still_works() {
    let mut redis = RedisServer::start().expect("redis-server");
    let db = tempfile::tempdir().expect("tempdir");
    let (a, _b) = two_instances(&redis, db.path()).await;
    let t = a.user("outage").await;
    redis.kill();

    // A revocation cannot be checked: the token is not trusted, and the answer says why.
    let res = a.get_bearer("/protected", &t.access).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["detail"], "Authentication is temporarily unavailable");
    // Anonymous routes and logins keep working (rate limits fall back to memory).
    assert_eq!(a.get_auth("/health", None).await.status(), StatusCode::OK);
    assert_eq!(
        a.login("outage", "correct-horse-battery").await.status(),
        StatusCode::OK
    );

    redis.restart().expect("redis restarts");
    let fresh = tokens(a.login("outage", "correct-horse-battery").await).await;
    // The server reconnects by itself; no event announces it, so poll (bounded).
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..200 {
        status = a.get_bearer("/protected", &fresh.access).await.status();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "the server went back to Redis without a restart"
    );
}
