//! Token stores: what every [`TokenStore`] must do, checked against [`MemoryTokenStore`] and
//! against [`RedisTokenStore`] on a real `redis-server` and a three-master Redis Cluster; then
//! what only the Redis store promises (TTLs, sharing between instances, outages).
//!
//! Every server is spawned by `palisade_test_support` on a free port (never the machine's
//! Redis on 6379), and every test uses its own random key prefix.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use palisade::auth::{
    Auth, AuthError, JwtConfig, JwtKeys, MemoryTokenStore, RedisTokenStore, RefreshUse,
    RevocationQuery, TokenKind, TokenStore, TokenStoreError,
};
use palisade_test_support::{RedisCluster, RedisServer};

/// Timeout of the Redis stores under test.
const TIMEOUT: Duration = Duration::from_millis(300);
/// Upper bound for awaiting a condition; reaching it fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_millis()).expect("fits")
}

fn now() -> i64 {
    now_ms() / 1000
}

fn prefix() -> String {
    format!("test:{}", uuid::Uuid::new_v4().simple())
}

fn redis_store(redis: &RedisServer, prefix: &str) -> RedisTokenStore {
    RedisTokenStore::builder(redis.url())
        .key_prefix(prefix)
        .timeout(TIMEOUT)
        .build()
        .expect("valid")
}

fn cluster_store(cluster: &RedisCluster, prefix: &str) -> RedisTokenStore {
    RedisTokenStore::cluster(cluster.urls())
        .key_prefix(prefix)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid")
}

fn query<'a>(
    user_id: &'a str,
    token_id: &'a str,
    family: Option<&'a str>,
    issued_at_ms: i64,
) -> RevocationQuery<'a> {
    RevocationQuery {
        token_id,
        family,
        user_id,
        issued_at_ms,
    }
}

async fn revoked(store: &dyn TokenStore, q: RevocationQuery<'_>) -> bool {
    store.is_revoked(q).await.expect("store answers")
}

// ---------------------------------------------------------------------------------------------
// What every store must do.

/// Runs every shared behaviour against `store`.
async fn behaves_like_a_token_store(store: &dyn TokenStore) {
    revoked_tokens_families_and_users_are_reported(store).await;
    a_refresh_token_is_first_used_exactly_once(store).await;
    a_not_before_mark_never_moves_back(store).await;
    already_expired_revocations_revoke_nothing(store).await;
    entries_belong_to_their_user(store).await;
    store.ping().await.expect("store answers PING");
}

async fn revoked_tokens_families_and_users_are_reported(store: &dyn TokenStore) {
    let ms = now_ms();
    assert!(!revoked(store, query("u1", "j:t1", Some("f1"), ms)).await);

    store
        .revoke_token("u1", "j:t1", now() + 60)
        .await
        .expect("ok");
    assert!(revoked(store, query("u1", "j:t1", None, ms)).await);
    assert!(revoked(store, query("u1", "j:t1", Some("f1"), ms)).await);
    assert!(!revoked(store, query("u1", "j:other", Some("f1"), ms)).await);

    store
        .revoke_family("u1", "f2", now() + 60)
        .await
        .expect("ok");
    assert!(revoked(store, query("u1", "j:t2", Some("f2"), ms)).await);
    assert!(!revoked(store, query("u1", "j:t2", Some("f3"), ms)).await);

    store
        .revoke_user_before("u3", ms, now() + 60)
        .await
        .expect("ok");
    assert!(revoked(store, query("u3", "j:t3", None, ms)).await);
    assert!(revoked(store, query("u3", "j:t3", Some("f"), ms - 1)).await);
    assert!(
        !revoked(store, query("u3", "j:t3", None, ms + 1)).await,
        "tokens issued after the mark are untouched"
    );
}

async fn a_refresh_token_is_first_used_exactly_once(store: &dyn TokenStore) {
    let exp = now() + 60;
    assert_eq!(
        store.use_refresh("u", "j:r", exp).await,
        Ok(RefreshUse::First)
    );
    assert_eq!(
        store.use_refresh("u", "j:r", exp).await,
        Ok(RefreshUse::Reused)
    );
    assert_eq!(
        store.use_refresh("u", "j:r2", exp).await,
        Ok(RefreshUse::First)
    );
    // Even a token past its expiry is spent once only.
    assert_eq!(
        store.use_refresh("u", "j:old", now() - 5).await,
        Ok(RefreshUse::First)
    );
    assert_eq!(
        store.use_refresh("u", "j:old", now() - 5).await,
        Ok(RefreshUse::Reused)
    );
}

async fn a_not_before_mark_never_moves_back(store: &dyn TokenStore) {
    let ms = now_ms();
    store
        .revoke_user_before("u4", ms + 1000, now() + 60)
        .await
        .expect("ok");
    store
        .revoke_user_before("u4", ms, now() + 60)
        .await
        .expect("ok");
    assert!(
        revoked(store, query("u4", "j:t", None, ms + 500)).await,
        "an older mark written later does not un-revoke tokens"
    );
}

async fn already_expired_revocations_revoke_nothing(store: &dyn TokenStore) {
    let ms = now_ms();
    store
        .revoke_token("u5", "j:gone", now() - 1)
        .await
        .expect("ok");
    store
        .revoke_user_before("u5", ms, now() - 1)
        .await
        .expect("ok");
    assert!(!revoked(store, query("u5", "j:gone", None, ms)).await);
}

async fn entries_belong_to_their_user(store: &dyn TokenStore) {
    let ms = now_ms();
    store
        .revoke_token("u6", "j:shared", now() + 60)
        .await
        .expect("ok");
    store
        .revoke_user_before("u6", ms, now() + 60)
        .await
        .expect("ok");
    assert!(!revoked(store, query("u7", "j:other", None, ms)).await);
    // User ids that try to break out of a hash tag stay distinct users.
    store
        .revoke_user_before("a}b", ms, now() + 60)
        .await
        .expect("ok");
    assert!(!revoked(store, query("a", "j:x", None, ms)).await);
    assert!(revoked(store, query("a}b", "j:x", None, ms)).await);
}

#[tokio::test]
async fn the_memory_store_behaves_like_a_token_store() {
    behaves_like_a_token_store(&MemoryTokenStore::default()).await;
}

#[tokio::test]
async fn the_redis_store_behaves_like_a_token_store() {
    let redis = RedisServer::start().expect("redis-server starts");
    behaves_like_a_token_store(&redis_store(&redis, &prefix())).await;
}

#[tokio::test]
async fn the_redis_store_behaves_like_a_token_store_on_a_cluster() {
    let cluster = RedisCluster::start().expect("cluster starts");
    behaves_like_a_token_store(&cluster_store(&cluster, &prefix())).await;
}

/// Fifty concurrent uses of one refresh token, spread over `stores`: exactly one is first.
async fn one_of_fifty_concurrent_uses_is_first(stores: Vec<Arc<dyn TokenStore>>) {
    let exp = now() + 60;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            tokio::spawn(async move { store.use_refresh("u", "j:contended", exp).await })
        })
        .collect();
    let mut firsts = 0;
    for task in tasks {
        match task.await.expect("task completes").expect("store answers") {
            RefreshUse::First => firsts += 1,
            RefreshUse::Reused => {}
        }
    }
    assert_eq!(firsts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uses_of_a_memory_store_have_one_first() {
    one_of_fifty_concurrent_uses_is_first(vec![Arc::new(MemoryTokenStore::default())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uses_from_three_instances_have_one_first() {
    let redis = RedisServer::start().expect("redis-server starts");
    let prefix = prefix();
    // Three stores, three connections: as three server instances would.
    let stores: Vec<Arc<dyn TokenStore>> = (0..3)
        .map(|_| Arc::new(redis_store(&redis, &prefix)) as Arc<dyn TokenStore>)
        .collect();
    one_of_fifty_concurrent_uses_is_first(stores).await;
}

// ---------------------------------------------------------------------------------------------
// What only the Redis store promises.

/// A plain connection to inspect what the store wrote.
async fn inspector(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

async fn expire_time_ms(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME")
        .arg(key)
        .query_async(conn)
        .await
        .expect("PEXPIRETIME")
}

#[tokio::test]
async fn every_key_expires_with_the_token_it_concerns() {
    // Arrange
    let redis = RedisServer::start().expect("redis-server starts");
    let prefix = prefix();
    let store = redis_store(&redis, &prefix);
    let mut conn = inspector(&redis.url()).await;
    let t = now();

    // Act
    store.revoke_token("u", "j:a", t + 100).await.expect("ok");
    store.revoke_family("u", "fam", t + 200).await.expect("ok");
    store
        .revoke_user_before("u", now_ms(), t + 300)
        .await
        .expect("ok");
    store.use_refresh("u", "j:r", t + 400).await.expect("ok");

    // Assert: each key expires exactly when its token does.
    let expected = [
        (store.token_key("u", "j:a"), t + 100),
        (store.family_key("u", "fam"), t + 200),
        (store.not_before_key("u"), t + 300),
        (store.spent_key("u", "j:r"), t + 400),
    ];
    for (key, exp) in &expected {
        assert_eq!(expire_time_ms(&mut conn, key).await, exp * 1000, "{key}");
    }
    // …and no key without a TTL exists at all.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), expected.len());
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
}

#[tokio::test]
async fn a_later_write_never_shortens_an_entry() {
    let redis = RedisServer::start().expect("redis-server starts");
    let store = redis_store(&redis, &prefix());
    let mut conn = inspector(&redis.url()).await;
    let t = now();

    store.revoke_family("u", "fam", t + 300).await.expect("ok");
    store.revoke_family("u", "fam", t + 100).await.expect("ok");
    store.revoke_family("u", "fam", t - 100).await.expect("ok");
    assert_eq!(
        expire_time_ms(&mut conn, &store.family_key("u", "fam")).await,
        (t + 300) * 1000
    );

    let ms = now_ms();
    store
        .revoke_user_before("u", ms, t + 300)
        .await
        .expect("ok");
    store
        .revoke_user_before("u", ms - 1000, t + 100)
        .await
        .expect("ok");
    let key = store.not_before_key("u");
    let mark: i64 = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(mark, ms);
    assert_eq!(expire_time_ms(&mut conn, &key).await, (t + 300) * 1000);
}

#[tokio::test]
async fn the_keys_of_one_user_share_a_cluster_slot() {
    let cluster = RedisCluster::start().expect("cluster starts");
    let store = cluster_store(&cluster, &prefix());
    let mut conn = inspector(&cluster.urls()[0]).await;
    let mut slots = Vec::new();
    for key in [
        store.token_key("u}1", "j:a"),
        store.family_key("u}1", "fam"),
        store.not_before_key("u}1"),
        store.spent_key("u}1", "j:a"),
    ] {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("CLUSTER KEYSLOT");
        slots.push(slot);
    }
    slots.dedup();
    assert_eq!(slots.len(), 1, "{slots:?}");
}

#[tokio::test]
async fn revocations_by_one_instance_are_seen_by_another() {
    let redis = RedisServer::start().expect("redis-server starts");
    let prefix = prefix();
    let (a, b) = (redis_store(&redis, &prefix), redis_store(&redis, &prefix));
    let ms = now_ms();

    a.revoke_token("u", "j:t", now() + 60).await.expect("ok");
    assert!(revoked(&b, query("u", "j:t", None, ms)).await);
    // Another prefix is another application.
    let other = redis_store(&redis, "other");
    assert!(!revoked(&other, query("u", "j:t", None, ms)).await);
}

// ---------------------------------------------------------------------------------------------
// Outages.

/// Awaits `call` and checks that it failed with a backend error well within `BOUND`.
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    call: impl Future<Output = Result<T, TokenStoreError>>,
) {
    let started = Instant::now();
    let result = tokio::time::timeout(BOUND, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"));
    assert!(
        matches!(result, Err(TokenStoreError::Backend(_))),
        "{what}: {result:?}"
    );
    // The timeout, plus scheduling slack on a loaded two-core machine.
    assert!(
        started.elapsed() < TIMEOUT * 2 + Duration::from_secs(1),
        "{what} took {:?}",
        started.elapsed()
    );
}

async fn every_call_fails_fast(store: &RedisTokenStore) {
    let ms = now_ms();
    fails_fast(
        "is_revoked",
        store.is_revoked(query("u", "j:t", Some("f"), ms)),
    )
    .await;
    fails_fast("revoke_token", store.revoke_token("u", "j:t", now() + 60)).await;
    fails_fast("revoke_family", store.revoke_family("u", "f", now() + 60)).await;
    fails_fast(
        "revoke_user_before",
        store.revoke_user_before("u", ms, now() + 60),
    )
    .await;
    fails_fast("use_refresh", store.use_refresh("u", "j:r", now() + 60)).await;
    fails_fast("ping", store.ping()).await;
}

/// Polls `store` until it answers again, failing the test after `BOUND`.
async fn await_recovery(store: &RedisTokenStore) {
    let deadline = Instant::now() + BOUND;
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "store did not recover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_killed_redis_gives_errors_not_hangs_and_the_store_recovers() {
    // Arrange: a store that has already connected.
    let mut redis = RedisServer::start().expect("redis-server starts");
    let store = redis_store(&redis, &prefix());
    store.ping().await.expect("connected");

    // Act + Assert: down.
    redis.kill();
    every_call_fails_fast(&store).await;

    // Back, empty (no persistence, scripts flushed): the same store works again.
    redis.restart().expect("redis-server restarts");
    await_recovery(&store).await;
    store
        .revoke_token("u", "j:t", now() + 60)
        .await
        .expect("ok");
    assert!(revoked(&store, query("u", "j:t", None, now_ms())).await);
    assert_eq!(
        store.use_refresh("u", "j:r", now() + 60).await,
        Ok(RefreshUse::First)
    );
}

#[tokio::test]
async fn a_frozen_redis_times_out() {
    let redis = RedisServer::start().expect("redis-server starts");
    let store = redis_store(&redis, &prefix());
    store.ping().await.expect("connected");

    redis.pause().expect("SIGSTOP");
    every_call_fails_fast(&store).await;
    redis.resume().expect("SIGCONT");

    await_recovery(&store).await;
    assert!(!revoked(&store, query("u", "j:t", None, now_ms())).await);
}

#[tokio::test]
async fn a_store_built_while_redis_is_down_connects_later() {
    let mut redis = RedisServer::start().expect("redis-server starts");
    redis.kill();
    let store = redis_store(&redis, &prefix());
    fails_fast("is_revoked", store.is_revoked(query("u", "j:t", None, 0))).await;

    redis.restart().expect("redis-server restarts");
    await_recovery(&store).await;
}

// ---------------------------------------------------------------------------------------------
// Through `Auth`: several instances sharing one Redis.

fn auth(store: RedisTokenStore) -> Auth {
    let keys = JwtKeys::new(JwtConfig {
        algorithm: jsonwebtoken::Algorithm::HS256,
        secret: b"a test secret that is long enough for HS256!".to_vec(),
        issuer: None,
        audience: None,
        leeway_seconds: 0,
        legacy_tokens: false,
    })
    .expect("valid keys");
    Auth::new(keys, Arc::new(store), 60, 600)
}

#[tokio::test]
async fn instances_sharing_redis_share_logouts_and_refresh_reuse_detection() {
    let redis = RedisServer::start().expect("redis-server starts");
    let prefix = prefix();
    let (one, two) = (
        auth(redis_store(&redis, &prefix)),
        auth(redis_store(&redis, &prefix)),
    );

    // A refresh token rotated on one instance is spent on the other; the replay revokes the
    // session everywhere.
    let pair = one.issue("alice", "1").expect("issued");
    let rotated = one.rotate(&pair.refresh_token).await.expect("first use");
    assert_eq!(
        two.rotate(&pair.refresh_token).await.err(),
        Some(AuthError::Revoked)
    );
    assert_eq!(
        one.verify(&rotated.access_token, TokenKind::Access)
            .await
            .err(),
        Some(AuthError::Revoked),
        "the replay ended the whole session"
    );

    // Logout on one instance is seen by the other.
    let pair = two.issue("bob", "2").expect("issued");
    let principal = match two
        .authenticate(Some(format!("Bearer {}", pair.access_token).as_bytes()))
        .await
    {
        palisade::auth::AuthOutcome::Authenticated(p) => p,
        other => panic!("not authenticated: {other:?}"),
    };
    two.logout(&principal).await.expect("logged out");
    assert_eq!(
        one.verify(&pair.access_token, TokenKind::Access)
            .await
            .err(),
        Some(AuthError::Revoked)
    );
    assert_eq!(
        one.rotate(&pair.refresh_token).await.err(),
        Some(AuthError::Revoked)
    );

    // "Log out everywhere" on one instance ends every session on the other.
    let pair = one.issue("carol", "3").expect("issued");
    two.logout_all("3").await.expect("logged out everywhere");
    assert_eq!(
        one.verify(&pair.access_token, TokenKind::Access)
            .await
            .err(),
        Some(AuthError::Revoked)
    );
}

#[tokio::test]
async fn verification_fails_closed_while_redis_is_down() {
    let mut redis = RedisServer::start().expect("redis-server starts");
    let auth = auth(redis_store(&redis, &prefix()));
    let pair = auth.issue("alice", "1").expect("issued");
    auth.verify(&pair.access_token, TokenKind::Access)
        .await
        .expect("valid while Redis is up");

    redis.kill();
    let err = auth
        .verify(&pair.access_token, TokenKind::Access)
        .await
        .expect_err("an unchecked token is refused");
    assert!(err.is_unavailable(), "{err:?}");
}
