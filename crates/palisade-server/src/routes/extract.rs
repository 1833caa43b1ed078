//! Extractors over the [`AuthOutcome`] recorded by `palisade::auth::AuthLayer`.

use axum::extract::FromRequestParts;
use http::request::Parts;
use palisade::auth::{AuthOutcome, Principal};

use crate::error::ApiError;

/// A route that needs a user: anything but a valid access token is 401.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated(p)) => Ok(CurrentUser(p.clone())),
            Some(AuthOutcome::Rejected(e)) => Err(ApiError::Auth(e.clone())),
            Some(AuthOutcome::Anonymous) | None => Err(ApiError::Unauthorized("Not authenticated")),
        }
    }
}

/// A route open to anonymous callers. A token that is present but invalid is still 401: it is
/// never silently treated as anonymous (SPEC §9.4).
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated(p)) => Ok(MaybeUser(Some(p.clone()))),
            Some(AuthOutcome::Rejected(e)) => Err(ApiError::Auth(e.clone())),
            Some(AuthOutcome::Anonymous) | None => Ok(MaybeUser(None)),
        }
    }
}
