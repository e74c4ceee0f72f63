//! The transport conformance suite: one set of router checks every transport must pass —
//! the embedded log (`keel-embedded`), Kafka against `keel serve` and against Apache Kafka
//! (`keel-kafka-client`). Enabled by the `conformance` feature so each transport crate runs
//! the same test bodies.
//!
//! Each check gets a fresh [`Harness`] (a transport and the administrative port of the same
//! broker, never a log) from the caller's factory and panics with a message naming what
//! differed. Checks create their topics and read `.dlq`/`.retry` back through the admin
//! port; every wait is for a condition with a deadline ([`WAIT`]), never a fixed sleep, and
//! the checks run on the real clock, since a networked transport's broker does.
//!
//! The check of a member killed without leaving is in `conformance/takeover.rs`: it runs
//! the dead member in a child process where the broker lives outside the test process.
//! `conformance/server.rs` runs a private broker process a check may restart (the restart
//! check itself, with the SQLite inbox, is `keel_sql::conformance::restart`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_core::{AdminTransport, Event, GroupPolicy, PartitionOffsets, Record, partition_for_key};

use crate::admin::groups::{self, ResetTarget};
use crate::dead_letter::{DeadLetterHeaders, DeadLetterKind, dead_letter_topic};
use crate::dedupe::MemoryDedupeWindow;
use crate::error::HandlerError;
use crate::handler::Handler;
use crate::metrics::Metrics;
use crate::policy::{ConsumerPolicy, RetryMode, RetryPolicy};
use crate::publisher::Publisher;
use crate::redelivery::{Redelivery, retry_topic};
use crate::router::{Route, Router, RouterHandle};
use crate::transport::Transport;

mod dead_letters;
mod live_lag;
mod server;
mod takeover;
mod transactions;

pub use dead_letters::dead_letter_replay_with_a_canary_through_the_ports;
pub use live_lag::lag_in_seconds_grows_while_a_running_group_is_held;
pub use server::{Launch, PrivateServer, STOP_WAIT, Stop, free_port};
pub use takeover::{
    BROKER_VAR, MEMBER_VAR, a_killed_members_partitions_are_taken_over, inherited_broker,
};
pub use transactions::{
    a_killed_transactional_service_outputs_each_input_once,
    transactions_hide_a_failed_attempts_publishes_or_are_refused,
};

/// The longest any check waits for a condition.
pub const WAIT: Duration = Duration::from_secs(60);

/// What a check needs of a transport under test.
pub trait Harness: Send + Sync + 'static {
    /// A transport for one router (a router restart asks again). Embedded transports return
    /// the same bus every time: one bus per log.
    fn transport(&self) -> Transport;

    /// The administrative port of the same broker: topics are created and read back here.
    fn admin(&self) -> Arc<dyn AdminTransport>;

    /// The publisher events are published with (one for the whole check).
    fn publisher(&self) -> Publisher;

    /// Group timing short enough for tests and acceptable to the transport.
    fn group_policy(&self) -> GroupPolicy;

    /// What the check's topic and group names start with: nothing where every check has a
    /// broker of its own; a prefix no other check or run uses where checks share one (a
    /// real cluster keeps topics and committed offsets between runs).
    fn namespace(&self) -> String {
        String::new()
    }

    /// What a member in a child process needs to reach this broker under this harness's
    /// names — the test's factory, run again in the child, reads it back with
    /// [`inherited_broker`] — or `None` where the broker lives in the test process only (the
    /// embedded log): [`a_killed_members_partitions_are_taken_over`] then abandons its dead
    /// member in place instead of killing a process.
    fn broker_for_child(&self) -> Option<String>;
}

/// The name topic or group `base` of a check has on the harness's broker.
pub fn name<H: Harness>(harness: &H, base: &str) -> String {
    format!("{}{base}", harness.namespace())
}

/// One `#[tokio::test]` per check, each on a fresh harness from `$make` (an async
/// expression): `keel_runtime::conformance_tests!(harness());` in a transport's tests.
/// `conformance_tests!(optional harness())` takes an `Option` of a harness instead: `None`
/// (a backend whose test variable is unset; the factory says so) ends the check at once.
#[macro_export]
macro_rules! conformance_tests {
    (@tests [$make:expr] $mode:ident; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(harness) = $crate::conformance_tests!(@make $mode $make) else {
                    return;
                };
                $crate::conformance::$check(&harness).await;
            }
        )*
    };
    (@make always $make:expr) => { Some($make.await) };
    (@make optional $make:expr) => { $make.await };
    (@checks [$make:expr] $mode:ident) => {
        $crate::conformance_tests!(@tests [$make] $mode;
            two_groups_each_see_every_event,
            members_share_partitions_and_handle_each_event_once,
            same_key_order_holds_under_retries,
            poison_event_goes_to_the_dead_letter_topic_while_other_keys_flow,
            inbox_drops_a_redelivered_event,
            retry_topic_carries_the_next_attempt,
            committed_offsets_resume_after_a_restart,
            a_backlog_beyond_the_in_flight_window_is_handled_whole,
            a_killed_members_partitions_are_taken_over,
            transactions_hide_a_failed_attempts_publishes_or_are_refused,
            a_killed_transactional_service_outputs_each_input_once,
        );
    };
    (optional $make:expr) => {
        $crate::conformance_tests!(@checks [$make] optional);
    };
    ($make:expr) => {
        $crate::conformance_tests!(@checks [$make] always);
    };
}

/// The dead-letter replay check (`conformance/dead_letters.rs`), one `#[tokio::test]`, as
/// [`conformance_tests!`] makes them (`dead_letter_conformance_tests!(optional …)` too): the
/// operator's replay with a canary through the admin port and the publisher's transport. A
/// transport opts in once its ports let a client write the audit log (`keel.dlq.audit`):
/// `keel serve` keeps that topic as its own, written only by the server itself.
#[macro_export]
macro_rules! dead_letter_conformance_tests {
    (optional $make:expr) => {
        $crate::conformance_tests!(@tests [$make] optional;
            dead_letter_replay_with_a_canary_through_the_ports,
        );
    };
    ($make:expr) => {
        $crate::conformance_tests!(@tests [$make] always;
            dead_letter_replay_with_a_canary_through_the_ports,
        );
    };
}

/// The operator checks through the admin port, one `#[tokio::test]` each, as
/// [`conformance_tests!`] makes them (`admin_conformance_tests!(optional …)` too). Offsets
/// may skip numbers (NATS's stream sequences are shared by a stream's partitions): the
/// checks compare with the offsets the records were stored at.
#[macro_export]
macro_rules! admin_conformance_tests {
    (optional $make:expr) => {
        $crate::conformance_tests!(@tests [$make] optional;
            lag_in_events_and_seconds_and_a_reset_through_the_admin_port,
            what_the_engine_cannot_do_is_refused_in_its_name,
        );
    };
    ($make:expr) => {
        $crate::conformance_tests!(@tests [$make] always;
            lag_in_events_and_seconds_and_a_reset_through_the_admin_port,
            what_the_engine_cannot_do_is_refused_in_its_name,
        );
    };
}

/// The group deletion check through the admin port, one `#[tokio::test]`, as
/// [`conformance_tests!`] makes them (`group_deletion_conformance_tests!(optional …)` too),
/// for the engines whose admin port deletes groups (`AdminTransport::delete_group`).
#[macro_export]
macro_rules! group_deletion_conformance_tests {
    (optional $make:expr) => {
        $crate::conformance_tests!(@tests [$make] optional;
            a_group_is_deleted_through_the_admin_port_once_its_members_stopped,
        );
    };
    ($make:expr) => {
        $crate::conformance_tests!(@tests [$make] always;
            a_group_is_deleted_through_the_admin_port_once_its_members_stopped,
        );
    };
}

/// The topic deletion check through the admin port, one `#[tokio::test]`, as
/// [`conformance_tests!`] makes them (`topic_deletion_conformance_tests!(optional …)` too),
/// for the engines whose admin port deletes topics (`AdminTransport::delete_topic`).
#[macro_export]
macro_rules! topic_deletion_conformance_tests {
    (optional $make:expr) => {
        $crate::conformance_tests!(@tests [$make] optional;
            a_topic_is_deleted_through_the_admin_port,
        );
    };
    ($make:expr) => {
        $crate::conformance_tests!(@tests [$make] always;
            a_topic_is_deleted_through_the_admin_port,
        );
    };
}

/// The metrics check, one `#[tokio::test]`, as [`conformance_tests!`] makes them
/// (`gauge_conformance_tests!(optional …)` too), for transports whose lag gauges cover a
/// group after it stopped, in events and seconds (the embedded log and the engines
/// measuring through their admin port).
#[macro_export]
macro_rules! gauge_conformance_tests {
    (optional $make:expr) => {
        $crate::conformance_tests!(@tests [$make] optional;
            lag_and_dead_letter_gauges_of_a_stopped_group,
        );
    };
    ($make:expr) => {
        $crate::conformance_tests!(@tests [$make] always;
            lag_and_dead_letter_gauges_of_a_stopped_group,
        );
    };
}

/// The lag check of a running group (`conformance/live_lag.rs`), one `#[tokio::test]`, as
/// [`conformance_tests!`] makes them (`live_lag_conformance_tests!(optional …)` too): the
/// transport's own metrics report lag in seconds that grows while the group is held and
/// drops to 0 once it caught up.
#[macro_export]
macro_rules! live_lag_conformance_tests {
    (optional $make:expr) => {
        $crate::conformance_tests!(@tests [$make] optional;
            lag_in_seconds_grows_while_a_running_group_is_held,
        );
    };
    ($make:expr) => {
        $crate::conformance_tests!(@tests [$make] always;
            lag_in_seconds_grows_while_a_running_group_is_held,
        );
    };
}

/// What a handler saw: (router name, key, seq, attempt).
type Seen = Arc<Mutex<Vec<(String, String, u32, u32)>>>;

/// A test event: `key/seq` as its data, `key` as its partition key.
pub fn event(key: &str, seq: u32) -> Event {
    Event::new("/conformance", "conformance.step")
        .with_partition_key(key)
        .with_data("text/plain", format!("{key}/{seq}").into_bytes())
}

/// The key and seq of an [`event`].
pub fn key_seq(event: &Event) -> (String, u32) {
    let data = std::str::from_utf8(event.data.as_deref().expect("data")).expect("utf-8");
    let (key, seq) = data.split_once('/').expect("key/seq");
    (key.to_string(), seq.parse().expect("seq"))
}

/// A handler that records each attempt, then answers what `fail` says for (key, seq,
/// attempt).
fn recording(
    name: &str,
    seen: &Seen,
    fail: impl Fn(&str, u32, u32) -> Option<HandlerError> + Send + Sync + 'static,
) -> Handler {
    let seen = seen.clone();
    let fail = Arc::new(fail);
    let router = name.to_string();
    Handler::raw("record", move |event, ctx| {
        let (key, seq) = key_seq(&event);
        seen.lock()
            .unwrap()
            .push((router.clone(), key.clone(), seq, ctx.attempt()));
        let result = match fail(&key, seq, ctx.attempt()) {
            Some(error) => Err(error),
            None => Ok(()),
        };
        async move { result }
    })
}

fn quick_retry(attempts_max: u32) -> RetryPolicy {
    RetryPolicy {
        attempts_max,
        delay_min: Duration::from_millis(10),
        delay_max: Duration::from_millis(50),
        multiplier: 2,
        jitter_seed: Some(7),
    }
}

/// A consumer that polls and commits every 20 ms, as checks want.
pub fn quick_consumer() -> ConsumerPolicy {
    ConsumerPolicy {
        poll_interval: Duration::from_millis(20),
        commit_interval: Duration::from_millis(20),
        ..ConsumerPolicy::default()
    }
}

fn route<H: Harness>(harness: &H, topic: &str, group: &str, handler: Handler) -> Route {
    Route::new(name(harness, topic), name(harness, group), handler)
        .with_consumer(quick_consumer())
        .with_group_policy(harness.group_policy())
}

/// Creates the check's topic `topic` with `partitions`, failing when it existed.
pub async fn create_topic<H: Harness>(harness: &H, topic: &str, partitions: u32) {
    let topic = name(harness, topic);
    let created = harness
        .admin()
        .create_topic(&topic, partitions)
        .await
        .expect("create topic");
    assert_eq!(created, partitions, "topic '{topic}' already existed");
}

async fn publish<H: Harness>(harness: &H, topic: &str, events: impl IntoIterator<Item = Event>) {
    let publisher = harness.publisher();
    let topic = name(harness, topic);
    for event in events {
        publisher.publish(&topic, event).await.expect("publish");
    }
}

fn start(router: Router) -> RouterHandle {
    router.start().expect("router starts")
}

/// Waits until `done` holds, failing after [`WAIT`] with `what`.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every record stored in `topic` (none when it does not exist), read through the admin
/// port.
pub async fn stored<H: Harness>(harness: &H, topic: &str) -> Vec<Record> {
    let topic = &name(harness, topic);
    let admin = harness.admin();
    let Ok(partitions) = admin.partition_offsets(topic).await else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for range in partitions {
        records.extend(stored_in(admin.as_ref(), topic, range).await);
    }
    records
}

/// Every record stored in one partition (`range`) of `topic` (the broker's name), in offset
/// order.
async fn stored_in(
    admin: &dyn AdminTransport,
    topic: &str,
    range: PartitionOffsets,
) -> Vec<Record> {
    let mut records = Vec::new();
    let mut offset = range.log_start;
    while offset < range.high_watermark {
        let batch = admin
            .read(topic, range.partition, offset, 1 << 20)
            .await
            .expect("read");
        let batch: Vec<Record> = batch.into_iter().filter(|r| r.offset >= offset).collect();
        offset = batch.last().map_or(range.high_watermark, |r| r.offset + 1);
        records.extend(batch);
    }
    records
}

/// The seqs router (or group) `name` handled, each once.
fn distinct(seen: &Seen, name: &str) -> HashSet<u32> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|s| s.0 == name)
        .map(|s| s.2)
        .collect()
}

/// How many recorded attempts `f` accepts.
fn count_by(seen: &Seen, f: impl Fn(&(String, String, u32, u32)) -> bool) -> usize {
    seen.lock().unwrap().iter().filter(|s| f(s)).count()
}

/// One key per partition of a topic of `partitions`, each `<prefix>-<n>`, in partition
/// order (every transport maps keys with murmur2).
fn keys_per_partition(partitions: u32, prefix: &str) -> Vec<String> {
    (0..partitions)
        .map(|p| {
            (0..)
                .map(|n| format!("{prefix}-{n}"))
                .find(|key| partition_for_key(key.as_bytes(), partitions) == p)
                .expect("a key for every partition")
        })
        .collect()
}

/// Pub/sub: two groups on one topic each handle every event.
pub async fn two_groups_each_see_every_event<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 2).await;
    let seen: Seen = Arc::default();
    let router = Router::new(harness.transport())
        .route(route(
            harness,
            "orders",
            "billing",
            recording("billing", &seen, |_, _, _| None),
        ))
        .route(route(
            harness,
            "orders",
            "shipping",
            recording("shipping", &seen, |_, _, _| None),
        ));
    let handle = start(router);
    publish(
        harness,
        "orders",
        (0..20).map(|n| event(&format!("k{}", n % 5), n)),
    )
    .await;
    until("both groups to handle 20 events", || {
        distinct(&seen, "billing").len() == 20 && distinct(&seen, "shipping").len() == 20
    })
    .await;
    handle.shutdown().await;
    for group in ["billing", "shipping"] {
        let mut seqs: Vec<u32> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.0 == group)
            .map(|s| s.2)
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs, (0..20).collect::<Vec<_>>(), "{group} saw every event");
    }
}

/// Competing consumers: two members of one group share the partitions and, once the group
/// is settled, handle every event exactly once between them.
pub async fn members_share_partitions_and_handle_each_event_once<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 4).await;
    let seen: Seen = Arc::default();
    let members: Vec<RouterHandle> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let handler = recording(name, &seen, |_, _, _| None);
            start(
                Router::new(harness.transport())
                    .route(route(harness, "orders", "billing", handler)),
            )
        })
        .collect();
    // Settle: probe every partition until both members have handled a probe, so the
    // events below are published to a group that is not rebalancing.
    let probe_keys = keys_per_partition(4, "probe");
    let deadline = Instant::now() + WAIT;
    let mut round = 0;
    while count_by(&seen, |s| s.0 == "a") == 0 || count_by(&seen, |s| s.0 == "b") == 0 {
        assert!(Instant::now() < deadline, "both members to handle a probe");
        publish(
            harness,
            "orders",
            probe_keys.iter().map(|key| event(key, round)),
        )
        .await;
        round += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let probes = round as usize * 4;
    until("every probe to be handled", || {
        count_by(&seen, |s| s.1.starts_with("probe")) >= probes
    })
    .await;
    seen.lock().unwrap().clear();
    // A key per partition again, so every member gets events.
    let keys = keys_per_partition(4, "key");
    let events = (0..40).map(|n| event(&keys[n as usize % keys.len()], n));
    publish(harness, "orders", events).await;
    until("40 events handled", || count_by(&seen, |_| true) >= 40).await;
    for member in members {
        member.shutdown().await;
    }
    let seen = seen.lock().unwrap();
    let mut seqs: Vec<u32> = seen.iter().map(|s| s.2).collect();
    seqs.sort_unstable();
    // Who handled an event twice tells a redelivery to the other member (a lease or
    // visibility timeout that passed) from one member's double handling.
    let twice: Vec<_> = seen
        .iter()
        .filter(|s| seen.iter().filter(|other| other.2 == s.2).count() > 1)
        .collect();
    assert_eq!(
        seqs,
        (0..40).collect::<Vec<_>>(),
        "each event handled once; handled more than once (member, key, seq, attempt): {twice:?}"
    );
    let by_a = seen.iter().filter(|s| s.0 == "a").count();
    assert!(
        by_a > 0 && by_a < 40,
        "both members handled events ({by_a} by a)"
    );
}

/// Per-key order under retries: a key's events are handled in published order even while
/// one of them is being retried (blocking retries).
pub async fn same_key_order_holds_under_retries<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 2).await;
    let seen: Seen = Arc::default();
    // Every third event fails its first two attempts.
    let handler = recording("r", &seen, |_, seq, attempt| {
        (seq % 3 == 0 && attempt < 3).then(|| HandlerError::transient("not yet"))
    });
    let route = route(harness, "orders", "billing", handler).with_retry(quick_retry(5));
    let handle = start(Router::new(harness.transport()).route(route));
    publish(
        harness,
        "orders",
        (0..30).map(|n| event(&format!("k{}", n % 3), n)),
    )
    .await;
    let ok = |s: &(String, String, u32, u32)| !s.2.is_multiple_of(3) || s.3 == 3;
    until("30 events handled", || {
        let seen = seen.lock().unwrap();
        let handled: HashSet<u32> = seen.iter().filter(|s| ok(s)).map(|s| s.2).collect();
        handled.len() == 30
    })
    .await;
    handle.shutdown().await;
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for s in seen.lock().unwrap().iter().filter(|s| ok(s)) {
        per_key.entry(s.1.clone()).or_default().push(s.2);
    }
    for (key, handled) in per_key {
        let published: Vec<u32> = (0..30).filter(|n| format!("k{}", n % 3) == key).collect();
        assert_in_order(&key, &published, &handled);
    }
}

/// Checks one key's handled sequence against its published one, allowing what
/// at-least-once delivery allows: a rebalance may deliver again the events after the last
/// commit, so a run of events may repeat — but no event is handled before every earlier
/// event of its key was, and every event is handled.
fn assert_in_order(key: &str, published: &[u32], handled: &[u32]) {
    for (at, seq) in handled.iter().enumerate() {
        for earlier in published.iter().take_while(|p| *p < seq) {
            assert!(
                handled[..at].contains(earlier),
                "key {key}: {seq} handled before {earlier} (handled: {handled:?})"
            );
        }
    }
    let mut distinct = handled.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct, published, "key {key}: every event handled");
}

/// Poison event: one key always fails; after its attempts it is stored in `<topic>.dlq`
/// with the dead-letter headers, and the other keys of its partition keep flowing.
pub async fn poison_event_goes_to_the_dead_letter_topic_while_other_keys_flow<H: Harness>(
    harness: &H,
) {
    create_topic(harness, "orders", 1).await;
    let seen: Seen = Arc::default();
    let handler = recording("r", &seen, |key, _, _| {
        (key == "poison").then(|| HandlerError::transient("always fails"))
    });
    let route = route(harness, "orders", "billing", handler).with_retry(quick_retry(3));
    let handle = start(Router::new(harness.transport()).route(route));
    let mut events = vec![event("poison", 0)];
    events.extend((1..=10).map(|n| event(&format!("k{}", n % 2), n)));
    publish(harness, "orders", events).await;
    let dlq = dead_letter_topic("orders");
    let deadline = Instant::now() + WAIT;
    while stored(harness, &dlq).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the poison event in the dead letters"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    until("the other keys handled", || {
        count_by(&seen, |s| s.1 != "poison") >= 10
    })
    .await;
    handle.shutdown().await;
    let dead = stored(harness, &dlq).await;
    assert_eq!(dead.len(), 1, "one dead letter");
    let headers = DeadLetterHeaders::decode(&dead[0].headers).expect("keel_dlq_* headers");
    assert_eq!(headers.topic, name(harness, "orders"));
    assert_eq!((headers.partition, headers.offset), (0, 0));
    assert_eq!(headers.group, name(harness, "billing"));
    assert_eq!(headers.handler, "record");
    assert_eq!(headers.attempts, 3);
    assert_eq!(headers.kind, DeadLetterKind::Transient);
    assert_eq!(headers.error, "always fails");
    assert!(headers.first_failure_ms <= headers.last_failure_ms);
    assert_eq!(dead[0].key.as_deref(), Some(&b"poison"[..]), "key kept");
    // At least: a rebalance (a member joining) may end a retry wait and start over.
    assert!(count_by(&seen, |s| s.1 == "poison") >= 3, "three attempts");
}

/// Inbox: an event delivered again (same id) is dropped by the dedupe step.
pub async fn inbox_drops_a_redelivered_event<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 1).await;
    let seen: Seen = Arc::default();
    let inbox = Arc::new(MemoryDedupeWindow::new(100).expect("window"));
    let route = route(
        harness,
        "orders",
        "billing",
        recording("r", &seen, |_, _, _| None),
    )
    .with_inbox(inbox);
    let handle = start(Router::new(harness.transport()).route(route));
    let first = event("k", 1);
    // The same event twice, then another: once that one is handled, the duplicate (before
    // it in the partition) was dropped.
    publish(harness, "orders", [first.clone(), first, event("k", 2)]).await;
    until("the last event handled", || {
        count_by(&seen, |s| s.2 == 2) == 1
    })
    .await;
    handle.shutdown().await;
    assert_eq!(
        count_by(&seen, |s| s.2 == 1),
        1,
        "the duplicate was dropped"
    );
}

/// Retry topic: a failed attempt moves the event to `<topic>.retry`, where the same group
/// makes the next attempt; the key's later events do not wait for it.
pub async fn retry_topic_carries_the_next_attempt<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 2).await;
    let seen: Seen = Arc::default();
    let handler = recording("r", &seen, |_, seq, attempt| {
        (seq == 0 && attempt == 1).then(|| HandlerError::transient("first try fails"))
    });
    let route = route(harness, "orders", "billing", handler)
        .with_retry(quick_retry(3))
        .with_retry_mode(RetryMode::Topic);
    let handle = start(Router::new(harness.transport()).route(route));
    publish(harness, "orders", (0..5).map(|n| event("k", n))).await;
    until("the second attempt through the retry topic", || {
        count_by(&seen, |s| s.2 == 0 && s.3 == 2) >= 1
    })
    .await;
    until("the other events handled", || {
        count_by(&seen, |s| s.2 > 0) >= 4
    })
    .await;
    handle.shutdown().await;
    let redelivered = stored(harness, &retry_topic("orders")).await;
    assert!(!redelivered.is_empty(), "a redelivery record");
    for record in &redelivered {
        let redelivery = Redelivery::decode(&record.headers).expect("keel_retry_* headers");
        assert_eq!(redelivery.group, name(harness, "billing"));
        assert_eq!(redelivery.attempts, 1);
        assert_eq!(
            (redelivery.topic, redelivery.offset),
            (name(harness, "orders"), 0)
        );
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
    }
    assert!(
        stored(harness, &dead_letter_topic("orders"))
            .await
            .is_empty(),
        "nothing dead-lettered"
    );
}

/// Restart: a router that shut down gracefully committed what it handled; the next one in
/// the group resumes after it, handling only the new events.
pub async fn committed_offsets_resume_after_a_restart<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 2).await;
    let seen: Seen = Arc::default();
    for batch in 0..2u32 {
        let name = format!("run{batch}");
        let handler = recording(&name, &seen, |_, _, _| None);
        let handle = start(
            Router::new(harness.transport()).route(route(harness, "orders", "billing", handler)),
        );
        let events = (0..10).map(|n| event(&format!("k{}", n % 4), batch * 10 + n));
        publish(harness, "orders", events).await;
        until("the batch handled", || distinct(&seen, &name).len() == 10).await;
        handle.shutdown().await;
    }
    let mut per_run: HashMap<String, Vec<u32>> = HashMap::new();
    for s in seen.lock().unwrap().iter() {
        per_run.entry(s.0.clone()).or_default().push(s.2);
    }
    let mut second = per_run.remove("run1").expect("second run handled events");
    second.sort_unstable();
    second.dedup();
    assert_eq!(
        second,
        (10..20).collect::<Vec<_>>(),
        "the second run handled only the new events"
    );
}

/// Backpressure: a backlog many times the in-flight window is handled whole. The worker
/// schedules only as much as the window has room for and keeps the rest of a fetch as its
/// read-ahead; a transport whose fetch emptied its own buffer into that read-ahead has no
/// new data to announce, so the worker must go on from the read-ahead unasked.
pub async fn a_backlog_beyond_the_in_flight_window_is_handled_whole<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 1).await;
    publish(
        harness,
        "orders",
        (0..200).map(|n| event(&format!("k{}", n % 7), n)),
    )
    .await;
    let seen: Seen = Arc::default();
    let narrow = ConsumerPolicy {
        concurrency: 2,
        in_flight_max: 8,
        ..quick_consumer()
    };
    let handler = recording("billing", &seen, |_, _, _| None);
    let handle = start(
        Router::new(harness.transport())
            .route(route(harness, "orders", "billing", handler).with_consumer(narrow)),
    );
    until("all 200 events handled", || {
        distinct(&seen, "billing").len() == 200
    })
    .await;
    handle.shutdown().await;
}

/// Operator tools through the admin port: a stopped group's lag per partition in events and
/// in age of its oldest unconsumed event (`keel groups lag`), then a reset to the earliest
/// offset (`keel groups reset`) after which the group handles everything again.
pub async fn lag_in_events_and_seconds_and_a_reset_through_the_admin_port<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 2).await;
    let keys = keys_per_partition(2, "key");
    let seen: Seen = Arc::default();
    let group = name(harness, "billing");
    let admin = harness.admin();
    let publish_keyed = |seqs: std::ops::Range<u32>| {
        publish(
            harness,
            "orders",
            seqs.map(|n| event(&keys[n as usize % 2], n))
                .collect::<Vec<_>>(),
        )
    };
    publish_keyed(0..6).await;
    let handler = recording("run0", &seen, |_, _, _| None);
    let handle =
        start(Router::new(harness.transport()).route(route(harness, "orders", "billing", handler)));
    until("the first six handled", || {
        distinct(&seen, "run0").len() == 6
    })
    .await;
    handle.shutdown().await;
    // Four more, unconsumed: two behind in each partition.
    publish_keyed(6..10).await;
    let records = stored(harness, "orders").await;
    let now_ms = records
        .iter()
        .map(|r| r.timestamp_ms)
        .max()
        .expect("records")
        + 5_000;
    let topic = name(harness, "orders");
    // Only the topic: an engine may also hold the group's commits in the empty `.retry`.
    let lags: Vec<_> = groups::group_lag(admin.as_ref(), &group, now_ms)
        .await
        .expect("lag of the group")
        .into_iter()
        .filter(|l| l.topic == topic)
        .collect();
    assert_eq!(lags.len(), 2, "both partitions measured: {lags:?}");
    let mut starts = Vec::new();
    for lag in &lags {
        // Three handled and committed, two behind in each partition: the commit is past
        // the third record's offset and at most the fourth's (the same where offsets are
        // dense), the high watermark one past the fifth's.
        let records = partition_records(harness, "orders", lag.partition).await;
        let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(records.len(), 5, "{offsets:?}");
        let committed = lag.committed_offset.expect("a commit");
        assert!(
            offsets[2] < committed && committed <= offsets[3],
            "{lag:?}, offsets {offsets:?}"
        );
        assert_eq!(
            (lag.high_watermark, lag.lag_events),
            (offsets[4] + 1, 2),
            "{lag:?}, offsets {offsets:?}"
        );
        assert_eq!(
            lag.lag_ms,
            (now_ms - records[3].timestamp_ms) as u64,
            "{lag:?}"
        );
        starts.push((lag.partition, committed, lag.log_start_offset));
    }
    let summary = groups::list_groups(admin.as_ref(), now_ms)
        .await
        .expect("groups")
        .into_iter()
        .find(|g| g.group == group)
        .expect("the group is listed");
    assert_eq!(summary.lag_events, 4);
    // Reset the stopped group to the start: it handles all ten again.
    let plan = groups::plan_reset(admin.as_ref(), &group, &topic, None, ResetTarget::Earliest)
        .await
        .expect("plan");
    for reset in &plan {
        let (_, committed, log_start) = starts
            .iter()
            .find(|s| s.0 == reset.partition)
            .expect("a measured partition");
        assert_eq!(
            (reset.offset_before, reset.offset_after),
            (Some(*committed), *log_start),
            "{plan:?}"
        );
    }
    groups::apply_reset(admin.as_ref(), &group, &plan)
        .await
        .expect("reset a stopped group");
    let handler = recording("run2", &seen, |_, _, _| None);
    let handle =
        start(Router::new(harness.transport()).route(route(harness, "orders", "billing", handler)));
    until("all ten handled after the reset", || {
        distinct(&seen, "run2").len() == 10
    })
    .await;
    handle.shutdown().await;
    let lags = groups::group_lag(admin.as_ref(), &group, now_ms)
        .await
        .expect("lag after");
    // Every partition, `.retry` included, is caught up.
    assert!(
        lags.iter().all(|l| l.lag_events == 0 && l.lag_ms == 0),
        "caught up: {lags:?}"
    );
}

/// `keel groups delete` through the admin port: refused with
/// [`TransportError::GroupActive`](keel_core::TransportError::GroupActive) while a member
/// runs, then, once the members stopped, the group is gone — not listed, no committed
/// offset — and deleting it again succeeds.
pub async fn a_group_is_deleted_through_the_admin_port_once_its_members_stopped<H: Harness>(
    harness: &H,
) {
    create_topic(harness, "orders", 2).await;
    publish(harness, "orders", vec![event("a", 0), event("b", 1)]).await;
    let seen: Seen = Arc::default();
    let group = name(harness, "billing");
    let admin = harness.admin();
    let handler = recording("run", &seen, |_, _, _| None);
    let handle =
        start(Router::new(harness.transport()).route(route(harness, "orders", "billing", handler)));
    until("both handled", || distinct(&seen, "run").len() == 2).await;
    until_committed(admin.as_ref(), &group).await;
    assert_eq!(
        admin.delete_group(&group).await,
        Err(keel_core::TransportError::GroupActive {
            group: group.clone()
        }),
        "a running group is refused"
    );
    assert!(
        !admin.committed(&group).await.expect("committed").is_empty(),
        "nothing deleted while refused"
    );
    handle.shutdown().await;
    // A member's leave may reach the broker just after the shutdown returns.
    let deadline = Instant::now() + WAIT;
    loop {
        match admin.delete_group(&group).await {
            Ok(()) => break,
            Err(keel_core::TransportError::GroupActive { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("deleting a stopped group: {error}"),
        }
    }
    assert_eq!(
        admin.committed(&group).await.expect("committed"),
        Vec::new(),
        "no committed offset left"
    );
    assert!(
        !admin.groups().await.expect("groups").contains(&group),
        "no longer listed"
    );
    admin
        .delete_group(&group)
        .await
        .expect("deleting a group that is gone succeeds");
}

/// The console's topic delete through the admin port: once it answers, the topic is not
/// listed and has no stored range; deleting it again is
/// [`TransportError::UnknownTopic`](keel_core::TransportError::UnknownTopic); created again
/// under its name, it holds none of the deleted topic's records (and is deleted again).
pub async fn a_topic_is_deleted_through_the_admin_port<H: Harness>(harness: &H) {
    create_topic(harness, "doomed", 2).await;
    publish(harness, "doomed", vec![event("a", 0), event("b", 1)]).await;
    let topic = name(harness, "doomed");
    let admin = harness.admin();
    admin.delete_topic(&topic).await.expect("delete the topic");
    assert!(
        !admin
            .topics()
            .await
            .expect("topics")
            .iter()
            .any(|t| t.name == topic),
        "no longer listed"
    );
    let unknown = keel_core::TransportError::UnknownTopic {
        topic: topic.clone(),
    };
    assert_eq!(
        admin.partition_offsets(&topic).await,
        Err(unknown.clone()),
        "no stored range"
    );
    assert_eq!(
        admin.delete_topic(&topic).await,
        Err(unknown),
        "a second delete"
    );
    create_topic(harness, "doomed", 2).await;
    let ranges = admin.partition_offsets(&topic).await.expect("ranges");
    let stored: u64 = ranges.iter().map(|r| r.high_watermark - r.log_start).sum();
    assert_eq!(stored, 0, "created again, it starts empty: {ranges:?}");
    admin
        .delete_topic(&topic)
        .await
        .expect("deleting it again, so the broker keeps nothing of the check");
}

/// Topic settings, which some engines cannot read: either the topic's settings, or a
/// refusal that names the engine as the admin port does (an operator's error reads "NATS
/// JetStream cannot read or alter a topic's settings: …", not "this engine …").
pub async fn what_the_engine_cannot_do_is_refused_in_its_name<H: Harness>(harness: &H) {
    create_topic(harness, "settings", 1).await;
    let topic = name(harness, "settings");
    let admin = harness.admin();
    match admin.topic_config(&topic).await {
        Ok(settings) => assert!(!settings.is_empty(), "a topic has settings in force"),
        Err(error @ keel_core::TransportError::Unsupported { engine, .. }) => {
            assert_eq!(engine, admin.engine(), "{error}");
            assert!(
                error.to_string().starts_with(admin.engine()),
                "the refusal opens with the engine's name: {error}"
            );
        }
        Err(error) => panic!("neither the settings nor Unsupported: {error}"),
    }
}

/// Waits until `group` has committed offsets (a member commits after handling).
async fn until_committed(admin: &dyn AdminTransport, group: &str) {
    let deadline = Instant::now() + WAIT;
    while admin.committed(group).await.expect("committed").is_empty() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a commit of {group}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every record of `topic`'s `partition`, in offset order.
async fn partition_records<H: Harness>(harness: &H, topic: &str, partition: u32) -> Vec<Record> {
    let topic = name(harness, topic);
    let admin = harness.admin();
    let range = admin
        .partition_offsets(&topic)
        .await
        .expect("partition offsets")
        .into_iter()
        .find(|r| r.partition == partition)
        .expect("the partition");
    stored_in(admin.as_ref(), &topic, range).await
}

/// Metrics: a scrape of the transport a group ran on reports the group's lag per partition
/// in events and seconds once it stopped, and its topic's dead letters, as `keel groups
/// lag` and `keel dlq` would count them.
pub async fn lag_and_dead_letter_gauges_of_a_stopped_group<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 2).await;
    let keys = keys_per_partition(2, "key");
    let keyed = |seqs: std::ops::Range<u32>| -> Vec<Event> {
        seqs.map(|n| event(&keys[n as usize % 2], n)).collect()
    };
    publish(harness, "orders", keyed(0..6)).await;
    let seen: Seen = Arc::default();
    let handler = recording("run0", &seen, |_, seq, _| {
        (seq == 0).then(|| HandlerError::permanent("poison"))
    });
    let transport = harness.transport();
    let metrics = transport.metrics().clone();
    let handle = start(Router::new(transport).route(route(harness, "orders", "billing", handler)));
    until("the first six handled", || {
        distinct(&seen, "run0").len() == 6
    })
    .await;
    let dlq = dead_letter_topic("orders");
    let deadline = Instant::now() + WAIT;
    while stored(harness, &dlq).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the dead letter"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.shutdown().await;
    // Four more, unconsumed: two behind in each partition.
    publish(harness, "orders", keyed(6..10)).await;
    let (topic, group) = (name(harness, "orders"), name(harness, "billing"));
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(&metrics).await;
        let lag = |unit: &str, partition: u32| lag_gauge(&text, unit, &topic, &group, partition);
        let topic_labels = [("topic", topic.as_str())];
        let events = [lag("events", 0), lag("events", 1)];
        let dead = gauge(&text, "keel_dead_letters", &topic_labels);
        if events == [Some(2.0), Some(2.0)] && dead == Some(1.0) {
            for partition in 0..2 {
                let seconds = lag("seconds", partition).expect("lag in seconds");
                assert!((0.0..WAIT.as_secs_f64()).contains(&seconds), "{text}");
            }
            let oldest = gauge(&text, "keel_dead_letter_oldest_age_seconds", &topic_labels)
                .expect("the dead letter's age");
            assert!((0.0..WAIT.as_secs_f64()).contains(&oldest), "{text}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the gauges: lag {events:?}, dead letters {dead:?}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One scrape of `metrics`, off the async executor (gauge sources may block on a broker).
pub async fn scrape(metrics: &Metrics) -> String {
    let metrics = metrics.clone();
    tokio::task::spawn_blocking(move || metrics.encode())
        .await
        .expect("scrape")
}

/// The `keel_consumer_lag_<unit>` series of `group` in `topic`/`partition` (broker names)
/// in a scrape, if reported.
fn lag_gauge(text: &str, unit: &str, topic: &str, group: &str, partition: u32) -> Option<f64> {
    let partition = partition.to_string();
    let labels = [
        ("topic", topic),
        ("group", group),
        ("partition", partition.as_str()),
    ];
    gauge(text, &format!("keel_consumer_lag_{unit}"), &labels)
}

/// The value of the series `family{labels}` in an OpenMetrics scrape, if reported.
pub fn gauge(text: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (name, set) = series.split_once('{')?;
        let set: Vec<&str> = set.trim_end_matches('}').split(',').collect();
        let matches = name == family
            && set.len() == wanted.len()
            && wanted.iter().all(|w| set.contains(&w.as_str()));
        matches.then(|| value.parse().ok()).flatten()
    })
}
