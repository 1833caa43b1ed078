//! One rate-limit decision in each store, timed, beside `redis-benchmark` running the same
//! script (EVALSHA, same keys and arguments) against the same Redis in the same run (SPEC §8).
//!
//! Run: `cargo run --release -p palisade-bench --bin rate-limit-bench [-- <redis decisions>]`

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade::rate_limit::{Algorithm, Clock, MemoryStore, Quota, RedisStore, Store, SystemClock};
use palisade_test_support::RedisServer;

const KEY: &str = "bench:ip:192.0.2.1";
const CONCURRENCY: usize = 50;

fn quota() -> Vec<Quota> {
    // A limit that is never reached, so every decision writes (the expensive path).
    let rate = "1000000/minute".parse().expect("valid rate");
    vec![Quota::new(rate, Algorithm::Gcra)]
}

fn per_op(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_secs_f64() * 1e6 / n as f64
}

/// Runs `redis-benchmark` with `clients` connections and returns requests per second.
fn redis_benchmark(port: u16, n: usize, clients: usize, args: &[String]) -> Option<f64> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-n", &n.to_string(), "-c", &clients.to_string(), "-q"])
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "EVALSHA …: 41322.31 requests per second, p50=0.023 msec" (with \r progress lines).
    let line = text.rsplit('\r').next().unwrap_or(&text).to_owned();
    let before = line.split(" requests per second").next()?;
    before.rsplit(": ").next()?.trim().parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n_redis: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let n_memory = n_redis * 20;
    let quotas = quota();

    // Memory store.
    let memory = MemoryStore::new();
    let start = Instant::now();
    for _ in 0..n_memory {
        let d = memory.check(KEY, &quotas, SystemClock.now()).await?;
        std::hint::black_box(d);
    }
    let memory_us = per_op(start.elapsed(), n_memory);

    // Redis store, one decision at a time (latency) and CONCURRENCY in flight (throughput).
    let redis = RedisServer::start()?;
    let store = Arc::new(
        RedisStore::builder(redis.url())
            .key_prefix("bench")
            .timeout(Duration::from_secs(5))
            .build()?,
    );
    store.check(KEY, &quotas, SystemClock.now()).await?; // connect, load the script
    let start = Instant::now();
    for _ in 0..n_redis {
        store.check(KEY, &quotas, SystemClock.now()).await?;
    }
    let redis_seq = start.elapsed();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        let store = Arc::clone(&store);
        let quotas = quotas.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..n_redis / CONCURRENCY {
                store.check(KEY, &quotas, SystemClock.now()).await?;
            }
            Ok::<(), palisade::rate_limit::StoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let redis_par = start.elapsed();
    let n_par = (n_redis / CONCURRENCY) * CONCURRENCY;

    // redis-benchmark: the same EVALSHA, keys and arguments.
    let (keys, args) = store.script_args(KEY, &quotas, SystemClock.now());
    let mut cmd = vec![
        "EVALSHA".to_owned(),
        RedisStore::script_sha().to_owned(),
        keys.len().to_string(),
    ];
    cmd.extend(keys);
    cmd.extend(args);
    let rb_seq = redis_benchmark(redis.port(), n_redis, 1, &cmd);
    let rb_par = redis_benchmark(redis.port(), n_redis, CONCURRENCY, &cmd);

    println!(
        "rate-limit decision, GCRA, one key, {} (release build recommended)",
        quotas[0].rate()
    );
    println!("{:<44} {:>12} {:>14}", "", "µs/decision", "decisions/s");
    println!(
        "{:<44} {:>12.3} {:>14.0}",
        format!("MemoryStore ({n_memory} sequential)"),
        memory_us,
        1e6 / memory_us
    );
    let row = |label: String, us: f64| println!("{label:<44} {us:>12.3} {:>14.0}", 1e6 / us);
    let seq_us = per_op(redis_seq, n_redis);
    let par_us = per_op(redis_par, n_par);
    row(format!("RedisStore ({n_redis} sequential)"), seq_us);
    match rb_seq {
        Some(rps) => {
            row(
                format!("redis-benchmark EVALSHA (-c 1, -n {n_redis})"),
                1e6 / rps,
            );
            println!(
                "  ratio RedisStore / redis-benchmark (µs per decision): {:.2}x",
                seq_us * rps / 1e6
            );
        }
        None => println!("  redis-benchmark (-c 1) did not run"),
    }
    row(
        format!("RedisStore ({CONCURRENCY} in flight, {n_par})"),
        par_us,
    );
    match rb_par {
        Some(rps) => {
            row(
                format!("redis-benchmark EVALSHA (-c {CONCURRENCY}, -n {n_redis})"),
                1e6 / rps,
            );
            println!(
                "  ratio RedisStore / redis-benchmark (µs per decision): {:.2}x",
                par_us * rps / 1e6
            );
        }
        None => println!("  redis-benchmark (-c {CONCURRENCY}) did not run"),
    }
    Ok(())
}
