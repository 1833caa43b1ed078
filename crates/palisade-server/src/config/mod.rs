//! Configuration: every setting read once, at start-up, into a typed value (SPEC §2).
//!
//! Precedence, highest first: the process environment, a `.env` file in the working directory,
//! an optional `palisade.toml`, then the defaults below. Variable names are the tutorial's
//! (`SECRET_KEY`, `REDIS_HOST`, …) plus SPEC §2's additions; the TOML file uses the same names
//! as keys (any case). A bad value is reported with the variable, the value (masked for secrets)
//! and what is accepted, and the server exits with code 2 before binding a port.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use jsonwebtoken::Algorithm;
use palisade::client_ip::ForwardedHeader;
use palisade::cors::{AllowedOrigins, CorsConfig};
use palisade::limits::LimitsConfig;
use palisade::trusted_host::HostPattern;
use secrecy::{ExposeSecret, SecretString};

mod rate_limits;

pub use rate_limits::{ROUTES, RateLimitSettings, RoutePolicy};

/// Secrets published in tutorials and examples: never acceptable in production.
const KNOWN_PLACEHOLDER_SECRETS: &[&str] = &[
    "your-secret-key-change-this-in-production",
    "your-very-long-secret-key-change-this-in-production-min-32-chars",
    "dev-key-change-in-production",
    "changeme",
    "change-me",
    "secret",
    "secret-key",
    "supersecret",
    "your-secret-key",
];

/// The minimum length of `SECRET_KEY` in production (RFC 7518 §3.2: an HS256 key must be at
/// least as long as the hash output, 32 bytes).
pub const MIN_SECRET_LEN: usize = 32;

/// Where a value came from, shown by `check-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The process environment.
    Env,
    /// The `.env` file.
    DotEnv,
    /// `palisade.toml`.
    File,
    /// Palisade's default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Env => "environment",
            Origin::DotEnv => ".env",
            Origin::File => "palisade.toml",
            Origin::Default => "default",
        })
    }
}

/// The raw `NAME → value` layers, highest precedence first.
#[derive(Debug, Default, Clone)]
pub struct Source {
    layers: Vec<(Origin, BTreeMap<String, String>)>,
}

impl Source {
    /// The process environment, `./.env` and the TOML file: `config_path` if given (it must
    /// exist), else `./palisade.toml` if present.
    pub fn from_process(config_path: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let mut dotenv = BTreeMap::new();
        if Path::new(".env").exists() {
            let iter = dotenvy::from_path_iter(".env").map_err(|e| ConfigError::File {
                path: PathBuf::from(".env"),
                reason: e.to_string(),
            })?;
            for item in iter {
                let (k, v) = item.map_err(|e| ConfigError::File {
                    path: PathBuf::from(".env"),
                    reason: e.to_string(),
                })?;
                dotenv.insert(k, v);
            }
        }
        let toml_path = match config_path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("palisade.toml")).filter(|p| p.exists()),
        };
        let file = match toml_path {
            Some(path) => read_toml(&path)?,
            None => BTreeMap::new(),
        };
        Ok(Self {
            layers: vec![
                (Origin::Env, env),
                (Origin::DotEnv, dotenv),
                (Origin::File, file),
            ],
        })
    }

    /// A source made of explicit pairs only (as if from the environment); for tests and tools.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let map = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self {
            layers: vec![(Origin::Env, map)],
        }
    }

    fn get(&self, name: &str) -> Option<(&str, Origin)> {
        self.layers
            .iter()
            .find_map(|(origin, map)| map.get(name).map(|v| (v.as_str(), *origin)))
    }
}

fn read_toml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let mut out = BTreeMap::new();
    flatten_toml("", &table, &mut out).map_err(file_error)?;
    Ok(out)
}

/// `secret_key = "…"` becomes `SECRET_KEY`; `[rate_limits] login = "…"` becomes
/// `RATE_LIMITS_LOGIN`; arrays become comma-separated lists, as in the environment.
fn flatten_toml(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in table {
        let name = format!("{prefix}{}", key.to_ascii_uppercase().replace('-', "_"));
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        toml::Value::String(s) => parts.push(s.clone()),
                        other => parts.push(other.to_string()),
                    }
                }
                parts.join(",")
            }
            toml::Value::Table(inner) => {
                flatten_toml(&format!("{name}_"), inner, out)?;
                continue;
            }
            toml::Value::Datetime(_) => return Err(format!("{key}: dates are not a setting")),
        };
        out.insert(name, text);
    }
    Ok(())
}

/// A configuration problem. Its `Display` is the message printed at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A variable holds a value that does not parse.
    #[error("{var}={value}: {reason}; accepted: {expected}")]
    Invalid {
        /// The variable.
        var: String,
        /// The value as given (or masked, for secrets), quoted.
        value: String,
        /// What is wrong with it.
        reason: String,
        /// What would be accepted.
        expected: String,
    },
    /// A setting that is refused in production (SPEC §1).
    #[error("{var}: {problem}; fix: {fix}")]
    Unsafe {
        /// The variable.
        var: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// A configuration file could not be read.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Several problems, reported together so one start-up shows them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// `development` or `production`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local work: a generated secret is acceptable, with a warning.
    Development,
    /// The production guard applies.
    Production,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The JWT signing secret, or where the development secret lives.
#[derive(Clone)]
pub enum SecretSetting {
    /// `SECRET_KEY` was set.
    Configured(SecretString),
    /// Development without `SECRET_KEY`: a random secret kept in this file (mode 0600).
    DevFile(PathBuf),
}

/// The user database.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// A SQLite file (created if missing) or `sqlite::memory:`.
    Sqlite(String),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(url) => write!(f, "{url}"),
        }
    }
}

/// Every setting, typed.
#[derive(Clone)]
pub struct Settings {
    /// `ENVIRONMENT`.
    pub environment: Environment,
    /// `DEBUG`: more verbose logs; refused in production.
    pub debug: bool,
    /// `BIND`.
    pub bind: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// `SECRET_KEY` (or the development secret file, `SECRET_KEY_FILE`).
    pub secret: SecretSetting,
    /// `ALGORITHM`.
    pub algorithm: Algorithm,
    /// `ACCESS_TOKEN_EXPIRE_MINUTES`.
    pub access_token_expire_minutes: u32,
    /// `REFRESH_TOKEN_EXPIRE_DAYS`.
    pub refresh_token_expire_days: u32,
    /// `JWT_ISSUER`.
    pub jwt_issuer: Option<String>,
    /// `JWT_AUDIENCE`.
    pub jwt_audience: Option<String>,
    /// `JWT_LEEWAY_SECONDS`.
    pub jwt_leeway_seconds: u64,
    /// `LEGACY_TOKENS`.
    pub legacy_tokens: bool,
    /// `REDIS_URL`, or one built from `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`/`REDIS_DB`.
    pub redis_url: Option<SecretString>,
    /// `REDIS_CLUSTER`: `REDIS_URL` lists cluster seed nodes (also implied by several URLs).
    pub redis_cluster: bool,
    /// `REDIS_KEY_PREFIX`: the prefix of every key Palisade writes.
    pub redis_key_prefix: String,
    /// `REDIS_TIMEOUT`: bound on every Redis call (connecting included); a call that takes
    /// longer counts as a Redis failure and `RATE_LIMIT_FAILURE_MODE` applies.
    pub redis_timeout: std::time::Duration,
    /// `ALLOWED_HOSTS`.
    pub allowed_hosts: Vec<HostPattern>,
    /// `CORS_ORIGINS` and `CORS_ALLOW_CREDENTIALS`.
    pub cors: CorsConfig,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<IpNet>,
    /// `FORWARDED_HEADER`: which forwarding header trusted proxies set.
    pub forwarded_header: ForwardedHeader,
    /// `IPV6_PREFIX`: IPv6 clients are counted per prefix of this length.
    pub ipv6_prefix: u8,
    /// Rate-limit policies and the limiter's behaviour.
    pub rate_limits: RateLimitSettings,
    /// `MAX_BODY_BYTES`, `MAX_HEADER_COUNT`, `MAX_HEADER_BYTES`, `REQUEST_TIMEOUT`,
    /// `MAX_CONCURRENT_REQUESTS`.
    pub limits: LimitsConfig,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `METRICS_BIND`.
    pub metrics_bind: Option<SocketAddr>,
    /// Where each value came from, for `check-config`.
    origins: BTreeMap<String, Origin>,
}

/// Reads variables from a [`Source`], collecting every error.
struct Reader<'a> {
    source: &'a Source,
    errors: Vec<ConfigError>,
    origins: BTreeMap<String, Origin>,
}

impl<'a> Reader<'a> {
    fn raw(&mut self, var: &str) -> Option<&'a str> {
        let (value, origin) = self.source.get(var)?;
        self.origins.insert(var.to_owned(), origin);
        Some(value)
    }

    /// Reads `var` with `parse`, or `default` when unset. Empty counts as unset.
    fn read<T>(
        &mut self,
        var: &str,
        default: T,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.raw(var).map(str::trim).filter(|v| !v.is_empty()) {
            None => {
                self.origins
                    .entry(var.to_owned())
                    .or_insert(Origin::Default);
                default
            }
            Some(value) => match parse(value) {
                Ok(v) => v,
                Err(reason) => {
                    self.errors.push(ConfigError::Invalid {
                        var: var.to_owned(),
                        value: format!("{value:?}"),
                        reason,
                        expected: expected.to_owned(),
                    });
                    default
                }
            },
        }
    }

    fn optional<T>(
        &mut self,
        var: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.read(var, None, expected, |v| parse(v).map(Some))
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("not a boolean".to_owned()),
    }
}

fn parse_range<T: std::str::FromStr + PartialOrd + fmt::Display>(
    v: &str,
    min: T,
    max: T,
) -> Result<T, String> {
    let n: T = v.parse().map_err(|_| "not a whole number".to_owned())?;
    if n < min || n > max {
        return Err(format!("out of range {min}..={max}"));
    }
    Ok(n)
}

fn parse_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_nets(v: &str) -> Result<Vec<IpNet>, String> {
    parse_list(v)
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s} is not an IP address or CIDR"))
        })
        .collect()
}

/// `250ms`, `30s`, `2m`, or a bare number of seconds.
fn parse_duration(v: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let (number, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = number.parse().map_err(|_| "not a duration".to_owned())?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        other => return Err(format!("unknown unit {other:?}")),
    };
    if d.is_zero() || d > Duration::from_secs(600) {
        return Err("out of range 1ms..=10m".to_owned());
    }
    Ok(d)
}

fn cors_origins(cors: &CorsConfig) -> String {
    match cors.origins() {
        AllowedOrigins::Any => "*".to_owned(),
        AllowedOrigins::List(list) if list.is_empty() => "(none)".to_owned(),
        AllowedOrigins::List(list) => list
            .iter()
            .map(|o| o.as_str())
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn parse_socket_addr(v: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = v.parse() {
        return Ok(addr);
    }
    // `localhost:8000` and other names resolve once, here; an IP literal needs no lookup.
    v.to_socket_addrs()
        .map_err(|e| format!("not host:port ({e})"))?
        .next()
        .ok_or_else(|| "the host name resolves to no address".to_owned())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Settings {
    /// Parses every setting from `source`, then applies the production guard.
    pub fn from_source(source: &Source) -> Result<Self, ConfigErrors> {
        let mut r = Reader {
            source,
            errors: Vec::new(),
            origins: BTreeMap::new(),
        };

        let environment = r.read(
            "ENVIRONMENT",
            Environment::Development,
            "development or production",
            |v| match v.to_ascii_lowercase().as_str() {
                "development" | "dev" => Ok(Environment::Development),
                "production" | "prod" => Ok(Environment::Production),
                _ => Err("unknown environment".to_owned()),
            },
        );
        let debug = r.read("DEBUG", false, "true or false", parse_bool);
        let bind = r.read(
            "BIND",
            SocketAddr::from(([127, 0, 0, 1], 8000)),
            "host:port, e.g. 127.0.0.1:8000 or [::]:8000",
            parse_socket_addr,
        );
        let database_url = r.read(
            "DATABASE_URL",
            DatabaseUrl::Sqlite("sqlite://palisade.db".to_owned()),
            "sqlite://PATH or sqlite::memory:",
            |v| {
                if v.starts_with("sqlite:") {
                    Ok(DatabaseUrl::Sqlite(v.to_owned()))
                } else if v.starts_with("postgres://") || v.starts_with("postgresql://") {
                    Err("PostgreSQL is not supported by this build yet".to_owned())
                } else {
                    Err("unknown database scheme".to_owned())
                }
            },
        );
        let secret = match r.raw("SECRET_KEY").filter(|v| !v.is_empty()) {
            Some(v) => SecretSetting::Configured(SecretString::from(v.to_owned())),
            None => SecretSetting::DevFile(r.read(
                "SECRET_KEY_FILE",
                PathBuf::from(".palisade-secret"),
                "a file path",
                |v| Ok(PathBuf::from(v)),
            )),
        };
        let algorithm = r.read(
            "ALGORITHM",
            Algorithm::HS256,
            "HS256, HS384 or HS512",
            |v| match v.to_ascii_uppercase().as_str() {
                "HS256" => Ok(Algorithm::HS256),
                "HS384" => Ok(Algorithm::HS384),
                "HS512" => Ok(Algorithm::HS512),
                _ => Err("unsupported algorithm (the secret is a shared HMAC key)".to_owned()),
            },
        );
        let access_token_expire_minutes = r.read(
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            30,
            "a whole number of minutes from 1 to 1440",
            |v| parse_range(v, 1, 1440),
        );
        let refresh_token_expire_days = r.read(
            "REFRESH_TOKEN_EXPIRE_DAYS",
            7,
            "a whole number of days from 1 to 365",
            |v| parse_range(v, 1, 365),
        );
        let jwt_issuer = r.optional("JWT_ISSUER", "any non-empty string", |v| Ok(v.to_owned()));
        let jwt_audience = r.optional("JWT_AUDIENCE", "any non-empty string", |v| Ok(v.to_owned()));
        let jwt_leeway_seconds = r.read(
            "JWT_LEEWAY_SECONDS",
            30,
            "a whole number of seconds from 0 to 300",
            |v| parse_range(v, 0, 300),
        );
        let legacy_tokens = r.read("LEGACY_TOKENS", true, "true or false", parse_bool);

        let redis_url = Self::redis_url(&mut r);
        let redis_cluster = r.read("REDIS_CLUSTER", false, "true or false", parse_bool)
            || redis_url
                .as_ref()
                .is_some_and(|u| u.expose_secret().contains(','));
        let redis_key_prefix = r.read(
            "REDIS_KEY_PREFIX",
            "palisade".to_owned(),
            "letters, digits, '_', '-', ':' and '.'",
            |v| {
                if v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-:.".contains(c))
                {
                    Ok(v.to_owned())
                } else {
                    Err("braces or other characters would change the keys' hash slot".to_owned())
                }
            },
        );
        let redis_timeout = r.read(
            "REDIS_TIMEOUT",
            std::time::Duration::from_millis(250),
            "a duration such as 250ms or 2s, from 10ms to 60s",
            |v| {
                let d = parse_duration(v)?;
                if d < std::time::Duration::from_millis(10)
                    || d > std::time::Duration::from_secs(60)
                {
                    return Err("out of range 10ms..=60s".to_owned());
                }
                Ok(d)
            },
        );

        let allowed_hosts = r.read(
            "ALLOWED_HOSTS",
            ["localhost", "127.0.0.1", "[::1]"]
                .iter()
                .map(|h| h.parse().expect("valid built-in host pattern"))
                .collect(),
            "a comma-separated list of host names (optionally :port), *.example.com wildcards, or *",
            |v| {
                parse_list(v)
                    .iter()
                    .map(|h| h.parse::<HostPattern>().map_err(|e| e.to_string()))
                    .collect()
            },
        );
        let cors_credentials = r.read("CORS_ALLOW_CREDENTIALS", true, "true or false", parse_bool);
        let cors = r
            .read(
                "CORS_ORIGINS",
                CorsConfig::new(AllowedOrigins::List(Vec::new())),
                "a comma-separated list of origins such as https://app.example.com \
             (* only with CORS_ALLOW_CREDENTIALS=false)",
                |v| {
                    let config = CorsConfig::parse(v).map_err(|e| e.to_string())?;
                    let config = config.allow_credentials(cors_credentials);
                    config.validate().map_err(|e| e.to_string())?;
                    Ok(config)
                },
            )
            .allow_credentials(cors_credentials);
        let trusted_proxies = r.read(
            "TRUSTED_PROXIES",
            Vec::new(),
            "a comma-separated list of IP addresses or CIDRs, e.g. 10.0.0.0/8,::1",
            parse_nets,
        );
        let forwarded_header = r.read(
            "FORWARDED_HEADER",
            ForwardedHeader::XForwardedFor,
            "x-forwarded-for or forwarded",
            |v| match v.to_ascii_lowercase().as_str() {
                "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
                "forwarded" => Ok(ForwardedHeader::Forwarded),
                _ => Err("unknown header".to_owned()),
            },
        );
        let ipv6_prefix = r.read("IPV6_PREFIX", 64, "a prefix length from 32 to 128", |v| {
            parse_range(v, 32, 128)
        });
        let rate_limits = RateLimitSettings::read(&mut r);
        let limits = Self::limits(&mut r);
        let default_format = match environment {
            Environment::Production => LogFormat::Json,
            Environment::Development => LogFormat::Pretty,
        };
        let log_format = r.read("LOG_FORMAT", default_format, "pretty or json", |v| match v
            .to_ascii_lowercase()
            .as_str()
        {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err("unknown log format".to_owned()),
        });
        let metrics_bind = r.optional(
            "METRICS_BIND",
            "host:port, e.g. 127.0.0.1:9000",
            parse_socket_addr,
        );

        let Reader {
            errors, origins, ..
        } = r;
        let settings = Settings {
            environment,
            debug,
            bind,
            database_url,
            secret,
            algorithm,
            access_token_expire_minutes,
            refresh_token_expire_days,
            jwt_issuer,
            jwt_audience,
            jwt_leeway_seconds,
            legacy_tokens,
            redis_url,
            redis_cluster,
            redis_key_prefix,
            redis_timeout,
            allowed_hosts,
            cors,
            trusted_proxies,
            forwarded_header,
            ipv6_prefix,
            rate_limits,
            limits,
            log_format,
            metrics_bind,
            origins,
        };
        let mut errors = errors;
        if settings.environment == Environment::Production {
            errors.extend(settings.production_problems());
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    fn limits(r: &mut Reader<'_>) -> LimitsConfig {
        let d = LimitsConfig::default();
        let max_body_bytes = r.read(
            "MAX_BODY_BYTES",
            d.max_body_bytes,
            "a number of bytes from 1024 to 104857600",
            |v| parse_range(v, 1024, 100 * 1024 * 1024),
        );
        let max_header_count = r.read(
            "MAX_HEADER_COUNT",
            d.max_header_count,
            "a number of header fields from 8 to 100",
            |v| parse_range(v, 8, 100),
        );
        let max_header_bytes = r.read(
            "MAX_HEADER_BYTES",
            d.max_header_bytes,
            "a number of bytes from 1024 to 262144",
            |v| parse_range(v, 1024, 256 * 1024),
        );
        let timeout = r.read(
            "REQUEST_TIMEOUT",
            d.timeout,
            "a duration such as 30s or 250ms, at most 10m",
            parse_duration,
        );
        let max_concurrent_requests = r.read(
            "MAX_CONCURRENT_REQUESTS",
            d.max_concurrent_requests,
            "a number of requests from 1 to 100000",
            |v| parse_range(v, 1, 100_000),
        );
        LimitsConfig {
            max_body_bytes,
            max_header_count,
            max_header_bytes,
            timeout,
            max_concurrent_requests,
            ..d
        }
    }

    fn redis_url(r: &mut Reader<'_>) -> Option<SecretString> {
        let url = r.optional(
            "REDIS_URL",
            "redis://[user:password@]host:port[/db] or rediss://…",
            |v| {
                let urls = parse_list(v);
                if !urls.is_empty()
                    && urls
                        .iter()
                        .all(|u| u.starts_with("redis://") || u.starts_with("rediss://"))
                {
                    Ok(urls.join(","))
                } else {
                    Err(
                        "not a redis:// or rediss:// URL (or a comma-separated list of them \
                         for a cluster)"
                            .to_owned(),
                    )
                }
            },
        );
        let host = r.optional("REDIS_HOST", "a host name or IP address", |v| {
            if v.contains(['/', '@', ' ']) {
                Err("not a host name".to_owned())
            } else {
                Ok(v.to_owned())
            }
        });
        let port = r.optional("REDIS_PORT", "a port number from 1 to 65535", |v| {
            parse_range::<u16>(v, 1, 65535)
        });
        let password = r.optional("REDIS_PASSWORD", "any string", |v| Ok(v.to_owned()));
        let db = r.optional("REDIS_DB", "a database number from 0 to 15", |v| {
            parse_range::<u8>(v, 0, 15)
        });
        if let Some(url) = url {
            return Some(SecretString::from(url));
        }
        // The tutorial's variables: any of them means "use Redis".
        if host.is_none() && port.is_none() && password.is_none() && db.is_none() {
            return None;
        }
        let host = host.unwrap_or_else(|| "127.0.0.1".to_owned());
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let auth = password
            .map(|p| format!(":{}@", percent_encode(&p)))
            .unwrap_or_default();
        Some(SecretString::from(format!(
            "redis://{auth}{host}:{}/{}",
            port.unwrap_or(6379),
            db.unwrap_or(0)
        )))
    }

    /// What the production guard refuses (SPEC §1). In development the same list is printed as
    /// warnings by `check-config`.
    pub fn production_problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        match &self.secret {
            SecretSetting::DevFile(_) => problems.push(ConfigError::Unsafe {
                var: "SECRET_KEY".to_owned(),
                problem: "not set".to_owned(),
                fix: "set SECRET_KEY to a random value of at least 32 bytes (`palisade gen-secret` makes one)".to_owned(),
            }),
            SecretSetting::Configured(s) => {
                let s = s.expose_secret();
                if KNOWN_PLACEHOLDER_SECRETS.iter().any(|p| p.eq_ignore_ascii_case(s)) {
                    problems.push(ConfigError::Unsafe {
                        var: "SECRET_KEY".to_owned(),
                        problem: "is a published placeholder; anyone could forge tokens with it".to_owned(),
                        fix: "replace it with the output of `palisade gen-secret`".to_owned(),
                    });
                } else if s.len() < MIN_SECRET_LEN {
                    problems.push(ConfigError::Unsafe {
                        var: "SECRET_KEY".to_owned(),
                        problem: format!("is {} bytes long, shorter than {MIN_SECRET_LEN}", s.len()),
                        fix: "use at least 32 random bytes (`palisade gen-secret` makes one)".to_owned(),
                    });
                }
            }
        }
        if self.debug {
            problems.push(ConfigError::Unsafe {
                var: "DEBUG".to_owned(),
                problem: "is true".to_owned(),
                fix: "set DEBUG=false in production".to_owned(),
            });
        }
        problems
    }

    /// Access-token lifetime in seconds.
    pub fn access_lifetime_seconds(&self) -> i64 {
        i64::from(self.access_token_expire_minutes) * 60
    }

    /// Refresh-token lifetime in seconds.
    pub fn refresh_lifetime_seconds(&self) -> i64 {
        i64::from(self.refresh_token_expire_days) * 86_400
    }

    /// The signing secret. In development without `SECRET_KEY`, reads the secret file, creating
    /// it (mode 0600, random 48 bytes) when `create` is set and it does not exist yet.
    pub fn jwt_secret(&self, create: bool) -> Result<Option<SecretString>, ConfigError> {
        match &self.secret {
            SecretSetting::Configured(s) => Ok(Some(s.clone())),
            SecretSetting::DevFile(path) => read_or_create_secret(path, create),
        }
    }

    /// The effective configuration, secrets masked, one `NAME = value  (origin)` per line.
    pub fn describe(&self) -> String {
        let masked = |s: &SecretString| mask(s.expose_secret());
        let secret = match &self.secret {
            SecretSetting::Configured(s) => masked(s),
            SecretSetting::DevFile(p) => format!("(development secret in {})", p.display()),
        };
        let redis = self.redis_url.as_ref().map_or_else(
            || "(none: in-memory stores)".to_owned(),
            |u| mask_url(u.expose_secret()),
        );
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "(none)".to_owned());
        let list = |l: &[String]| {
            if l.is_empty() {
                "(none)".to_owned()
            } else {
                l.join(",")
            }
        };
        let rows: Vec<(&str, String)> = vec![
            (
                "ENVIRONMENT",
                format!("{:?}", self.environment).to_lowercase(),
            ),
            ("DEBUG", self.debug.to_string()),
            ("BIND", self.bind.to_string()),
            ("DATABASE_URL", format!("{:?}", self.database_url)),
            ("SECRET_KEY", secret),
            ("ALGORITHM", format!("{:?}", self.algorithm)),
            (
                "ACCESS_TOKEN_EXPIRE_MINUTES",
                self.access_token_expire_minutes.to_string(),
            ),
            (
                "REFRESH_TOKEN_EXPIRE_DAYS",
                self.refresh_token_expire_days.to_string(),
            ),
            ("JWT_ISSUER", opt(&self.jwt_issuer)),
            ("JWT_AUDIENCE", opt(&self.jwt_audience)),
            ("JWT_LEEWAY_SECONDS", self.jwt_leeway_seconds.to_string()),
            ("LEGACY_TOKENS", self.legacy_tokens.to_string()),
            ("REDIS_URL", redis),
            ("REDIS_CLUSTER", self.redis_cluster.to_string()),
            ("REDIS_KEY_PREFIX", self.redis_key_prefix.clone()),
            ("REDIS_TIMEOUT", format!("{:?}", self.redis_timeout)),
            (
                "ALLOWED_HOSTS",
                list(
                    &self
                        .allowed_hosts
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>(),
                ),
            ),
            ("CORS_ORIGINS", cors_origins(&self.cors)),
            (
                "CORS_ALLOW_CREDENTIALS",
                self.cors.credentials().to_string(),
            ),
            (
                "TRUSTED_PROXIES",
                list(
                    &self
                        .trusted_proxies
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>(),
                ),
            ),
            ("FORWARDED_HEADER", format!("{:?}", self.forwarded_header)),
            ("IPV6_PREFIX", self.ipv6_prefix.to_string()),
            ("MAX_BODY_BYTES", self.limits.max_body_bytes.to_string()),
            ("MAX_HEADER_COUNT", self.limits.max_header_count.to_string()),
            ("MAX_HEADER_BYTES", self.limits.max_header_bytes.to_string()),
            ("REQUEST_TIMEOUT", format!("{:?}", self.limits.timeout)),
            (
                "MAX_CONCURRENT_REQUESTS",
                self.limits.max_concurrent_requests.to_string(),
            ),
            (
                "LOG_FORMAT",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
            (
                "METRICS_BIND",
                self.metrics_bind
                    .map_or_else(|| "(none)".to_owned(), |a| a.to_string()),
            ),
        ];
        let mut rows: Vec<(String, String)> =
            rows.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        rows.extend(self.rate_limits.describe());
        let mut out = String::new();
        for (name, value) in rows {
            let var = name.split(' ').next().unwrap_or(&name);
            let origin = self.origins.get(var).copied().unwrap_or(Origin::Default);
            // A URL built from REDIS_HOST & co. has no origin of its own.
            out.push_str(&format!("{name:<28} = {value}  ({origin})\n"));
        }
        out
    }
}

/// Shows the first and last two characters of long secrets, nothing of short ones.
fn mask(secret: &str) -> String {
    let n = secret.chars().count();
    if n < 12 {
        return format!("[{n} chars, masked]");
    }
    let head: String = secret.chars().take(2).collect();
    let tail: String = secret.chars().skip(n - 2).collect();
    format!("{head}…{tail} [{n} chars]")
}

/// Hides the password of a URL.
fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

fn read_or_create_secret(path: &Path, create: bool) -> Result<Option<SecretString>, ConfigError> {
    let file_error = |reason: String| ConfigError::Invalid {
        var: "SECRET_KEY_FILE".to_owned(),
        value: format!("{:?}", path.display().to_string()),
        reason,
        expected: "a writable file path for the development secret, or set SECRET_KEY".to_owned(),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = text.trim().to_owned();
            if text.len() < MIN_SECRET_LEN {
                return Err(file_error(format!(
                    "holds fewer than {MIN_SECRET_LEN} bytes"
                )));
            }
            return Ok(Some(SecretString::from(text)));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_error(e.to_string())),
    }
    if !create {
        return Ok(None);
    }
    let secret = crate::cli::generate_secret();
    write_private(path, &secret).map_err(|e| file_error(e.to_string()))?;
    Ok(Some(SecretString::from(secret)))
}

/// Creates `path` readable by its owner only and writes `text` to it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigErrors> {
        Settings::from_source(&Source::from_pairs(pairs.iter().copied()))
    }

    fn vars(errors: &ConfigErrors) -> Vec<String> {
        errors
            .0
            .iter()
            .map(|e| match e {
                ConfigError::Invalid { var, .. } | ConfigError::Unsafe { var, .. } => var.clone(),
                ConfigError::File { path, .. } => path.display().to_string(),
            })
            .collect()
    }

    #[test]
    fn defaults_match_the_tutorial() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.environment, Environment::Development);
        assert_eq!(s.bind, SocketAddr::from(([127, 0, 0, 1], 8000)));
        assert_eq!(s.access_token_expire_minutes, 30);
        assert_eq!(s.refresh_token_expire_days, 7);
        assert_eq!(s.jwt_leeway_seconds, 30);
        assert_eq!(s.algorithm, Algorithm::HS256);
        let limits = |name: &str| s.rate_limits.policy(name).map(|p| p.limits().to_string());
        assert_eq!(limits("root"), Some("100 per 1 minute".to_owned()));
        assert_eq!(limits("login"), Some("10 per 1 minute".to_owned()));
        assert_eq!(limits("register"), Some("5 per 1 minute".to_owned()));
        assert_eq!(limits("health"), Some("200 per 1 minute".to_owned()));
        assert!(s.legacy_tokens);
        assert!(s.redis_url.is_none());
        assert!(matches!(s.secret, SecretSetting::DevFile(_)));
    }

    #[test]
    fn every_bad_value_is_named_with_what_is_accepted() {
        let err = settings(&[
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "abc"),
            ("ALGORITHM", "RS256"),
            ("BIND", "nope"),
            ("TRUSTED_PROXIES", "10.0.0.0/8,banana"),
            ("CORS_ORIGINS", "*"),
        ])
        .err()
        .expect("invalid");
        assert_eq!(
            vars(&err),
            [
                "BIND",
                "ALGORITHM",
                "ACCESS_TOKEN_EXPIRE_MINUTES",
                "CORS_ORIGINS",
                "TRUSTED_PROXIES"
            ]
        );
        let text = err.to_string();
        assert!(
            text.contains("ACCESS_TOKEN_EXPIRE_MINUTES=\"abc\""),
            "{text}"
        );
        assert!(
            text.contains("a whole number of minutes from 1 to 1440"),
            "{text}"
        );
        assert!(
            text.contains("banana is not an IP address or CIDR"),
            "{text}"
        );
    }

    #[test]
    fn redis_timeout_is_a_bounded_duration() {
        let s = settings(&[]).expect("valid");
        assert_eq!(s.redis_timeout, std::time::Duration::from_millis(250));
        let s = settings(&[("REDIS_TIMEOUT", "2s")]).expect("valid");
        assert_eq!(s.redis_timeout, std::time::Duration::from_secs(2));
        for bad in ["0ms", "2h", "soon"] {
            let err = settings(&[("REDIS_TIMEOUT", bad)]).err().expect("invalid");
            assert_eq!(vars(&err), ["REDIS_TIMEOUT"], "{bad}");
        }
    }

    #[test]
    fn the_production_guard_refuses_weak_secrets_and_debug() {
        let short = settings(&[("ENVIRONMENT", "production"), ("SECRET_KEY", "short")])
            .err()
            .expect("refused");
        assert_eq!(vars(&short), ["SECRET_KEY"]);
        assert!(
            !short.to_string().contains("short\""),
            "the secret itself is never printed"
        );
        let missing = settings(&[("ENVIRONMENT", "production")])
            .err()
            .expect("refused");
        assert_eq!(vars(&missing), ["SECRET_KEY"]);
        let placeholder = settings(&[
            ("ENVIRONMENT", "production"),
            (
                "SECRET_KEY",
                "your-very-long-secret-key-change-this-in-production-min-32-chars",
            ),
            ("DEBUG", "true"),
        ])
        .err()
        .expect("refused");
        assert_eq!(vars(&placeholder), ["SECRET_KEY", "DEBUG"]);
        let good = "k".repeat(40);
        assert!(settings(&[("ENVIRONMENT", "production"), ("SECRET_KEY", &good)]).is_ok());
    }

    #[test]
    fn the_tutorial_redis_variables_build_a_url_with_an_encoded_password() {
        let s = settings(&[
            ("REDIS_HOST", "10.1.2.3"),
            ("REDIS_PASSWORD", "p@ss word"),
            ("REDIS_DB", "2"),
        ])
        .expect("valid");
        let url = s.redis_url.expect("redis configured");
        assert_eq!(
            url.expose_secret(),
            "redis://:p%40ss%20word@10.1.2.3:6379/2"
        );
        assert!(!s_describe_leaks(
            &settings(&[("REDIS_URL", "redis://u:hunter2@h:1/0")]).expect("valid")
        ));
    }

    fn s_describe_leaks(s: &Settings) -> bool {
        s.describe().contains("hunter2")
    }

    #[test]
    fn toml_keys_are_read_case_insensitively_below_env() {
        let mut map = BTreeMap::new();
        flatten_toml(
            "",
            &"access_token_expire_minutes = 15\nallowed_hosts = [\"a.com\", \"*.b.com\"]\n[rate_limits]\nlogin = \"3/minute\"\n"
                .parse()
                .expect("toml"),
            &mut map,
        )
        .expect("flatten");
        assert_eq!(
            map.get("RATE_LIMITS_LOGIN").map(String::as_str),
            Some("3/minute")
        );
        let source = Source {
            layers: vec![
                (
                    Origin::Env,
                    [("ACCESS_TOKEN_EXPIRE_MINUTES".to_owned(), "20".to_owned())].into(),
                ),
                (Origin::File, map),
            ],
        };
        let s = Settings::from_source(&source).expect("valid");
        assert_eq!(s.access_token_expire_minutes, 20);
        let hosts: Vec<String> = s.allowed_hosts.iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["a.com", "*.b.com"]);
        assert_eq!(
            s.rate_limits
                .policy("login")
                .map(|p| p.limits().to_string()),
            Some("3 per 1 minute".to_owned()),
            "[rate_limits] login overrides AUTH_RATE_LIMIT"
        );
        assert!(
            s.describe()
                .contains("ALLOWED_HOSTS                = a.com,*.b.com  (palisade.toml)")
        );
    }

    #[test]
    fn the_development_secret_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        assert!(read_or_create_secret(&path, false).expect("ok").is_none());
        let first = read_or_create_secret(&path, true)
            .expect("ok")
            .expect("created");
        let again = read_or_create_secret(&path, true)
            .expect("ok")
            .expect("read");
        assert_eq!(first.expose_secret(), again.expose_secret());
        assert!(first.expose_secret().len() >= MIN_SECRET_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
