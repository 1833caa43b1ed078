//! The memory store and the Redis script give identical decisions for the same traffic on a
//! fake clock (SPEC §4: "Both give the same answers for the same traffic").

use std::time::Duration;

use palisade::rate_limit::{
    Algorithm, Clock, FakeClock, MemoryStore, Quota, Rate, RedisStore, Store, TimeSource, TimeUnit,
};
use palisade_test_support::RedisServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[derive(Debug, Clone)]
struct Scenario {
    algorithm: Algorithm,
    burst: Option<u64>,
    rates: Vec<(u64, u64, TimeUnit)>,
    start: u64,
    /// (microseconds to advance before the request, client)
    steps: Vec<(u64, u8)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let rate = (
        1u64..8,
        1u64..4,
        prop::sample::select(vec![TimeUnit::Second, TimeUnit::Minute]),
    );
    let step = (
        prop_oneof![
            3 => Just(0u64),
            3 => 0u64..400_000,
            1 => 0u64..5_000_000,
            1 => 0u64..200_000_000,
        ],
        0u8..3,
    );
    (
        prop::sample::select(vec![Algorithm::Gcra, Algorithm::FixedWindow]),
        prop::option::of(1u64..10),
        prop::collection::vec(rate, 1..4),
        1_600_000_000_000_000u64..1_900_000_000_000_000,
        prop::collection::vec(step, 1..60),
    )
        .prop_map(|(algorithm, burst, rates, start, steps)| Scenario {
            algorithm,
            burst,
            rates,
            start,
            steps,
        })
}

#[test]
fn memory_and_redis_stores_decide_identically_on_a_fake_clock() {
    let redis = RedisServer::start().expect("redis-server starts");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = TestRunner::new(Config {
        cases: 128,
        ..Config::default()
    });
    let url = redis.url();
    let result = runner.run(&scenario(), |s| {
        rt.block_on(async {
            let quotas: Vec<Quota> = s
                .rates
                .iter()
                .map(|&(count, multiple, unit)| {
                    let q =
                        Quota::new(Rate::new(count, multiple, unit).expect("rate"), s.algorithm);
                    match s.burst {
                        Some(b) => q.with_burst(b),
                        None => q,
                    }
                })
                .collect();
            let memory = MemoryStore::with_capacity(1_000);
            let redis = RedisStore::builder(url.as_str())
                .key_prefix(format!("eq:{}", uuid::Uuid::new_v4().simple()))
                .time_source(TimeSource::Caller)
                .timeout(Duration::from_secs(5))
                .build()
                .expect("valid");
            let clock = FakeClock::new(s.start);
            for (i, &(advance, client)) in s.steps.iter().enumerate() {
                clock.advance(Duration::from_micros(advance));
                let key = format!("p:ip:192.0.2.{client}");
                let m = memory
                    .check(&key, &quotas, clock.now())
                    .await
                    .expect("memory");
                let r = redis
                    .check(&key, &quotas, clock.now())
                    .await
                    .expect("redis");
                prop_assert_eq!(m, r, "step {}", i);
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
