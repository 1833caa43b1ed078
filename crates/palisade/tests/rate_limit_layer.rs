//! The rate-limit layer through `oneshot`: exact limits with headers on every response, the
//! 429 body, per-user keys, tiers, exemptions, shadow mode.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, Response, StatusCode};
use palisade::auth::{AuthError, AuthOutcome, Principal};
use palisade::rate_limit::{
    Algorithm, FakeClock, MemoryStore, Policy, RateLimitExceeded, RateLimiter, RedisStore, Store,
    TimeSource,
};
use palisade_test_support::RedisServer;
use tower::{Layer, Service, ServiceExt, service_fn};

/// 2026-12-03T00:00:10Z, a few seconds into a minute, so fixed windows are predictable.
const T0: u64 = 1_796_256_010_000_000;

type Svc = tower::util::BoxCloneService<Request<Body>, Response<Body>, Infallible>;

fn app(limiter: &RateLimiter, policy: Policy) -> Svc {
    let layer = limiter.layer(policy);
    Svc::new(layer.layer(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    })))
}

fn request(ip: [u8; 4], auth: Option<AuthOutcome>) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
    if let Some(auth) = auth {
        req.extensions_mut().insert(auth);
    }
    req
}

fn user(id: &str, name: &str) -> AuthOutcome {
    AuthOutcome::Authenticated(Principal {
        user_id: id.to_owned(),
        username: name.to_owned(),
        token_id: "jti".to_owned(),
        family: None,
        expires_at: 0,
    })
}

async fn send(svc: &mut Svc, req: Request<Body>) -> Response<Body> {
    svc.ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("infallible")
}

fn header<'a>(res: &'a Response<Body>, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .expect("ascii")
}

async fn json(res: Response<Body>) -> serde_json::Value {
    let bytes = axum::body::to_bytes(res.into_body(), 4096)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("json")
}

fn limiter(store: impl Store, clock: &FakeClock) -> RateLimiter {
    RateLimiter::builder(store).clock(clock.clone()).build()
}

async fn ten_per_minute_admits_ten_then_429_with_headers(
    limiter: RateLimiter,
    algorithm: Algorithm,
) {
    let policy = Policy::new("login", "10/minute".parse().expect("rate"))
        .expect("name")
        .algorithm(algorithm);
    let mut svc = app(&limiter, policy);
    for i in 0..10u64 {
        let res = send(&mut svc, request([192, 0, 2, 1], None)).await;
        assert_eq!(res.status(), StatusCode::OK, "{algorithm} request {i}");
        assert_eq!(header(&res, "ratelimit-policy"), "\"login\";q=10;w=60");
        let remaining = 9 - i;
        let ratelimit = header(&res, "ratelimit");
        assert!(
            ratelimit.starts_with(&format!("\"login\";r={remaining};t=")),
            "{ratelimit}"
        );
        assert_eq!(header(&res, "x-ratelimit-limit"), "10");
        assert_eq!(header(&res, "x-ratelimit-remaining"), remaining.to_string());
        let reset: u64 = header(&res, "x-ratelimit-reset")
            .parse()
            .expect("whole seconds");
        assert!((1..=60).contains(&reset), "{reset}");
    }
    let res = send(&mut svc, request([192, 0, 2, 1], None)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{algorithm}");
    let retry: u64 = header(&res, "retry-after").parse().expect("seconds");
    assert!((1..=60).contains(&retry));
    assert_eq!(header(&res, "x-ratelimit-remaining"), "0");
    assert_eq!(header(&res, "content-type"), "application/json");
    assert!(res.extensions().get::<RateLimitExceeded>().is_some());
    let body = json(res).await;
    assert_eq!(
        body,
        serde_json::json!({
            "error": "Rate limit exceeded",
            "message": "Rate limit exceeded: 10 per 1 minute",
            "retry_after": retry,
        })
    );
    // Another client is unaffected.
    let res = send(&mut svc, request([192, 0, 2, 2], None)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_limit_of_ten_admits_ten_then_answers_429_with_every_header_memory() {
    for algorithm in [Algorithm::Gcra, Algorithm::FixedWindow] {
        let clock = FakeClock::new(T0);
        ten_per_minute_admits_ten_then_429_with_headers(
            limiter(MemoryStore::new(), &clock),
            algorithm,
        )
        .await;
    }
}

#[tokio::test]
async fn a_limit_of_ten_admits_ten_then_answers_429_with_every_header_redis() {
    let redis = RedisServer::start().expect("redis-server starts");
    for algorithm in [Algorithm::Gcra, Algorithm::FixedWindow] {
        let clock = FakeClock::new(T0);
        let store = RedisStore::builder(redis.url())
            .key_prefix(format!("layer:{}", uuid::Uuid::new_v4().simple()))
            .time_source(TimeSource::Caller)
            .timeout(Duration::from_secs(5))
            .build()
            .expect("valid");
        ten_per_minute_admits_ten_then_429_with_headers(limiter(store, &clock), algorithm).await;
    }
}

#[tokio::test]
async fn the_over_limit_cache_answers_without_the_store_until_the_retry_time() {
    // Arrange: a Redis store, a client over its limit.
    let mut redis = RedisServer::start().expect("redis-server starts");
    let clock = FakeClock::new(T0);
    let store = RedisStore::builder(redis.url())
        .key_prefix(format!("cache:{}", uuid::Uuid::new_v4().simple()))
        .time_source(TimeSource::Caller)
        .build()
        .expect("valid");
    let limiter = RateLimiter::builder(store)
        .clock(clock.clone())
        .failure_mode(palisade::rate_limit::FailureMode::Open)
        .build();
    let policy = Policy::new("login", "2/minute".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy);
    for _ in 0..2 {
        assert_eq!(
            send(&mut svc, request([192, 0, 2, 1], None)).await.status(),
            200
        );
    }
    assert_eq!(
        send(&mut svc, request([192, 0, 2, 1], None)).await.status(),
        429
    );
    // Act: with Redis gone, the known-abusive client is still rejected (from the cache)
    // without touching the store, so the limiter does not even notice the outage.
    redis.kill();
    for _ in 0..100 {
        assert_eq!(
            send(&mut svc, request([192, 0, 2, 1], None)).await.status(),
            429
        );
    }
    assert!(!limiter.is_degraded(), "no store call was made");
    // After the retry time, the cache lets go and the store is asked again (here: down, open).
    clock.advance(Duration::from_secs(31));
    assert_eq!(
        send(&mut svc, request([192, 0, 2, 1], None)).await.status(),
        200
    );
    assert!(limiter.is_degraded());
}

#[tokio::test]
async fn a_per_user_limit_follows_the_user_across_ip_addresses() {
    let clock = FakeClock::new(T0);
    let limiter = limiter(MemoryStore::new(), &clock);
    let policy = Policy::new("protected", "3/minute".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy);
    let ips = [
        [198, 51, 100, 1],
        [198, 51, 100, 2],
        [203, 0, 113, 3],
        [203, 0, 113, 4],
    ];
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for ip in ips {
            v.push(
                send(&mut svc, request(ip, Some(user("42", "alice"))))
                    .await
                    .status()
                    .as_u16(),
            );
        }
        v
    };
    assert_eq!(statuses, [200, 200, 200, 429]);
    // Another user on the same addresses is counted separately.
    let res = send(&mut svc, request(ips[0], Some(user("43", "bob")))).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn requests_with_an_invalid_token_count_against_their_ip() {
    let clock = FakeClock::new(T0);
    let limiter = limiter(MemoryStore::new(), &clock);
    let policy = Policy::new("protected", "3/minute".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy);
    let ip = [198, 51, 100, 9];
    for _ in 0..3 {
        let res = send(
            &mut svc,
            request(ip, Some(AuthOutcome::Rejected(AuthError::Malformed))),
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    // The guesser's IP is spent, with or without a token.
    let res = send(
        &mut svc,
        request(ip, Some(AuthOutcome::Rejected(AuthError::Malformed))),
    )
    .await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        send(&mut svc, request(ip, Some(AuthOutcome::Anonymous)))
            .await
            .status(),
        429
    );
    // A valid user on that IP has a key of their own.
    assert_eq!(
        send(&mut svc, request(ip, Some(user("1", "carol"))))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn authenticated_users_get_their_higher_tier() {
    let clock = FakeClock::new(T0);
    let limiter = limiter(MemoryStore::new(), &clock);
    let policy = Policy::new("api", "2/minute".parse().expect("rate"))
        .expect("name")
        .authenticated_limits("5/minute".parse().expect("rate"));
    let mut svc = app(&limiter, policy);
    let mut ok = 0;
    for _ in 0..10 {
        if send(&mut svc, request([192, 0, 2, 1], Some(user("7", "dave"))))
            .await
            .status()
            == 200
        {
            ok += 1;
        }
    }
    assert_eq!(ok, 5);
    let res = send(&mut svc, request([192, 0, 2, 1], None)).await;
    assert_eq!(header(&res, "ratelimit-policy"), "\"api\";q=2;w=60");
}

#[tokio::test]
async fn exempt_addresses_and_users_are_never_limited_nor_counted() {
    let clock = FakeClock::new(T0);
    let limiter = limiter(MemoryStore::new(), &clock);
    let policy = Policy::new("api", "1/minute".parse().expect("rate"))
        .expect("name")
        .exempt_ips(["10.0.0.0/8".parse().expect("cidr")])
        .exempt_users(["monitor"]);
    let mut svc = app(&limiter, policy);
    for _ in 0..5 {
        let res = send(&mut svc, request([10, 1, 2, 3], None)).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("ratelimit").is_none());
        let res = send(
            &mut svc,
            request([192, 0, 2, 5], Some(user("9", "monitor"))),
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(
        send(&mut svc, request([192, 0, 2, 5], None)).await.status(),
        200
    );
    assert_eq!(
        send(&mut svc, request([192, 0, 2, 5], None)).await.status(),
        429
    );
}

#[tokio::test]
async fn shadow_mode_counts_but_never_blocks() {
    let clock = FakeClock::new(T0);
    let limiter = limiter(MemoryStore::new(), &clock);
    let shadow = Policy::new("new-limit", "2/minute".parse().expect("rate"))
        .expect("name")
        .shadow(true);
    let mut svc = app(&limiter, shadow.clone());
    for _ in 0..10 {
        let res = send(&mut svc, request([192, 0, 2, 1], None)).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("ratelimit").is_none());
    }
    // It did count: the same policy enforced now sees the client over its limit.
    let enforced = shadow.shadow(false);
    let mut svc = app(&limiter, enforced);
    assert_eq!(
        send(&mut svc, request([192, 0, 2, 1], None)).await.status(),
        429
    );
}

#[tokio::test]
async fn several_limits_report_the_most_restrictive_one() {
    let clock = FakeClock::new(T0);
    let limiter = limiter(MemoryStore::new(), &clock);
    let policy = Policy::new("global", "100/minute;3/second".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy);
    let res = send(&mut svc, request([192, 0, 2, 1], None)).await;
    assert_eq!(header(&res, "ratelimit-policy"), "\"global\";q=3;w=1");
    assert_eq!(header(&res, "x-ratelimit-remaining"), "2");
    for _ in 0..2 {
        send(&mut svc, request([192, 0, 2, 1], None)).await;
    }
    let res = send(&mut svc, request([192, 0, 2, 1], None)).await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        json(res).await["message"],
        "Rate limit exceeded: 3 per 1 second"
    );
}

#[tokio::test]
async fn a_missing_connect_info_never_causes_a_500() {
    let clock = FakeClock::new(T0);
    let limiter = limiter(MemoryStore::new(), &clock);
    let policy = Policy::new("global", "2/minute".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy);
    let statuses = [
        send(&mut svc, Request::new(Body::empty())).await.status(),
        send(&mut svc, Request::new(Body::empty())).await.status(),
        send(&mut svc, Request::new(Body::empty())).await.status(),
    ];
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn the_layer_works_on_an_axum_route() {
    use axum::{Router, routing::get};
    let limiter = RateLimiter::memory();
    let policy = Policy::new("root", "1/minute".parse().expect("rate")).expect("name");
    let app: Router = Router::new()
        .route("/", get(|| async { "hi" }))
        .route_layer(limiter.layer(policy));
    let req = || {
        let mut r = Request::get("/").body(Body::empty()).expect("request");
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 1))));
        r
    };
    assert_eq!(app.clone().oneshot(req()).await.expect("ok").status(), 200);
    assert_eq!(app.clone().oneshot(req()).await.expect("ok").status(), 429);
    // Unrouted paths are not limited by a route layer.
    let res = app
        .oneshot(Request::get("/nope").body(Body::empty()).expect("request"))
        .await
        .expect("ok");
    assert_eq!(res.status(), 404);
}
