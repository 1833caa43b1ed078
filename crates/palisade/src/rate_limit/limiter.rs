//! The shared limiter: a store, a failure mode with a local fallback, an over-limit cache and
//! the store's health.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::algorithm::{Decision, Quota};
use super::clock::{Clock, SystemClock, Timestamp};
use super::identity::Identity;
use super::layer::RateLimitLayer;
use super::policy::Policy;
use super::store::{MemoryStore, Store, StoreError};
use crate::client_ip::ClientIpConfig;

/// What to do while the store (Redis) does not answer (`RATE_LIMIT_FAILURE_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailureMode {
    /// Admit every request (and log the outage once).
    Open,
    /// Answer 503 with a JSON `{"detail": …}` body.
    Closed,
    /// Decide with an in-process [`MemoryStore`], each limit divided by the number of
    /// instances, so the fleet-wide limit stays close to the configured one (the default).
    #[default]
    Local,
}

impl FromStr for FailureMode {
    type Err = UnknownFailureMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            "local" => Ok(Self::Local),
            _ => Err(UnknownFailureMode(s.to_owned())),
        }
    }
}

impl fmt::Display for FailureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Local => "local",
        })
    }
}

/// A failure mode other than `open`, `closed` or `local`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rate-limit failure mode {0:?}; expected open, closed or local")]
pub struct UnknownFailureMode(pub String);

/// Whether the limiter's store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreHealth {
    /// Decisions come from the store.
    Healthy,
    /// The store failed; the [`FailureMode`] applies until a probe succeeds.
    Degraded,
}

/// Which store decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecisionSource {
    /// The configured store.
    Store,
    /// The local fallback store, during an outage.
    Fallback,
    /// The over-limit cache: the client was already known to be over a limit.
    Cache,
}

/// A decision with what is needed to report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The store's answer.
    pub decision: Decision,
    /// The quotas it answered for (the fallback's are divided), in the decision's order.
    pub quotas: Arc<[Quota]>,
    /// Which store decided.
    pub source: DecisionSource,
}

/// The limiter's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The client is exempt: nothing was counted.
    Exempt,
    /// Admitted and counted.
    Allowed(Report),
    /// Over a limit: nothing was consumed.
    Limited(Report),
    /// The store is down and the failure mode is [`FailureMode::Open`]: admitted uncounted.
    Unchecked,
    /// The store is down and the failure mode is [`FailureMode::Closed`].
    Unavailable,
}

/// Options for a [`RateLimiter`]; see [`RateLimiter::builder`].
#[must_use]
pub struct RateLimiterBuilder {
    store: Arc<dyn Store>,
    mode: FailureMode,
    instances: u32,
    clock: Arc<dyn Clock>,
    client_ip: ClientIpConfig,
    fallback_capacity: usize,
    cache_capacity: usize,
    probe_min: Duration,
    probe_max: Duration,
}

impl fmt::Debug for RateLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiterBuilder")
            .field("store", &self.store)
            .field("mode", &self.mode)
            .field("instances", &self.instances)
            .finish_non_exhaustive()
    }
}

impl RateLimiterBuilder {
    /// What to do while the store is down (default [`FailureMode::Local`]).
    pub fn failure_mode(mut self, mode: FailureMode) -> Self {
        self.mode = mode;
        self
    }

    /// How many instances share the store (`RATE_LIMIT_INSTANCES`, default 1): the local
    /// fallback divides every limit by it.
    pub fn instances(mut self, instances: u32) -> Self {
        self.instances = instances.max(1);
        self
    }

    /// The clock (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How client addresses are resolved when no [`ClientIpLayer`](crate::client_ip::ClientIpLayer)
    /// ran before the limiter (default: the socket peer, no trusted proxies).
    pub fn client_ip(mut self, config: ClientIpConfig) -> Self {
        self.client_ip = config;
        self
    }

    /// Key cap of the local fallback store (default 100,000).
    pub fn fallback_capacity(mut self, capacity: usize) -> Self {
        self.fallback_capacity = capacity;
        self
    }

    /// Key cap of the over-limit cache (default 10,000; 0 turns it off).
    pub fn over_limit_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Backoff between probes of a failed store: starts at `min`, doubles up to `max`
    /// (default 100 ms to 5 s).
    pub fn probe_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.probe_min = min;
        self.probe_max = max.max(min);
        self
    }

    /// Builds the limiter.
    pub fn build(self) -> RateLimiter {
        let (health, _) = watch::channel(StoreHealth::Healthy);
        RateLimiter {
            inner: Arc::new(Inner {
                store: self.store,
                mode: self.mode,
                instances: self.instances,
                clock: self.clock,
                client_ip: self.client_ip,
                fallback: MemoryStore::with_capacity(self.fallback_capacity),
                cache: OverLimitCache::new(self.cache_capacity),
                degraded: AtomicBool::new(false),
                health,
                probe_min: self.probe_min,
                probe_max: self.probe_max,
            }),
        }
    }
}

/// The limiter shared by every rate-limited route: one store, one failure policy.
///
/// Cheap to clone. Build one per application and one [`RateLimitLayer`] per route with
/// [`layer`](Self::layer).
///
/// **Outages.** When the store fails (error or timeout), the limiter logs it once, marks itself
/// [`Degraded`](StoreHealth::Degraded) (see [`is_degraded`](Self::is_degraded) and
/// [`health`](Self::health), for `/ready` and metrics), stops calling the store and applies the
/// [`FailureMode`]. A background task pings the store with exponential backoff; on the first
/// answer, decisions go back to the store by themselves, and the recovery is logged once.
///
/// **Over-limit cache.** A client rejected by a remote store is remembered locally until its
/// retry time, and rejected from memory until then: a flood from one abusive client costs no
/// Redis round trips. This is exact: a rejection consumes nothing, so the store would give the
/// same answer until then.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    mode: FailureMode,
    instances: u32,
    clock: Arc<dyn Clock>,
    client_ip: ClientIpConfig,
    fallback: MemoryStore,
    cache: OverLimitCache,
    degraded: AtomicBool,
    health: watch::Sender<StoreHealth>,
    probe_min: Duration,
    probe_max: Duration,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("store", &self.inner.store)
            .field("mode", &self.inner.mode)
            .field("instances", &self.inner.instances)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Options for a limiter over `store`.
    pub fn builder(store: impl Store) -> RateLimiterBuilder {
        Self::builder_arc(Arc::new(store))
    }

    /// Options for a limiter over a shared `store`.
    pub fn builder_arc(store: Arc<dyn Store>) -> RateLimiterBuilder {
        RateLimiterBuilder {
            store,
            mode: FailureMode::Local,
            instances: 1,
            clock: Arc::new(SystemClock),
            client_ip: ClientIpConfig::new(),
            fallback_capacity: MemoryStore::DEFAULT_CAPACITY,
            cache_capacity: 10_000,
            probe_min: Duration::from_millis(100),
            probe_max: Duration::from_secs(5),
        }
    }

    /// A single-instance limiter over a default [`MemoryStore`].
    pub fn memory() -> Self {
        Self::builder(MemoryStore::new()).build()
    }

    /// A layer enforcing `policy` with this limiter.
    pub fn layer(&self, policy: Policy) -> RateLimitLayer {
        RateLimitLayer::new(self.clone(), policy)
    }

    /// The failure mode.
    pub fn failure_mode(&self) -> FailureMode {
        self.inner.mode
    }

    /// Whether the store is failing (the failure mode applies).
    pub fn is_degraded(&self) -> bool {
        self.inner.degraded.load(Ordering::SeqCst)
    }

    /// A receiver of the store's health, updated on every change.
    pub fn health(&self) -> watch::Receiver<StoreHealth> {
        self.inner.health.subscribe()
    }

    /// How client addresses are resolved when no `ClientIpLayer` ran.
    pub fn client_ip_config(&self) -> &ClientIpConfig {
        &self.inner.client_ip
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// Decides one request of `identity` under `policy`.
    pub async fn check(&self, policy: &Policy, identity: &Identity) -> Verdict {
        if policy.is_exempt(identity) {
            return Verdict::Exempt;
        }
        let inner = &self.inner;
        let quotas = Arc::clone(policy.quotas(identity.is_authenticated()));
        let key = format!("{}:{}", policy.name(), identity.key());
        let now = inner.clock.now();
        let remote = inner.store.is_remote();
        if remote && let Some(decision) = inner.cache.get(&key, now) {
            return Verdict::Limited(Report {
                decision,
                quotas,
                source: DecisionSource::Cache,
            });
        }
        if !self.is_degraded() {
            match inner.store.check(&key, &quotas, now).await {
                Ok(decision) => {
                    if remote && !decision.allowed {
                        inner.cache.insert(key, now, &decision);
                    }
                    return verdict(decision, quotas, DecisionSource::Store);
                }
                Err(err) => self.mark_degraded(&err),
            }
        }
        match inner.mode {
            FailureMode::Open => Verdict::Unchecked,
            FailureMode::Closed => Verdict::Unavailable,
            FailureMode::Local => {
                let n = inner.instances;
                let local: Arc<[Quota]> = quotas
                    .iter()
                    .map(|q| {
                        Quota::new(q.rate().divided(n), q.algorithm())
                            .with_burst((q.burst() / u64::from(n)).max(1))
                    })
                    .collect();
                let decision = inner.fallback.check_now(&key, &local, now);
                verdict(decision, local, DecisionSource::Fallback)
            }
        }
    }

    fn mark_degraded(&self, err: &StoreError) {
        let inner = &self.inner;
        if inner.degraded.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::error!(
            error = %err,
            failure_mode = %inner.mode,
            "rate-limit store unavailable; applying the failure mode until it answers again"
        );
        inner.health.send_replace(StoreHealth::Degraded);
        let weak = Arc::downgrade(inner);
        tokio::spawn(probe(weak, inner.probe_min, inner.probe_max));
    }
}

/// Pings the store with exponential backoff until it answers, then marks it healthy. Stops
/// when the limiter is dropped.
async fn probe(weak: Weak<Inner>, min: Duration, max: Duration) {
    let mut delay = min;
    loop {
        tokio::time::sleep(delay).await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        match inner.store.ping().await {
            Ok(()) => {
                inner.degraded.store(false, Ordering::SeqCst);
                inner.health.send_replace(StoreHealth::Healthy);
                tracing::info!("rate-limit store answers again; decisions use it again");
                return;
            }
            Err(err) => tracing::debug!(error = %err, ?delay, "rate-limit store still unavailable"),
        }
        delay = (delay * 2).min(max);
    }
}

fn verdict(decision: Decision, quotas: Arc<[Quota]>, source: DecisionSource) -> Verdict {
    let allowed = decision.allowed;
    let report = Report {
        decision,
        quotas,
        source,
    };
    if allowed {
        Verdict::Allowed(report)
    } else {
        Verdict::Limited(report)
    }
}

/// Clients known to be over a limit, until their retry time. Bounded: when full, expired
/// entries are dropped, and if none are, new rejections are simply not cached.
struct OverLimitCache {
    capacity: usize,
    entries: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    at: Timestamp,
    until: Timestamp,
    decision: Decision,
}

impl OverLimitCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str, now: Timestamp) -> Option<Decision> {
        if self.capacity == 0 {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = entries.get(key)?;
        if now >= cached.until {
            entries.remove(key);
            return None;
        }
        let elapsed = now.since(cached.at);
        let mut decision = cached.decision.clone();
        for s in &mut decision.limits {
            s.reset = s.reset.saturating_sub(elapsed);
            s.retry_after = s.retry_after.saturating_sub(elapsed);
        }
        Some(decision)
    }

    fn insert(&self, key: String, now: Timestamp, decision: &Decision) {
        if self.capacity == 0 {
            return;
        }
        let until = now.plus(decision.retry_after());
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, c| c.until > now);
            if entries.len() >= self.capacity {
                return;
            }
        }
        entries.insert(
            key,
            Cached {
                at: now,
                until,
                decision: decision.clone(),
            },
        );
    }
}
