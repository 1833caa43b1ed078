//! JWT authentication with pinned algorithms, explicit token types and revocation.
//!
//! [`AuthLayer`] reads `Authorization: Bearer …`, verifies the access token with [`JwtKeys`],
//! asks the [`TokenStore`] whether it was revoked, and records the result as an [`AuthOutcome`]
//! in the request's extensions. It never rejects on its own: routes decide whether they need a
//! user (a required-auth extractor answers 401 on anything but [`AuthOutcome::Authenticated`]),
//! accept one optionally (anonymous is fine, an *invalid* token is still 401), or ignore it.
//! Rate limiting runs after this layer, so limits can key on the verified user id and requests
//! carrying bad tokens count against their IP (SPEC §4).
//!
//! Revocations live in a [`TokenStore`]: [`MemoryTokenStore`] for one instance,
//! [`RedisTokenStore`] (plain Redis or Redis Cluster) for several that must agree. When the
//! store cannot answer, verification fails closed with [`AuthError::StoreUnavailable`].

mod claims;
mod error;
mod keys;
mod layer;
mod redis_store;
mod revocation;

pub use claims::{Claims, TokenKind};
pub use error::AuthError;
pub use keys::{JwtConfig, JwtKeys, KeyError, VerifiedToken};
pub use layer::{Auth, AuthLayer, AuthOutcome, Authenticate, Principal, TokenPair};
pub use redis_store::{RedisTokenStore, RedisTokenStoreBuilder};
pub use revocation::{MemoryTokenStore, RefreshUse, RevocationQuery, TokenStore, TokenStoreError};
