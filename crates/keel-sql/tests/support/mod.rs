//! Helpers shared by keel-sql's outbox tests: the `Step` event, an embedded log to relay
//! into, reading back what a topic holds, the per-key order check, waiting for a condition
//! with a deadline, and (for PostgreSQL) a fresh schema per test.
//!
//! Not every test binary uses every helper, so dead code is allowed here.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_core::{BoxFuture, Event, EventType, PortError, PublishPort};
use keel_embedded::EmbeddedBus;
use keel_log::{FsyncPolicy, Log, LogOptions, TopicConfig};
use keel_runtime::Publisher;
use serde::{Deserialize, Serialize};

/// The typed test event: a key and a sequence number within the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Step {
    pub(crate) key: String,
    pub(crate) seq: u32,
}

impl EventType for Step {
    const TYPE: &'static str = "test.step";
    const VERSION: u32 = 1;
}

/// A `Step` event with `key` as its partition key.
pub(crate) fn step(key: &str, seq: u32) -> Event {
    Event::from_typed(
        "/test",
        &Step {
            key: key.to_string(),
            seq,
        },
    )
    .expect("typed event")
    .with_partition_key(key)
}

/// An embedded log in `dir` with the topic `name` (`partitions`, no fsync) and its bus.
pub(crate) fn embedded(
    dir: &Path,
    name: &str,
    partitions: u32,
    max_batch_bytes: Option<u32>,
) -> (EmbeddedBus, Publisher) {
    let options = LogOptions {
        background: false,
        ..LogOptions::default()
    };
    let log = Arc::new(Log::open_with(dir, options).expect("open log"));
    let mut config = TopicConfig::new(partitions).with_fsync(FsyncPolicy::Never);
    if let Some(max) = max_batch_bytes {
        config.max_batch_bytes = max;
    }
    log.create_topic(name, config).expect("create topic");
    let bus = EmbeddedBus::new(log);
    let publisher = bus.publisher();
    (bus, publisher)
}

/// Every event stored in `topic`, per partition in offset order.
pub(crate) fn events(log: &Log, topic: &str) -> Vec<Event> {
    let topic = log.topic(topic).expect("topic");
    let mut out = Vec::new();
    for partition in topic.partitions() {
        let mut offset = 0;
        while offset < partition.high_watermark() {
            for record in partition.read_records(offset, 1 << 20).expect("read") {
                offset = record.offset + 1;
                let headers = record
                    .headers
                    .iter()
                    .map(|h| (h.key.as_str(), h.value.as_deref()));
                out.push(
                    Event::from_record(record.key.as_deref(), headers, record.value.as_deref())
                        .expect("a cloud event"),
                );
            }
        }
    }
    out
}

/// Every `Step` stored in `topic`, per partition in offset order.
pub(crate) fn steps(log: &Log, topic: &str) -> Vec<Step> {
    events(log, topic)
        .iter()
        .map(|event| event.decode::<Step>().expect("a step"))
        .collect()
}

/// Checks that `seen` holds every step of `keys` × `0..per_key`, that each key's steps
/// first appear in order (a redelivered step may repeat one seen before, never jump ahead
/// or go back to an unseen one), and returns how many duplicates there were.
pub(crate) fn check_per_key_order(seen: &[Step], keys: &[String], per_key: u32) -> usize {
    let mut next: BTreeMap<&str, u32> = BTreeMap::new();
    let mut duplicates = 0;
    for step in seen {
        let expected = next.entry(step.key.as_str()).or_insert(0);
        if step.seq == *expected {
            *expected += 1;
        } else {
            assert!(
                step.seq < *expected,
                "key {} jumped to {} before {}",
                step.key,
                step.seq,
                expected
            );
            duplicates += 1;
        }
    }
    let keys_seen: BTreeSet<&str> = next.keys().copied().collect();
    let keys_wanted: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(keys_seen, keys_wanted, "keys published");
    for (key, count) in next {
        assert_eq!(count, per_key, "steps of key {key} published");
    }
    duplicates
}

/// A port that holds each publish until its gate is open and then for `delay`, so a batch
/// stays in flight long enough to cut the database connection under it, or for as long as a
/// test keeps the gate shut. It signals each publish it holds ([`HeldPort::held`]).
pub(crate) struct HeldPort<P> {
    inner: P,
    open: tokio::sync::watch::Receiver<bool>,
    delay: Duration,
    held: Arc<tokio::sync::Notify>,
}

impl<P> HeldPort<P> {
    /// `inner` behind the gate `open`.
    pub(crate) fn new(
        inner: P,
        open: tokio::sync::watch::Receiver<bool>,
        delay: Duration,
    ) -> HeldPort<P> {
        HeldPort {
            inner,
            open,
            delay,
            held: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Notified when a publish reaches the gate.
    pub(crate) fn held(&self) -> Arc<tokio::sync::Notify> {
        self.held.clone()
    }
}

impl<P: PublishPort> PublishPort for HeldPort<P> {
    fn publish<'a>(&'a self, topic: &'a str, event: Event) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.held.notify_one();
            // A closed gate (its sender gone) counts as open.
            let _ = self.open.clone().wait_for(|open| *open).await;
            tokio::time::sleep(self.delay).await;
            self.inner.publish(topic, event).await
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

/// Waits until `done` holds, polling, failing after `deadline`.
pub(crate) async fn until<F, Fut>(what: &str, deadline: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PostgreSQL schema of its own for one test: `(url with search_path, schema)`; `None`
/// (and a message) when `KEEL_TEST_POSTGRES_URL` is unset. An unreachable server fails the
/// test: the variable says the server is there.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_schema(test: &str) -> Option<(String, String)> {
    let Ok(base) = std::env::var("KEEL_TEST_POSTGRES_URL") else {
        eprintln!("{test}: not run, KEEL_TEST_POSTGRES_URL is unset");
        return None;
    };
    Some(keel_sql::testing::fresh_postgres_schema(&base, test).await)
}
