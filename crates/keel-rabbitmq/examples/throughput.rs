//! The router on RabbitMQ next to lapin's own stream consumer, in one run: a fresh topic of
//! 4 partitions gets `KEEL_BENCH_EVENTS` (default 20,000) 100-byte events over 10,000 keys,
//! then lapin reads every partition stream from the start (no Keel: the engine's client at
//! full speed), then a router with a no-op handler handles them all. Prints events per
//! second for both and their ratio.
//!
//! `cargo run --release -p keel-rabbitmq --example throughput` with `KEEL_TEST_RABBITMQ_URL`
//! set (`scripts/services env`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use keel_core::{AdminTransport, Event, GroupPolicy};
use keel_rabbitmq::{RabbitConfig, RabbitTransport};
use keel_runtime::{Handler, Route, Router};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};

const PARTITIONS: u32 = 4;
const KEYS: u64 = 10_000;
const PUBLISHERS: u64 = 32;

#[tokio::main]
async fn main() {
    let url = std::env::var("KEEL_TEST_RABBITMQ_URL").expect("KEEL_TEST_RABBITMQ_URL");
    let events: u64 = std::env::var("KEEL_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let prefix = format!("bench-{}.", std::process::id());
    let rabbit =
        RabbitTransport::connect(&RabbitConfig::new(&url).with_prefix(&prefix)).expect("transport");
    rabbit
        .admin()
        .create_topic("bench", PARTITIONS)
        .await
        .expect("topic");
    publish(&rabbit, events).await;
    let raw = raw_consume(&url, &prefix, events).await;
    let router = router_consume(&rabbit, events).await;
    let rate = |elapsed: Duration| events as f64 / elapsed.as_secs_f64();
    println!(
        "{events} events of 100 B: lapin stream consumers {:.0}/s, router (no-op handler) {:.0}/s, router/lapin {:.0}%",
        rate(raw),
        rate(router),
        100.0 * raw.as_secs_f64() / router.as_secs_f64()
    );
}

async fn publish(rabbit: &RabbitTransport, events: u64) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|task| {
            let publisher = rabbit.publisher();
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

/// The router with a no-op handler, from its start until every event was handled.
async fn router_consume(rabbit: &RabbitTransport, events: u64) -> Duration {
    let started = Instant::now();
    let handled = Arc::new(AtomicU64::new(0));
    let counter = handled.clone();
    let handler = Handler::raw("noop", move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok(()) }
    });
    let policy = GroupPolicy {
        session_timeout: Duration::from_secs(3),
        heartbeat_interval: Duration::from_millis(100),
        ..GroupPolicy::default()
    };
    let route = Route::new("bench", "bench", handler).with_group_policy(policy);
    let handle = Router::new(rabbit.transport())
        .route(route)
        .start()
        .expect("router");
    while handled.load(Ordering::Relaxed) < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    handle.shutdown().await;
    elapsed
}
