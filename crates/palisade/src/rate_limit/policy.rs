//! Named policies: the limits of a route (or group of routes), tiers, exemptions, shadow mode.

use std::collections::HashSet;
use std::sync::Arc;

use ipnet::IpNet;

use super::algorithm::{Algorithm, Quota};
use super::identity::Identity;
use super::rate::Limits;

/// A bad policy setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The name is empty, longer than 64 bytes, or has characters other than ASCII letters,
    /// digits, `-`, `_` and `.` (it appears in headers and store keys).
    #[error(
        "invalid rate-limit policy name {0:?}: use 1-64 ASCII letters, digits, '-', '_' or '.'"
    )]
    InvalidName(String),
}

/// The limits of one route or group of routes, under a name (`login`, `global`…).
///
/// The name appears in the `RateLimit-Policy`/`RateLimit` headers and in store keys: two routes
/// with the same policy name (and limits) share their counters.
///
/// # Examples
///
/// ```
/// use palisade::rate_limit::{Algorithm, Policy};
/// let policy = Policy::new("api", "100/minute".parse()?)?
///     .authenticated_limits("1000/minute".parse()?)
///     .algorithm(Algorithm::Gcra)
///     .exempt_ips(["10.0.0.0/8".parse()?])
///     .exempt_users(["monitoring"])
///     .shadow(false);
/// assert_eq!(policy.name(), "api");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Policy {
    name: String,
    limits: Limits,
    authenticated: Option<Limits>,
    algorithm: Algorithm,
    burst: Option<u64>,
    exempt_ips: Vec<IpNet>,
    exempt_users: HashSet<String>,
    shadow: bool,
    quotas: Arc<[Quota]>,
    authenticated_quotas: Option<Arc<[Quota]>>,
}

impl Policy {
    /// A policy named `name` enforcing `limits` on every client, with GCRA.
    pub fn new(name: impl Into<String>, limits: Limits) -> Result<Self, PolicyError> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(PolicyError::InvalidName(name));
        }
        Ok(Self {
            name,
            limits,
            authenticated: None,
            algorithm: Algorithm::Gcra,
            burst: None,
            exempt_ips: Vec::new(),
            exempt_users: HashSet::new(),
            shadow: false,
            quotas: Arc::from(Vec::new()),
            authenticated_quotas: None,
        }
        .compiled())
    }

    /// Limits for authenticated users instead of `limits` (a higher tier). Authenticated users
    /// are counted by user id either way.
    pub fn authenticated_limits(mut self, limits: Limits) -> Self {
        self.authenticated = Some(limits);
        self.compiled()
    }

    /// The algorithm (default GCRA).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self.compiled()
    }

    /// The GCRA burst of every limit (default: each limit's count).
    pub fn burst(mut self, burst: u64) -> Self {
        self.burst = Some(burst);
        self.compiled()
    }

    /// Client networks that are never limited (checked against the client's address, not its
    /// bucket).
    pub fn exempt_ips(mut self, nets: impl IntoIterator<Item = IpNet>) -> Self {
        self.exempt_ips.extend(nets.into_iter().map(|n| n.trunc()));
        self
    }

    /// Authenticated usernames that are never limited.
    pub fn exempt_users<I, U>(mut self, users: I) -> Self
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        self.exempt_users.extend(users.into_iter().map(Into::into));
        self
    }

    /// Shadow mode: decisions are counted and over-limit requests logged (at `warn`), but
    /// nothing is blocked and no rate-limit headers are sent. For rolling out a new limit.
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits of anonymous clients (and of everyone without a tier).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the policy is in shadow mode.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// Whether `identity` is exempt.
    pub fn is_exempt(&self, identity: &Identity) -> bool {
        let by_ip = identity
            .ip()
            .is_some_and(|ip| self.exempt_ips.iter().any(|n| n.contains(&ip.addr())));
        let by_user = identity
            .username()
            .is_some_and(|u| self.exempt_users.contains(u));
        by_ip || by_user
    }

    /// The quotas that apply to an (un)authenticated client.
    pub(crate) fn quotas(&self, authenticated: bool) -> &Arc<[Quota]> {
        match (&self.authenticated_quotas, authenticated) {
            (Some(q), true) => q,
            _ => &self.quotas,
        }
    }

    fn compile(&self, limits: &Limits) -> Arc<[Quota]> {
        limits
            .rates()
            .iter()
            .map(|&rate| {
                let quota = Quota::new(rate, self.algorithm);
                match self.burst {
                    Some(b) => quota.with_burst(b),
                    None => quota,
                }
            })
            .collect()
    }

    fn compiled(mut self) -> Self {
        self.quotas = self.compile(&self.limits);
        self.authenticated_quotas = self.authenticated.as_ref().map(|l| self.compile(l));
        self
    }
}
