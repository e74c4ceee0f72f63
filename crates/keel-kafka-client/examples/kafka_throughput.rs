//! Measures the Kafka transport end to end against `keel serve`'s listener started in this
//! process, next to the embedded bus on the same machine, with the same events:
//!
//! - publish: `keel_runtime::Publisher` on Kafka (`KafkaPublisher::publisher()`), up to
//!   `in_flight` publishes awaiting their acknowledgement at once (acks=all, idempotent);
//! - consume: one `KafkaMember` of a fresh group, one task per assigned partition fetching
//!   batches, decoding every record as a CloudEvent and committing after every batch;
//! - kafka router: a `Router` on `KafkaTransport` (a new group) with a raw handler that
//!   counts: the whole middleware chain per event, partition workers, commits;
//! - embedded: the same publisher API on an `EmbeddedBus`, then the same `Router` route.
//!
//! Usage: `kafka_throughput [events] [partitions] [in_flight]` (defaults 100000 4 1000).
//! Prints one line per phase: events, seconds, events/s; consumes are timed from their first
//! record (a group join before it is printed on its own line).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use keel_core::Event;
use keel_embedded::EmbeddedBus;
use keel_kafka_client::{
    KafkaConfig, KafkaMember, KafkaPublisher, KafkaTransport, MemberEvent, MemberOptions,
};
use keel_log::{Log, TopicConfig};
use keel_runtime::{Handler, Publisher, Route, Router};
use tokio::task::JoinSet;

fn event(n: u64) -> Event {
    Event::new("/bench", "bench.event")
        .with_partition_key(format!("key-{}", n % 1024))
        .with_data("application/octet-stream", vec![b'x'; 100])
}

/// Publishes `events` events through `publisher`, `in_flight` at a time; returns seconds.
async fn publish_all(publisher: &Publisher, events: u64, in_flight: u64) -> f64 {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for n in 0..events {
        if tasks.len() as u64 >= in_flight {
            tasks.join_next().await.unwrap().unwrap();
        }
        let publisher = publisher.clone();
        tasks.spawn(async move {
            publisher.publish("bench", event(n)).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    started.elapsed().as_secs_f64()
}

/// Consumes every event of the topic with one group member; returns the seconds until the
/// first record arrived (joining the group) and from then to the last.
async fn consume_kafka(bootstrap: &str, events: u64) -> (f64, f64) {
    let started = Instant::now();
    let first: Arc<OnceLock<Instant>> = Arc::default();
    let config = KafkaConfig::new(bootstrap);
    let mut member =
        KafkaMember::join(&config, "bench", "bench", &MemberOptions::default()).unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    while handled.load(Ordering::Relaxed) < events {
        let next = tokio::time::timeout(Duration::from_millis(50), member.next()).await;
        match next {
            Ok(Some(MemberEvent::Assigned(partition))) => {
                let handled = handled.clone();
                let first = first.clone();
                workers.spawn(async move {
                    while handled.load(Ordering::Relaxed) < events {
                        let records = partition.fetch(500, Duration::from_millis(50)).await;
                        let Some(last) = records.last().map(|r| r.offset) else {
                            continue;
                        };
                        first.get_or_init(Instant::now);
                        for record in &records {
                            let headers = record
                                .headers
                                .iter()
                                .map(|h| (h.key.as_str(), h.value.as_deref()));
                            Event::from_record(
                                record.key.as_deref(),
                                headers,
                                record.value.as_deref(),
                            )
                            .expect("a CloudEvent");
                        }
                        partition.commit(last + 1).await.unwrap();
                        handled.fetch_add(records.len() as u64, Ordering::Relaxed);
                    }
                });
            }
            Ok(Some(MemberEvent::Revoked(revocation))) => revocation.done(),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    let first = *first.get().expect("records arrived");
    workers.abort_all();
    (
        (first - started).as_secs_f64(),
        first.elapsed().as_secs_f64(),
    )
}

/// Runs `router` with one route of a counting raw handler on the topic until it handled
/// `events` events; returns the seconds until the first was handled (joining the group) and
/// from then to the last.
async fn route_all(router: Router, group: &str, events: u64) -> (f64, f64) {
    let handled = Arc::new(AtomicU64::new(0));
    let first: Arc<OnceLock<Instant>> = Arc::default();
    let (counter, first_seen) = (handled.clone(), first.clone());
    let handler = Handler::raw("count", move |_event, _ctx| {
        first_seen.get_or_init(Instant::now);
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok(()) }
    });
    let started = Instant::now();
    let router = router
        .route(Route::new("bench", group, handler))
        .start()
        .unwrap();
    while handled.load(Ordering::Relaxed) < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = *first.get().expect("events were handled");
    let consume = first.elapsed().as_secs_f64();
    router.shutdown().await;
    ((first - started).as_secs_f64(), consume)
}

/// The embedded bus: publish, then the router; returns seconds of (publish, consume).
async fn embedded(events: u64, partitions: u32, in_flight: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    log.create_topic("bench", TopicConfig::new(partitions))
        .unwrap();
    let bus = EmbeddedBus::new(log);
    let publish = publish_all(&bus.publisher(), events, in_flight).await;
    let (_, consume) = route_all(Router::new(&bus), "bench", events).await;
    (publish, consume)
}

fn report(phase: &str, events: u64, seconds: f64) {
    println!(
        "{phase:<28} {events:>9} events {seconds:>8.2} s {:>10.0} events/s",
        events as f64 / seconds
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map_or(100_000, |a| a.parse().expect("events"));
    let partitions: u32 = args.next().map_or(4, |a| a.parse().expect("partitions"));
    let in_flight: u64 = args.next().map_or(1000, |a| a.parse().expect("in_flight"));

    let serve = support::Serve::start().await;
    serve.create_topic("bench", partitions);
    let kafka = KafkaPublisher::new(&KafkaConfig::new(serve.bootstrap())).unwrap();
    let publish = publish_all(&kafka.publisher(), events, in_flight).await;
    report("kafka publish", events, publish);
    let (join, consume) = consume_kafka(&serve.bootstrap(), events).await;
    println!("kafka group join             {join:>25.2} s until the first record");
    report("kafka consume+decode+commit", events, consume);
    let transport = KafkaTransport::connect(&KafkaConfig::new(serve.bootstrap())).unwrap();
    let router = Router::new(&transport);
    let (join, consume) = route_all(router, "bench-router", events).await;
    println!("kafka router group join      {join:>25.2} s until the first event");
    report("kafka router handled", events, consume);

    let (publish, consume) = embedded(events, partitions, in_flight).await;
    report("embedded publish", events, publish);
    report("embedded router handled", events, consume);
}
