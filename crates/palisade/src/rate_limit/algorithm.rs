//! The algorithms as pure functions of (state, quota, now): no I/O, no clock.
//!
//! [`MemoryStore`](super::MemoryStore) calls [`decide`] directly; the Redis script
//! (`store/redis.lua`) is a line-by-line transcription of it, so both stores answer identically
//! for the same traffic (a property test checks this against a real Redis). All arithmetic is on
//! integers (microseconds) below 2^53, which Lua's doubles represent exactly.
//!
//! - **GCRA** (generic cell rate algorithm, as in ATM networks and `redis-cell`): one timestamp
//!   per key, the theoretical arrival time (TAT). With an emission interval `T = period / count`
//!   and a burst `B`, a request at `now` is admitted when `max(TAT, now) + T - B·T <= now`.
//! - **Fixed window**: windows aligned to the epoch (`now / period`), one counter per key.
//!   At most `count` per window, but up to 2 × `count` across a window boundary (the tutorial's
//!   behaviour, kept for compatibility).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::clock::Timestamp;
use super::rate::Rate;

/// Largest value any intermediate quantity may reach (2^52), so Lua doubles stay exact.
const MAX_EXACT: u64 = 1 << 52;

/// The algorithm of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// GCRA: smooth, burst-aware (the default).
    #[default]
    Gcra,
    /// Fixed window aligned to the epoch (the tutorial's behaviour).
    FixedWindow,
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "gcra" => Ok(Self::Gcra),
            "fixed-window" | "fixed" => Ok(Self::FixedWindow),
            _ => Err(UnknownAlgorithm(s.to_owned())),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gcra => "gcra",
            Self::FixedWindow => "fixed-window",
        })
    }
}

/// An algorithm name that is neither `gcra` nor `fixed-window`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rate-limit algorithm {0:?}; expected gcra or fixed-window")]
pub struct UnknownAlgorithm(pub String);

/// A [`Rate`] made concrete for an algorithm: what a store checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: Rate,
    algorithm: Algorithm,
    burst: u64,
}

impl Quota {
    /// `rate` under `algorithm`, with a burst equal to the rate's count.
    pub fn new(rate: Rate, algorithm: Algorithm) -> Self {
        Self {
            rate,
            algorithm,
            burst: rate.count(),
        }
    }

    /// Sets the GCRA burst (how many requests may arrive back to back after a quiet period);
    /// clamped to at least 1. Fixed windows ignore it.
    #[must_use]
    pub fn with_burst(mut self, burst: u64) -> Self {
        let max = MAX_EXACT / self.interval_us().max(1);
        self.burst = burst.clamp(1, max.max(1));
        self
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The GCRA burst.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    pub(crate) fn period_us(&self) -> u64 {
        u64::try_from(self.rate.period().as_micros()).unwrap_or(MAX_EXACT)
    }

    /// The GCRA emission interval `T = period / count` (at least 1 µs).
    pub(crate) fn interval_us(&self) -> u64 {
        (self.period_us() / self.rate.count()).max(1)
    }

    /// The limit count a client sees in headers (`q=`, `X-RateLimit-Limit`).
    pub(crate) fn limit(&self) -> u64 {
        match self.algorithm {
            Algorithm::Gcra => self.burst,
            Algorithm::FixedWindow => self.rate.count(),
        }
    }

    /// A short, stable suffix naming this quota in a store key, so that changing a limit
    /// starts from fresh state instead of misreading the old one.
    pub(crate) fn key_suffix(&self) -> String {
        match self.algorithm {
            Algorithm::Gcra => format!(
                "g:{}:{}:{}",
                self.rate.count(),
                self.period_us() / 1_000_000,
                self.burst
            ),
            Algorithm::FixedWindow => {
                format!("f:{}:{}", self.rate.count(), self.period_us() / 1_000_000)
            }
        }
    }
}

/// The stored state of one (key, quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// GCRA: the theoretical arrival time, in microseconds.
    Tat(u64),
    /// Fixed window: the window's index (`now / period`) and the requests counted in it.
    Window { index: u64, count: u64 },
}

/// The answer for one quota of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitStatus {
    /// Whether this quota admits the request.
    pub allowed: bool,
    /// Requests still admissible right now, after this one if it was admitted.
    pub remaining: u64,
    /// Time until the quota is full again (GCRA) or the window ends (fixed window).
    pub reset: Duration,
    /// When not allowed: time until a request would be admitted.
    pub retry_after: Duration,
}

/// The answer of a store for one request, over every quota of its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted: every quota allowed it. Only then was anything
    /// consumed (all or nothing).
    pub allowed: bool,
    /// One status per quota, in the policy's order.
    pub limits: Vec<LimitStatus>,
}

impl Decision {
    /// The index of the quota to report in headers: when rejected, the rejecting quota with the
    /// longest wait; when admitted, the one with the fewest remaining requests (ties: the
    /// longest reset).
    pub fn most_restrictive(&self) -> usize {
        let mut best = 0;
        for (i, s) in self.limits.iter().enumerate() {
            let b = &self.limits[best];
            let better = if self.allowed {
                (s.remaining, std::cmp::Reverse(s.reset))
                    < (b.remaining, std::cmp::Reverse(b.reset))
            } else {
                match (s.allowed, b.allowed) {
                    (false, true) => true,
                    (false, false) => s.retry_after > b.retry_after,
                    _ => false,
                }
            };
            if better {
                best = i;
            }
        }
        best
    }

    /// The longest wait among the rejecting quotas (zero when admitted).
    pub fn retry_after(&self) -> Duration {
        self.limits
            .iter()
            .filter(|s| !s.allowed)
            .map(|s| s.retry_after)
            .max()
            .unwrap_or_default()
    }
}

/// A write to apply when the decision admits the request: the new state and when it stops
/// mattering (the key may be dropped from then on).
pub(crate) type Write = (State, Timestamp);

/// Decides one request against `quotas`, given the current `states` (one per quota; `None`
/// when absent or expired). Returns the decision and, only when it admits the request, the
/// states to write (all or nothing).
///
/// This is the function the Redis script mirrors; keep them in step.
pub(crate) fn decide(
    quotas: &[Quota],
    states: &[Option<State>],
    now: Timestamp,
) -> (Decision, Option<Vec<Write>>) {
    let now = now.as_micros();
    let mut limits = Vec::with_capacity(quotas.len());
    let mut writes = Vec::with_capacity(quotas.len());
    // Per quota: the reset to report if nothing is consumed (GCRA: current TAT - now).
    let mut unconsumed_reset = Vec::with_capacity(quotas.len());
    for (quota, state) in quotas.iter().zip(states) {
        match quota.algorithm {
            Algorithm::Gcra => {
                let t = quota.interval_us();
                let tat = match state {
                    Some(State::Tat(s)) if *s > now => *s,
                    _ => now,
                };
                let new_tat = tat + t;
                let span = quota.burst * t;
                // `allow_at = new_tat - span`, kept non-negative by comparing sums.
                if now + span < new_tat {
                    limits.push(LimitStatus {
                        allowed: false,
                        remaining: 0,
                        reset: Duration::from_micros(tat - now),
                        retry_after: Duration::from_micros(new_tat - span - now),
                    });
                } else {
                    limits.push(LimitStatus {
                        allowed: true,
                        remaining: (now + span - new_tat) / t,
                        reset: Duration::from_micros(new_tat - now),
                        retry_after: Duration::ZERO,
                    });
                    writes.push((State::Tat(new_tat), Timestamp::from_micros(new_tat)));
                }
                unconsumed_reset.push(Duration::from_micros(tat - now));
            }
            Algorithm::FixedWindow => {
                let period = quota.period_us();
                let index = now / period;
                let end = (index + 1) * period;
                let count = match state {
                    Some(State::Window { index: i, count }) if *i == index => *count,
                    _ => 0,
                };
                let limit = quota.rate.count();
                let reset = Duration::from_micros(end - now);
                if count + 1 > limit {
                    limits.push(LimitStatus {
                        allowed: false,
                        remaining: 0,
                        reset,
                        retry_after: reset,
                    });
                } else {
                    limits.push(LimitStatus {
                        allowed: true,
                        remaining: limit - count - 1,
                        reset,
                        retry_after: Duration::ZERO,
                    });
                    writes.push((
                        State::Window {
                            index,
                            count: count + 1,
                        },
                        Timestamp::from_micros(end),
                    ));
                }
                unconsumed_reset.push(reset);
            }
        }
    }
    let allowed = limits.iter().all(|s| s.allowed);
    if !allowed {
        // Nothing is consumed: quotas that would have admitted report their unconsumed state.
        for (status, reset) in limits.iter_mut().zip(unconsumed_reset) {
            if status.allowed {
                status.remaining += 1;
                status.reset = reset;
            }
        }
    }
    let decision = Decision { allowed, limits };
    (decision, allowed.then_some(writes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(s: &str, algorithm: Algorithm) -> Quota {
        Quota::new(s.parse().expect("rate"), algorithm)
    }

    fn run(quotas: &[Quota], times: &[u64]) -> Vec<bool> {
        let mut states: Vec<Option<State>> = vec![None; quotas.len()];
        times
            .iter()
            .map(|&t| {
                let (d, writes) = decide(quotas, &states, Timestamp::from_micros(t));
                if let Some(writes) = writes {
                    states = writes.into_iter().map(|(s, _)| Some(s)).collect();
                }
                d.allowed
            })
            .collect()
    }

    #[test]
    fn gcra_admits_the_burst_then_one_per_interval() {
        let q = [quota("3/second", Algorithm::Gcra)];
        let t0 = 1_000_000_000;
        let got = run(&q, &[t0, t0, t0, t0, t0 + 333_333, t0 + 333_334]);
        assert_eq!(got, [true, true, true, false, true, false]);
    }

    #[test]
    fn fixed_window_resets_at_the_boundary() {
        let q = [quota("2/second", Algorithm::FixedWindow)];
        let t0 = 1_000_000_000;
        let got = run(&q, &[t0, t0 + 1, t0 + 2, t0 + 999_999, t0 + 1_000_000]);
        assert_eq!(got, [true, true, false, false, true]);
    }

    #[test]
    fn a_rejection_consumes_nothing_from_the_other_quotas() {
        let q = [
            quota("5/minute", Algorithm::Gcra),
            quota("1/second", Algorithm::Gcra),
        ];
        let now = Timestamp::from_micros(10_000_000);
        let (first, writes) = decide(&q, &[None, None], now);
        assert!(first.allowed);
        assert_eq!(first.limits[0].remaining, 4);
        let states: Vec<_> = writes
            .expect("writes")
            .into_iter()
            .map(|(s, _)| Some(s))
            .collect();
        let (second, writes) = decide(&q, &states, now);
        assert!(!second.allowed);
        assert!(writes.is_none());
        assert_eq!(second.limits[0].remaining, 4, "unconsumed");
        assert_eq!(second.most_restrictive(), 1);
        assert_eq!(second.retry_after(), Duration::from_secs(1));
    }
}
