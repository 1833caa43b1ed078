//! Where revocations, spent refresh tokens and per-user "log out everywhere" marks live.
//!
//! Every entry carries the time after which it is useless (the expiry of the token it
//! concerns) and disappears then, so a store holds only what can still matter. The in-memory
//! store here serves one instance; [`RedisTokenStore`](super::RedisTokenStore) implements the
//! same trait so that several instances agree.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use futures_util::future::{BoxFuture, FutureExt};

use super::keys::now_millis;

/// Why a [`TokenStore`] could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenStoreError {
    /// The backend (e.g. Redis) failed or timed out.
    #[error("token store backend error: {0}")]
    Backend(String),
    /// The in-memory store is at its cap with nothing expired to drop.
    #[error("token store is full ({0} live entries)")]
    Full(usize),
    /// The store was configured wrongly (an invalid URL or key prefix, no Cluster node).
    #[error("invalid token store configuration: {0}")]
    Config(String),
}

/// The result of presenting a refresh token for rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshUse {
    /// Its first use: rotate it.
    First,
    /// It was used before: a stolen copy is in play, so its family must be revoked (RFC 9700
    /// §4.14.2).
    Reused,
}

/// What is asked of the store for one presented token, answered in one call (one round trip
/// for a shared store).
#[derive(Debug, Clone, Copy)]
pub struct RevocationQuery<'a> {
    /// The token's revocation key ([`super::VerifiedToken::token_id`]).
    pub token_id: &'a str,
    /// Its session, if it has one.
    pub family: Option<&'a str>,
    /// Its user.
    pub user_id: &'a str,
    /// Its issue time in milliseconds.
    pub issued_at_ms: i64,
}

/// Storage for revocation state. Times are seconds since the Unix epoch unless named `_ms`.
///
/// Every entry concerns one user and names it: a shared store keeps all of a user's entries
/// together (on Redis Cluster, in one hash slot), so that [`is_revoked`](Self::is_revoked)
/// answers in one round trip. A token's user id comes from its signed claims, so a token id
/// is always presented with the same user id.
///
/// An error means "unknown", never "not revoked": [`Auth`](super::Auth) refuses the token
/// ([`AuthError::StoreUnavailable`](super::AuthError::StoreUnavailable), a 503) rather than
/// let a possibly revoked one through.
pub trait TokenStore: Send + Sync + 'static {
    /// Revokes one token of `user_id` until `expires_at`, when it would expire anyway.
    fn revoke_token<'a>(
        &'a self,
        user_id: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>>;

    /// Revokes a whole session (refresh-token family) of `user_id` until `expires_at`.
    fn revoke_family<'a>(
        &'a self,
        user_id: &'a str,
        family: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>>;

    /// Revokes every token of `user_id` issued at or before `not_before_ms`; the mark is kept
    /// until `expires_at` (when the last such token has expired). A later call never moves
    /// the mark back, nor shortens it.
    fn revoke_user_before<'a>(
        &'a self,
        user_id: &'a str,
        not_before_ms: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>>;

    /// Whether the token, its family or its user's sessions were revoked.
    fn is_revoked<'a>(
        &'a self,
        query: RevocationQuery<'a>,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>>;

    /// Marks a refresh token of `user_id` spent until `expires_at`, atomically: exactly one
    /// caller ever gets [`RefreshUse::First`] for a given `token_id`.
    fn use_refresh<'a>(
        &'a self,
        user_id: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<RefreshUse, TokenStoreError>>;

    /// Checks that the store answers, e.g. for a readiness probe. The default (for stores
    /// that live in the process) always succeeds.
    fn ping(&self) -> BoxFuture<'_, Result<(), TokenStoreError>> {
        async { Ok(()) }.boxed()
    }
}

/// A bounded, in-process [`TokenStore`]. Entries expire with their tokens and are dropped as
/// they do (oldest expiry first, amortised over writes); past `max_entries` live entries, new
/// revocations are refused with [`TokenStoreError::Full`] rather than evicting live ones,
/// because evicting a revocation would bring a revoked token back (SPEC §9.16).
#[derive(Debug)]
pub struct MemoryTokenStore {
    inner: Mutex<Inner>,
    max_entries: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// key → (expires_at, value)
    entries: HashMap<String, (i64, i64)>,
    /// (expires_at, key), oldest first; may hold stale pairs for keys since re-written.
    expiry: BinaryHeap<Reverse<(i64, String)>>,
}

impl Default for MemoryTokenStore {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl MemoryTokenStore {
    /// A store holding at most `max_entries` live entries.
    pub fn new(max_entries: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_entries,
        }
    }

    /// The number of live (not yet purged) entries.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves the maps consistent (every write is one
        // insert), so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put(
        &self,
        key: String,
        expires_at: i64,
        value: i64,
        keep_max: bool,
    ) -> Result<(), TokenStoreError> {
        let now = now_millis() / 1000;
        let mut inner = self.lock();
        inner.purge(now);
        if expires_at <= now {
            return Ok(());
        }
        let value = match inner.entries.get(&key) {
            Some(&(_, old)) if keep_max => old.max(value),
            _ => value,
        };
        if !inner.entries.contains_key(&key) && inner.entries.len() >= self.max_entries {
            return Err(TokenStoreError::Full(inner.entries.len()));
        }
        let expires_at = inner
            .entries
            .get(&key)
            .map_or(expires_at, |&(e, _)| e.max(expires_at));
        inner.expiry.push(Reverse((expires_at, key.clone())));
        inner.entries.insert(key, (expires_at, value));
        Ok(())
    }

    fn get(inner: &Inner, key: &str, now: i64) -> Option<i64> {
        inner
            .entries
            .get(key)
            .filter(|(exp, _)| *exp > now)
            .map(|&(_, v)| v)
    }
}

impl Inner {
    fn purge(&mut self, now: i64) {
        while let Some(Reverse((exp, _))) = self.expiry.peek() {
            if *exp > now {
                break;
            }
            let Some(Reverse((exp, key))) = self.expiry.pop() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|(e, _)| *e == exp) {
                self.entries.remove(&key);
            }
        }
    }
}

/// The key of one entry. The user id is length-prefixed so that no pair of (user, id) can
/// collide with another, whatever characters either holds.
fn entry_key(kind: char, user: &str, id: &str) -> String {
    format!("{kind}{}:{user}:{id}", user.len())
}
fn token_key(user: &str, id: &str) -> String {
    entry_key('t', user, id)
}
fn family_key(user: &str, family: &str) -> String {
    entry_key('f', user, family)
}
fn user_key(user: &str) -> String {
    entry_key('u', user, "")
}
fn spent_key(user: &str, id: &str) -> String {
    entry_key('r', user, id)
}

impl TokenStore for MemoryTokenStore {
    fn revoke_token<'a>(
        &'a self,
        user_id: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        let r = self.put(token_key(user_id, token_id), expires_at, 1, false);
        async move { r }.boxed()
    }

    fn revoke_family<'a>(
        &'a self,
        user_id: &'a str,
        family: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        let r = self.put(family_key(user_id, family), expires_at, 1, false);
        async move { r }.boxed()
    }

    fn revoke_user_before<'a>(
        &'a self,
        user_id: &'a str,
        not_before_ms: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        let r = self.put(user_key(user_id), expires_at, not_before_ms, true);
        async move { r }.boxed()
    }

    fn is_revoked<'a>(
        &'a self,
        q: RevocationQuery<'a>,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        let now = now_millis() / 1000;
        let revoked = {
            let inner = self.lock();
            Self::get(&inner, &token_key(q.user_id, q.token_id), now).is_some()
                || q.family
                    .is_some_and(|f| Self::get(&inner, &family_key(q.user_id, f), now).is_some())
                || Self::get(&inner, &user_key(q.user_id), now)
                    .is_some_and(|nb| q.issued_at_ms <= nb)
        };
        async move { Ok(revoked) }.boxed()
    }

    fn use_refresh<'a>(
        &'a self,
        user_id: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<RefreshUse, TokenStoreError>> {
        let result = self.put_new(spent_key(user_id, token_id), expires_at);
        async move { result }.boxed()
    }
}

impl MemoryTokenStore {
    /// Checks and marks under one lock, so two concurrent uses cannot both see "first".
    fn put_new(&self, key: String, expires_at: i64) -> Result<RefreshUse, TokenStoreError> {
        let now = now_millis() / 1000;
        let mut inner = self.lock();
        inner.purge(now);
        if Self::get(&inner, &key, now).is_some() {
            return Ok(RefreshUse::Reused);
        }
        if inner.entries.len() >= self.max_entries {
            return Err(TokenStoreError::Full(inner.entries.len()));
        }
        // An already-expired refresh token never verifies, so its mark need not outlive it; keep
        // it at least a moment so the atomic check above still works.
        let expires_at = expires_at.max(now + 1);
        inner.expiry.push(Reverse((expires_at, key.clone())));
        inner.entries.insert(key, (expires_at, 1));
        Ok(RefreshUse::First)
    }
}

#[cfg(test)]
mod tests {
    //! Memory-only behaviour. What every store must do (revocations, first use exactly once)
    //! is tested against both stores in `tests/token_store_redis.rs`.

    use super::*;

    fn now() -> i64 {
        now_millis() / 1000
    }

    #[tokio::test]
    async fn expired_entries_are_dropped_and_the_cap_holds() {
        let store = MemoryTokenStore::new(2);
        store.revoke_token("u", "old", now() - 1).await.expect("ok");
        assert!(
            store.is_empty(),
            "an already-expired revocation is not stored"
        );
        store.revoke_token("u", "a", now() + 60).await.expect("ok");
        store.revoke_token("u", "b", now() + 60).await.expect("ok");
        assert_eq!(
            store.revoke_token("u", "c", now() + 60).await,
            Err(TokenStoreError::Full(2))
        );
        // Re-revoking a live key is not a new entry.
        store.revoke_token("u", "a", now() + 120).await.expect("ok");
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn entry_keys_of_different_users_never_collide() {
        assert_ne!(token_key("a:b", "c"), token_key("a", "b:c"));
        assert_ne!(token_key("u", "x"), family_key("u", "x"));
    }
}
