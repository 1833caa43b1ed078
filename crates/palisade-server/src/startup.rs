//! Building the application once from [`Settings`], binding, serving, shutting down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use http::header;
use palisade::auth::{Auth, AuthLayer, JwtConfig, JwtKeys, MemoryTokenStore};
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
            Arc::new(MemoryTokenStore::default()),
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

        let router = crate::routes::router()
            .fallback(|| async { crate::error::ApiError::NotFound })
            .with_state(state)
            .layer(
                ServiceBuilder::new()
                    .layer(axum::middleware::from_fn(crate::telemetry::log_requests))
                    .layer(axum::middleware::map_response(json_error_bodies))
                    .layer(AuthLayer::new(auth)),
            );

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
