//! Redis outages: each failure mode while Redis is down, and the return to Redis once it
//! answers again, without rebuilding the limiter.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, Response, StatusCode};
use palisade::rate_limit::{
    DecisionSource, FailureMode, Identity, Policy, RateLimiter, RedisStore, StoreHealth, Verdict,
};
use palisade_test_support::RedisServer;
use tower::{Layer, Service, ServiceExt, service_fn};

type Svc = tower::util::BoxCloneService<Request<Body>, Response<Body>, Infallible>;

/// Upper bound for awaiting a condition; reaching it fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(30);

fn limiter(redis: &RedisServer, mode: FailureMode) -> RateLimiter {
    let store = RedisStore::builder(redis.url())
        .key_prefix(format!("failover:{}", uuid::Uuid::new_v4().simple()))
        .timeout(Duration::from_millis(300))
        .build()
        .expect("valid");
    RateLimiter::builder(store)
        .failure_mode(mode)
        .probe_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .build()
}

fn app(limiter: &RateLimiter, policy: Policy) -> Svc {
    Svc::new(
        limiter
            .layer(policy)
            .layer(service_fn(|_req: Request<Body>| async {
                Ok::<_, Infallible>(Response::new(Body::from("ok")))
            })),
    )
}

fn request(last: u8) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, last], 1))));
    req
}

async fn send(svc: &mut Svc, req: Request<Body>) -> Response<Body> {
    let call = async {
        svc.ready()
            .await
            .expect("ready")
            .call(req)
            .await
            .expect("infallible")
    };
    tokio::time::timeout(BOUND, call)
        .await
        .expect("request finishes")
}

async fn await_health(limiter: &RateLimiter, want: StoreHealth) {
    let mut health = limiter.health();
    tokio::time::timeout(BOUND, health.wait_for(|h| *h == want))
        .await
        .expect("health changes in time")
        .expect("limiter alive");
}

async fn source(limiter: &RateLimiter, policy: &Policy) -> Option<DecisionSource> {
    let who = Identity::anonymous(None);
    match limiter.check(policy, &who).await {
        Verdict::Allowed(r) | Verdict::Limited(r) => Some(r.source),
        _ => None,
    }
}

/// Once Redis is back on the same port, decisions return to it by themselves.
async fn recovers(redis: &mut RedisServer, limiter: &RateLimiter, policy: &Policy) {
    redis.restart().expect("redis restarts on the same port");
    await_health(limiter, StoreHealth::Healthy).await;
    assert!(!limiter.is_degraded());
    assert_eq!(source(limiter, policy).await, Some(DecisionSource::Store));
}

#[tokio::test]
async fn local_mode_keeps_answering_from_memory_then_returns_to_redis() {
    let mut redis = RedisServer::start().expect("redis-server starts");
    let limiter = limiter(&redis, FailureMode::Local);
    let policy = Policy::new("api", "5/minute".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy.clone());
    assert_eq!(send(&mut svc, request(1)).await.status(), StatusCode::OK);
    assert_eq!(source(&limiter, &policy).await, Some(DecisionSource::Store));

    redis.kill();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(send(&mut svc, request(2)).await.status().as_u16());
    }
    // No 5xx: the memory fallback admits this client's 5, then limits it.
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    assert!(limiter.is_degraded());
    assert_eq!(*limiter.health().borrow(), StoreHealth::Degraded);
    assert_eq!(
        source(&limiter, &policy).await,
        Some(DecisionSource::Fallback)
    );

    recovers(&mut redis, &limiter, &policy).await;
    // Redis restarted empty: client 2 has its full quota there again.
    assert_eq!(send(&mut svc, request(2)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn local_mode_divides_each_limit_by_the_instance_count() {
    let mut redis = RedisServer::start().expect("redis-server starts");
    let store = RedisStore::builder(redis.url())
        .key_prefix(format!("failover:{}", uuid::Uuid::new_v4().simple()))
        .timeout(Duration::from_millis(300))
        .build()
        .expect("valid");
    let limiter = RateLimiter::builder(store).instances(3).build();
    let policy = Policy::new("api", "9/minute".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy);
    redis.kill();
    let mut ok = 0;
    for _ in 0..9 {
        let res = send(&mut svc, request(3)).await;
        assert!(!res.status().is_server_error());
        ok += usize::from(res.status() == StatusCode::OK);
    }
    assert_eq!(ok, 3);
}

#[tokio::test]
async fn open_mode_admits_everything_then_returns_to_redis() {
    let mut redis = RedisServer::start().expect("redis-server starts");
    let limiter = limiter(&redis, FailureMode::Open);
    let policy = Policy::new("api", "2/minute".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy.clone());
    redis.kill();
    for _ in 0..10 {
        let res = send(&mut svc, request(4)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            res.headers().get("ratelimit").is_none(),
            "nothing was counted"
        );
    }
    recovers(&mut redis, &limiter, &policy).await;
}

#[tokio::test]
async fn closed_mode_answers_503_json_then_returns_to_redis() {
    let mut redis = RedisServer::start().expect("redis-server starts");
    let limiter = limiter(&redis, FailureMode::Closed);
    let policy = Policy::new("api", "2/minute".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy.clone());
    assert_eq!(send(&mut svc, request(5)).await.status(), StatusCode::OK);
    redis.kill();
    for _ in 0..3 {
        let res = send(&mut svc, request(5)).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["content-type"], "application/json");
        let body = axum::body::to_bytes(res.into_body(), 1024)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert!(json["detail"].is_string(), "{json}");
    }
    recovers(&mut redis, &limiter, &policy).await;
    assert_eq!(send(&mut svc, request(5)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_hung_redis_is_cut_off_by_the_timeout() {
    let redis = RedisServer::start().expect("redis-server starts");
    let limiter = limiter(&redis, FailureMode::Closed);
    let policy = Policy::new("api", "3/minute".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy.clone());
    assert_eq!(send(&mut svc, request(6)).await.status(), StatusCode::OK);
    redis.pause().expect("SIGSTOP");
    // The request finishes (with 503) although Redis never answers.
    let res = send(&mut svc, request(6)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    redis.resume().expect("SIGCONT");
    await_health(&limiter, StoreHealth::Healthy).await;
    // Decisions come from Redis again. The timed-out script may still have been queued in
    // Redis and run when it woke up: a timeout can over-count, never under-count.
    let mut admitted = 0;
    for _ in 0..4 {
        let status = send(&mut svc, request(6)).await.status();
        assert!(status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS);
        admitted += usize::from(status == StatusCode::OK);
    }
    assert!((1..=2).contains(&admitted), "{admitted}");
}

/// Collects the `message` of every event logged while it is the default subscriber.
#[derive(Clone, Default)]
struct Messages(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Messages {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().expect("not poisoned").push(message.0);
    }
}

impl Messages {
    fn count(&self, needle: &str) -> usize {
        let messages = self.0.lock().expect("not poisoned");
        messages.iter().filter(|m| m.contains(needle)).count()
    }
}

#[tokio::test]
async fn an_outage_is_logged_once_not_per_request_and_so_is_the_recovery() {
    use tracing_subscriber::layer::SubscriberExt;
    let messages = Messages::default();
    // The test runtime is single-threaded, so the thread-local default sees every event.
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(messages.clone()));

    let mut redis = RedisServer::start().expect("redis-server starts");
    let limiter = limiter(&redis, FailureMode::Local);
    let policy = Policy::new("api", "100/minute".parse().expect("rate")).expect("name");
    let mut svc = app(&limiter, policy.clone());
    assert_eq!(send(&mut svc, request(1)).await.status(), StatusCode::OK);

    redis.kill();
    for _ in 0..20 {
        assert_eq!(send(&mut svc, request(3)).await.status(), StatusCode::OK);
    }
    assert_eq!(messages.count("rate-limit store unavailable"), 1);

    recovers(&mut redis, &limiter, &policy).await;
    assert_eq!(messages.count("rate-limit store answers again"), 1);
    assert_eq!(messages.count("rate-limit store unavailable"), 1);
}
