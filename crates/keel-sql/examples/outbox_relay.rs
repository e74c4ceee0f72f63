//! Measures the PostgreSQL outbox on this machine, in one run:
//!
//! 1. enqueue rate: events committed per second, in transactions of `BATCH` events from
//!    `WRITERS` concurrent writers, no relay running;
//! 2. relay throughput: a relay drains that backlog into the embedded log (topic with
//!    `fsync = never` and, separately, `always`), events per second;
//! 3. enqueue and relay at once: the writers at full speed while one (then two) relays run,
//!    both rates over the same window and the backlog left when the writers finish;
//! 4. relay delay at a steady 5,000 events/s (transactions of 25 every 5 ms): from the
//!    moment each transaction's COMMIT returned to the transport's acknowledgement, p50/p99/max, for the relay
//!    woken by `LISTEN`/`NOTIFY`, for a plain 100 ms polling relay as the baseline and for
//!    the change-data-capture relay (logical replication; needs `wal_level=logical`);
//! 5. enqueue and relay at once with the CDC relay, as in 3.
//!
//! ```text
//! KEEL_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p keel-sql --features cdc --example outbox_relay
//! ```
//!
//! It works in the schema `keel_bench_outbox`, dropped and created at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use keel_core::{BoxFuture, Event, PortError, PublishPort};
use keel_embedded::EmbeddedBus;
use keel_log::{FsyncPolicy, Log, LogOptions, TopicConfig};
use keel_runtime::Publisher;
use keel_sql::{
    AfterPublish, CdcMetrics, CdcSlot, OutboxMetrics, PgDatabase, RelayHandle, RelayOptions,
};

const EVENTS: usize = 100_000;
const BATCH: usize = 100;
const WRITERS: usize = 4;
const KEYS: usize = 1_000;
const STEADY_RATE: usize = 5_000;
const STEADY_SECONDS: u64 = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base = std::env::var("KEEL_BENCH_POSTGRES_URL")
        .expect("set KEEL_BENCH_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test");
    let schema = "keel_bench_outbox";
    let (admin, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let db = PgDatabase::connect(&url).await.unwrap();
    println!(
        "PostgreSQL outbox on this machine: {EVENTS} events, {KEYS} keys, ~300-byte envelopes"
    );

    let enqueue_rate = enqueue(&db, EVENTS).await;
    println!(
        "enqueue: {enqueue_rate:.0} events/s ({WRITERS} writers, {BATCH} events per transaction)"
    );
    let rate = drain(&db, Arc::new(Acknowledge), EVENTS).await;
    println!(
        "relay throughput, transport excluded (a port that acknowledges at once): {rate:.0} events/s"
    );
    for (fsync, relays) in [
        (FsyncPolicy::Never, 1),
        (FsyncPolicy::Never, 2),
        (FsyncPolicy::Always, 1),
        (FsyncPolicy::Always, 2),
    ] {
        enqueue(&db, EVENTS).await;
        let dir = tempfile::tempdir().unwrap();
        let (_bus, publisher) = embedded(dir.path(), fsync);
        let rate = drain_with(&db, Arc::new(publisher), EVENTS, relays).await;
        println!(
            "relay throughput into the embedded log (fsync {fsync:?}, {relays} relay(s)): {rate:.0} events/s = {:.0}% of the enqueue rate",
            rate / enqueue_rate * 100.0
        );
    }
    for relays in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let (_bus, publisher) = embedded(dir.path(), FsyncPolicy::Always);
        let (enqueued, relayed, left) = together(&db, Arc::new(publisher), relays).await;
        println!(
            "enqueue and relay at once (fsync Always, {relays} relay(s)): enqueue {enqueued:.0} events/s, relay {relayed:.0} events/s = {:.0}%, backlog left {left}",
            relayed / enqueued * 100.0
        );
    }
    for (name, relay) in [
        (
            "LISTEN/NOTIFY",
            Relay::Poll {
                notify: true,
                poll_ms: 500,
            },
        ),
        (
            "100 ms polling (baseline)",
            Relay::Poll {
                notify: false,
                poll_ms: 100,
            },
        ),
        ("CDC (logical replication)", Relay::Cdc),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_bus, publisher) = embedded(dir.path(), FsyncPolicy::Never);
        let histogram = steady(&db, publisher, relay).await;
        println!(
            "relay delay at {STEADY_RATE} events/s, {name}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} events)",
            histogram.value_at_quantile(0.50) as f64 / 1000.0,
            histogram.value_at_quantile(0.99) as f64 / 1000.0,
            histogram.max() as f64 / 1000.0,
            histogram.len()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (_bus, publisher) = embedded(dir.path(), FsyncPolicy::Always);
    let (enqueued, relayed, left) = together_cdc(&db, Arc::new(publisher)).await;
    println!(
        "enqueue and relay at once (fsync Always, the CDC relay): enqueue {enqueued:.0} events/s, relay {relayed:.0} events/s = {:.0}%, backlog left {left}",
        relayed / enqueued * 100.0
    );
}

/// Which relay a measurement runs.
#[derive(Clone, Copy)]
enum Relay {
    /// The polling relay, woken by `NOTIFY` or not.
    Poll { notify: bool, poll_ms: u64 },
    /// The CDC relay on the slot and publication `keel_bench_outbox`.
    Cdc,
}

const CDC_SLOT: &str = "keel_bench_outbox";

impl Relay {
    async fn start(
        self,
        db: &PgDatabase,
        port: Arc<dyn PublishPort>,
        options: RelayOptions,
    ) -> RelayHandle {
        match self {
            Relay::Poll { notify, poll_ms } => db
                .outbox()
                .relay(
                    port,
                    RelayOptions {
                        wake_on_notify: notify,
                        poll_interval: Duration::from_millis(poll_ms),
                        ..options
                    },
                )
                .unwrap(),
            Relay::Cdc => db
                .outbox()
                .cdc_relay(
                    port,
                    options,
                    CdcSlot::named(CDC_SLOT),
                    OutboxMetrics::new(),
                    CdcMetrics::new(),
                )
                .await
                .unwrap(),
        }
    }

    /// Drops what `start` made that outlives the relay (the CDC slot, which holds WAL).
    async fn stop(self, db: &PgDatabase, relay: RelayHandle) {
        relay.shutdown().await;
        if let Relay::Cdc = self {
            db.outbox()
                .drop_cdc_slot(&CdcSlot::named(CDC_SLOT))
                .await
                .unwrap();
        }
    }
}

/// As [`together`] with one CDC relay.
async fn together_cdc(db: &PgDatabase, port: Arc<dyn PublishPort>) -> (f64, f64, u64) {
    let options = RelayOptions {
        batch_rows_max: 1000,
        after_publish: AfterPublish::Delete,
        ..RelayOptions::default()
    };
    let relay = Relay::Cdc.start(db, port, options).await;
    let started = Instant::now();
    let enqueued = enqueue(db, EVENTS).await;
    let elapsed = started.elapsed().as_secs_f64();
    let published = relay.metrics().published();
    let left = db.outbox().backlog().await.unwrap().pending;
    while relay.metrics().published() < EVENTS as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Relay::Cdc.stop(db, relay).await;
    (enqueued, published as f64 / elapsed, left)
}

fn embedded(dir: &std::path::Path, fsync: FsyncPolicy) -> (EmbeddedBus, Publisher) {
    let log = Arc::new(Log::open_with(dir, LogOptions::default()).unwrap());
    log.create_topic("orders", TopicConfig::new(8).with_fsync(fsync))
        .unwrap();
    let bus = EmbeddedBus::new(log);
    let publisher = bus.publisher();
    (bus, publisher)
}

fn event(n: usize) -> Event {
    Event::new("/bench", "bench.order.placed")
        .with_partition_key(format!("order-{}", n % KEYS))
        .with_data_json(&serde_json::json!({ "order": n, "total_cents": 4197, "currency": "EUR" }))
}

/// Commits `events` events from `WRITERS` writers; returns events per second.
async fn enqueue(db: &PgDatabase, events: usize) -> f64 {
    let started = Instant::now();
    let per_writer = events / WRITERS;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                let outbox = db.outbox();
                let mut client = db.pool().get().await.unwrap();
                for chunk in (0..per_writer).collect::<Vec<_>>().chunks(BATCH) {
                    let tx = client.transaction().await.unwrap();
                    let batch: Vec<(&str, Event)> = chunk
                        .iter()
                        .map(|i| ("orders", event(w * per_writer + i)))
                        .collect();
                    outbox.enqueue_batch(&tx, &batch).await.unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    (per_writer * WRITERS) as f64 / started.elapsed().as_secs_f64()
}

/// Runs a relay until `events` are published; returns events per second.
async fn drain(db: &PgDatabase, port: Arc<dyn PublishPort>, events: usize) -> f64 {
    drain_with(db, port, events, 1).await
}

/// Runs `relays` relays until `events` are published in all; returns events per second.
async fn drain_with(
    db: &PgDatabase,
    port: Arc<dyn PublishPort>,
    events: usize,
    relays: usize,
) -> f64 {
    let options = RelayOptions {
        batch_rows_max: 1000,
        after_publish: AfterPublish::Delete,
        ..RelayOptions::default()
    };
    let started = Instant::now();
    let relays: Vec<_> = (0..relays)
        .map(|_| db.outbox().relay(port.clone(), options.clone()).unwrap())
        .collect();
    while relays.iter().map(|r| r.metrics().published()).sum::<u64>() < events as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    for relay in relays {
        relay.shutdown().await;
    }
    rate
}

/// Enqueues `EVENTS` at full speed while `relays` relays run; returns the enqueue rate, the
/// relay rate over the same window, and the backlog when the writers finished.
async fn together(db: &PgDatabase, port: Arc<dyn PublishPort>, relays: usize) -> (f64, f64, u64) {
    let options = RelayOptions {
        batch_rows_max: 1000,
        after_publish: AfterPublish::Delete,
        ..RelayOptions::default()
    };
    let relays: Vec<_> = (0..relays)
        .map(|_| db.outbox().relay(port.clone(), options.clone()).unwrap())
        .collect();
    let started = Instant::now();
    let enqueued = enqueue(db, EVENTS).await;
    let elapsed = started.elapsed().as_secs_f64();
    let published: u64 = relays.iter().map(|r| r.metrics().published()).sum();
    let left = db.outbox().backlog().await.unwrap().pending;
    while relays.iter().map(|r| r.metrics().published()).sum::<u64>() < EVENTS as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for relay in relays {
        relay.shutdown().await;
    }
    (enqueued, published as f64 / elapsed, left)
}

/// A port that acknowledges every event at once: the relay's own cost.
struct Acknowledge;

impl PublishPort for Acknowledge {
    fn publish<'a>(
        &'a self,
        _topic: &'a str,
        _event: Event,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async { Ok(()) })
    }

    fn publish_dead_letter<'a>(
        &'a self,
        _topic: &'a str,
        _event: Event,
        _headers: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A port that records, per event, the time from its commit to the acknowledgement.
struct Timed {
    inner: Publisher,
    committed: Arc<Mutex<HashMap<String, Instant>>>,
    histogram: Arc<Mutex<Histogram<u64>>>,
}

impl PublishPort for Timed {
    fn publish<'a>(&'a self, topic: &'a str, event: Event) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let id = event.id.clone();
            PublishPort::publish(&self.inner, topic, event).await?;
            let acked = Instant::now();
            if let Some(committed) = self.committed.lock().unwrap().remove(&id) {
                let micros = acked.saturating_duration_since(committed).as_micros() as u64;
                self.histogram
                    .lock()
                    .unwrap()
                    .record(micros.max(1))
                    .unwrap();
            }
            Ok(())
        })
    }

    fn publish_dead_letter<'a>(
        &'a self,
        topic: &'a str,
        event: Event,
        headers: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        self.inner.publish_dead_letter(topic, event, headers)
    }
}

/// Commits `STEADY_RATE` events/s for `STEADY_SECONDS` while a relay runs; returns the
/// commit → acknowledgement histogram in microseconds.
async fn steady(db: &PgDatabase, publisher: Publisher, kind: Relay) -> Histogram<u64> {
    let committed = Arc::new(Mutex::new(HashMap::new()));
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let port = Timed {
        inner: publisher,
        committed: committed.clone(),
        histogram: histogram.clone(),
    };
    let options = RelayOptions {
        after_publish: AfterPublish::Delete,
        ..RelayOptions::default()
    };
    let relay = kind.start(db, Arc::new(port), options).await;
    let per_tx = 25;
    let mut tick = tokio::time::interval(Duration::from_micros(
        (1_000_000 * per_tx / STEADY_RATE) as u64,
    ));
    let outbox = db.outbox();
    let mut client = db.pool().get().await.unwrap();
    let total = STEADY_RATE * STEADY_SECONDS as usize;
    let started = Instant::now();
    for n in (0..total).step_by(per_tx) {
        tick.tick().await;
        let events: Vec<Event> = (n..n + per_tx).map(event).collect();
        let tx = client.transaction().await.unwrap();
        let batch: Vec<(&str, Event)> = events.iter().map(|e| ("orders", e.clone())).collect();
        outbox.enqueue_batch(&tx, &batch).await.unwrap();
        // The time just before COMMIT first, in case the relay acknowledges before this
        // task records the time COMMIT returned; then that time, if still unacknowledged.
        let before = Instant::now();
        committed
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| (e.id.clone(), before)));
        tx.commit().await.unwrap();
        let after = Instant::now();
        let mut map = committed.lock().unwrap();
        for e in &events {
            if let Some(time) = map.get_mut(&e.id) {
                *time = after;
            }
        }
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    while histogram.lock().unwrap().len() < total as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kind.stop(db, relay).await;
    println!("  (offered {offered:.0} events/s)");
    histogram.lock().unwrap().clone()
}
