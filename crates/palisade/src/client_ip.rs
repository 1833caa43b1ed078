//! The client's IP address, resolved once per request with a trusted-proxy rule (SPEC §4).
//!
//! The address is the socket peer (`axum::extract::ConnectInfo<SocketAddr>` in the request's
//! extensions, present when the app is served with
//! `into_make_service_with_connect_info::<SocketAddr>()`), **unless the peer is a trusted
//! proxy** (a CIDR of [`ClientIpConfig::trusted_proxies`]). Only then is the forwarding header
//! read: `X-Forwarded-For` by default, or RFC 7239 `Forwarded` (choose the one your proxies
//! set; see [`ForwardedHeader`]). Its entries are read **right to left** and the first address
//! that is not itself a trusted proxy is the client. Entries further left were written by the
//! client and are never believed; a client therefore cannot pick its own identity by sending
//! these headers (the tutorial's flaw, SPEC §9.1).
//!
//! Caveats:
//! - A malformed entry met before the first untrusted address (or an `unknown`/obfuscated
//!   `Forwarded` node) makes the resolver **fall back to the peer** (the proxy), and it logs at
//!   debug level. Garbage to the left of the client's address is ignored.
//! - When every entry is a trusted proxy, the leftmost entry is the client.
//! - IPv6 clients usually control a whole /64, so their [`bucket`](ClientIp::bucket) is the /64
//!   (configurable with [`ClientIpConfig::ipv6_prefix`]); IPv4-mapped IPv6 addresses count as
//!   IPv4.
//! - Without `ConnectInfo` there is no peer: [`ClientIpLayer`] then inserts nothing (it never
//!   fails the request), and consumers must cope with a missing [`ClientIp`].
//!
//! # Examples
//!
//! ```
//! use axum::{Router, routing::get, extract::ConnectInfo};
//! use palisade::client_ip::{ClientIp, ClientIpConfig, ClientIpLayer};
//! use http::{Request, HeaderValue};
//! use std::net::SocketAddr;
//!
//! let config = ClientIpConfig::new()
//!     .trusted_proxies(["10.0.0.0/8".parse().expect("cidr")]);
//! // Behind a trusted proxy at 10.0.0.2, the rightmost untrusted hop is the client.
//! let mut req = Request::new(());
//! req.headers_mut().insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1, 203.0.113.7, 10.0.0.9"));
//! req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 2], 4000))));
//! let ip = config.resolve_request(&req).expect("peer known");
//! assert_eq!(ip.addr().to_string(), "203.0.113.7");
//!
//! let app: Router = Router::new()
//!     .route("/", get(|ip: Option<axum::Extension<ClientIp>>| async move {
//!         ip.map(|ip| ip.to_string()).unwrap_or_default()
//!     }))
//!     .layer(ClientIpLayer::new(config));
//! # drop(app);
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use http::{HeaderMap, Request};
use ipnet::IpNet;
use tower::{Layer, Service};

/// Which forwarding header the trusted proxies set.
///
/// Only one is read: if both were, a client could add the header its proxy does not touch and
/// have it passed through as if the proxy had written it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx's `$proxy_add_x_forwarded_for`).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// How the address of a [`ClientIp`] was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientIpSource {
    /// The socket peer (no trusted proxy involved, or a malformed chain).
    Peer,
    /// An `X-Forwarded-For` entry, the peer being a trusted proxy.
    XForwardedFor,
    /// A `Forwarded` `for=` node, the peer being a trusted proxy.
    Forwarded,
}

/// A bad client-IP setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientIpError {
    /// An IPv6 prefix length above 128.
    #[error("IPv6 prefix length {0} is over 128")]
    Ipv6Prefix(u8),
}

/// The resolved client address, inserted into request extensions by [`ClientIpLayer`].
///
/// `Display` writes the [`bucket`](Self::bucket): the address for IPv4, the prefix for IPv6
/// (e.g. `2001:db8:1:2::/64`). That is what rate limits key on and what logs should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp {
    addr: IpAddr,
    bucket: IpNet,
    source: ClientIpSource,
}

impl ClientIp {
    /// The client's address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The network the client is counted as: the address itself (/32) for IPv4, its prefix
    /// (/64 by default) for IPv6.
    pub fn bucket(&self) -> IpNet {
        self.bucket
    }

    /// Where the address came from.
    pub fn source(&self) -> ClientIpSource {
        self.source
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bucket {
            IpNet::V4(net) => write!(f, "{}", net.addr()),
            IpNet::V6(net) if net.prefix_len() == 128 => write!(f, "{}", net.addr()),
            net @ IpNet::V6(_) => write!(f, "{net}"),
        }
    }
}

/// The trusted-proxy rule: which peers may forward, which header they set, and how IPv6
/// addresses are bucketed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ClientIpConfig {
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
    ipv6_prefix: u8,
}

impl Default for ClientIpConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientIpConfig {
    /// No trusted proxies (forwarding headers are never read), `X-Forwarded-For` when some are
    /// added, IPv6 bucketed by /64.
    pub fn new() -> Self {
        Self {
            trusted: Vec::new(),
            header: ForwardedHeader::XForwardedFor,
            ipv6_prefix: 64,
        }
    }

    /// The proxies (CIDRs) whose forwarding header is believed (`TRUSTED_PROXIES`).
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        self.trusted = proxies.into_iter().map(|n| n.trunc()).collect();
        self
    }

    /// Which header the trusted proxies set (default `X-Forwarded-For`).
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The prefix length IPv6 clients are bucketed by (default 64; 128 keys on the full
    /// address).
    pub fn ipv6_prefix(mut self, prefix: u8) -> Result<Self, ClientIpError> {
        if prefix > 128 {
            return Err(ClientIpError::Ipv6Prefix(prefix));
        }
        self.ipv6_prefix = prefix;
        Ok(self)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    fn client(&self, addr: IpAddr, source: ClientIpSource) -> ClientIp {
        let addr = addr.to_canonical();
        let bucket = match addr {
            IpAddr::V4(_) => IpNet::from(addr),
            IpAddr::V6(_) => IpNet::new(addr, self.ipv6_prefix)
                .map(|n| n.trunc())
                .unwrap_or_else(|_| IpNet::from(addr)),
        };
        ClientIp {
            addr,
            bucket,
            source,
        }
    }

    /// Resolves the client from the socket `peer` and the request `headers` (see the module
    /// docs). `None` only when the peer is unknown.
    pub fn resolve(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<ClientIp> {
        let peer = peer?.ip().to_canonical();
        if !self.is_trusted(peer) {
            return Some(self.client(peer, ClientIpSource::Peer));
        }
        let (entries, source) = match self.header {
            ForwardedHeader::XForwardedFor => (
                header_list(headers, "x-forwarded-for"),
                ClientIpSource::XForwardedFor,
            ),
            ForwardedHeader::Forwarded => {
                (header_list(headers, "forwarded"), ClientIpSource::Forwarded)
            }
        };
        let Some(entries) = entries else {
            tracing::debug!(%peer, "forwarding header is not valid text; using the peer");
            return Some(self.client(peer, ClientIpSource::Peer));
        };
        let mut leftmost = None;
        for entry in entries.iter().rev() {
            let parsed = match self.header {
                ForwardedHeader::XForwardedFor => parse_node(entry),
                ForwardedHeader::Forwarded => forwarded_for(entry).and_then(parse_node),
            };
            let Some(ip) = parsed else {
                tracing::debug!(%peer, "malformed forwarding chain; using the peer");
                return Some(self.client(peer, ClientIpSource::Peer));
            };
            if !self.is_trusted(ip) {
                return Some(self.client(ip, source));
            }
            leftmost = Some(ip);
        }
        Some(match leftmost {
            Some(ip) => self.client(ip, source),
            None => self.client(peer, ClientIpSource::Peer),
        })
    }

    /// [`resolve`](Self::resolve) with the peer from the request's `ConnectInfo<SocketAddr>`.
    pub fn resolve_request<B>(&self, req: &Request<B>) -> Option<ClientIp> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        self.resolve(peer, req.headers())
    }
}

/// Every comma-separated entry of every `name` header, in order; `None` if a value is not
/// visible ASCII. Commas inside quoted strings (RFC 7239) do not split.
fn header_list(headers: &HeaderMap, name: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let text = value.to_str().ok()?;
        let mut current = String::new();
        let mut quoted = false;
        for c in text.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    current.push(c);
                }
                ',' if !quoted => out.push(std::mem::take(&mut current).trim().to_owned()),
                c => current.push(c),
            }
        }
        out.push(current.trim().to_owned());
    }
    Some(out)
}

/// The `for=` value of one RFC 7239 element (`for=192.0.2.60;proto=http;by=…`), unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:443`. `unknown` and obfuscated names are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = node.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse().ok())
}

/// Resolves the client once per request and inserts a [`ClientIp`] into its extensions, for
/// the rate limiter and for logs. Requests without `ConnectInfo` pass through unchanged.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientIpLayer {
    config: Arc<ClientIpConfig>,
}

impl ClientIpLayer {
    /// A layer applying `config`.
    pub fn new(config: ClientIpConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ClientIpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientIpService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service of [`ClientIpLayer`].
#[derive(Debug, Clone)]
pub struct ClientIpService<S> {
    inner: S,
    config: Arc<ClientIpConfig>,
}

impl<S> ClientIpService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for ClientIpService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(ip) = self.config.resolve_request(&req) {
            req.extensions_mut().insert(ip);
        }
        self.inner.call(req)
    }
}
