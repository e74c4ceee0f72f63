//! Measures the router on three transports in one run, with the same events: `keel serve`'s
//! listener started in this process, the embedded bus, and — when `KEEL_BENCH_KAFKA` names
//! its bootstrap servers — a real Apache Kafka cluster:
//!
//! - publish: `keel_runtime::Publisher` on the transport, up to `in_flight` publishes
//!   awaiting their acknowledgement at once (on Kafka: acks=all, idempotent);
//! - consume (Kafka only): one `KafkaMember` of a fresh group, one task per assigned
//!   partition fetching batches, decoding every record as a CloudEvent and committing after
//!   every batch — the transport alone;
//! - router handled: a `Router` on the transport (a new group) with a raw handler that
//!   counts: the whole middleware chain per event, partition workers, commits;
//! - latency: a router handling events published at a steady `rate` per second for
//!   `seconds`, each carrying its send time; end-to-end latency (publish call → handler)
//!   p50, p99 and max.
//!
//! Usage: `[KEEL_BENCH_KAFKA=host:port] kafka_throughput [events] [partitions] [in_flight]
//! [rate] [seconds]` (defaults 100000 4 1000 1000 10). Prints one line per phase; consumes
//! are timed from their first record (a group join before it is printed on its own line).
//! Every phase uses a topic of its own (named after the process and the time on Apache
//! Kafka, which outlives the run).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_core::Event;
use keel_embedded::EmbeddedBus;
use keel_kafka_client::{KafkaConfig, KafkaMember, KafkaTransport, MemberEvent, MemberOptions};
use keel_log::{Log, TopicConfig};
use keel_runtime::{Handler, Publisher, Route, Router, Transport};
use tokio::task::JoinSet;

fn event(n: u64) -> Event {
    Event::new("/bench", "bench.event")
        .with_partition_key(format!("key-{}", n % 1024))
        .with_data("application/octet-stream", vec![b'x'; 100])
}

/// Publishes `events` events to `topic` through `publisher`, `in_flight` at a time; returns
/// seconds.
async fn publish_all(publisher: &Publisher, topic: &str, events: u64, in_flight: u64) -> f64 {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for n in 0..events {
        if tasks.len() as u64 >= in_flight {
            tasks.join_next().await.unwrap().unwrap();
        }
        let (publisher, topic) = (publisher.clone(), topic.to_string());
        tasks.spawn(async move {
            publisher.publish(&topic, event(n)).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    started.elapsed().as_secs_f64()
}

/// Consumes every event of `topic` with one member of a new group; returns the seconds until
/// the first record arrived (joining the group) and from then to the last.
async fn consume_kafka(kafka: &KafkaConfig, topic: &str, events: u64) -> (f64, f64) {
    let started = Instant::now();
    let first: Arc<OnceLock<Instant>> = Arc::default();
    let group = format!("{topic}-consume");
    let mut member = KafkaMember::join(kafka, &group, topic, &MemberOptions::default()).unwrap();
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

/// Runs `router` with one route of a counting raw handler on `topic` until it handled
/// `events` events; returns the seconds until the first was handled (joining the group) and
/// from then to the last.
async fn route_all(router: Router, topic: &str, events: u64) -> (f64, f64) {
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
        .route(Route::new(topic, format!("{topic}-router"), handler))
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

/// A transport the router runs on, and how its topics are made.
struct Backend {
    name: &'static str,
    transport: Transport,
    topics: Topics,
}

enum Topics {
    /// `keel serve` or Apache Kafka: created through the admin API.
    Kafka(KafkaTransport, KafkaConfig),
    /// The embedded log, in a directory removed with it.
    Embedded {
        log: Arc<Log>,
        _dir: tempfile::TempDir,
    },
}

impl Backend {
    fn kafka(name: &'static str, bootstrap: &str) -> Backend {
        let config = KafkaConfig::new(bootstrap);
        let kafka = KafkaTransport::connect(&config).unwrap();
        Backend {
            name,
            transport: kafka.transport(),
            topics: Topics::Kafka(kafka, config),
        }
    }

    fn embedded() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path()).unwrap());
        Backend {
            name: "embedded",
            transport: EmbeddedBus::new(log.clone()).transport(),
            topics: Topics::Embedded { log, _dir: dir },
        }
    }

    /// A new topic of `partitions` for `phase`.
    async fn topic(&self, phase: &str, partitions: u32) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let topic = format!("bench-{phase}-{}-{nanos}", std::process::id());
        match &self.topics {
            Topics::Kafka(kafka, _) => {
                kafka.ensure_topic(&topic, partitions).await.unwrap();
            }
            Topics::Embedded { log, .. } => {
                log.create_topic(&topic, TopicConfig::new(partitions))
                    .unwrap();
            }
        }
        topic
    }
}

/// Publish, (on Kafka) the bare consume loop, and the router's throughput on `backend`.
async fn throughput(backend: &Backend, events: u64, partitions: u32, in_flight: u64) {
    let name = backend.name;
    let topic = backend.topic("throughput", partitions).await;
    let publish = publish_all(backend.transport.publisher(), &topic, events, in_flight).await;
    report(&format!("{name} publish"), events, publish);
    if let Topics::Kafka(_, config) = &backend.topics {
        let (join, consume) = consume_kafka(config, &topic, events).await;
        println!("{name} group join {join:>10.2} s until the first record");
        report(&format!("{name} consume+decode+commit"), events, consume);
    }
    let router = Router::new(backend.transport.clone());
    let (join, consume) = route_all(router, &topic, events).await;
    println!("{name} router group join {join:>10.2} s until the first event");
    report(&format!("{name} router handled"), events, consume);
}

/// The router on `backend` handling `rate` events per second for `seconds`: end-to-end
/// latency quantiles, publish call to handler, in microseconds.
async fn latency(backend: &Backend, partitions: u32, rate: u64, seconds: u64) {
    let topic = backend.topic("latency", partitions).await;
    let clock = Instant::now();
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sink = latencies.clone();
    let handler = Handler::raw("latency", move |event: Event, _ctx| {
        let sent = event.data.as_deref().and_then(|d| d.try_into().ok());
        let sent = u64::from_le_bytes(sent.expect("8 bytes of send time"));
        let micros = clock.elapsed().as_micros() as u64;
        sink.lock().unwrap().push(micros.saturating_sub(sent));
        async { Ok(()) }
    });
    let router = Router::new(backend.transport.clone())
        .route(Route::new(&topic, format!("{topic}-latency"), handler))
        .start()
        .unwrap();
    let publisher = backend.transport.publisher().clone();
    let timed = |n: u64| {
        Event::new("/bench", "bench.event")
            .with_partition_key(format!("key-{}", n % 1024))
            .with_data(
                "application/octet-stream",
                (clock.elapsed().as_micros() as u64).to_le_bytes().to_vec(),
            )
    };
    // The group has joined once a first event is handled; the steady run starts then.
    publisher.publish(&topic, timed(0)).await.unwrap();
    while latencies.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    latencies.lock().unwrap().clear();
    let events = rate * seconds;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    let mut sends = JoinSet::new();
    for n in 0..events {
        tick.tick().await;
        let (publisher, topic, event) = (publisher.clone(), topic.clone(), timed(n));
        sends.spawn(async move { publisher.publish(&topic, event).await.unwrap() });
        while sends.try_join_next().is_some() {}
    }
    while sends.join_next().await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(120);
    while (latencies.lock().unwrap().len() as u64) < events {
        assert!(
            Instant::now() < deadline,
            "{}: events were not handled",
            backend.name
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    router.shutdown().await;
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).max(1) - 1] as f64;
    println!(
        "{:<28} {events:>9} events at {rate}/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        format!("{} router latency", backend.name),
        at(0.5) / 1000.0,
        at(0.99) / 1000.0,
        at(1.0) / 1000.0,
    );
}

fn report(phase: &str, events: u64, seconds: f64) {
    println!(
        "{phase:<34} {events:>9} events {seconds:>8.2} s {:>10.0} events/s",
        events as f64 / seconds
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: u64| {
        args.next()
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (events, partitions, in_flight) = (arg(100_000), arg(4) as u32, arg(1000));
    let (rate, seconds) = (arg(1000), arg(10));

    let serve = support::Serve::start().await;
    let mut backends = Vec::new();
    if let Ok(bootstrap) = std::env::var("KEEL_BENCH_KAFKA") {
        backends.push(Backend::kafka("apache kafka", &bootstrap));
    }
    backends.push(Backend::kafka("keel serve", &serve.bootstrap()));
    backends.push(Backend::embedded());
    for backend in &backends {
        throughput(backend, events, partitions, in_flight).await;
    }
    for backend in &backends {
        latency(backend, partitions, rate, seconds).await;
    }
}
