//! [`RedisTokenStore`]: revocation state in Redis, shared by every instance of the application.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use redis::Script;

use super::revocation::{RefreshUse, RevocationQuery, TokenStore, TokenStoreError};
use crate::redis_conn::{ConnError, RedisConn, Target, escape_tag};

/// Writes a revocation entry without ever weakening one already there (SPEC §9.16): the value
/// becomes the larger of the old and the new (a "not before" mark only moves forward), the
/// expiry the later of the two. Nothing is written for an entry that would already be expired,
/// by the Redis server's clock.
///
/// `KEYS[1]`: the entry; `ARGV[1]`: its value (an integer); `ARGV[2]`: its expiry in seconds
/// since the Unix epoch. Answers 1 when the entry is live afterwards, else 0.
///
/// Numbers written back are formatted with `%d` (Lua 5.1 `long`, 64-bit) so that a large
/// integer is never sent as `1.7e+12`.
const REVOKE_SOURCE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local value = ARGV[1]
local expires = tonumber(ARGV[2]) * 1000
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  expires = math.max(expires, now + ttl)
  local old = tonumber(redis.call('GET', KEYS[1]))
  if old and old > tonumber(value) then
    value = string.format('%d', old)
  end
end
if expires <= now then
  return 0
end
redis.call('SET', KEYS[1], value, 'PXAT', string.format('%d', expires))
return 1
";

/// Marks a refresh token spent: `SET … NX`, so exactly one caller ever sees 1, every later one
/// 0. The mark lives until the token stops verifying, and at least one second even for a token
/// already past that, so that `SET` never deletes it on the spot and a second use still sees it.
///
/// `KEYS[1]`: the mark; `ARGV[1]`: the token's expiry in seconds since the Unix epoch.
const SPEND_SOURCE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = math.max(tonumber(ARGV[1]) * 1000, now + 1000)
if redis.call('SET', KEYS[1], '1', 'NX', 'PXAT', string.format('%d', expires)) then
  return 1
end
return 0
";

/// `redis::Script` sends `EVALSHA` and loads the script again when the server answers
/// `NOSCRIPT` (after a restart or `SCRIPT FLUSH`).
static REVOKE: LazyLock<Script> = LazyLock::new(|| Script::new(REVOKE_SOURCE));
static SPEND: LazyLock<Script> = LazyLock::new(|| Script::new(SPEND_SOURCE));

/// Expiries are clamped to the end of year 9999, so that no caller-supplied value can overflow
/// the millisecond arithmetic of the scripts.
const MAX_EXPIRY: i64 = 253_402_300_799;

/// Options for a [`RedisTokenStore`]; see [`RedisTokenStore::builder`].
#[must_use]
pub struct RedisTokenStoreBuilder {
    target: Target,
    prefix: String,
    timeout: Duration,
}

impl fmt::Debug for RedisTokenStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry passwords: never print them.
        f.debug_struct("RedisTokenStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisTokenStoreBuilder {
    /// Prefix of every key (default `palisade:auth`). Must not contain `{` or `}`, which would
    /// change the keys' hash slot.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bound on every Redis call, connecting included (default 250 ms). A call that takes
    /// longer fails with [`TokenStoreError::Backend`], so an outage never hangs a request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the store. The connection is made lazily on first use, so this succeeds while
    /// Redis is down; it fails ([`TokenStoreError::Config`]) only on an invalid URL or prefix
    /// or an empty Cluster node list. Must be called within a Tokio runtime.
    pub fn build(self) -> Result<RedisTokenStore, TokenStoreError> {
        let conn =
            RedisConn::new(self.target, self.timeout, &self.prefix).map_err(|e| match e {
                // A bad URL is a configuration error, not an outage.
                ConnError::Redis(e) => TokenStoreError::Config(e.to_string()),
                e => TokenStoreError::from(e),
            })?;
        Ok(RedisTokenStore {
            conn,
            prefix: self.prefix,
        })
    }
}

/// Revocations, spent refresh tokens and "log out everywhere" marks in Redis, so that every
/// instance of the application sharing the Redis agrees on them.
///
/// - **Expiring entries:** every key is written with an absolute expiry (`PXAT`): the moment
///   the token it concerns stops verifying, so Redis drops it by itself and never holds a key
///   without a TTL. A second write never shortens an entry nor moves a "not before" mark back.
/// - **One round trip per check:** a user's keys share the hash tag `{u:<user id>}`, so
///   [`is_revoked`](TokenStore::is_revoked) reads the token, session and user entries with one
///   `MGET`, on plain Redis and on Redis Cluster alike.
/// - **Atomic first use:** [`use_refresh`](TokenStore::use_refresh) is `SET … NX` (in a short
///   script that also bounds the expiry), so across any number of instances exactly one
///   caller rotates a refresh token.
/// - **No raw tokens:** keys hold token ids (`j:<jti>` or `h:<sha256>`), never a token
///   (SPEC §9.3).
/// - **Fails closed, never hangs:** every call, connecting included, has a timeout
///   ([`RedisTokenStoreBuilder::timeout`]); a timeout or a connection error is
///   [`TokenStoreError::Backend`], and [`Auth`](super::Auth) then refuses the token with
///   [`AuthError::StoreUnavailable`](super::AuthError::StoreUnavailable) (a 503), rather than
///   accept a token it cannot check. Logging out while Redis is down fails the same way, so
///   the client knows to retry. The connection comes back by itself when Redis does.
/// - **Redis:** version 6.2 or later (for `PXAT`). Run it with `maxmemory-policy noeviction`:
///   an evicted revocation would bring a revoked token back (SPEC §9.16), whereas with
///   `noeviction` a full Redis refuses the write, and the logout reports an error.
/// - **Clocks:** entries expire by the Redis server's clock; keep application hosts in sync
///   with it (NTP), as token expiry itself requires.
/// - **URLs:** `redis://` and `rediss://` (TLS), `redis://user:password@host:port/db`;
///   [`RedisTokenStore::cluster`] for Redis Cluster.
///
/// Clones share the connection.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use palisade::auth::{Auth, JwtConfig, JwtKeys, RedisTokenStore};
/// # fn f(config: JwtConfig) -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisTokenStore::builder("redis://:secret@127.0.0.1:6379/0")
///     .key_prefix("myapp:auth")
///     .timeout(Duration::from_millis(100))
///     .build()?;
/// let auth = Auth::new(JwtKeys::new(config)?, Arc::new(store), 30 * 60, 7 * 24 * 3600);
///
/// let cluster =
///     RedisTokenStore::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]).build()?;
/// # drop((auth, cluster)); Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisTokenStore {
    conn: RedisConn,
    prefix: String,
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("mode", &self.conn.mode())
            .field("prefix", &self.prefix)
            .field("timeout", &self.conn.timeout())
            .finish()
    }
}

impl RedisTokenStore {
    /// Options for a store on one Redis server at `url` (`redis://…` or `rediss://…`).
    pub fn builder(url: impl Into<String>) -> RedisTokenStoreBuilder {
        Self::with_target(Target::Single(url.into()))
    }

    /// Options for a store on a Redis Cluster reached through `nodes` (any subset of it).
    pub fn cluster<I, U>(nodes: I) -> RedisTokenStoreBuilder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        Self::with_target(Target::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    fn with_target(target: Target) -> RedisTokenStoreBuilder {
        RedisTokenStoreBuilder {
            target,
            prefix: "palisade:auth".to_owned(),
            timeout: Duration::from_millis(250),
        }
    }

    /// The Redis key revoking token `token_id` of `user_id`:
    /// `<prefix>:{u:<user id>}:t:<token id>` (`{`, `}` and `%` in the user id are
    /// percent-encoded, so it cannot leave its hash tag).
    pub fn token_key(&self, user_id: &str, token_id: &str) -> String {
        format!("{}:t:{token_id}", self.user_prefix(user_id))
    }

    /// The Redis key revoking session `family` of `user_id`: `<prefix>:{u:<user id>}:f:<family>`.
    pub fn family_key(&self, user_id: &str, family: &str) -> String {
        format!("{}:f:{family}", self.user_prefix(user_id))
    }

    /// The Redis key holding the "not before" mark of `user_id` (milliseconds since the epoch;
    /// tokens issued at or before it are revoked): `<prefix>:{u:<user id>}:nb`.
    pub fn not_before_key(&self, user_id: &str) -> String {
        format!("{}:nb", self.user_prefix(user_id))
    }

    /// The Redis key marking refresh token `token_id` of `user_id` spent:
    /// `<prefix>:{u:<user id>}:r:<token id>`.
    pub fn spent_key(&self, user_id: &str, token_id: &str) -> String {
        format!("{}:r:{token_id}", self.user_prefix(user_id))
    }

    fn user_prefix(&self, user_id: &str) -> String {
        format!("{}:{{u:{}}}", self.prefix, escape_tag(user_id))
    }

    async fn put(&self, key: String, value: i64, expires_at: i64) -> Result<(), TokenStoreError> {
        let mut invocation = REVOKE.prepare_invoke();
        invocation
            .key(key)
            .arg(value)
            .arg(expires_at.clamp(0, MAX_EXPIRY));
        let _live: i64 = self.conn.invoke(&invocation).await?;
        Ok(())
    }

    async fn is_revoked_inner(&self, q: RevocationQuery<'_>) -> Result<bool, TokenStoreError> {
        // One MGET: every key carries the user's hash tag, so they share a Cluster slot.
        let mut cmd = redis::cmd("MGET");
        cmd.arg(self.not_before_key(q.user_id))
            .arg(self.token_key(q.user_id, q.token_id));
        if let Some(family) = q.family {
            cmd.arg(self.family_key(q.user_id, family));
        }
        let values: Vec<Option<i64>> = self.conn.query(&cmd).await?;
        let expected = 2 + usize::from(q.family.is_some());
        let [not_before, marks @ ..] = values.as_slice() else {
            return Err(unexpected(&values));
        };
        if values.len() != expected {
            return Err(unexpected(&values));
        }
        Ok(not_before.is_some_and(|nb| q.issued_at_ms <= nb) || marks.iter().any(Option::is_some))
    }

    async fn use_refresh_inner(
        &self,
        user_id: &str,
        token_id: &str,
        expires_at: i64,
    ) -> Result<RefreshUse, TokenStoreError> {
        let mut invocation = SPEND.prepare_invoke();
        invocation
            .key(self.spent_key(user_id, token_id))
            .arg(expires_at.clamp(0, MAX_EXPIRY));
        let first: i64 = self.conn.invoke(&invocation).await?;
        Ok(if first == 1 {
            RefreshUse::First
        } else {
            RefreshUse::Reused
        })
    }
}

fn unexpected(values: &[Option<i64>]) -> TokenStoreError {
    TokenStoreError::Backend(format!("unexpected MGET reply {values:?}"))
}

impl From<ConnError> for TokenStoreError {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::NoNodes | ConnError::BadPrefix(_) => Self::Config(e.to_string()),
            ConnError::Timeout(_) | ConnError::Redis(_) => Self::Backend(e.to_string()),
        }
    }
}

impl TokenStore for RedisTokenStore {
    fn revoke_token<'a>(
        &'a self,
        user_id: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        self.put(self.token_key(user_id, token_id), 1, expires_at)
            .boxed()
    }

    fn revoke_family<'a>(
        &'a self,
        user_id: &'a str,
        family: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        self.put(self.family_key(user_id, family), 1, expires_at)
            .boxed()
    }

    fn revoke_user_before<'a>(
        &'a self,
        user_id: &'a str,
        not_before_ms: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        self.put(self.not_before_key(user_id), not_before_ms, expires_at)
            .boxed()
    }

    fn is_revoked<'a>(
        &'a self,
        query: RevocationQuery<'a>,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        self.is_revoked_inner(query).boxed()
    }

    fn use_refresh<'a>(
        &'a self,
        user_id: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<RefreshUse, TokenStoreError>> {
        self.use_refresh_inner(user_id, token_id, expires_at)
            .boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), TokenStoreError>> {
        async move {
            let _: String = self.conn.query(&redis::cmd("PING")).await?;
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Building connects nothing, so these need no server (only a runtime to build in).

    #[tokio::test]
    async fn every_key_of_a_user_carries_its_hash_tag() {
        let s = RedisTokenStore::builder("redis://127.0.0.1:1/")
            .key_prefix("p")
            .build()
            .expect("valid");
        assert_eq!(s.token_key("42", "j:abc"), "p:{u:42}:t:j:abc");
        assert_eq!(s.family_key("42", "fam"), "p:{u:42}:f:fam");
        assert_eq!(s.not_before_key("42"), "p:{u:42}:nb");
        assert_eq!(s.spent_key("42", "j:abc"), "p:{u:42}:r:j:abc");
        assert_eq!(s.not_before_key("a}b{"), "p:{u:a%7Db%7B}:nb");
    }

    #[tokio::test]
    async fn bad_configuration_is_an_error_not_a_panic() {
        let bad = [
            // A brace in the prefix would move the keys' hash slot.
            RedisTokenStore::builder("redis://127.0.0.1:1/").key_prefix("a{b"),
            RedisTokenStore::cluster(Vec::<String>::new()),
            RedisTokenStore::builder("nope://x"),
        ];
        for builder in bad {
            assert!(matches!(builder.build(), Err(TokenStoreError::Config(_))));
        }
    }
}
