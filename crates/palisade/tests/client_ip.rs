//! Client identity behind (un)trusted proxies: forwarded headers count only from trusted
//! proxies, and then the rightmost untrusted hop is the client (SPEC §4, §9.1).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{HeaderMap, HeaderValue, Request, Response};
use ipnet::IpNet;
use palisade::client_ip::{
    ClientIp, ClientIpConfig, ClientIpLayer, ClientIpSource, ForwardedHeader,
};
use tower::{Layer, ServiceExt, service_fn};

fn proxies() -> Vec<IpNet> {
    vec![
        "10.0.0.0/8".parse().expect("cidr"),
        "2001:db8:ffff::/48".parse().expect("cidr"),
    ]
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(*name, HeaderValue::from_static(value));
    }
    h
}

fn peer(s: &str) -> Option<SocketAddr> {
    Some(s.parse().expect("socket addr"))
}

fn resolve(config: &ClientIpConfig, from: &str, h: &[(&'static str, &'static str)]) -> String {
    config
        .resolve(peer(from), &headers(h))
        .expect("peer known")
        .addr()
        .to_string()
}

#[test]
fn forwarded_headers_from_an_untrusted_peer_change_nothing() {
    let config = ClientIpConfig::new().trusted_proxies(proxies());
    for h in [
        &[("x-forwarded-for", "1.2.3.4")][..],
        &[("x-forwarded-for", "10.0.0.1, 1.2.3.4")],
        &[("forwarded", "for=1.2.3.4")],
        &[
            ("x-real-ip", "1.2.3.4"),
            ("forwarded", "for=\"[2001:db8::1]\""),
        ],
    ] {
        assert_eq!(resolve(&config, "203.0.113.9:5000", h), "203.0.113.9");
    }
    // With no trusted proxies at all, not even a loopback peer's headers count.
    let none = ClientIpConfig::new();
    assert_eq!(
        resolve(&none, "127.0.0.1:1", &[("x-forwarded-for", "1.2.3.4")]),
        "127.0.0.1"
    );
}

#[test]
fn from_a_trusted_proxy_the_rightmost_untrusted_xff_hop_is_the_client() {
    let config = ClientIpConfig::new().trusted_proxies(proxies());
    // The client spoofed 6.6.6.6; our proxies appended the real address and themselves.
    let h = [("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")];
    assert_eq!(resolve(&config, "10.0.0.2:443", &h), "198.51.100.7");
    // Several header lines are one list, in order.
    let h = [
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-for", "198.51.100.7, 10.1.1.1"),
    ];
    assert_eq!(resolve(&config, "10.0.0.2:443", &h), "198.51.100.7");
    let ip = config
        .resolve(peer("10.0.0.2:443"), &headers(&h))
        .expect("peer");
    assert_eq!(ip.source(), ClientIpSource::XForwardedFor);
    // Garbage left of the client does not matter.
    let h = [("x-forwarded-for", "not-an-ip, 198.51.100.7")];
    assert_eq!(resolve(&config, "10.0.0.2:443", &h), "198.51.100.7");
    // Every hop trusted: the leftmost is the client.
    let h = [("x-forwarded-for", "10.9.9.9, 10.1.1.1")];
    assert_eq!(resolve(&config, "10.0.0.2:443", &h), "10.9.9.9");
    // No header: the proxy itself.
    assert_eq!(resolve(&config, "10.0.0.2:443", &[]), "10.0.0.2");
}

#[test]
fn from_a_trusted_proxy_the_rightmost_untrusted_forwarded_node_is_the_client() {
    let config = ClientIpConfig::new()
        .trusted_proxies(proxies())
        .forwarded_header(ForwardedHeader::Forwarded);
    let h = [(
        "forwarded",
        "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.1.1.1;by=10.0.0.2",
    )];
    assert_eq!(resolve(&config, "10.0.0.2:443", &h), "2001:db8:cafe::17");
    let h = [("forwarded", "for=192.0.2.60:8080;proto=http")];
    assert_eq!(resolve(&config, "[2001:db8:ffff::1]:443", &h), "192.0.2.60");
    // The other header is ignored once Forwarded is chosen (it could come from the client).
    let h = [("x-forwarded-for", "6.6.6.6")];
    assert_eq!(resolve(&config, "10.0.0.2:443", &h), "10.0.0.2");
}

#[test]
fn malformed_chains_fall_back_to_the_peer() {
    let xff = ClientIpConfig::new().trusted_proxies(proxies());
    for value in [
        "198.51.100.7, garbage",
        "198.51.100.7,,",
        "",
        "198.51.100.7;x",
    ] {
        let h = [("x-forwarded-for", value)];
        let ip = xff.resolve(peer("10.0.0.2:1"), &headers(&h)).expect("peer");
        assert_eq!(ip.addr().to_string(), "10.0.0.2", "{value:?}");
        assert_eq!(ip.source(), ClientIpSource::Peer);
    }
    let fwd = ClientIpConfig::new()
        .trusted_proxies(proxies())
        .forwarded_header(ForwardedHeader::Forwarded);
    for value in ["for=unknown", "for=_hidden", "proto=https", "for=\"[::1\""] {
        let h = [("forwarded", value)];
        assert_eq!(resolve(&fwd, "10.0.0.2:1", &h), "10.0.0.2", "{value:?}");
    }
}

#[test]
fn ipv6_clients_are_bucketed_by_their_64_and_ipv4_mapped_addresses_are_ipv4() {
    let config = ClientIpConfig::new();
    let a = config
        .resolve(peer("[2001:db8:1:2::a]:1"), &HeaderMap::new())
        .expect("peer");
    let b = config
        .resolve(peer("[2001:db8:1:2:ffff::b]:1"), &HeaderMap::new())
        .expect("peer");
    assert_eq!(a.bucket(), b.bucket());
    assert_eq!(a.to_string(), "2001:db8:1:2::/64");
    let c = ClientIpConfig::new()
        .ipv6_prefix(128)
        .expect("valid")
        .resolve(peer("[2001:db8:1:2::a]:1"), &HeaderMap::new())
        .expect("peer");
    assert_eq!(c.to_string(), "2001:db8:1:2::a");
    let mapped = config
        .resolve(peer("[::ffff:192.0.2.1]:1"), &HeaderMap::new())
        .expect("peer");
    assert_eq!(mapped.to_string(), "192.0.2.1");
    assert!(ClientIpConfig::new().ipv6_prefix(129).is_err());
}

#[tokio::test]
async fn the_layer_inserts_the_client_ip_and_tolerates_a_missing_connect_info() {
    let layer = ClientIpLayer::new(ClientIpConfig::new().trusted_proxies(proxies()));
    let svc = layer.layer(service_fn(|req: Request<Body>| async move {
        let ip = req.extensions().get::<ClientIp>().map(ToString::to_string);
        Ok::<_, std::convert::Infallible>(Response::new(Body::from(ip.unwrap_or_default())))
    }));
    let mut req = Request::new(Body::empty());
    req.headers_mut()
        .insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 2], 1))));
    let res = svc.clone().oneshot(req).await.expect("infallible");
    let body = axum::body::to_bytes(res.into_body(), 1024)
        .await
        .expect("body");
    assert_eq!(&body[..], b"198.51.100.7");

    let res = svc
        .oneshot(Request::new(Body::empty()))
        .await
        .expect("infallible");
    assert_eq!(res.status(), 200);
}
