//! Tests of the runtime's Prometheus metrics through their text output: exact counter values
//! after handling with a failing key, exact consumer lag in events and seconds for a stopped
//! group with a known backlog, and dead-letter depth and age.
//!
//! Time is exact twice over: tokio time is paused (retries cost nothing) and the log and the
//! bus share one `ManualClock`, so record timestamps and metric ages move only when the test
//! says so. Not here: the handling span's fields (`spans.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use keel_core::Event;
use keel_embedded::EmbeddedBus;
use keel_log::{Log, LogOptions, ManualClock, NewRecord};
use keel_runtime::{Context, Handler, HandlerError, Route, Router};

// The metrics tests open their log on a manual clock and build raw events, so the log and
// `Step` helpers are unused here.
#[allow(dead_code)]
mod support;

use support::{create_topic, eager_commits, quick_retry, until};

const START_MS: i64 = 1_700_000_000_000;

/// A log and a bus on one manual clock.
fn open(dir: &std::path::Path) -> (Arc<Log>, EmbeddedBus, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START_MS));
    let options = LogOptions {
        clock: clock.clone(),
        background: false,
        ..LogOptions::default()
    };
    let log = Arc::new(Log::open_with(dir, options).expect("open log"));
    let bus = EmbeddedBus::with_clock(log.clone(), clock.clone());
    (log, bus, clock)
}

/// An event keyed `key` with no `time`, so its record carries the log clock's append time.
fn event(key: &str) -> Event {
    Event::new("/test", "test.thing")
        .with_partition_key(key)
        .with_time(None)
}

/// Asserts every expected sample line is in the scrape, each exactly once.
fn check(text: &str, expected: &[&str]) {
    for line in expected {
        let found = text.lines().filter(|l| l == line).count();
        assert_eq!(found, 1, "expected the line `{line}` once in:\n{text}");
    }
}

/// Counts every call; fails the key `poison` transiently and the key `fatal` permanently.
fn picky_handler(calls: Arc<AtomicUsize>) -> Handler {
    Handler::raw("picky", move |event: Event, _ctx: Context| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            match event.partitionkey.as_deref() {
                Some("poison") => Err(HandlerError::transient("the database is away")),
                Some("fatal") => Err(HandlerError::permanent("no such account")),
                _ => Ok(()),
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn counters_count_publishes_handles_failed_attempts_and_dead_letters_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (log, bus, clock) = open(dir.path());
    create_topic(&log, "orders", 1);
    for key in ["a", "poison", "b", "fatal", "c"] {
        bus.publisher().publish("orders", event(key)).await.unwrap();
    }
    // Appended around the publisher: not counted as published, never reaches the handler.
    let garbage = NewRecord::new(None::<Bytes>, Bytes::from_static(b"not an event"));
    let partition = log.topic("orders").unwrap().partition(0).unwrap().clone();
    partition.append(&[garbage]).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let dead = Arc::new(AtomicUsize::new(0));
    let counted = dead.clone();
    let route = Route::new("orders", "billing", picky_handler(calls.clone()))
        .with_retry(quick_retry(3))
        .with_consumer(eager_commits());
    let router = Router::new(&bus)
        .route(route)
        .on_dead_letter(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .start()
        .unwrap();
    // a, b, c once; poison three times; fatal once; the garbage record never.
    until("every attempt", || {
        calls.load(Ordering::SeqCst) == 7 && dead.load(Ordering::SeqCst) == 3
    })
    .await;
    router.shutdown().await;
    clock.advance(7_500);

    let text = bus.metrics_text();
    check(
        &text,
        &[
            "keel_events_published_total{topic=\"orders\"} 5",
            "keel_events_handled_total{topic=\"orders\",group=\"billing\"} 3",
            "keel_events_failed_total{topic=\"orders\",group=\"billing\",kind=\"transient\"} 3",
            "keel_events_failed_total{topic=\"orders\",group=\"billing\",kind=\"permanent\"} 1",
            "keel_events_failed_total{topic=\"orders\",group=\"billing\",kind=\"decode\"} 1",
            "keel_events_dead_lettered_total{topic=\"orders\",group=\"billing\"} 3",
            "keel_handler_duration_seconds_count{topic=\"orders\",group=\"billing\"} 7",
            "keel_consumer_lag_events{topic=\"orders\",group=\"billing\",partition=\"0\"} 0",
            "keel_consumer_lag_seconds{topic=\"orders\",group=\"billing\",partition=\"0\"} 0.0",
            "keel_dead_letters{topic=\"orders\"} 3",
            "keel_dead_letter_oldest_age_seconds{topic=\"orders\"} 7.5",
            "# TYPE keel_events_published counter",
            "# TYPE keel_handler_duration_seconds histogram",
            "# TYPE keel_consumer_lag_events gauge",
            "# EOF",
        ],
    );
    assert!(
        !text.contains("topic=\"orders.dlq\""),
        "dead letters are not publishes and the dead-letter topic is no source:\n{text}"
    );

    // An application's own registry gets the same series, values included.
    let mut registry = prometheus_client::registry::Registry::default();
    bus.metrics().register(&mut registry);
    let mut own = String::new();
    prometheus_client::encoding::text::encode(&mut own, &registry).unwrap();
    assert_eq!(own, text, "the same families and values");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_group_shows_its_backlog_in_events_and_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let (log, bus, clock) = open(dir.path());
    create_topic(&log, "payments", 2);
    let keys = ["k1", "k2", "k3", "k4", "k5", "k6"];
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    let handler = Handler::raw("count", move |_event: Event, _ctx: Context| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let router = Router::new(&bus)
        .route(Route::new("payments", "ledger", handler))
        .start()
        .unwrap();
    for key in keys {
        bus.publisher()
            .publish("payments", event(key))
            .await
            .unwrap();
    }
    until("the first events handled", || {
        handled.load(Ordering::SeqCst) == keys.len()
    })
    .await;
    router.shutdown().await;

    // The group is stopped. A backlog arrives at T+1 s and waits until T+5 s.
    clock.advance(1_000);
    let mut backlog = [0u64; 2];
    for key in keys.iter().chain(&["k7", "k8", "k9"]) {
        let published = bus
            .publisher()
            .publish("payments", event(key))
            .await
            .unwrap();
        backlog[published.partition as usize] += 1;
    }
    clock.advance(4_000);
    assert!(
        backlog.iter().all(|n| *n > 0),
        "both partitions: {backlog:?}"
    );

    let text = bus.metrics_text();
    let expected: Vec<String> = (0..2)
        .flat_map(|p| {
            let labels = format!("topic=\"payments\",group=\"ledger\",partition=\"{p}\"");
            [
                format!("keel_consumer_lag_events{{{labels}}} {}", backlog[p]),
                format!("keel_consumer_lag_seconds{{{labels}}} 4.0"),
            ]
        })
        .collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    check(&text, &expected);
    check(
        &text,
        &["keel_events_handled_total{topic=\"payments\",group=\"ledger\"} 6"],
    );
    assert!(
        !text.contains("keel_dead_letters{"),
        "no dead-letter topic, no series:\n{text}"
    );

    // Handling the backlog brings both gauges back to zero.
    let handler = Handler::raw("count", |_event: Event, _ctx: Context| async {
        Ok::<(), HandlerError>(())
    });
    let router = Router::new(&bus)
        .route(Route::new("payments", "ledger", handler))
        .start()
        .unwrap();
    let offsets = log.group_offsets();
    let topic = log.topic("payments").unwrap();
    until("the backlog committed", || {
        (0..2).all(|p| {
            let committed = offsets.fetch("ledger", "payments", p).map(|c| c.offset);
            committed == Some(topic.partition(p).unwrap().high_watermark())
        })
    })
    .await;
    router.shutdown().await;
    let text = bus.metrics_text();
    check(
        &text,
        &[
            "keel_consumer_lag_events{topic=\"payments\",group=\"ledger\",partition=\"0\"} 0",
            "keel_consumer_lag_seconds{topic=\"payments\",group=\"ledger\",partition=\"1\"} 0.0",
        ],
    );
}
