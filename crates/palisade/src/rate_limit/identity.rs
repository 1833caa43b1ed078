//! Who a request is counted against.

use std::sync::atomic::{AtomicBool, Ordering};

use http::Request;

use crate::auth::AuthOutcome;
use crate::client_ip::{ClientIp, ClientIpConfig};

/// The client a request is counted against (SPEC §4).
///
/// - With a valid access token ([`AuthOutcome::Authenticated`] in the extensions, put there by
///   the auth layer, which runs first): the verified **user id**, so a user's limit follows
///   them across addresses.
/// - Otherwise (no token, or an invalid one: guessing tokens is limited too): the client's IP
///   bucket ([`ClientIp`]).
/// - Without either (the app is not served with `ConnectInfo`): one shared `unknown` bucket,
///   with a warning logged once; never an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    user: Option<(String, String)>,
    ip: Option<ClientIp>,
}

static WARNED_UNKNOWN: AtomicBool = AtomicBool::new(false);

impl Identity {
    /// An anonymous client at `ip`.
    pub fn anonymous(ip: Option<ClientIp>) -> Self {
        Self { user: None, ip }
    }

    /// An authenticated user (`user_id`, `username`), connecting from `ip`.
    pub fn authenticated(
        user_id: impl Into<String>,
        username: impl Into<String>,
        ip: Option<ClientIp>,
    ) -> Self {
        Self {
            user: Some((user_id.into(), username.into())),
            ip,
        }
    }

    /// Reads the identity of `req`: the [`AuthOutcome`] and [`ClientIp`] from its extensions;
    /// when no `ClientIp` is there, resolves one with `ip_config` from `ConnectInfo`.
    pub fn from_request<B>(req: &Request<B>, ip_config: &ClientIpConfig) -> Self {
        let ext = req.extensions();
        let ip = ext
            .get::<ClientIp>()
            .copied()
            .or_else(|| ip_config.resolve_request(req));
        match ext.get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated(p)) => {
                Self::authenticated(p.user_id.clone(), p.username.clone(), ip)
            }
            _ => Self::anonymous(ip),
        }
    }

    /// The client's address, when known.
    pub fn ip(&self) -> Option<&ClientIp> {
        self.ip.as_ref()
    }

    /// The verified user id, when authenticated.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().map(|(id, _)| id.as_str())
    }

    /// The verified username, when authenticated.
    pub fn username(&self) -> Option<&str> {
        self.user.as_ref().map(|(_, name)| name.as_str())
    }

    /// Whether the client is an authenticated user.
    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }

    /// The counter key: `user:<id>`, `ip:<bucket>` or `unknown`.
    pub fn key(&self) -> String {
        match (&self.user, &self.ip) {
            (Some((id, _)), _) => format!("user:{id}"),
            (None, Some(ip)) => format!("ip:{ip}"),
            (None, None) => {
                if !WARNED_UNKNOWN.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "rate limiter cannot see the client address (serve the app with \
                         into_make_service_with_connect_info::<SocketAddr>()); anonymous \
                         clients share one bucket"
                    );
                }
                "unknown".to_owned()
            }
        }
    }
}
