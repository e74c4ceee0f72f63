//! The router on SQS next to the AWS SDK's own receive loop, in one run: a fresh topic gets
//! `KEEL_BENCH_EVENTS` (default 500) 100-byte events over 10,000 keys, fanned out to two
//! groups' queues subscribed beforehand; then one SDK loop (receive 10 with long polling,
//! delete them in one batch; no Keel) drains the first queue, then a router with a no-op
//! handler — one member, so one receiver, as the SDK loop — handles the second. Prints
//! events per second for both and their ratio.
//!
//! Against moto (`KEEL_TEST_SQS_URL`, `scripts/services env`) this measures a Python mock of
//! the API, not SQS: the numbers say what Keel adds over the SDK on the same server, not
//! what AWS would do.
//!
//! `cargo run --release -p keel-sqs --example sqs_throughput`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use keel_core::{Event, GroupPolicy};
use keel_runtime::{Handler, Route, Router};
use keel_sqs::{SqsConfig, SqsTransport};

const KEYS: u64 = 10_000;
const PUBLISHERS: u64 = 32;

#[tokio::main]
async fn main() {
    let url = std::env::var("KEEL_TEST_SQS_URL").expect("KEEL_TEST_SQS_URL");
    let events: u64 = std::env::var("KEEL_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let namespace = format!("bench{}", std::process::id());
    let config = SqsConfig::local(url)
        .with_namespace(&namespace)
        .expect("namespace");
    let sqs = SqsTransport::connect(&config).await.expect("transport");
    sqs.ensure_topic("bench", 4).await.expect("topic");
    for group in ["sdk", "router"] {
        sqs.ensure_group("bench", group).await.expect("group");
    }
    publish(&sqs, events).await;
    let raw = raw_consume(&sqs, events).await;
    let router = router_consume(&sqs, events).await;
    let rate = |elapsed: Duration| events as f64 / elapsed.as_secs_f64();
    println!(
        "{events} events of 100 B on moto: SDK receive/delete loop {:.0}/s, router (no-op handler) {:.0}/s, router/SDK {:.0}%",
        rate(raw),
        rate(router),
        100.0 * raw.as_secs_f64() / router.as_secs_f64()
    );
}

async fn publish(sqs: &SqsTransport, events: u64) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|task| {
            let publisher = sqs.publisher();
            tokio::spawn(async move {
                for n in (task..events).step_by(PUBLISHERS as usize) {
                    let event = Event::new("/bench", "bench.step")
                        .with_partition_key(format!("key-{}", n % KEYS))
                        .with_data("application/octet-stream", vec![b'x'; 100]);
                    publisher.publish("bench", event).await.expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("publisher task");
    }
    eprintln!("published {events} in {:?}", started.elapsed());
}

/// The SDK alone: receive up to 10 messages (long polling), delete them in one batch, until
/// every event arrived.
async fn raw_consume(sqs: &SqsTransport, events: u64) -> Duration {
    let queue = sqs.queue_url("bench", "sdk").await.expect("queue");
    let client = sqs.sqs_client();
    let started = Instant::now();
    let mut seen = 0u64;
    while seen < events {
        let received = client
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if received.messages().is_empty() {
            continue;
        }
        seen += received.messages().len() as u64;
        let entries = received.messages().iter().enumerate().map(|(n, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .receipt_handle(m.receipt_handle().expect("receipt"))
                .build()
                .expect("entry")
        });
        client
            .delete_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .expect("delete");
    }
    started.elapsed()
}

/// The router with a no-op handler, from its start until every event was handled.
async fn router_consume(sqs: &SqsTransport, events: u64) -> Duration {
    let started = Instant::now();
    let handled = Arc::new(AtomicU64::new(0));
    let counter = handled.clone();
    let handler = Handler::raw("noop", move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok(()) }
    });
    let policy = GroupPolicy {
        session_timeout: Duration::from_secs(30),
        ..GroupPolicy::default()
    };
    let route = Route::new("bench", "router", handler).with_group_policy(policy);
    let handle = Router::new(sqs).route(route).start().expect("router");
    while handled.load(Ordering::Relaxed) < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    handle.shutdown().await;
    elapsed
}
