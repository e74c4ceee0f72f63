//! A transactional route next to the same route without transactions, in one run (issue
//! 18), on `keel serve`'s listener started in this process and — when
//! `KEEL_TEST_KAFKA_BROKERS` names it (`scripts/services env`) — on Apache Kafka: a fresh
//! topic of 4 partitions gets `KEEL_BENCH_EVENTS` (default 20,000) 100-byte events over
//! 10,000 keys; then a plain route and a transactional route (`Route::with_transactions`),
//! each its own group, each handler publishing one output event per input to a topic of its
//! own, are timed from their start (group join included) until every input was handled.
//! Prints one line per broker: both rates and their ratio.
//!
//! `cargo run --release -p keel-kafka-client --example kafka_transactional_throughput`

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_core::{Event, GroupPolicy};
use keel_kafka_client::{KafkaConfig, KafkaTransport};
use keel_runtime::{Handler, Route, throughput};

const PARTITIONS: u32 = 4;

/// The shortest session Apache Kafka accepts by default (`group.min.session.timeout.ms`).
fn group_policy() -> GroupPolicy {
    GroupPolicy {
        session_timeout: Duration::from_secs(6),
        ..throughput::group_policy()
    }
}

/// A route on `input` whose handler publishes one output per input to `output` and counts.
fn forwarding(input: &str, group: &str, output: String, handled: &Arc<AtomicU64>) -> Route {
    let counter = handled.clone();
    let handler = Handler::raw("forward", move |event: Event, ctx| {
        let (output, counter) = (output.clone(), counter.clone());
        async move {
            let out = Event::new("/bench", "bench.forwarded").with_data(
                "application/octet-stream",
                event.data.clone().unwrap_or_default(),
            );
            let out = match &event.partitionkey {
                Some(key) => out.with_partition_key(key.clone()),
                None => out,
            };
            ctx.publish(&output, out).await?;
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    });
    Route::new(input, group, handler).with_group_policy(group_policy())
}

#[tokio::main]
async fn main() {
    let serve = support::Serve::start().await;
    measure("keel serve", &serve.bootstrap()).await;
    if let Ok(brokers) = std::env::var("KEEL_TEST_KAFKA_BROKERS") {
        measure("Apache Kafka", &brokers).await;
    }
}

/// Times the plain and the transactional route on the cluster at `brokers`.
async fn measure(label: &str, brokers: &str) {
    let events = throughput::events();
    // Topics outlive the run on a real cluster: named after the process and the time.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let name = |what: &str| format!("bench-txn-{what}-{}-{nanos}", std::process::id());
    let kafka = KafkaTransport::connect(&KafkaConfig::new(brokers)).expect("transport");
    let input = name("in");
    for topic in [&input, &name("plain-out"), &name("txn-out")] {
        kafka.ensure_topic(topic, PARTITIONS).await.expect("topic");
    }
    throughput::publish(&kafka.publisher(), &input, events).await;
    let handled = Arc::new(AtomicU64::new(0));
    let plain = forwarding(&input, &name("plain"), name("plain-out"), &handled);
    let plain = throughput::timed_router(kafka.transport(), plain, &handled, events).await;
    let handled = Arc::new(AtomicU64::new(0));
    let txn = forwarding(&input, &name("txn"), name("txn-out"), &handled).with_transactions();
    let txn = throughput::timed_router(kafka.transport(), txn, &handled, events).await;
    let rate = |elapsed: Duration| events as f64 / elapsed.as_secs_f64();
    println!(
        "{label}: {events} events of 100 B, one output each: plain route {:.0}/s, transactional route {:.0}/s, transactional/plain {:.0}%",
        rate(plain),
        rate(txn),
        100.0 * plain.as_secs_f64() / txn.as_secs_f64()
    );
}
