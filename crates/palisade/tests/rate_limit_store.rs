//! Stores against real `redis-server` processes spawned on free ports: exactness, several
//! limits, concurrency across instances, Redis Cluster, credentials, and the memory cap.

use std::sync::Arc;
use std::time::Duration;

use palisade::rate_limit::{
    Algorithm, Clock, FakeClock, MemoryStore, Quota, RedisStore, Store, SystemClock, TimeSource,
    Timestamp,
};
use palisade_test_support::{RedisCluster, RedisServer};

const ALGORITHMS: [Algorithm; 2] = [Algorithm::Gcra, Algorithm::FixedWindow];

fn prefix() -> String {
    format!("test:{}", uuid::Uuid::new_v4().simple())
}

fn redis_store(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .key_prefix(prefix())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("valid redis url")
}

fn quotas(spec: &str, algorithm: Algorithm) -> Vec<Quota> {
    let limits: palisade::rate_limit::Limits = spec.parse().expect("valid limits");
    limits
        .rates()
        .iter()
        .map(|&r| Quota::new(r, algorithm))
        .collect()
}

/// Start of a fixed window far from its end, so a fixed-window test cannot straddle windows.
fn window_start() -> Timestamp {
    let now = SystemClock.now().as_micros();
    let day = 86_400_000_000;
    Timestamp::from_micros((now / day) * day + 1_000)
}

/// Sends `n` requests at `now` and returns how many were admitted.
async fn admitted(
    store: &dyn Store,
    key: &str,
    quotas: &[Quota],
    now: Timestamp,
    n: usize,
) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if store
            .check(key, quotas, now)
            .await
            .expect("store answers")
            .allowed
        {
            ok += 1;
        }
    }
    ok
}

async fn a_limit_of_n_admits_exactly_n(store: &dyn Store, now: Timestamp) {
    for algorithm in ALGORITHMS {
        let q = quotas("10/minute", algorithm);
        let key = format!("exact:{algorithm}");
        let first = store.check(&key, &q, now).await.expect("answers");
        assert!(first.allowed);
        assert_eq!(first.limits[0].remaining, 9, "{algorithm}");
        assert_eq!(admitted(store, &key, &q, now, 20).await, 9, "{algorithm}");
        let over = store.check(&key, &q, now).await.expect("answers");
        assert!(!over.allowed);
        assert_eq!(over.limits[0].remaining, 0);
        assert!(over.limits[0].retry_after > Duration::ZERO);
    }
}

#[tokio::test]
async fn memory_store_admits_exactly_n_with_each_algorithm() {
    let store = MemoryStore::new();
    a_limit_of_n_admits_exactly_n(&store, window_start()).await;
}

#[tokio::test]
async fn redis_store_admits_exactly_n_with_each_algorithm() {
    let redis = RedisServer::start().expect("redis-server starts");
    let store = redis_store(&redis.url());
    // Server time by default: the `now` argument is ignored. Fixed windows could straddle a
    // minute boundary in real time, so this test uses the caller's time for determinism.
    let caller_time = RedisStore::builder(redis.url())
        .key_prefix(prefix())
        .time_source(TimeSource::Caller)
        .build()
        .expect("valid");
    a_limit_of_n_admits_exactly_n(&caller_time, window_start()).await;
    // And GCRA on the server's clock.
    let q = quotas("10/minute", Algorithm::Gcra);
    assert_eq!(
        admitted(&store, "server-time", &q, SystemClock.now(), 25).await,
        10
    );
}

async fn several_limits_are_all_enforced_and_a_rejection_consumes_nothing(store: &dyn Store) {
    let now = window_start();
    for algorithm in ALGORITHMS {
        // 3 per second and 5 per minute: the per-second limit bites first.
        let both = quotas("3/second;5/minute", algorithm);
        let key = format!("multi:{algorithm}");
        assert_eq!(
            admitted(store, &key, &both, now, 10).await,
            3,
            "{algorithm}"
        );
        let d = store.check(&key, &both, now).await.expect("answers");
        assert!(!d.allowed);
        assert!(!d.limits[0].allowed && d.limits[1].allowed);
        // The 7 rejections consumed nothing from the per-minute limit: 2 left.
        assert_eq!(d.limits[1].remaining, 2, "{algorithm}");
        // A second later, only the 2 remaining of the minute are admitted.
        let later = now.plus(Duration::from_secs(1));
        assert_eq!(
            admitted(store, &key, &both, later, 10).await,
            2,
            "{algorithm}"
        );
        let d = store.check(&key, &both, later).await.expect("answers");
        assert!(d.limits[0].allowed && !d.limits[1].allowed, "{algorithm}");
        assert_eq!(d.most_restrictive(), 1);
    }
}

#[tokio::test]
async fn memory_store_enforces_several_limits_all_or_nothing() {
    several_limits_are_all_enforced_and_a_rejection_consumes_nothing(&MemoryStore::new()).await;
}

#[tokio::test]
async fn redis_store_enforces_several_limits_all_or_nothing() {
    let redis = RedisServer::start().expect("redis-server starts");
    let store = RedisStore::builder(redis.url())
        .key_prefix(prefix())
        .time_source(TimeSource::Caller)
        .build()
        .expect("valid");
    several_limits_are_all_enforced_and_a_rejection_consumes_nothing(&store).await;
}

#[tokio::test]
async fn three_hundred_concurrent_decisions_through_several_stores_admit_exactly_fifty() {
    // Arrange: three stores (three separate connections, as three instances would have),
    // one Redis, one 50/minute limit, the server's clock.
    let redis = RedisServer::start().expect("redis-server starts");
    let prefix = prefix();
    let stores: Vec<Arc<RedisStore>> = (0..3)
        .map(|_| {
            Arc::new(
                RedisStore::builder(redis.url())
                    .key_prefix(prefix.clone())
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("valid"),
            )
        })
        .collect();
    for algorithm in ALGORITHMS {
        let q: Arc<[Quota]> = quotas("50/minute", algorithm).into();
        let key = format!("concurrent:{algorithm}");
        // Act
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let store = Arc::clone(&stores[i % 3]);
                let q = Arc::clone(&q);
                let key = key.clone();
                tokio::spawn(async move {
                    store
                        .check(&key, &q, SystemClock.now())
                        .await
                        .expect("store answers")
                        .allowed
                })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            if t.await.expect("task") {
                allowed += 1;
            }
        }
        // Assert. A fixed window could straddle a minute boundary mid-test (then up to 100);
        // GCRA has no boundary and must be exact.
        match algorithm {
            Algorithm::Gcra => assert_eq!(allowed, 50),
            _ => assert!((50..=100).contains(&allowed), "{allowed}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_window_is_exact_under_concurrency_within_one_window() {
    let redis = RedisServer::start().expect("redis-server starts");
    let prefix = prefix();
    let now = window_start();
    let q: Arc<[Quota]> = quotas("50/minute", Algorithm::FixedWindow).into();
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let store = RedisStore::builder(redis.url())
                .key_prefix(prefix.clone())
                .time_source(TimeSource::Caller)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("valid");
            let q = Arc::clone(&q);
            tokio::spawn(async move { store.check("c", &q, now).await.expect("answers").allowed })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.expect("task"));
    }
    assert_eq!(allowed, 50);
}

#[tokio::test]
async fn a_three_master_redis_cluster_enforces_limits_exactly() {
    let cluster = RedisCluster::start().expect("cluster starts");
    let store = RedisStore::cluster(cluster.urls())
        .key_prefix(prefix())
        .timeout(Duration::from_secs(5))
        .time_source(TimeSource::Caller)
        .build()
        .expect("valid");
    let now = window_start();
    // Many clients, so their keys land on every master; each client has two limits whose keys
    // must share a slot for the script to run.
    for client in 0..12 {
        for algorithm in ALGORITHMS {
            let q = quotas("5/minute;100/hour", algorithm);
            let key = format!("login:ip:10.0.0.{client}");
            assert_eq!(
                admitted(&store, &key, &q, now, 8).await,
                5,
                "client {client} {algorithm}"
            );
        }
    }
    store.ping().await.expect("cluster answers PING");
}

#[tokio::test]
async fn passwords_acl_users_and_database_numbers_come_from_the_url() {
    let q = quotas("2/minute", Algorithm::Gcra);
    let with_password = RedisServer::builder()
        .password("s3cret")
        .start()
        .expect("starts");
    let shared_prefix = prefix();
    let on_db = |db: u8| {
        RedisStore::builder(with_password.url_with_db(db))
            .key_prefix(shared_prefix.clone())
            .build()
            .expect("valid")
    };
    assert_eq!(admitted(&on_db(3), "k", &q, SystemClock.now(), 5).await, 2);
    // Same keys, another database: untouched.
    assert_eq!(admitted(&on_db(0), "k", &q, SystemClock.now(), 5).await, 2);
    let no_password = redis_store(&format!("redis://127.0.0.1:{}/", with_password.port()));
    assert!(no_password.check("k", &q, SystemClock.now()).await.is_err());

    let acl = RedisServer::builder()
        .acl_user("limiter", "pw")
        .start()
        .expect("starts");
    let store = redis_store(&acl.url());
    assert_eq!(admitted(&store, "k", &q, SystemClock.now(), 5).await, 2);

    let wrong = redis_store(&format!("redis://limiter:nope@127.0.0.1:{}/", acl.port()));
    assert!(wrong.check("k", &q, SystemClock.now()).await.is_err());
}

#[tokio::test]
async fn the_script_is_reloaded_after_a_script_flush() {
    let redis = RedisServer::start().expect("starts");
    let store = redis_store(&redis.url());
    let q = quotas("3/minute", Algorithm::Gcra);
    assert!(
        store
            .check("k", &q, SystemClock.now())
            .await
            .expect("ok")
            .allowed
    );
    assert!(
        redis
            .command("SCRIPT FLUSH")
            .expect("answers")
            .starts_with("+OK")
    );
    assert_eq!(admitted(&store, "k", &q, SystemClock.now(), 5).await, 2);
}

#[tokio::test]
async fn a_memory_store_capped_at_100k_never_holds_more_than_the_cap() {
    let store = MemoryStore::with_capacity(100_000);
    let q = quotas("5/minute", Algorithm::Gcra);
    let clock = FakeClock::new(1_700_000_000_000_000);
    for i in 0..1_000_000u32 {
        let decision = store.check_now(&format!("ip:{i}"), &q, clock.now());
        assert!(decision.allowed);
        if i % 1_000 == 0 {
            assert!(store.len() <= 100_000, "len {} at {i}", store.len());
        }
        if i % 10 == 0 {
            clock.advance(Duration::from_micros(1));
        }
    }
    assert_eq!(store.len(), 100_000);
    // Expired state is dropped as calls go: once every entry has expired, a few calls shrink it.
    clock.advance(Duration::from_secs(60));
    for i in 0..1_000 {
        store.check_now(&format!("late:{i}"), &q, clock.now());
    }
    assert!(store.len() < 100_000);
}
