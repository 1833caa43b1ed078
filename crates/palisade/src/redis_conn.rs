//! The Redis connection shared by the Redis-backed stores (rate limiting and token revocation).
//!
//! One place decides how Palisade talks to Redis:
//!
//! - **Targets:** one server (`redis://`, `rediss://` for TLS, with password, ACL user and
//!   database in the URL) through a `ConnectionManager` (one multiplexed connection that
//!   reconnects by itself), or a Redis Cluster through `cluster_async`.
//! - **Lazy:** nothing connects at build time, so an application starts while Redis is down;
//!   the cluster connection is made on first use (and retried on the next call if that fails).
//! - **Bounded:** every call, connecting included, is cut off after the timeout, so an outage
//!   or a frozen server costs a request at most that long (SPEC §4, §9.7).
//! - **Hash tags:** [`escape_tag`] makes any string safe inside a `{…}` tag, so a store can put
//!   the keys of one operation in one Cluster slot.
//!
//! Stores map [`ConnError`] into their own public error types.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, ScriptInvocation, Value,
};
use tokio::sync::OnceCell;

/// Where a store's Redis is.
#[derive(Clone)]
pub(crate) enum Target {
    /// One server at this URL.
    Single(String),
    /// A Redis Cluster reached through these nodes (any subset of it).
    Cluster(Vec<String>),
}

/// Why a Redis call failed.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// No answer within the timeout (connecting included).
    Timeout(Duration),
    /// The client or the server reported an error (refused connection, bad URL, …).
    Redis(RedisError),
    /// A cluster target without any node.
    NoNodes,
    /// A key prefix with `{` or `}`, which would change the keys' hash slot.
    BadPrefix(String),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(t) => write!(f, "redis did not answer within {t:?}"),
            Self::Redis(e) => write!(f, "redis error: {e}"),
            Self::NoNodes => f.write_str("no Redis Cluster node given"),
            Self::BadPrefix(p) => write!(f, "key prefix {p:?} must not contain '{{' or '}}'"),
        }
    }
}

impl From<RedisError> for ConnError {
    fn from(e: RedisError) -> Self {
        Self::Redis(e)
    }
}

/// A lazily connected, timeout-bounded handle on a Redis server or Cluster. Clones share the
/// connection.
#[derive(Clone)]
pub(crate) struct RedisConn {
    conn: Conn,
    timeout: Duration,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(Arc<ClusterState>),
}

/// A cluster client and its connection, made on first use.
struct ClusterState {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

impl fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConn")
            .field("mode", &self.mode())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisConn {
    /// A handle on `target` whose calls give up after `timeout`, for keys under `prefix`.
    /// Connects nothing yet; fails only on an invalid URL, an empty node list or a prefix that
    /// would break hash tags. Must be called within a Tokio runtime.
    pub(crate) fn new(target: Target, timeout: Duration, prefix: &str) -> Result<Self, ConnError> {
        if prefix.contains(['{', '}']) {
            return Err(ConnError::BadPrefix(prefix.to_owned()));
        }
        let conn = match target {
            Target::Single(url) => {
                let client = Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(timeout);
                Conn::Single(ConnectionManager::new_lazy_with_config(client, config)?)
            }
            Target::Cluster(urls) => {
                if urls.is_empty() {
                    return Err(ConnError::NoNodes);
                }
                let client = ClusterClient::builder(urls)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()?;
                Conn::Cluster(Arc::new(ClusterState {
                    client,
                    conn: OnceCell::new(),
                }))
            }
        };
        Ok(Self { conn, timeout })
    }

    /// The bound on every call.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `"single"` or `"cluster"`.
    pub(crate) fn mode(&self) -> &'static str {
        match self.conn {
            Conn::Single(_) => "single",
            Conn::Cluster(_) => "cluster",
        }
    }

    /// Runs one command.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, ConnError> {
        self.bounded(async {
            let mut c = self.connection().await?;
            Ok(cmd.query_async(&mut c).await?)
        })
        .await
    }

    /// Runs a script (`EVALSHA`, loading it again on `NOSCRIPT`).
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, ConnError> {
        self.bounded(async {
            let mut c = self.connection().await?;
            Ok(invocation.invoke_async(&mut c).await?)
        })
        .await
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, ConnError>>,
    ) -> Result<T, ConnError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ConnError::Timeout(self.timeout))?
    }

    async fn connection(&self) -> Result<Live, ConnError> {
        match &self.conn {
            Conn::Single(c) => Ok(Live::Single(c.clone())),
            Conn::Cluster(state) => {
                let c = state
                    .conn
                    .get_or_try_init(|| state.client.get_async_connection())
                    .await?;
                Ok(Live::Cluster(c.clone()))
            }
        }
    }
}

/// A connection ready for one call (clones share the underlying multiplexed connection).
enum Live {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Live {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Makes `key` safe inside a `{…}` hash tag: `{`, `}` and `%` are percent-encoded, so a value
/// can neither end the tag early nor collide with another value.
pub(crate) fn escape_tag(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_tag;

    #[test]
    fn tags_cannot_be_broken_out_of() {
        assert_eq!(escape_tag("user:a}b{c%"), "user:a%7Db%7Bc%25");
    }
}
