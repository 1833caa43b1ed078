//! Where rate-limit state lives: the [`Store`] trait, [`MemoryStore`] and [`RedisStore`].

mod memory;
mod redis;

pub use self::memory::MemoryStore;
pub use self::redis::{RedisStore, RedisStoreBuilder, TimeSource};

use futures_util::future::BoxFuture;

use super::algorithm::{Decision, Quota};
use super::clock::Timestamp;

/// A store of rate-limit state.
///
/// [`check`](Store::check) decides one request for `key` against every quota of its policy,
/// atomically and all-or-nothing: either every quota admits it and each consumes one unit, or
/// nothing is consumed.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Decides one request. `key` names the client within a policy (e.g. `login:ip:192.0.2.1`);
    /// the store derives one state key per quota from it. `now` is the caller's clock; a store
    /// may use its own time source instead (see [`TimeSource`]).
    fn check<'a>(
        &'a self,
        key: &'a str,
        quotas: &'a [Quota],
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Decision, StoreError>>;

    /// Checks that the store answers (used to detect the end of an outage).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Whether the store is remote, so that caching rejections locally saves round trips.
    fn is_remote(&self) -> bool {
        false
    }
}

/// Why a store could not decide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer within its timeout.
    #[error("rate-limit store timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The Redis client or server reported an error.
    #[error("redis error: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The script answered something it never sends (a bug or a foreign script).
    #[error("unexpected reply from the rate-limit script: {0}")]
    Protocol(String),
    /// The store was configured wrongly.
    #[error("invalid rate-limit store configuration: {0}")]
    Config(String),
}
