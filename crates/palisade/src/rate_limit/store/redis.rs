//! The shared store: one Lua script per decision on plain Redis or Redis Cluster.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use redis::Script;

use super::{Store, StoreError};
use crate::rate_limit::algorithm::{Algorithm, Decision, LimitStatus, Quota};
use crate::rate_limit::clock::Timestamp;
use crate::redis_conn::{ConnError, RedisConn, Target, escape_tag};

/// The decision script (see `redis.lua` beside this file). `redis::Script` sends `EVALSHA` and
/// loads the script again when the server answers `NOSCRIPT` (after a restart or
/// `SCRIPT FLUSH`).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RedisStore::SCRIPT_SOURCE));

/// Which clock the Redis store's decisions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TimeSource {
    /// The Redis server's `TIME`, read inside the script (the default). Every instance sharing
    /// the Redis then uses one clock, so skew between application hosts cannot change a
    /// decision. (A Redis Cluster has one clock per master; a client's keys all live on one.)
    #[default]
    Server,
    /// The `now` passed by the caller (the limiter's [`Clock`](crate::rate_limit::Clock)).
    /// For tests with a fake clock; in production, only with well-synchronised hosts.
    Caller,
}

/// Options for a [`RedisStore`]; see [`RedisStore::builder`].
#[must_use]
pub struct RedisStoreBuilder {
    target: Target,
    prefix: String,
    timeout: Duration,
    time_source: TimeSource,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry passwords: never print them.
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("time_source", &self.time_source)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// Prefix of every key (default `palisade:rl`). Must not contain `{` or `}`, which would
    /// change the keys' hash slot.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bound on every Redis call, connection included (default 250 ms). A call that takes
    /// longer fails with [`StoreError::Timeout`], so an outage never hangs a request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Which clock decisions use (default [`TimeSource::Server`]).
    pub fn time_source(mut self, source: TimeSource) -> Self {
        self.time_source = source;
        self
    }

    /// Builds the store. The connection is made lazily on first use, so this succeeds while
    /// Redis is down (the limiter then falls back); it fails only on an invalid URL or prefix.
    /// Must be called within a Tokio runtime.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let conn = RedisConn::new(self.target, self.timeout, &self.prefix)?;
        Ok(RedisStore {
            conn,
            prefix: self.prefix,
            time_source: self.time_source,
        })
    }
}

/// Rate-limit state in Redis, shared by every instance of the application.
///
/// - **Atomic, all or nothing, one round trip:** every quota of a request is checked and
///   consumed by one Lua script (`EVALSHA`, reloaded on `NOSCRIPT`), plain Redis, no modules.
/// - **Cluster-safe:** the keys of one decision are `<prefix>:{<policy>:<client>}:<quota>`; the
///   `{…}` hash tag puts them in one slot, and spreads clients across slots.
/// - **Bounded:** every call (connecting included) has a timeout ([`RedisStoreBuilder::timeout`]).
/// - **Clock:** by default the script reads the Redis server's `TIME`, so instances agree even
///   with skewed clocks ([`TimeSource`]).
/// - **URLs:** `redis://` and `rediss://` (TLS), `redis://user:password@host:port/db` for a
///   password, an ACL user and a database number; [`RedisStore::cluster`] for Redis Cluster.
///
/// The connection is a `redis::aio::ConnectionManager` (one multiplexed connection that
/// reconnects by itself); clones of the store share it.
///
/// # Examples
///
/// ```no_run
/// use palisade::rate_limit::RedisStore;
/// use std::time::Duration;
/// # async fn f() -> Result<(), palisade::rate_limit::StoreError> {
/// let store = RedisStore::builder("redis://:secret@127.0.0.1:6379/2")
///     .key_prefix("myapp:rl")
///     .timeout(Duration::from_millis(100))
///     .build()?;
/// let cluster = RedisStore::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConn,
    prefix: String,
    time_source: TimeSource,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("mode", &self.conn.mode())
            .field("prefix", &self.prefix)
            .field("timeout", &self.conn.timeout())
            .field("time_source", &self.time_source)
            .finish()
    }
}

impl RedisStore {
    /// The Lua source of the decision script, e.g. for `redis-benchmark` or inspection.
    pub const SCRIPT_SOURCE: &'static str = include_str!("redis.lua");

    /// Options for a store on one Redis server at `url` (`redis://…` or `rediss://…`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        Self::with_target(Target::Single(url.into()))
    }

    /// Options for a store on a Redis Cluster reached through `nodes` (any subset of it).
    pub fn cluster<I, U>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        Self::with_target(Target::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    fn with_target(target: Target) -> RedisStoreBuilder {
        RedisStoreBuilder {
            target,
            prefix: "palisade:rl".to_owned(),
            timeout: Duration::from_millis(250),
            time_source: TimeSource::Server,
        }
    }

    /// The SHA-1 of the script, as `EVALSHA` uses it.
    pub fn script_sha() -> &'static str {
        SCRIPT.get_hash()
    }

    /// The Redis key holding `quota`'s state for `key` (see the type's docs for the layout).
    pub fn state_key(&self, key: &str, quota: &Quota) -> String {
        format!(
            "{}:{{{}}}:{}",
            self.prefix,
            escape_tag(key),
            quota.key_suffix()
        )
    }

    /// The arguments of one script call (`KEYS`, then `ARGV`), e.g. for `redis-benchmark`.
    pub fn script_args(
        &self,
        key: &str,
        quotas: &[Quota],
        now: Timestamp,
    ) -> (Vec<String>, Vec<String>) {
        let keys = quotas.iter().map(|q| self.state_key(key, q)).collect();
        let mut args = Vec::with_capacity(1 + 4 * quotas.len());
        args.push(match self.time_source {
            TimeSource::Server => String::new(),
            TimeSource::Caller => now.as_micros().to_string(),
        });
        for q in quotas {
            args.push(
                match q.algorithm() {
                    Algorithm::Gcra => "g",
                    Algorithm::FixedWindow => "f",
                }
                .to_owned(),
            );
            args.push(q.rate().count().to_string());
            args.push(q.period_us().to_string());
            args.push(q.burst().to_string());
        }
        (keys, args)
    }

    async fn check_inner(
        &self,
        key: &str,
        quotas: &[Quota],
        now: Timestamp,
    ) -> Result<Decision, StoreError> {
        let (keys, args) = self.script_args(key, quotas, now);
        let mut invocation = SCRIPT.prepare_invoke();
        for k in &keys {
            invocation.key(k);
        }
        for a in &args {
            invocation.arg(a);
        }
        let reply: Vec<i64> = self.conn.invoke(&invocation).await?;
        parse_reply(&reply, quotas.len())
    }
}

impl Store for RedisStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quotas: &'a [Quota],
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Decision, StoreError>> {
        self.check_inner(key, quotas, now).boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            let _: String = self.conn.query(&redis::cmd("PING")).await?;
            Ok(())
        }
        .boxed()
    }

    fn is_remote(&self) -> bool {
        true
    }
}

fn parse_reply(reply: &[i64], quotas: usize) -> Result<Decision, StoreError> {
    let bad = || StoreError::Protocol(format!("{reply:?}"));
    if reply.len() != 2 + 4 * quotas {
        return Err(bad());
    }
    let micros = |v: i64| {
        u64::try_from(v)
            .map(Duration::from_micros)
            .map_err(|_| bad())
    };
    let limits = reply[2..]
        .chunks_exact(4)
        .map(|c| {
            Ok(LimitStatus {
                allowed: c[0] == 1,
                remaining: u64::try_from(c[1]).map_err(|_| bad())?,
                reset: micros(c[2])?,
                retry_after: micros(c[3])?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Decision {
        allowed: reply[1] == 1,
        limits,
    })
}

impl From<ConnError> for StoreError {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Timeout(t) => Self::Timeout(t),
            ConnError::Redis(e) => Self::Redis(e),
            ConnError::NoNodes | ConnError::BadPrefix(_) => Self::Config(e.to_string()),
        }
    }
}
