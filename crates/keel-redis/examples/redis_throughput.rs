//! The router on Redis Streams next to the redis crate's own `XREADGROUP` loop, in one run:
//! a fresh topic of 4 partitions gets `KEEL_BENCH_EVENTS` (default 20,000) 100-byte events
//! over 10,000 keys, then one consumer group reads every partition stream from the start
//! with `XREADGROUP` and `XACK`s each batch (no Keel: the engine's client at full speed),
//! then a router with a no-op handler handles them all (`keel_runtime::throughput`), then a
//! router of another group with the SQLite inbox (`keel_sql::conformance::throughput`).
//! Prints two lines: events per second of each and each router's ratio to the client. The
//! run's streams are deleted at the end.
//!
//! `cargo run --release -p keel-redis --example redis_throughput` with `KEEL_TEST_REDIS_URL`
//! set (`scripts/services env`).

use std::time::{Duration, Instant};

use keel_core::AdminTransport;
use keel_redis::{RedisConfig, RedisTransport};
use keel_runtime::throughput;
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};

const PARTITIONS: u32 = 4;
/// Entries one `XREADGROUP` asks for.
const BATCH: usize = 500;

#[tokio::main]
async fn main() {
    let url = std::env::var("KEEL_TEST_REDIS_URL").expect("KEEL_TEST_REDIS_URL");
    let events = throughput::events();
    // Streams outlive the run: a fresh namespace, never a reused process id's.
    let namespace = format!("bench{}", uuid::Uuid::now_v7().simple());
    let config = RedisConfig::new(&url)
        .with_namespace(&namespace)
        .expect("namespace");
    let redis = RedisTransport::connect(&config).await.expect("transport");
    redis
        .create_topic("bench", PARTITIONS)
        .await
        .expect("topic");
    let publish = throughput::publish(&redis.publisher(), "bench", events).await;
    let raw = raw_consume(&url, &namespace, events).await;
    let router = throughput::router_no_op(
        redis.transport(),
        "bench",
        "bench",
        throughput::group_policy(),
        events,
    )
    .await;
    throughput::report(events, publish, "redis XREADGROUP", raw, router);
    let inbox = keel_sql::conformance::throughput::router_inbox(
        redis.transport(),
        "bench",
        "bench-inbox",
        throughput::group_policy(),
        events,
    )
    .await;
    throughput::report_inbox(events, "redis XREADGROUP", raw, inbox);
    // The run's streams (and the groups in them) would otherwise stay in the shared server:
    // the topic's and the routers' redelivery topic's.
    for topic in ["bench", "bench.retry"] {
        if let Err(error) = redis.delete_topic(topic).await {
            eprintln!("not deleted: {topic} under {namespace} ({error})");
        }
    }
}

/// The redis crate alone: a consumer group per partition stream from its first entry, one
/// task per partition reading `BATCH` entries at a time and acknowledging them, until every
/// event arrived.
async fn raw_consume(url: &str, namespace: &str, events: u64) -> Duration {
    let config = raw_connection_config();
    let started = Instant::now();
    let client = redis::Client::open(url).expect("client");
    let mut tasks = Vec::new();
    for partition in 0..PARTITIONS {
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect");
        let stream = format!("{namespace}:stream:bench:{partition}");
        tasks.push(tokio::spawn(async move {
            let length: u64 = connection.xlen(&stream).await.expect("XLEN");
            let _: () = connection
                .xgroup_create(&stream, "raw", "0")
                .await
                .expect("XGROUP CREATE");
            let options = StreamReadOptions::default()
                .group("raw", "reader")
                .count(BATCH);
            let mut seen = 0;
            while seen < length {
                let reply: StreamReadReply = connection
                    .xread_options(&[&stream], &[">"], &options)
                    .await
                    .expect("XREADGROUP");
                let ids: Vec<String> = reply
                    .keys
                    .into_iter()
                    .flat_map(|key| key.ids.into_iter().map(|entry| entry.id))
                    .collect();
                seen += ids.len() as u64;
                if !ids.is_empty() {
                    let _: u64 = connection.xack(&stream, "raw", &ids).await.expect("XACK");
                }
            }
            seen
        }));
    }
    let mut seen = 0;
    for task in tasks {
        seen += task.await.expect("reader task");
    }
    assert_eq!(seen, events, "every event read");
    started.elapsed()
}

/// The client's connections: without a response timeout (the crate's default is 500 ms), as
/// under a profiler such as callgrind a 500-entry read takes longer and the run must not
/// fail for it. Never inlined: its call marks the start of the client's half for callgrind's
/// `--dump-before` (BENCHMARKS.md, "Per-event instructions on Redis and Kafka").
#[inline(never)]
fn raw_connection_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new().set_response_timeout(None)
}
