//! The authentication layer and the token flows (issue, rotate, revoke) built on it.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::future::BoxFuture;
use http::{Request, Response, header};
use tower::{Layer, Service};

use super::revocation::RevocationQuery;
use super::{AuthError, JwtKeys, RefreshUse, TokenKind, TokenStore, VerifiedToken};

/// The verified identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's id.
    pub user_id: String,
    /// The username (`sub`).
    pub username: String,
    /// The access token's revocation key.
    pub token_id: String,
    /// The session the token belongs to (none for tutorial-format tokens).
    pub family: Option<String>,
    /// When the access token expires (seconds since the epoch).
    pub expires_at: i64,
}

/// What [`AuthLayer`] found, stored in the request's extensions for extractors and for the
/// rate limiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// No `Authorization` header.
    Anonymous,
    /// A valid, unrevoked access token.
    Authenticated(Principal),
    /// A token was presented and refused. Routes that accept anonymous callers still answer
    /// 401 to these: a bad token is never silently downgraded to anonymous.
    Rejected(AuthError),
}

/// A freshly issued access/refresh pair.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
}

/// Token issuance, verification and revocation: keys, a [`TokenStore`] and token lifetimes.
/// Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    keys: Arc<JwtKeys>,
    store: Arc<dyn TokenStore>,
    access_lifetime: i64,
    refresh_lifetime: i64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.keys)
            .field("access_lifetime", &self.access_lifetime)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Combines keys, a store and the lifetimes (seconds) of access and refresh tokens.
    pub fn new(
        keys: JwtKeys,
        store: Arc<dyn TokenStore>,
        access_lifetime: i64,
        refresh_lifetime: i64,
    ) -> Self {
        Self {
            keys: Arc::new(keys),
            store,
            access_lifetime,
            refresh_lifetime,
        }
    }

    /// The keys, for minting tokens by hand (tests, tooling).
    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    fn lifetime(&self, kind: TokenKind) -> i64 {
        match kind {
            TokenKind::Access => self.access_lifetime,
            TokenKind::Refresh => self.refresh_lifetime,
        }
    }

    /// Verifies `token` as a `kind` token and checks it, its session and its user against the
    /// store.
    pub async fn verify(&self, token: &str, kind: TokenKind) -> Result<VerifiedToken, AuthError> {
        let verified = self.keys.decode(token, kind, self.lifetime(kind))?;
        let revoked = self
            .store
            .is_revoked(RevocationQuery {
                token_id: &verified.token_id,
                family: verified.claims.fam.as_deref(),
                user_id: &verified.claims.user_id,
                issued_at_ms: verified.issued_at_ms,
            })
            .await
            .map_err(|e| AuthError::StoreUnavailable(e.to_string()))?;
        if revoked {
            return Err(AuthError::Revoked);
        }
        Ok(verified)
    }

    /// Verifies the value of an `Authorization` header (or its absence) as an access token.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> AuthOutcome {
        let Some(value) = authorization else {
            return AuthOutcome::Anonymous;
        };
        let Some(token) = bearer_token(value) else {
            return AuthOutcome::Rejected(AuthError::Malformed);
        };
        match self.verify(token, TokenKind::Access).await {
            Ok(v) => AuthOutcome::Authenticated(Principal {
                user_id: v.claims.user_id,
                username: v.claims.sub,
                token_id: v.token_id,
                family: v.claims.fam,
                expires_at: v.claims.exp,
            }),
            Err(e) => AuthOutcome::Rejected(e),
        }
    }

    /// Issues an access/refresh pair for a new session.
    pub fn issue(&self, username: &str, user_id: &str) -> Result<TokenPair, AuthError> {
        let family = uuid::Uuid::new_v4().simple().to_string();
        self.issue_in(username, user_id, &family)
    }

    fn issue_in(
        &self,
        username: &str,
        user_id: &str,
        family: &str,
    ) -> Result<TokenPair, AuthError> {
        let access = self.keys.claims(
            TokenKind::Access,
            username,
            user_id,
            family,
            self.access_lifetime,
        );
        let refresh = self.keys.claims(
            TokenKind::Refresh,
            username,
            user_id,
            family,
            self.refresh_lifetime,
        );
        Ok(TokenPair {
            access_token: self.keys.encode(&access)?,
            refresh_token: self.keys.encode(&refresh)?,
        })
    }

    /// Exchanges a refresh token for a new pair in the same session. A refresh token works
    /// once: presenting a spent one revokes its whole session (RFC 9700 §4.14.2).
    pub async fn rotate(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let verified = self.verify(refresh_token, TokenKind::Refresh).await?;
        let claims = &verified.claims;
        let first = self
            .store
            .use_refresh(
                &claims.user_id,
                &verified.token_id,
                self.verifiable_until(claims.exp),
            )
            .await
            .map_err(|e| AuthError::StoreUnavailable(e.to_string()))?;
        match (first, claims.fam.as_deref()) {
            (RefreshUse::First, Some(family)) => {
                self.issue_in(&claims.sub, &claims.user_id, family)
            }
            // A tutorial-format refresh token starts a session of its own.
            (RefreshUse::First, None) => self.issue(&claims.sub, &claims.user_id),
            (RefreshUse::Reused, family) => {
                if let Some(family) = family {
                    self.store
                        .revoke_family(&claims.user_id, family, self.session_horizon())
                        .await
                        .map_err(|e| AuthError::StoreUnavailable(e.to_string()))?;
                }
                tracing::warn!(user_id = %claims.user_id, "refresh token re-used; session revoked");
                Err(AuthError::Revoked)
            }
        }
    }

    /// Ends the session of `principal`: its access token and every refresh token of its family.
    pub async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        let unavailable = |e: super::TokenStoreError| AuthError::StoreUnavailable(e.to_string());
        self.store
            .revoke_token(
                &principal.user_id,
                &principal.token_id,
                self.verifiable_until(principal.expires_at),
            )
            .await
            .map_err(unavailable)?;
        if let Some(family) = &principal.family {
            self.store
                .revoke_family(&principal.user_id, family, self.session_horizon())
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Ends every session of `user_id`: every token issued until now stops working.
    pub async fn logout_all(&self, user_id: &str) -> Result<(), AuthError> {
        self.store
            .revoke_user_before(user_id, super::keys::now_millis(), self.session_horizon())
            .await
            .map_err(|e| AuthError::StoreUnavailable(e.to_string()))
    }

    /// The latest moment a token issued now can still verify.
    fn session_horizon(&self) -> i64 {
        self.verifiable_until(
            super::keys::now_millis() / 1000 + self.access_lifetime.max(self.refresh_lifetime),
        )
    }

    /// The last moment a token expiring at `exp` still verifies: the leeway lets it through
    /// for a while after `exp`, so its revocation must be kept that long too.
    fn verifiable_until(&self, exp: i64) -> i64 {
        exp.saturating_add(self.keys.leeway_seconds())
    }
}

/// `Bearer <token>`, the scheme compared case-insensitively (RFC 9110 §11.1).
fn bearer_token(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// Verifies the bearer token of every request and records an [`AuthOutcome`] in its
/// extensions. It never rejects: see the [module docs](super).
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthLayer {
    auth: Auth,
}

impl AuthLayer {
    /// A layer verifying with `auth`.
    pub fn new(auth: Auth) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct Authenticate<S> {
    inner: S,
    auth: Auth,
}

impl<S> Service<Request<Body>> for Authenticate<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The clone is the one that was polled ready; keep it and leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let outcome = auth
                .authenticate(
                    req.headers()
                        .get(header::AUTHORIZATION)
                        .map(|v| v.as_bytes()),
                )
                .await;
            req.extensions_mut().insert(outcome);
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer_token(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer \xff"), None);
    }
}
