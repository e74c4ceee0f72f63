//! The outbox relay's conformance check on a transport (feature `conformance`): rows enqueued
//! in a SQLite outbox reach the transport's publish port — the runtime's `Publisher`, which
//! every transport hands out — exactly as enqueued, in order per key, with nothing lost or
//! published twice across a relay restart (the first relay stopped while the transport
//! refused its rows). Each transport crate runs it beside
//! `keel_runtime::conformance` with the same [`Harness`]: `keel_sql::relay_conformance_tests!(harness())`.
//!
//! The server-restart check, with the SQLite inbox, is in `conformance/restart.rs`; the
//! engine benchmarks' SQLite-inbox half in `conformance/throughput.rs`.
//!
//! Not here: the relay's own tests against a fake port (`tests/sqlite_outbox.rs`), PostgreSQL
//! (the relay loop is one for both databases).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use keel_core::{BoxFuture, Event, PortError, PublishPort, Record};
use keel_runtime::Publisher;
use keel_runtime::conformance::{Harness, WAIT, create_topic, event, name, stored};

use crate::{RelayOptions, SqliteOutbox};

pub mod restart;
pub mod throughput;

/// Partitions of the check's topic.
const PARTITIONS: u32 = 3;
/// Keys the events are spread over.
const KEYS: u32 = 5;
/// Events enqueued before the first relay starts, and after it stopped.
const BEFORE: u32 = 40;
const AFTER: u32 = 20;
/// Events the transport takes from the first relay before it refuses the rest.
const ACCEPTED_FIRST: u32 = 12;

/// One `#[tokio::test]` for the relay check on a fresh harness from `$make`, as
/// `keel_runtime::conformance_tests!` makes them (`optional` for an `Option` of a harness).
#[macro_export]
macro_rules! relay_conformance_tests {
    (optional $make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_outbox_relay_delivers_rows_as_stored_across_a_restart() {
            let Some(harness) = $make.await else { return };
            $crate::conformance::the_outbox_relay_delivers_rows_as_stored_across_a_restart(
                &harness,
            )
            .await;
        }
    };
    ($make:expr) => {
        $crate::relay_conformance_tests!(optional async { Some($make.await) });
    };
}

/// Outbox relay delivery: a relay publishing in small batches is stopped while rows are
/// left (the transport refused them: [`Outage`]); more rows are enqueued; the next relay
/// publishes the rest. Every row is stored
/// once, with the id, type, source, key and data it was enqueued with, and each key's
/// events are stored in enqueue order.
pub async fn the_outbox_relay_delivers_rows_as_stored_across_a_restart<H: Harness>(harness: &H) {
    create_topic(harness, "orders", PARTITIONS).await;
    let topic = name(harness, "orders");
    let dir = tempfile::tempdir().expect("temporary directory");
    let outbox = SqliteOutbox::open(dir.path().join("outbox.db")).expect("open the outbox");
    let enqueued: Vec<Event> = (0..BEFORE + AFTER)
        .map(|n| event(&format!("k{}", n % KEYS), n))
        .collect();
    enqueue(&outbox, &topic, &enqueued[..BEFORE as usize]);
    let options = RelayOptions {
        batch_rows_max: 4,
        poll_interval: Duration::from_millis(20),
        ..RelayOptions::default()
    };
    let outage = Arc::new(Outage {
        publisher: harness.publisher(),
        accepted_left: AtomicU32::new(ACCEPTED_FIRST),
    });
    let first = outbox
        .relay(outage.clone(), options.clone())
        .expect("relay");
    wait_for_stored(harness, ACCEPTED_FIRST as usize).await;
    first.shutdown().await;
    let published_first = stored(harness, "orders").await.len();
    enqueue(&outbox, &topic, &enqueued[BEFORE as usize..]);
    let second = outbox
        .relay(Arc::new(harness.publisher()), options)
        .expect("relay again");
    second.wake();
    wait_for_stored(harness, enqueued.len()).await;
    second.shutdown().await;
    let records = stored(harness, "orders").await;
    assert_eq!(
        published_first, ACCEPTED_FIRST as usize,
        "the first relay stopped with rows left"
    );
    assert_eq!(records.len(), enqueued.len(), "every row stored once");
    let by_id: HashMap<&str, &Event> = enqueued.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut per_key: BTreeMap<String, Vec<(u64, u32)>> = BTreeMap::new();
    for record in &records {
        let got = decode(record);
        let want = by_id
            .get(got.id.as_str())
            .unwrap_or_else(|| panic!("stored event {} was never enqueued", got.id));
        assert_eq!(
            (&got.ty, &got.source, &got.partitionkey, &got.data),
            (&want.ty, &want.source, &want.partitionkey, &want.data),
            "event {} stored as enqueued",
            got.id
        );
        let key = got.partitionkey.clone().expect("key");
        let seq = enqueued.iter().position(|e| e.id == got.id).expect("seq") as u32;
        per_key.entry(key).or_default().push((record.offset, seq));
    }
    for (key, mut stored) in per_key {
        // One key is one partition: its offsets give the stored order.
        stored.sort_unstable();
        let seqs: Vec<u32> = stored.into_iter().map(|(_, seq)| seq).collect();
        let mut in_enqueue_order = seqs.clone();
        in_enqueue_order.sort_unstable();
        assert_eq!(seqs, in_enqueue_order, "key {key} stored in enqueue order");
    }
}

/// The transport as the first relay sees it: it stores the first [`ACCEPTED_FIRST`] events,
/// then refuses every publish as a transient failure (a broker gone), so that relay stops
/// with rows left whatever the transport's speed.
struct Outage {
    publisher: Publisher,
    accepted_left: AtomicU32,
}

impl Outage {
    /// Whether the next event may pass, counting it.
    fn accept(&self) -> bool {
        self.accepted_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl PublishPort for Outage {
    fn publish<'a>(&'a self, topic: &'a str, event: Event) -> BoxFuture<'a, Result<(), PortError>> {
        if self.accept() {
            PublishPort::publish(&self.publisher, topic, event)
        } else {
            Box::pin(async { Err(PortError::transient("the broker is down")) })
        }
    }

    fn publish_dead_letter<'a>(
        &'a self,
        _topic: &'a str,
        _event: Event,
        _headers: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async { panic!("the check's events are never dead-lettered") })
    }
}

/// Commits `events` for `topic` in one transaction, as a service's state change would.
fn enqueue(outbox: &SqliteOutbox, topic: &str, events: &[Event]) {
    let mut connection = rusqlite::Connection::open(outbox.path()).expect("connect");
    let tx = connection.transaction().expect("begin");
    let rows: Vec<(&str, Event)> = events.iter().map(|e| (topic, e.clone())).collect();
    outbox.enqueue_batch(&tx, &rows).expect("enqueue");
    tx.commit().expect("commit");
}

/// Waits until at least `count` records are stored in the check's topic.
async fn wait_for_stored<H: Harness>(harness: &H, count: usize) {
    let deadline = Instant::now() + WAIT;
    while stored(harness, "orders").await.len() < count {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {count} relayed events"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The event a stored record carries.
fn decode(record: &Record) -> Event {
    let headers = record
        .headers
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_deref()));
    Event::from_record(record.key.as_deref(), headers, record.value.as_deref())
        .expect("a stored record is a CloudEvent")
}
