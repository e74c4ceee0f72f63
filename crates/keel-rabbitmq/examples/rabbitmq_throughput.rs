//! The router on RabbitMQ next to lapin's own stream consumer, in one run: a fresh topic of
//! 4 partitions gets `KEEL_BENCH_EVENTS` (default 20,000) 100-byte events over 10,000 keys,
//! then lapin reads every partition stream from the start (no Keel: the engine's client at
//! full speed), then a router with a no-op handler handles them all
//! (`keel_runtime::throughput`), then a router of another group with the SQLite inbox
//! (`keel_sql::conformance::throughput`). Prints two lines: events per second of each and
//! each router's ratio to the client.
//!
//! `cargo run --release -p keel-rabbitmq --example rabbitmq_throughput` with
//! `KEEL_TEST_RABBITMQ_URL` set (`scripts/services env`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use keel_core::AdminTransport;
use keel_rabbitmq::{RabbitConfig, RabbitTransport};
use keel_runtime::throughput;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};

const PARTITIONS: u32 = 4;

#[tokio::main]
async fn main() {
    let url = std::env::var("KEEL_TEST_RABBITMQ_URL").expect("KEEL_TEST_RABBITMQ_URL");
    let events = throughput::events();
    let prefix = format!("bench-{}.", std::process::id());
    let rabbit =
        RabbitTransport::connect(&RabbitConfig::new(&url).with_prefix(&prefix)).expect("transport");
    rabbit
        .admin()
        .create_topic("bench", PARTITIONS)
        .await
        .expect("topic");
    let publish = throughput::publish(&rabbit.publisher(), "bench", events).await;
    let raw = raw_consume(&url, &prefix, events).await;
    let router = throughput::router_no_op(
        rabbit.transport(),
        "bench",
        "bench",
        throughput::group_policy(),
        events,
    )
    .await;
    throughput::report(events, publish, "lapin", raw, router);
    let inbox = keel_sql::conformance::throughput::router_inbox(
        rabbit.transport(),
        "bench",
        "bench-inbox",
        throughput::group_policy(),
        events,
    )
    .await;
    throughput::report_inbox(events, "lapin", raw, inbox);
}

/// lapin alone: one consumer per partition stream from the first offset, acknowledging
/// every 100 deliveries, until every event arrived.
async fn raw_consume(url: &str, prefix: &str, events: u64) -> Duration {
    let started = Instant::now();
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect");
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for partition in 0..PARTITIONS {
        let channel = connection.create_channel().await.expect("channel");
        channel
            .basic_qos(1000, BasicQosOptions::default())
            .await
            .expect("qos");
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-stream-offset".into(),
            AMQPValue::LongString("first".into()),
        );
        let stream = format!("{prefix}bench.{partition}");
        let mut consumer = channel
            .basic_consume(
                stream.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                arguments,
            )
            .await
            .expect("consume");
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = 0u64;
            while count.load(Ordering::Relaxed) < events {
                let Ok(Some(Ok(delivery))) =
                    tokio::time::timeout(Duration::from_millis(100), consumer.next()).await
                else {
                    continue;
                };
                seen += 1;
                count.fetch_add(1, Ordering::Relaxed);
                if seen.is_multiple_of(100) {
                    let multiple = BasicAckOptions { multiple: true };
                    delivery.acker.ack(multiple).await.expect("ack");
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("consumer task");
    }
    started.elapsed()
}
