//! Measures the PostgreSQL outbox on this machine, in one run:
//!
//! 1. enqueue rate: events committed per second, in transactions of `BATCH` events from
//!    `WRITERS` concurrent writers, no relay running;
//! 2. relay throughput: a relay drains that backlog into the embedded log (topic with
//!    `fsync = never` and, separately, `always`), events per second;
//! 3. enqueue and relay at once: the writers at full speed while one (then two) relays run,
//!    both rates over the same window and the backlog left when the writers finish;
//! 4. relay delay at a steady 5,000 events/s (transactions of 25 every 5 ms): from the
//!    moment each transaction's COMMIT returned to the transport's acknowledgement,
//!    p50/p99/max, for the relay woken by `LISTEN`/`NOTIFY`, for a plain 100 ms polling
//!    relay as the baseline and for the change-data-capture relay (logical replication;
//!    needs `wal_level=logical`);
//! 5. the CDC relay's own rate: a backlog its slot held while it was stopped, drained;
//! 6. enqueue and relay at once with the CDC relay, by `WRITERS` and twice as many writers:
//!    as in 3, and how long after the writers the last event was published.
//!
//! ```text
//! KEEL_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p keel-sql --features cdc --example outbox_relay [all|polling|cdc]
//! ```
//!
//! `polling` runs 1–4 without the CDC relay, `cdc` the CDC relay's parts of 4 and 5–6. It
//! works in the schema `keel_bench_outbox`, dropped and created at start and dropped at the
//! end. With `KEEL_BENCH_JSON=FILE` each number is also appended to FILE as a JSON line (what
//! `scripts/bench-outbox` keeps in the history).

#[path = "support/bench_json.rs"]
mod bench_json;

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
use serde_json::json;

const EVENTS: usize = 100_000;
const BATCH: usize = 100;
const WRITERS: usize = 4;
const KEYS: usize = 1_000;
const STEADY_RATE: usize = 5_000;
const STEADY_SECONDS: u64 = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let part = std::env::args().nth(1).unwrap_or_else(|| "all".to_string());
    assert!(
        matches!(part.as_str(), "all" | "polling" | "cdc"),
        "usage: outbox_relay [all|polling|cdc]"
    );
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
    if part != "cdc" {
        polling(&db).await;
    }
    if part != "polling" {
        cdc(&db).await;
    }
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// Parts 1 to 3 and the polling relays' delay (module docs).
async fn polling(db: &PgDatabase) {
    let enqueue_rate = enqueue(db, EVENTS, WRITERS).await;
    println!(
        "enqueue: {enqueue_rate:.0} events/s ({WRITERS} writers, {BATCH} events per transaction)"
    );
    record(
        "enqueue",
        json!({ "writers": WRITERS, "events_per_s": enqueue_rate }),
    );
    let rate = drain(db, Arc::new(Acknowledge), EVENTS).await;
    println!(
        "relay throughput, transport excluded (a port that acknowledges at once): {rate:.0} events/s"
    );
    record("relay, transport excluded", json!({ "events_per_s": rate }));
    for (fsync, relays) in [
        (FsyncPolicy::Never, 1),
        (FsyncPolicy::Never, 2),
        (FsyncPolicy::Always, 1),
        (FsyncPolicy::Always, 2),
    ] {
        enqueue(db, EVENTS, WRITERS).await;
        let dir = tempfile::tempdir().unwrap();
        let (_bus, publisher) = embedded(dir.path(), fsync);
        let rate = drain_with(db, Arc::new(publisher), EVENTS, relays).await;
        println!(
            "relay throughput into the embedded log (fsync {fsync:?}, {relays} relay(s)): {rate:.0} events/s = {:.0}% of the enqueue rate",
            rate / enqueue_rate * 100.0
        );
        record(
            &format!("relay draining, fsync {fsync:?}"),
            json!({ "relays": relays, "events_per_s": rate }),
        );
    }
    for relays in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let (_bus, publisher) = embedded(dir.path(), FsyncPolicy::Always);
        let (enqueued, relayed, left) = together(db, Arc::new(publisher), relays).await;
        println!(
            "enqueue and relay at once (fsync Always, {relays} relay(s)): enqueue {enqueued:.0} events/s, relay {relayed:.0} events/s = {:.0}%, backlog left {left}",
            relayed / enqueued * 100.0
        );
        record(
            "enqueue and relay at once, fsync Always",
            json!({ "relays": relays, "enqueue_events_per_s": enqueued,
                    "relay_events_per_s": relayed, "backlog_left": left }),
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
    ] {
        delay(db, name, relay).await;
    }
}

/// The CDC relay against issue 16's targets: its delay at a steady 5,000 events/s, the rate
/// it drains a backlog at alone, and the writers at full speed while it runs.
async fn cdc(db: &PgDatabase) {
    delay(db, "CDC (logical replication)", Relay::Cdc).await;
    let rate = cdc_catch_up(db).await;
    println!("CDC relay draining a backlog alone (fsync Always): {rate:.0} events/s");
    record(
        "CDC relay draining a backlog alone, fsync Always",
        json!({ "events_per_s": rate }),
    );
    for writers in [WRITERS, 2 * WRITERS] {
        let dir = tempfile::tempdir().unwrap();
        let (_bus, publisher) = embedded(dir.path(), FsyncPolicy::Always);
        let run = together_cdc(db, Arc::new(publisher), writers).await;
        println!(
            "enqueue and relay at once (fsync Always, the CDC relay, {writers} writers): enqueue {:.0} events/s, relay {:.0} events/s = {:.0}% over the same window, backlog left {}, all published {:.0} ms after the writers finished",
            run.enqueued,
            run.relayed,
            run.relayed / run.enqueued * 100.0,
            run.left,
            run.tail.as_secs_f64() * 1000.0
        );
        record(
            "enqueue and relay at once, fsync Always, CDC relay",
            json!({ "writers": writers, "enqueue_events_per_s": run.enqueued,
                    "relay_events_per_s": run.relayed, "backlog_left": run.left,
                    "tail_ms": run.tail.as_secs_f64() * 1000.0 }),
        );
    }
}

/// Prints and records the commit → acknowledgement delay of `relay` at `STEADY_RATE`.
async fn delay(db: &PgDatabase, name: &str, relay: Relay) {
    let dir = tempfile::tempdir().unwrap();
    let (_bus, publisher) = embedded(dir.path(), FsyncPolicy::Never);
    let (offered, histogram) = steady(db, publisher, relay).await;
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    let max_ms = histogram.max() as f64 / 1000.0;
    println!(
        "relay delay at {STEADY_RATE} events/s (offered {offered:.0}), {name}: p50 {:.1} ms, p99 {:.1} ms, max {max_ms:.1} ms ({} events)",
        ms(0.50),
        ms(0.99),
        histogram.len()
    );
    record(
        &format!("relay delay at {STEADY_RATE} events/s, {name}"),
        json!({ "offered_events_per_s": offered, "p50_ms": ms(0.50), "p99_ms": ms(0.99),
                "max_ms": max_ms }),
    );
}

/// One outbox result for `KEEL_BENCH_JSON`.
fn record(label: &str, fields: serde_json::Value) {
    bench_json::record("outbox", "postgres", label, fields);
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

/// One run of the writers at full speed while a CDC relay runs.
struct CdcRun {
    /// The writers' rate.
    enqueued: f64,
    /// The relay's rate over the writers' window.
    relayed: f64,
    /// Rows still in the outbox when the writers finished.
    left: u64,
    /// From the writers' end to the last event published.
    tail: Duration,
}

/// As [`together`] with one CDC relay and `writers` writers.
async fn together_cdc(db: &PgDatabase, port: Arc<dyn PublishPort>, writers: usize) -> CdcRun {
    let relay = Relay::Cdc.start(db, port, bulk_options()).await;
    let started = Instant::now();
    let enqueued = enqueue(db, EVENTS, writers).await;
    let elapsed = started.elapsed().as_secs_f64();
    let published = relay.metrics().published();
    let left = db.outbox().backlog().await.unwrap().pending;
    let writers_done = Instant::now();
    while relay.metrics().published() < EVENTS as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let tail = writers_done.elapsed();
    Relay::Cdc.stop(db, relay).await;
    CdcRun {
        enqueued,
        relayed: published as f64 / elapsed,
        left,
        tail,
    }
}

/// The CDC relay's own rate: `EVENTS` committed while it is stopped (its slot holding
/// them), then drained into the embedded log (`fsync = always`) by the relay started again;
/// events per second from that start.
async fn cdc_catch_up(db: &PgDatabase) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (_bus, publisher) = embedded(dir.path(), FsyncPolicy::Always);
    let port: Arc<dyn PublishPort> = Arc::new(publisher);
    Relay::Cdc
        .start(db, port.clone(), bulk_options())
        .await
        .shutdown()
        .await;
    enqueue(db, EVENTS, WRITERS).await;
    let started = Instant::now();
    let relay = Relay::Cdc.start(db, port, bulk_options()).await;
    while relay.metrics().published() < EVENTS as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = EVENTS as f64 / started.elapsed().as_secs_f64();
    Relay::Cdc.stop(db, relay).await;
    rate
}

/// The relay options of the throughput runs: batches of 1,000 rows, relayed rows deleted.
fn bulk_options() -> RelayOptions {
    RelayOptions {
        batch_rows_max: 1000,
        after_publish: AfterPublish::Delete,
        ..RelayOptions::default()
    }
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

/// Commits `events` events from `writers` writers; returns events per second.
async fn enqueue(db: &PgDatabase, events: usize, writers: usize) -> f64 {
    let started = Instant::now();
    let per_writer = events / writers;
    let tasks: Vec<_> = (0..writers)
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
    for task in tasks {
        task.await.unwrap();
    }
    (per_writer * writers) as f64 / started.elapsed().as_secs_f64()
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
    let options = bulk_options();
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
    let options = bulk_options();
    let relays: Vec<_> = (0..relays)
        .map(|_| db.outbox().relay(port.clone(), options.clone()).unwrap())
        .collect();
    let started = Instant::now();
    let enqueued = enqueue(db, EVENTS, WRITERS).await;
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

impl Timed {
    /// Records the delay of the event `id` acknowledged at `acked`, once.
    fn acknowledged(&self, id: &str, acked: Instant) {
        if let Some(committed) = self.committed.lock().unwrap().remove(id) {
            let micros = acked.saturating_duration_since(committed).as_micros() as u64;
            self.histogram
                .lock()
                .unwrap()
                .record(micros.max(1))
                .unwrap();
        }
    }
}

impl PublishPort for Timed {
    fn publish<'a>(&'a self, topic: &'a str, event: Event) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let id = event.id.clone();
            PublishPort::publish(&self.inner, topic, event).await?;
            self.acknowledged(&id, Instant::now());
            Ok(())
        })
    }

    /// The publisher's own batch (one append per partition), as the relay uses it untimed.
    fn publish_batch<'a>(
        &'a self,
        topic: &'a str,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Vec<Result<(), PortError>>> {
        Box::pin(async move {
            let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
            let results = PublishPort::publish_batch(&self.inner, topic, events).await;
            let acked = Instant::now();
            for (id, result) in ids.iter().zip(&results) {
                if result.is_ok() {
                    self.acknowledged(id, acked);
                }
            }
            results
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

/// Commits `STEADY_RATE` events/s for `STEADY_SECONDS` while a relay runs; returns the rate
/// the writer offered and the commit → acknowledgement histogram in microseconds.
async fn steady(db: &PgDatabase, publisher: Publisher, kind: Relay) -> (f64, Histogram<u64>) {
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
    let histogram = histogram.lock().unwrap().clone();
    (offered, histogram)
}
