//! Adversarial tokens: every one of these gets 401 `{"detail": …}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{SECRET, TestApp, Tokens, assert_401, now, spawn_app, spawn_app_with};

fn sign(alg: Algorithm, typ: &str, claims: &Value, secret: &str) -> String {
    let mut header = Header::new(alg);
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("key"),
    )
    .expect("sign")
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&B64.decode(part).expect("base64")).expect("json")
}

/// Claims like the server's, for the user of `t`, with `changes` applied.
fn claims_like(t: &Tokens, changes: &Value) -> Value {
    let mut claims = payload(&t.access);
    claims["jti"] = json!(uuid::Uuid::now_v7().to_string());
    for (k, v) in changes.as_object().expect("object") {
        claims[k] = v.clone();
    }
    claims
}

async fn refused(app: &TestApp, authorization: &str) -> String {
    assert_401(app.get_auth("/protected", Some(authorization)).await).await
}

#[tokio::test]
async fn forged_expired_and_mistyped_tokens_are_refused() {
    let app = spawn_app().await;
    let t = app.user("mallory").await;
    assert_eq!(
        app.get_bearer("/protected", &t.access).await.status(),
        StatusCode::OK
    );

    // alg: none, unsigned.
    let header = B64.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let body = B64.encode(payload(&t.access).to_string());
    assert_eq!(
        refused(&app, &format!("Bearer {header}.{body}.")).await,
        "Could not validate credentials"
    );

    // HS384 with the right secret when HS256 is configured.
    let hs384 = sign(
        Algorithm::HS384,
        "at+jwt",
        &claims_like(&t, &json!({})),
        SECRET,
    );
    assert_eq!(
        refused(&app, &format!("Bearer {hs384}")).await,
        "Could not validate credentials"
    );

    // A tampered payload with the original signature.
    let mut parts: Vec<String> = t.access.split('.').map(str::to_owned).collect();
    let mut claims = payload(&t.access);
    claims["sub"] = json!("admin");
    parts[1] = B64.encode(claims.to_string());
    refused(&app, &format!("Bearer {}", parts.join("."))).await;

    // Signed with another secret.
    let other = sign(
        Algorithm::HS256,
        "at+jwt",
        &claims_like(&t, &json!({})),
        "another-secret-another-secret-another",
    );
    refused(&app, &format!("Bearer {other}")).await;

    // Expired beyond the 30 s leeway; `nbf` beyond it in the future.
    let expired = sign(
        Algorithm::HS256,
        "at+jwt",
        &claims_like(&t, &json!({ "exp": now() - 120 })),
        SECRET,
    );
    refused(&app, &format!("Bearer {expired}")).await;
    let early = sign(
        Algorithm::HS256,
        "at+jwt",
        &claims_like(&t, &json!({ "nbf": now() + 120 })),
        SECRET,
    );
    refused(&app, &format!("Bearer {early}")).await;
    // Within the leeway, both are still accepted: the leeway is real, and small.
    let skewed = sign(
        Algorithm::HS256,
        "at+jwt",
        &claims_like(&t, &json!({ "exp": now() - 5, "nbf": now() + 5 })),
        SECRET,
    );
    assert_eq!(
        app.get_bearer("/protected", &skewed).await.status(),
        StatusCode::OK
    );

    // A token without exp is never accepted.
    let mut no_exp = claims_like(&t, &json!({}));
    no_exp.as_object_mut().expect("object").remove("exp");
    refused(
        &app,
        &format!(
            "Bearer {}",
            sign(Algorithm::HS256, "at+jwt", &no_exp, SECRET)
        ),
    )
    .await;

    // Refresh used as access, access used as refresh.
    assert_eq!(
        refused(&app, &format!("Bearer {}", t.refresh)).await,
        "Invalid token type"
    );
    assert_eq!(
        assert_401(app.refresh(&t.access).await).await,
        "Invalid token type"
    );
    // typ header and type claim disagreeing.
    let confused = sign(
        Algorithm::HS256,
        "rt+jwt",
        &claims_like(&t, &json!({})),
        SECRET,
    );
    refused(&app, &format!("Bearer {confused}")).await;

    // Garbage, an empty bearer, another scheme, a 10 KB bearer.
    refused(&app, "Bearer garbage").await;
    refused(&app, "Bearer ").await;
    refused(&app, "Bearer").await;
    refused(&app, &format!("Basic {}", B64.encode("mallory:pw"))).await;
    refused(&app, &format!("Bearer {}", "a".repeat(10 * 1024))).await;
    // A revoked-token trick that worked on the tutorial: padding appended to the signature.
    refused(&app, &format!("Bearer {}=", t.access)).await;
}

#[tokio::test]
async fn revoked_and_spent_tokens_are_refused_and_reuse_ends_the_family() {
    let app = spawn_app().await;
    let t = app.user("trudy").await;

    // Rotate once: the old refresh token is spent.
    let rotated = crate::helpers::tokens(app.refresh(&t.refresh).await).await;
    // Re-using the spent one is refused and revokes the whole family…
    assert_eq!(
        assert_401(app.refresh(&t.refresh).await).await,
        "Token has been revoked"
    );
    // …so the newest refresh token of that family and its access token die with it.
    assert_eq!(
        assert_401(app.refresh(&rotated.refresh).await).await,
        "Token has been revoked"
    );
    assert_eq!(
        refused(&app, &format!("Bearer {}", rotated.access)).await,
        "Token has been revoked"
    );

    // Logout revokes the presented access token.
    let fresh = crate::helpers::tokens(app.login("trudy", "correct-horse-battery").await).await;
    assert_eq!(
        app.post_bearer("/auth/logout", &fresh.access)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        refused(&app, &format!("Bearer {}", fresh.access)).await,
        "Token has been revoked"
    );
    assert_eq!(
        assert_401(app.post_bearer("/auth/logout", &fresh.access).await).await,
        "Token has been revoked"
    );
}

fn tutorial_token(sub: &str, user_id: &str, kind: &str) -> String {
    // Exactly what python-jose wrote for the tutorial: typ JWT, {sub, user_id, type, exp}.
    sign(
        Algorithm::HS256,
        "JWT",
        &json!({ "sub": sub, "user_id": user_id, "exp": now() + 600, "type": kind }),
        SECRET,
    )
}

#[tokio::test]
async fn tutorial_format_tokens_are_accepted_and_revocable() {
    let app = spawn_app().await;
    app.user("legacy").await;
    let access = tutorial_token("legacy", "1", "access");

    let res = app.get_bearer("/protected", &access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["user"], "legacy");
    assert_eq!(body["user_id"], "1");
    assert_eq!(
        app.get_bearer("/user/profile", &access).await.status(),
        StatusCode::OK
    );

    // A tutorial refresh token is exchanged for new-format tokens once.
    let refresh = tutorial_token("legacy", "1", "refresh");
    let pair = crate::helpers::tokens(app.refresh(&refresh).await).await;
    assert_eq!(payload(&pair.access)["type"], "access");
    assert!(payload(&pair.access)["jti"].is_string());
    assert_eq!(
        assert_401(app.refresh(&refresh).await).await,
        "Token has been revoked"
    );

    assert_eq!(
        app.post_bearer("/auth/logout", &access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        refused(&app, &format!("Bearer {access}")).await,
        "Token has been revoked"
    );
}

#[tokio::test]
async fn tutorial_format_tokens_are_refused_when_legacy_tokens_are_off() {
    let app = spawn_app_with(&[("LEGACY_TOKENS", "false")]).await;
    app.user("modern").await;
    refused(
        &app,
        &format!("Bearer {}", tutorial_token("modern", "1", "access")),
    )
    .await;
}

#[tokio::test]
async fn issuer_and_audience_are_set_and_required_when_configured() {
    let app = spawn_app_with(&[
        ("JWT_ISSUER", "https://auth.example.com"),
        ("JWT_AUDIENCE", "palisade-api"),
    ])
    .await;
    let t = app.user("ivan").await;
    let claims = payload(&t.access);
    assert_eq!(claims["iss"], "https://auth.example.com");
    assert_eq!(claims["aud"], "palisade-api");
    assert_eq!(
        app.get_bearer("/protected", &t.access).await.status(),
        StatusCode::OK
    );
    let foreign = sign(
        Algorithm::HS256,
        "at+jwt",
        &claims_like(&t, &json!({ "aud": "another-api" })),
        SECRET,
    );
    refused(&app, &format!("Bearer {foreign}")).await;
    let mut no_iss = claims_like(&t, &json!({}));
    no_iss.as_object_mut().expect("object").remove("iss");
    refused(
        &app,
        &format!(
            "Bearer {}",
            sign(Algorithm::HS256, "at+jwt", &no_iss, SECRET)
        ),
    )
    .await;
}
