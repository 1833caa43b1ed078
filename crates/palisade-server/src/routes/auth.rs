//! `/auth/*`: register, login, refresh, logout, logout-all.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::CurrentUser;
use crate::domain::{Email, Password, Username};
use crate::error::{ApiError, AppJson, Fields, FromJsonBody, Result};
use crate::passwords::Verified;
use crate::state::AppState;
use crate::store::{Field, NewUser, StoreError};

pub(super) fn router(limited: &super::Limited<'_>) -> Router<AppState> {
    Router::new()
        .route(
            "/auth/register",
            post(register).route_layer(limited.layer("register")),
        )
        .route(
            "/auth/login",
            post(login).route_layer(limited.layer("login")),
        )
        .route(
            "/auth/refresh",
            post(refresh).route_layer(limited.layer("refresh")),
        )
        .route(
            "/auth/logout",
            post(logout).route_layer(limited.layer("logout")),
        )
        .route(
            "/auth/logout-all",
            post(logout_all).route_layer(limited.layer("logout-all")),
        )
}

struct RegisterRequest {
    username: Username,
    email: Email,
    password: Password,
}

impl FromJsonBody for RegisterRequest {
    fn from_json(f: &mut Fields<'_>) -> Option<Self> {
        let username = f.string("username").and_then(|v| {
            Username::parse(&v)
                .map_err(|e| f.invalid("username", e))
                .ok()
        });
        let email = f
            .string("email")
            .and_then(|v| Email::parse(&v).map_err(|e| f.invalid("email", e)).ok());
        let password = f.string("password").and_then(|v| {
            Password::parse(&v)
                .map_err(|e| f.invalid("password", e))
                .ok()
        });
        Some(Self {
            username: username?,
            email: email?,
            password: password?,
        })
    }
}

struct LoginRequest {
    username: String,
    password: String,
}

impl FromJsonBody for LoginRequest {
    fn from_json(f: &mut Fields<'_>) -> Option<Self> {
        let username = f.string("username");
        let password = f.string("password");
        Some(Self {
            username: username?,
            password: password?,
        })
    }
}

struct RefreshRequest {
    refresh_token: String,
}

impl FromJsonBody for RefreshRequest {
    fn from_json(f: &mut Fields<'_>) -> Option<Self> {
        Some(Self {
            refresh_token: f.string("refresh_token")?,
        })
    }
}

async fn register(
    State(state): State<AppState>,
    AppJson(req): AppJson<RegisterRequest>,
) -> Result<Json<Value>> {
    let hash = state
        .hasher
        .hash(req.password.expose().to_owned())
        .await
        .map_err(ApiError::internal)?;
    let new = NewUser {
        username: req.username.as_str(),
        email: req.email.as_str(),
        password_hash: &hash,
    };
    match state.users.create(new).await {
        Ok(user) => {
            tracing::info!(user_id = user.id, username = ?user.username, "user registered");
            Ok(Json(
                json!({ "message": "User registered successfully", "username": user.username }),
            ))
        }
        Err(StoreError::Conflict(Field::Username)) => {
            Err(ApiError::BadRequest("Username already registered"))
        }
        Err(StoreError::Conflict(Field::Email)) => {
            Err(ApiError::BadRequest("Email already registered"))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn login(
    State(state): State<AppState>,
    AppJson(req): AppJson<LoginRequest>,
) -> Result<Json<Value>> {
    let user = state
        .users
        .find_by_username(&req.username)
        .await
        .map_err(ApiError::internal)?;
    // Verified against a dummy hash when the user does not exist: same work, same answer.
    let verified = state
        .hasher
        .verify(req.password, user.as_ref().map(|u| u.password_hash.clone()))
        .await
        .map_err(ApiError::internal)?;
    let user = match (user, verified) {
        (Some(user), Verified::Yes) => user,
        (Some(user), Verified::YesRehash(hash)) => {
            state
                .users
                .set_password_hash(user.id, &hash)
                .await
                .map_err(ApiError::internal)?;
            tracing::info!(
                user_id = user.id,
                "legacy password hash upgraded to argon2id"
            );
            user
        }
        (user, _) => {
            // The user id when the account exists; never the typed name of an unknown one,
            // which is sometimes a password typed into the wrong field.
            tracing::warn!(user_id = user.map(|u| u.id), "failed login");
            return Err(ApiError::Unauthorized("Incorrect username or password"));
        }
    };
    let pair = state.auth.issue(&user.username, &user.id.to_string())?;
    tracing::info!(user_id = user.id, "user logged in");
    Ok(Json(json!({
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "bearer",
    })))
}

async fn refresh(
    State(state): State<AppState>,
    AppJson(req): AppJson<RefreshRequest>,
) -> Result<Json<Value>> {
    let pair = state.auth.rotate(&req.refresh_token).await?;
    Ok(Json(json!({
        "access_token": pair.access_token,
        "token_type": "bearer",
        "refresh_token": pair.refresh_token,
    })))
}

async fn logout(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Value>> {
    state.auth.logout(&user).await?;
    tracing::info!(user_id = %user.user_id, "user logged out");
    Ok(Json(json!({ "message": "Successfully logged out" })))
}

async fn logout_all(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Value>> {
    state.auth.logout_all(&user.user_id).await?;
    tracing::info!(user_id = %user.user_id, "user logged out of every session");
    Ok(Json(
        json!({ "message": "Successfully logged out of all sessions" }),
    ))
}
