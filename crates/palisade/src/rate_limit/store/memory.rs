//! The in-process store: bounded by construction.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::{self, BoxFuture, FutureExt};

use super::{Store, StoreError};
use crate::rate_limit::algorithm::{self, Decision, Quota, State};
use crate::rate_limit::clock::Timestamp;

/// Expired entries dropped per call, on top of the ones a call overwrites, so that cleaning
/// keeps pace with insertion without a background task.
const SWEEP_PER_CALL: usize = 8;

/// Rate-limit state in process memory, for a single instance (or as the fallback when Redis is
/// down).
///
/// Memory stays bounded whatever the traffic:
///
/// - state that no longer matters (a GCRA key whose TAT has passed, a finished window) is
///   dropped as calls go, a few entries per call, oldest first;
/// - a hard cap on the number of keys ([`with_capacity`](Self::with_capacity), default
///   100,000): when full, the entry closest to expiry is evicted (the one whose loss forgives the
///   least). A flood of distinct keys therefore cannot grow memory past the cap; its cost is
///   that an evicted client starts again with a full quota.
///
/// It computes with exactly the same functions the Redis script mirrors, so both stores give
/// the same answers for the same traffic.
///
/// # Examples
///
/// ```
/// use palisade::rate_limit::{Algorithm, Clock, MemoryStore, Quota, Store, SystemClock};
/// # tokio_test(async {
/// let store = MemoryStore::with_capacity(10_000);
/// let quota = [Quota::new("2/minute".parse()?, Algorithm::Gcra)];
/// let now = SystemClock.now();
/// assert!(store.check("login:ip:192.0.2.1", &quota, now).await?.allowed);
/// assert!(store.check("login:ip:192.0.2.1", &quota, now).await?.allowed);
/// assert!(!store.check("login:ip:192.0.2.1", &quota, now).await?.allowed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// # fn tokio_test<F: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>>(f: F) {
/// #     tokio::runtime::Builder::new_current_thread().build().expect("rt").block_on(f).expect("ok")
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Arc<str>, Entry>,
    by_expiry: BTreeSet<(u64, Arc<str>)>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    expires_at: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// Default cap on the number of keys.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A store holding at most [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) keys.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A store holding at most `capacity` keys (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    /// The cap on the number of keys.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of keys held now (one per client and quota).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The synchronous core of [`Store::check`].
    pub fn check_now(&self, key: &str, quotas: &[Quota], now: Timestamp) -> Decision {
        let keys: Vec<String> = quotas
            .iter()
            .map(|q| format!("{key}|{}", q.key_suffix()))
            .collect();
        let mut inner = self.lock();
        let t = now.as_micros();
        inner.sweep(t, SWEEP_PER_CALL);
        let states: Vec<Option<State>> = keys
            .iter()
            .map(|k| {
                inner
                    .map
                    .get(k.as_str())
                    .filter(|e| e.expires_at > t)
                    .map(|e| e.state)
            })
            .collect();
        let (decision, writes) = algorithm::decide(quotas, &states, now);
        for (k, (state, expires_at)) in keys.into_iter().zip(writes.into_iter().flatten()) {
            inner.put(k, state, expires_at.as_micros(), t, self.capacity);
        }
        decision
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters for rate limiting (worst case: a stale index entry), so keep serving.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Drops up to `max` entries whose state no longer matters at `now`.
    fn sweep(&mut self, now: u64, max: usize) {
        for _ in 0..max {
            match self.by_expiry.first() {
                Some((exp, _)) if *exp <= now => {
                    if let Some((_, key)) = self.by_expiry.pop_first() {
                        self.map.remove(&key);
                    }
                }
                _ => break,
            }
        }
    }

    fn put(&mut self, key: String, state: State, expires_at: u64, now: u64, capacity: usize) {
        let key: Arc<str> = Arc::from(key);
        if let Some(old) = self.map.get(&key).copied() {
            self.by_expiry.remove(&(old.expires_at, Arc::clone(&key)));
        } else if self.map.len() >= capacity {
            self.sweep(now, self.map.len());
            if self.map.len() >= capacity
                && let Some((_, victim)) = self.by_expiry.pop_first()
            {
                self.map.remove(&victim);
                tracing::debug!(
                    "rate-limit memory store full; evicted the entry closest to expiry"
                );
            }
        }
        self.by_expiry.insert((expires_at, Arc::clone(&key)));
        self.map.insert(key, Entry { state, expires_at });
    }
}

impl Store for MemoryStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quotas: &'a [Quota],
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Decision, StoreError>> {
        future::ready(Ok(self.check_now(key, quotas, now))).boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        future::ready(Ok(())).boxed()
    }
}
