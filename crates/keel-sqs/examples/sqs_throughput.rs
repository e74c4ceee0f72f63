//! The router on SQS next to the AWS SDK's own receive loop, in one run: a fresh topic gets
//! `KEEL_BENCH_EVENTS` (default 500) 100-byte events over 10,000 keys
//! (`keel_runtime::throughput::publish`), fanned out to three groups' queues subscribed
//! beforehand; then one SDK loop (receive 10 with long polling, delete them in one batch; no
//! Keel) drains the first queue, then a router with a no-op handler — one member, so one
//! receiver, as the SDK loop — handles the second, then a router with the SQLite inbox
//! (`keel_sql::conformance::throughput`) the third. Prints two lines: events per second of
//! each and each router's ratio to the SDK loop.
//!
//! Against moto (`KEEL_TEST_SQS_URL`, `scripts/services env`) this measures a Python mock of
//! the API, not SQS: the numbers say what Keel adds over the SDK on the same server, not
//! what AWS would do.
//!
//! `cargo run --release -p keel-sqs --example sqs_throughput`.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use keel_core::GroupPolicy;
use keel_runtime::throughput;
use keel_sqs::{SqsConfig, SqsTransport};

/// The client line's name for the SDK loop.
const CLIENT: &str = "SDK loop (moto)";

#[tokio::main]
async fn main() {
    let url = std::env::var("KEEL_TEST_SQS_URL").expect("KEEL_TEST_SQS_URL");
    // moto handles tens of events a second: fewer than the other engines' default.
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
    for group in ["sdk", "router", "inbox"] {
        sqs.ensure_group("bench", group).await.expect("group");
    }
    let publish = throughput::publish(&sqs.publisher(), "bench", events).await;
    let raw = raw_consume(&sqs, events).await;
    // A session longer than the benchmark's default: moto's slow calls must not cost the
    // one member its lease.
    let policy = GroupPolicy {
        session_timeout: Duration::from_secs(30),
        ..GroupPolicy::default()
    };
    let router =
        throughput::router_no_op(sqs.transport(), "bench", "router", policy.clone(), events).await;
    throughput::report(events, publish, CLIENT, raw, router);
    let inbox = keel_sql::conformance::throughput::router_inbox(
        sqs.transport(),
        "bench",
        "inbox",
        policy,
        events,
    )
    .await;
    throughput::report_inbox(events, CLIENT, raw, inbox);
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
