//! A probe of durable one-record writes that cannot itself be the limit (issue 16, part 1):
//! librdkafka through rdkafka, one process, one thread and one producer handle per producer,
//! each record its own produce request (`batch.num.messages=1`, `linger.ms=0`, `acks=all`).
//! `bench/kafka_acks.py` measures the same through Python.
//!
//! Usage: `durable_small_writes BOOTSTRAP TOPIC MODE N SECONDS [CONFIG=VALUE ...]`
//!
//! - `producers N`: N idempotent producers, each keeping its 5 requests in flight full, for
//!   SECONDS: durable records/s over all of them (acknowledged within the window) and the
//!   acknowledgement latency of those records, p50/p99.
//! - `rate N`: one producer at N records/s for SECONDS: the acknowledgement latency of each
//!   record (send call to delivery report), p50/p99/max, and the rate acknowledged.
//!
//! No thread of the probe spins: rdkafka's `BaseProducer::poll(d)` keeps polling until `d`
//! has passed and rounds what is left down to whole milliseconds, so any `poll` shorter than
//! a millisecond, and the last millisecond of every longer one, is a busy loop on the clock
//! (47% of this probe's samples when each producer thread polled 1 ms at a time; 16 such
//! threads kept both cores busy). So each producer is a `ThreadedProducer`, whose own thread
//! blocks in 100 ms polls, and its sender sleeps until deliveries made room
//! ([`Deliveries::wait_settled`]) or, at a rate, until the next record is due.
//!
//! The topic is created with one partition and the CONFIG=VALUE settings when it does not
//! exist (`keel.fsync=always` on `keel serve`, `flush.messages=1` on Apache Kafka). Prints one
//! JSON line in `bench/kafka_acks.py`'s shape; `scripts/bench-kafka acks` runs it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};

/// Records a producer keeps queued in librdkafka beyond its requests in flight, so a request
/// is always ready to go when an acknowledgement frees a slot. The sender tops the queue up
/// once half of it was acknowledged, so it wakes once per `QUEUED_MAX / 2` deliveries.
const QUEUED_MAX: u64 = 64;

/// How long an unacknowledged record may wait after the window before it is dropped.
const DRAIN: Duration = Duration::from_secs(30);

/// The shortest sleep of the `rate` mode's sender: at 10,000/s it sends the records due in
/// each 200 µs together instead of waking for every one.
const PACING_TICK: Duration = Duration::from_micros(200);

/// Counts deliveries, keeps each one's latency, and wakes the sender waiting for room.
struct Deliveries {
    acked: AtomicU64,
    failed: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    /// How many settled deliveries the sender waits for (`u64::MAX`: it does not wait).
    wanted: Mutex<u64>,
    room: Condvar,
}

impl Default for Deliveries {
    fn default() -> Deliveries {
        Deliveries {
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latencies_us: Mutex::default(),
            wanted: Mutex::new(u64::MAX),
            room: Condvar::new(),
        }
    }
}

impl Deliveries {
    /// Deliveries settled so far, acknowledged or failed.
    fn settled(&self) -> u64 {
        self.acked.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    /// Sleeps until `target` deliveries are settled or `deadline` passed. A delivery counts
    /// itself before it looks at `wanted`, and the sender sets `wanted` before it looks at the
    /// count, both under the lock, so no wake-up is lost.
    fn wait_settled(&self, target: u64, deadline: Instant) {
        let mut wanted = self.wanted.lock().expect("wanted");
        *wanted = target;
        while self.settled() < target {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            wanted = self.room.wait_timeout(wanted, left).expect("wanted").0;
        }
        *wanted = u64::MAX;
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        } else {
            let micros = sent.elapsed().as_micros() as u64;
            self.latencies_us.lock().expect("latencies").push(micros);
            self.acked.fetch_add(1, Ordering::Relaxed);
        }
        if self.settled() >= *self.wanted.lock().expect("wanted") {
            self.room.notify_one();
        }
    }
}

type Client = ThreadedProducer<Deliveries>;

fn producer(bootstrap: &str, idempotent: bool) -> Client {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("enable.idempotence", idempotent.to_string())
        .set("max.in.flight.requests.per.connection", "5")
        .set("queue.buffering.max.messages", "100000")
        .set("message.timeout.ms", "120000")
        .create_with_context(Deliveries::default())
        .expect("a producer")
}

/// Sends one record of 100 bytes; `false` when librdkafka's queue is full.
fn send(client: &Client, topic: &str, value: &[u8]) -> bool {
    let record =
        BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(topic, Box::new(Instant::now()))
            .partition(0)
            .payload(value);
    match client.send(record) {
        Ok(()) => true,
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => false,
        Err((error, _)) => panic!("send failed: {error}"),
    }
}

/// The first record waits for metadata, a connection and (idempotent) a producer id.
fn warm_up(client: &Client, topic: &str) {
    assert!(send(client, topic, b"warm-up"));
    client
        .flush(Duration::from_secs(30))
        .expect("warm-up acknowledged");
    assert_eq!(
        client.context().acked.load(Ordering::Relaxed),
        1,
        "warm-up acknowledged"
    );
    client.context().acked.store(0, Ordering::Relaxed);
    client
        .context()
        .latencies_us
        .lock()
        .expect("latencies")
        .clear();
}

/// One idempotent producer sending as fast as its requests in flight allow: the latencies (µs)
/// of the records acknowledged within `window`.
fn saturate(bootstrap: &str, topic: &str, window: Duration) -> Vec<u64> {
    let client = producer(bootstrap, true);
    warm_up(&client, topic);
    let value = [b'x'; 100];
    let (end, mut sent) = (Instant::now() + window, 0u64);
    let context = client.context();
    while Instant::now() < end {
        while sent - context.settled() < QUEUED_MAX && send(&client, topic, &value) {
            sent += 1;
        }
        context.wait_settled(sent.saturating_sub(QUEUED_MAX / 2), end);
    }
    let latencies = std::mem::take(&mut *context.latencies_us.lock().expect("latencies"));
    client.purge(PurgeConfig::default().queue().inflight());
    let _ = client.flush(Duration::from_secs(5));
    latencies
}

fn producers(bootstrap: &str, topic: &str, n: usize, seconds: f64) -> serde_json::Value {
    let window = Duration::from_secs_f64(seconds);
    let mut latencies: Vec<u64> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..n)
            .map(|_| scope.spawn(|| saturate(bootstrap, topic, window)))
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("producer"))
            .collect()
    });
    latencies.sort_unstable();
    let acked = latencies.len();
    serde_json::json!({
        "mode": "producers", "client": "rdkafka", "producers": n, "seconds": seconds,
        "acked": acked, "acked_per_s": (acked as f64 / seconds).round(),
        "p50_ms": percentile_ms(&latencies, 0.50), "p99_ms": percentile_ms(&latencies, 0.99),
    })
}

/// The `p` quantile of sorted microseconds, in milliseconds (-1 when there are none).
fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    let at = ((sorted_us.len() as f64 * p) as usize).min(sorted_us.len().saturating_sub(1));
    sorted_us.get(at).map_or(-1.0, |&us| us as f64 / 1000.0)
}

fn rate(bootstrap: &str, topic: &str, rate: f64, seconds: f64) -> serde_json::Value {
    let client = producer(bootstrap, false);
    warm_up(&client, topic);
    let total = (rate * seconds) as u64;
    let value = [b'x'; 100];
    let (start, mut sent) = (Instant::now(), 0u64);
    while sent < total {
        let due = total.min((start.elapsed().as_secs_f64() * rate) as u64);
        while sent < due && send(&client, topic, &value) {
            sent += 1;
        }
        // Until the next record is due (librdkafka's thread delivers meanwhile).
        let next = start + Duration::from_secs_f64((sent + 1) as f64 / rate);
        std::thread::sleep(PACING_TICK.max(next.saturating_duration_since(Instant::now())));
    }
    let drained = client.flush(DRAIN).is_ok();
    let elapsed = start.elapsed().as_secs_f64();
    let context = client.context();
    let mut latencies = std::mem::take(&mut *context.latencies_us.lock().expect("latencies"));
    latencies.sort_unstable();
    serde_json::json!({
        "mode": "ack-latency", "client": "rdkafka", "rate_per_s": rate, "seconds": seconds,
        "sent": sent, "acked": latencies.len(),
        "acked_per_s": (latencies.len() as f64 / elapsed).round(),
        "unflushed": !drained, "failed": context.failed.load(Ordering::Relaxed),
        "p50_ms": percentile_ms(&latencies, 0.50), "p99_ms": percentile_ms(&latencies, 0.99),
        "max_ms": percentile_ms(&latencies, 1.0),
    })
}

/// Creates `topic` with one partition and `configs` unless it exists.
#[tokio::main(flavor = "current_thread")]
async fn create_topic(bootstrap: &str, topic: &str, configs: &[(String, String)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("an admin client");
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new = new.set(key, value);
    }
    let results = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .expect("CreateTopics answered");
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => panic!("creating topic {name}: {code}"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, mode, n, seconds, configs @ ..] = &args[..] else {
        eprintln!(
            "usage: durable_small_writes BOOTSTRAP TOPIC producers|rate N SECONDS [CONFIG=VALUE ...]"
        );
        std::process::exit(2);
    };
    let configs: Vec<(String, String)> = configs
        .iter()
        .map(|c| match c.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => panic!("config '{c}' is not KEY=VALUE"),
        })
        .collect();
    let seconds: f64 = seconds.parse().expect("SECONDS is a number");
    create_topic(bootstrap, topic, &configs);
    let result = match mode.as_str() {
        "producers" => producers(bootstrap, topic, n.parse().expect("N"), seconds),
        "rate" => rate(bootstrap, topic, n.parse().expect("N"), seconds),
        other => panic!("unknown mode '{other}' (producers or rate)"),
    };
    println!("{result}");
}
