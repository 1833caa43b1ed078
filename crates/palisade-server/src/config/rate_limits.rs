//! Rate-limit policies: one per route of SPEC §3, each overridable (`RATE_LIMITS_<ROUTE>`, or
//! `[rate_limits] <route> = "…"` in `palisade.toml`), plus the limiter's behaviour.

use ipnet::IpNet;
use palisade::rate_limit::{Algorithm, FailureMode, Limits, Policy, Rate};

use super::{Reader, parse_list, parse_nets, parse_range};

/// A route's policy: its name (as in `RateLimit-Policy`), the tutorial variable that sets it
/// (if any), and its default (SPEC §3).
#[derive(Debug, Clone, Copy)]
pub struct RoutePolicy {
    /// Policy name; also the suffix of its override variable, upper-cased with `-` as `_`.
    pub name: &'static str,
    /// The tutorial's variable for it, if it has one.
    pub var: Option<&'static str>,
    /// Default limits.
    pub default: &'static str,
}

/// Every limited route's policy.
pub const ROUTES: &[RoutePolicy] = &[
    RoutePolicy {
        name: "root",
        var: Some("GLOBAL_RATE_LIMIT"),
        default: "100/minute",
    },
    RoutePolicy {
        name: "health",
        var: None,
        default: "200/minute",
    },
    RoutePolicy {
        name: "register",
        var: Some("REGISTER_RATE_LIMIT"),
        default: "5/minute",
    },
    RoutePolicy {
        name: "login",
        var: Some("AUTH_RATE_LIMIT"),
        default: "10/minute",
    },
    RoutePolicy {
        name: "refresh",
        var: None,
        default: "20/minute",
    },
    RoutePolicy {
        name: "logout",
        var: None,
        default: "30/minute",
    },
    RoutePolicy {
        name: "logout-all",
        var: None,
        default: "30/minute",
    },
    RoutePolicy {
        name: "protected",
        var: None,
        default: "50/minute",
    },
    RoutePolicy {
        name: "profile",
        var: None,
        default: "30/minute",
    },
    RoutePolicy {
        name: "data",
        var: Some("GLOBAL_RATE_LIMIT"),
        default: "100/minute",
    },
];

const LIMITS_EXPECTED: &str =
    "limits such as 100/minute, 5 per second, 10 per 5 minutes or 10/minute;1000/day";

/// Parsed rate-limit settings.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// One policy per entry of [`ROUTES`], in that order.
    pub policies: Vec<Policy>,
    /// `RATE_LIMIT_ALGORITHM`.
    pub algorithm: Algorithm,
    /// `RATE_LIMIT_AUTHENTICATED_FACTOR`: authenticated users get this many times each limit.
    pub authenticated_factor: u32,
    /// `RATE_LIMIT_EXEMPT_IPS`.
    pub exempt_ips: Vec<IpNet>,
    /// `RATE_LIMIT_EXEMPT_USERS`.
    pub exempt_users: Vec<String>,
    /// `RATE_LIMIT_SHADOW`: policies that count and log but never block (`*` for all).
    pub shadow: Vec<String>,
    /// `RATE_LIMIT_FAILURE_MODE`.
    pub failure_mode: FailureMode,
    /// `RATE_LIMIT_INSTANCES`: the `local` fallback divides each limit by this.
    pub instances: u32,
}

/// `RATE_LIMITS_LOGIN` for `login`, `RATE_LIMITS_LOGOUT_ALL` for `logout-all`.
pub(super) fn override_var(name: &str) -> String {
    format!(
        "RATE_LIMITS_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

fn scaled(limits: &Limits, factor: u32) -> Limits {
    let rates: Vec<Rate> = limits
        .rates()
        .iter()
        .map(|r| {
            Rate::new(
                r.count().saturating_mul(u64::from(factor)),
                r.multiple(),
                r.unit(),
            )
            .unwrap_or(*r)
        })
        .collect();
    Limits::new(rates).unwrap_or_else(|| limits.clone())
}

impl RateLimitSettings {
    pub(super) fn read(r: &mut Reader<'_>) -> Self {
        let algorithm = r.read(
            "RATE_LIMIT_ALGORITHM",
            Algorithm::Gcra,
            "gcra or fixed-window",
            |v| v.parse::<Algorithm>().map_err(|e| e.to_string()),
        );
        let authenticated_factor = r.read(
            "RATE_LIMIT_AUTHENTICATED_FACTOR",
            2,
            "a whole number from 1 to 1000",
            |v| parse_range(v, 1, 1000),
        );
        let exempt_ips = r.read(
            "RATE_LIMIT_EXEMPT_IPS",
            Vec::new(),
            "a comma-separated list of IP addresses or CIDRs",
            parse_nets,
        );
        let exempt_users = r.read(
            "RATE_LIMIT_EXEMPT_USERS",
            Vec::new(),
            "a comma-separated list of usernames",
            |v| Ok(parse_list(v)),
        );
        let shadow = r.read(
            "RATE_LIMIT_SHADOW",
            Vec::new(),
            "a comma-separated list of policy names (root, health, register, login, refresh, \
             logout, logout-all, protected, profile, data) or *",
            |v| {
                let names = parse_list(v);
                match names
                    .iter()
                    .find(|n| *n != "*" && !ROUTES.iter().any(|r| r.name == *n))
                {
                    Some(unknown) => Err(format!("{unknown} is not a policy")),
                    None => Ok(names),
                }
            },
        );
        let failure_mode = r.read(
            "RATE_LIMIT_FAILURE_MODE",
            FailureMode::Local,
            "open, closed or local",
            |v| v.parse::<FailureMode>().map_err(|e| e.to_string()),
        );
        let instances = r.read(
            "RATE_LIMIT_INSTANCES",
            1,
            "a whole number of instances from 1 to 10000",
            |v| parse_range(v, 1, 10_000),
        );

        let mut policies = Vec::with_capacity(ROUTES.len());
        for route in ROUTES {
            let default: Limits = route.default.parse().expect("valid built-in limits");
            let base = match route.var {
                Some(var) => r.read(var, default, LIMITS_EXPECTED, parse_limits),
                None => default,
            };
            let limits = r.read(
                &override_var(route.name),
                base,
                LIMITS_EXPECTED,
                parse_limits,
            );
            let shadowed = shadow.iter().any(|n| n == "*" || n == route.name);
            let policy = Policy::new(route.name, limits.clone())
                .expect("valid built-in policy name")
                .authenticated_limits(scaled(&limits, authenticated_factor))
                .algorithm(algorithm)
                .exempt_ips(exempt_ips.iter().copied())
                .exempt_users(exempt_users.iter().cloned())
                .shadow(shadowed);
            policies.push(policy);
        }
        Self {
            policies,
            algorithm,
            authenticated_factor,
            exempt_ips,
            exempt_users,
            shadow,
            failure_mode,
            instances,
        }
    }

    /// The policy named `name` (one of [`ROUTES`]).
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name() == name)
    }

    pub(super) fn describe(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            (
                "RATE_LIMIT_ALGORITHM".to_owned(),
                format!("{:?}", self.algorithm),
            ),
            (
                "RATE_LIMIT_AUTHENTICATED_FACTOR".to_owned(),
                self.authenticated_factor.to_string(),
            ),
            (
                "RATE_LIMIT_EXEMPT_IPS".to_owned(),
                self.exempt_ips
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "RATE_LIMIT_EXEMPT_USERS".to_owned(),
                self.exempt_users.join(","),
            ),
            ("RATE_LIMIT_SHADOW".to_owned(), self.shadow.join(",")),
            (
                "RATE_LIMIT_FAILURE_MODE".to_owned(),
                format!("{:?}", self.failure_mode),
            ),
            (
                "RATE_LIMIT_INSTANCES".to_owned(),
                self.instances.to_string(),
            ),
        ];
        for (route, policy) in ROUTES.iter().zip(&self.policies) {
            let name = route
                .var
                .map_or_else(|| override_var(route.name), str::to_owned);
            rows.push((
                format!("{name} [{}]", route.name),
                policy.limits().to_string(),
            ));
        }
        rows
    }
}

fn parse_limits(v: &str) -> Result<Limits, String> {
    v.parse::<Limits>().map_err(|e| e.to_string())
}
