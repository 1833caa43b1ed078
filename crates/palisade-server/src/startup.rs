//! Building the application once from [`Settings`], binding, serving, shutting down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use http::header;
use palisade::auth::{
    Auth, AuthLayer, JwtConfig, JwtKeys, MemoryTokenStore, RedisTokenStore, TokenStore,
};
use palisade::client_ip::{ClientIpConfig, ClientIpLayer};
use palisade::limits::HardeningLayer;
use palisade::rate_limit::{RateLimiter, RedisStore};
use palisade::request_id::RequestIdLayer;
use palisade::security_headers::{PathHeaders, SecurityHeadersLayer};
use palisade::trusted_host::TrustedHostLayer;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use crate::config::{ConfigError, SecretSetting, Settings};
use crate::passwords::PasswordHasher;
use crate::state::AppState;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting is unusable (exit code 2).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// A bound, ready-to-serve application.
pub struct Application {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
}

impl Application {
    /// Connects the stores, builds the middleware stack and binds `BIND` (port 0 picks a free
    /// port: see [`Application::port`]).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let secret = settings
            .jwt_secret(true)?
            .ok_or_else(|| StartupError::Other("no signing secret".to_owned()))?;
        if let SecretSetting::DevFile(path) = &settings.secret {
            tracing::warn!(
                file = %path.display(),
                "SECRET_KEY is not set: using the development secret kept in this file; \
                 set SECRET_KEY (see `palisade gen-secret`) before running in production"
            );
        }
        let keys = JwtKeys::new(JwtConfig {
            algorithm: settings.algorithm,
            secret: secret.expose_secret().as_bytes().to_vec(),
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            leeway_seconds: settings.jwt_leeway_seconds,
            legacy_tokens: settings.legacy_tokens,
        })
        .map_err(|e| ConfigError::Invalid {
            var: "SECRET_KEY".to_owned(),
            value: "[masked]".to_owned(),
            reason: e.to_string(),
            expected: "a non-empty secret".to_owned(),
        })?;
        let auth = Auth::new(
            keys,
            token_store(&settings)?,
            settings.access_lifetime_seconds(),
            settings.refresh_lifetime_seconds(),
        );
        let users = crate::store::connect(&settings).await?;
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hasher =
            PasswordHasher::new(parallelism).map_err(|e| StartupError::Other(e.to_string()))?;
        let state = AppState {
            users,
            auth: auth.clone(),
            hasher,
        };

        let client_ip = ClientIpConfig::new()
            .trusted_proxies(settings.trusted_proxies.iter().copied())
            .forwarded_header(settings.forwarded_header)
            .ipv6_prefix(settings.ipv6_prefix)
            .map_err(|e| invalid("IPV6_PREFIX", &settings.ipv6_prefix.to_string(), e))?;
        let limiter = rate_limiter(&settings, client_ip.clone())?;
        let limited = crate::routes::Limited::new(&limiter, &settings.rate_limits);

        // Outermost first (SPEC §6): every response, rejections included, gets the security
        // headers and the request id; the log line sees the final status; hosts, CORS and the
        // hardening limits answer before any work; auth runs before the per-route limiter.
        let stack = ServiceBuilder::new()
            .layer(
                SecurityHeadersLayer::new()
                    .path_prefix("/docs", PathHeaders::docs())
                    .and_then(|l| l.path_prefix("/redoc", PathHeaders::docs()))
                    .map_err(|e| StartupError::Other(e.to_string()))?,
            )
            .layer(RequestIdLayer::new())
            .layer(ClientIpLayer::new(client_ip))
            .layer(axum::middleware::from_fn(crate::telemetry::log_requests))
            .layer(
                TrustedHostLayer::from_patterns(settings.allowed_hosts.clone())
                    .map_err(|e| invalid("ALLOWED_HOSTS", "", e))?,
            )
            .layer(
                settings
                    .cors
                    .clone()
                    .into_layer()
                    .map_err(|e| invalid("CORS_ORIGINS", "", e))?,
            )
            .layer(
                HardeningLayer::new(&settings.limits)
                    .map_err(|e| invalid("MAX_CONCURRENT_REQUESTS", "", e))?,
            )
            .layer(AuthLayer::new(auth))
            .layer(axum::middleware::map_response(json_error_bodies));
        let router = crate::routes::router(&limited)
            .fallback(|| async { crate::error::ApiError::NotFound })
            .with_state(state)
            .layer(DefaultBodyLimit::max(settings.limits.max_body_bytes))
            .layer(stack);

        let listener =
            TcpListener::bind(settings.bind)
                .await
                .map_err(|e| ConfigError::Invalid {
                    var: "BIND".to_owned(),
                    value: format!("{:?}", settings.bind.to_string()),
                    reason: format!("cannot listen: {e}"),
                    expected: "a free local address and port".to_owned(),
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| StartupError::Other(e.to_string()))?;
        Ok(Self {
            listener,
            router,
            local_addr,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        tracing::info!(address = %self.local_addr, "listening");
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| StartupError::Other(e.to_string()))?;
        tracing::info!("stopped");
        Ok(())
    }
}

fn invalid(var: &str, value: &str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        var: var.to_owned(),
        value: format!("{value:?}"),
        reason: e.to_string(),
        expected: "see README.md, Configuration".to_owned(),
    }
}

/// Revocations: shared through Redis when it is configured (every instance must see a logout),
/// else in memory.
fn token_store(settings: &Settings) -> Result<Arc<dyn TokenStore>, StartupError> {
    let Some(url) = &settings.redis_url else {
        return Ok(Arc::new(MemoryTokenStore::default()));
    };
    let url = url.expose_secret();
    let builder = if settings.redis_cluster {
        RedisTokenStore::cluster(url.split(',').map(str::to_owned).collect::<Vec<_>>())
    } else {
        RedisTokenStore::builder(url)
    };
    let store = builder
        .key_prefix(format!("{}:auth", settings.redis_key_prefix))
        .timeout(settings.redis_timeout)
        .build()
        .map_err(|e| invalid("REDIS_URL", "[masked]", e))?;
    Ok(Arc::new(store))
}

/// The shared limiter: Redis when `REDIS_URL` (or the tutorial's `REDIS_*`) is set, else memory.
fn rate_limiter(
    settings: &Settings,
    client_ip: ClientIpConfig,
) -> Result<RateLimiter, StartupError> {
    let rl = &settings.rate_limits;
    let builder = match &settings.redis_url {
        None => RateLimiter::builder(palisade::rate_limit::MemoryStore::new()),
        Some(url) => {
            let url = url.expose_secret();
            let store = if settings.redis_cluster {
                RedisStore::cluster(url.split(',').map(str::to_owned).collect::<Vec<_>>())
            } else {
                RedisStore::builder(url)
            };
            let store = store
                .key_prefix(format!("{}:rl", settings.redis_key_prefix))
                .timeout(settings.redis_timeout)
                .build()
                .map_err(|e| invalid("REDIS_URL", "[masked]", e))?;
            RateLimiter::builder(store)
        }
    };
    Ok(builder
        .failure_mode(rl.failure_mode)
        .instances(rl.instances)
        .client_ip(client_ip)
        .build())
}

/// Gives the errors axum produces on its own (405, unmatched methods, extractor rejections
/// without a body type) the `{"detail": …}` shape, keeping their headers (e.g. `Allow`).
async fn json_error_bodies(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let detail = status.canonical_reason().unwrap_or("Error");
    let json = palisade::error_response::detail(status, detail);
    let (json_parts, body) = json.into_parts();
    parts.headers.extend(json_parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::new(body))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
