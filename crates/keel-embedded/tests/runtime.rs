//! End-to-end tests of the consumer runtime on a real embedded log in a temporary directory:
//! dead letters, decode failures, panics and timeouts, key ordering under random failures,
//! at-least-once across a restart, consumer groups, dedupe and the trace chain.
//!
//! Every test runs on paused tokio time, so retry delays, timeouts and heartbeats are exact
//! and cost no wall-clock time. Not here: unit tests of the pure parts (schedule, group state,
//! policies), which live next to their code.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use keel_core::{
    BoxFuture, ConsumeTransport, Event, EventType, GroupPolicy, Membership, StartFrom, TraceParent,
    TransportError,
};
use keel_embedded::EmbeddedBus;
use keel_log::NewRecord;
use keel_runtime::dead_letter::{
    DLQ_ATTEMPTS_HEADER, DLQ_ERROR_HEADER, DLQ_ERROR_KIND_HEADER, DLQ_FIRST_FAILURE_HEADER,
    DLQ_GROUP_HEADER, DLQ_HANDLER_HEADER, DLQ_LAST_FAILURE_HEADER, DLQ_OFFSET_HEADER,
    DLQ_PARTITION_HEADER, DLQ_TOPIC_HEADER,
};
use keel_runtime::{
    ConsumerPolicy, Context, DeadLetter, DeadLetterHeaders, DeadLetterKind, Handler, HandlerError,
    MemoryDedupeWindow, Route, Router, TimeoutPolicy, Transport,
};
use proptest::prelude::*;
use tokio::time::Instant;

mod support;

use support::{
    Step, committed, create_topic, eager_commits, header, open_log, quick_retry, read_all, step,
    until,
};

type Seen = Arc<Mutex<Vec<(String, u32, Instant)>>>;

#[tokio::test(start_paused = true)]
async fn poison_key_goes_to_dead_letters_after_its_attempts_and_other_keys_flow() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "orders", 1);
    let bus = EmbeddedBus::new(log.clone());
    let publisher = bus.publisher();
    let mut published = Vec::new();
    for seq in 0..5 {
        for key in ["poison", "a", "b"] {
            let event = step(key, seq);
            published.push((key, seq, event.id.clone()));
            publisher.publish("orders", event).await.unwrap();
        }
    }
    let seen: Seen = Arc::default();
    let attempts: Arc<Mutex<HashMap<u32, u32>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        let attempts = attempts.clone();
        Handler::typed("ship", move |step: Step, ctx: Context| {
            let seen = seen.clone();
            let attempts = attempts.clone();
            async move {
                if step.key == "poison" {
                    *attempts.lock().unwrap().entry(step.seq).or_default() = ctx.attempt();
                    return Err(HandlerError::transient("the warehouse is on fire"));
                }
                seen.lock()
                    .unwrap()
                    .push((step.key, step.seq, Instant::now()));
                Ok(())
            }
        })
    };
    let alerts: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let dead_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let started = Instant::now();
    let router = {
        let alerts = alerts.clone();
        let dead_at = dead_at.clone();
        Router::new(&bus)
            .on_dead_letter(move |dl| {
                alerts.lock().unwrap().push(dl.clone());
                dead_at.lock().unwrap().push(Instant::now());
            })
            .route(
                Route::new("orders", "shipping", handler)
                    .with_retry(quick_retry(3))
                    .with_consumer(eager_commits()),
            )
            .start()
            .unwrap()
    };
    until("five dead letters", || alerts.lock().unwrap().len() == 5).await;
    router.shutdown().await;

    // Other keys of the same partition flowed while the poison key retried: all of them
    // were handled, in order, before the first poison event was even dead-lettered.
    let seen = seen.lock().unwrap().clone();
    for key in ["a", "b"] {
        let seqs: Vec<u32> = seen.iter().filter(|s| s.0 == key).map(|s| s.1).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4], "key {key}");
    }
    let alerts = alerts.lock().unwrap().clone();
    assert!(alerts[0].first_in_group);
    assert!(alerts[1..].iter().all(|a| !a.first_in_group));
    let last_other = seen.iter().map(|s| s.2).max().unwrap();
    let first_dead = dead_at.lock().unwrap()[0];
    assert!(
        first_dead > started,
        "the poison event waited for its retries"
    );
    assert!(
        last_other < first_dead,
        "no head-of-line blocking behind the poison key"
    );
    assert_eq!(*attempts.lock().unwrap(), (0..5).map(|s| (s, 3)).collect());

    let dead = read_all(&log, "orders.dlq");
    assert_eq!(dead.len(), 5);
    let originals = read_all(&log, "orders");
    let poison: Vec<&(&str, u32, String)> = published.iter().filter(|p| p.0 == "poison").collect();
    for ((partition, record), (_, seq, id)) in dead.iter().zip(poison) {
        let original = &originals
            .iter()
            .find(|(_, r)| header(r, "ce_id") == id)
            .expect("original")
            .1;
        assert_eq!(*partition, 0);
        assert_eq!(header(record, "ce_id"), id, "the id survives");
        assert_eq!(record.key, original.key);
        assert_eq!(record.value, original.value);
        for h in &original.headers {
            assert_eq!(
                header(record, &h.key),
                header(original, &h.key),
                "{}",
                h.key
            );
        }
        assert_eq!(header(record, DLQ_TOPIC_HEADER), "orders");
        assert_eq!(header(record, DLQ_PARTITION_HEADER), "0");
        assert_eq!(
            header(record, DLQ_OFFSET_HEADER),
            original.offset.to_string()
        );
        assert_eq!(header(record, DLQ_GROUP_HEADER), "shipping");
        assert_eq!(header(record, DLQ_HANDLER_HEADER), "ship");
        assert_eq!(header(record, DLQ_ATTEMPTS_HEADER), "3");
        assert_eq!(header(record, DLQ_ERROR_HEADER), "the warehouse is on fire");
        assert_eq!(header(record, DLQ_ERROR_KIND_HEADER), "transient");
        let first: i64 = header(record, DLQ_FIRST_FAILURE_HEADER).parse().unwrap();
        let last: i64 = header(record, DLQ_LAST_FAILURE_HEADER).parse().unwrap();
        assert!(first > 0 && first <= last);
        assert_eq!(Some(id.clone()), alerts[*seq as usize].event_id);
        assert_eq!(
            DeadLetterHeaders::decode(&record.headers).as_ref(),
            Some(&alerts[*seq as usize].headers),
            "the stored headers decode to the alert's"
        );
    }
    assert_eq!(
        committed(&log, "shipping", "orders", 0),
        15,
        "everything finished"
    );
}

#[tokio::test(start_paused = true)]
async fn undecodable_events_are_dead_lettered_without_reaching_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "in", 1);
    let bus = EmbeddedBus::new(log.clone());
    let partition = log.topic("in").unwrap().partition(0).unwrap().clone();
    partition
        .append(&[NewRecord::new(
            Some(Bytes::from_static(b"k")),
            Bytes::from_static(b"not an event"),
        )])
        .unwrap();
    let publisher = bus.publisher();
    let other = Event::new("/test", "test.other").with_data_json(&serde_json::json!({}));
    publisher.publish("in", other).await.unwrap();
    let newer = step("k", 1).with_extension("schemaversion", "2");
    publisher.publish("in", newer).await.unwrap();
    let misfit = Event::new("/test", Step::TYPE).with_data_json(&serde_json::json!({"key": 1}));
    publisher.publish("in", misfit).await.unwrap();
    publisher.publish("in", step("k", 2)).await.unwrap();

    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        Handler::typed("h", move |step: Step, _ctx: Context| {
            let calls = calls.clone();
            async move {
                assert_eq!(step.seq, 2);
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
    };
    let router = Router::new(&bus)
        .route(Route::new("in", "g", handler).with_consumer(eager_commits()))
        .start()
        .unwrap();
    until("all finished", || committed(&log, "g", "in", 0) == 5).await;
    router.shutdown().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let mut dead = read_all(&log, "in.dlq");
    // Keyless events finish in any order; look at them in source order.
    dead.sort_by_key(|(_, r)| header(r, DLQ_OFFSET_HEADER).parse::<u64>().unwrap());
    let errors: Vec<&str> = dead
        .iter()
        .map(|(_, r)| header(r, DLQ_ERROR_HEADER))
        .collect();
    assert_eq!(dead.len(), 4, "{errors:?}");
    for (_, record) in &dead {
        assert_eq!(header(record, DLQ_ERROR_KIND_HEADER), "decode");
        assert_eq!(header(record, DLQ_ATTEMPTS_HEADER), "0");
    }
    assert!(
        errors[0].contains("not a readable CloudEvent"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("test.other"), "{}", errors[1]);
    assert!(errors[2].contains("schemaversion"), "{}", errors[2]);
    assert!(errors[3].contains("data"), "{}", errors[3]);
    assert_eq!(dead[0].1.value.as_deref(), Some(&b"not an event"[..]));
}

/// A commit marker of producer 7, as `keel serve` writes one when a Kafka transaction ends.
fn transaction_marker() -> Vec<u8> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let marker = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: 7,
        producer_epoch: 0,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: Some(Bytes::from_static(&[0, 0, 0, 1])),
        value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        headers: Default::default(),
    };
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&marker], &options).unwrap();
    buf.to_vec()
}

/// A transaction marker is not an event: the group is not handed it (nor dead-letters it),
/// and goes past it when the next event comes.
#[tokio::test(start_paused = true)]
async fn transaction_markers_are_skipped_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "in", 1);
    let bus = EmbeddedBus::new(log.clone());
    let partition = log.topic("in").unwrap().partition(0).unwrap().clone();
    let publisher = bus.publisher();
    publisher.publish("in", step("k", 1)).await.unwrap();
    partition.append_batches(transaction_marker()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        Handler::typed("h", move |_step: Step, _ctx: Context| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
    };
    let router = Router::new(&bus)
        .route(Route::new("in", "g", handler).with_consumer(eager_commits()))
        .start()
        .unwrap();
    until("the event before the marker handled", || {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;
    publisher.publish("in", step("k", 2)).await.unwrap();
    until("the event after the marker committed", || {
        committed(&log, "g", "in", 0) == 3
    })
    .await;
    router.shutdown().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(log.topic("in.dlq").is_none() || read_all(&log, "in.dlq").is_empty());
}

#[tokio::test(start_paused = true)]
async fn panics_and_timeouts_are_retried_and_permanent_errors_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "in", 1);
    let bus = EmbeddedBus::new(log.clone());
    let publisher = bus.publisher();
    publisher.publish("in", step("flaky", 0)).await.unwrap();
    publisher.publish("in", step("broken", 0)).await.unwrap();
    let log_of_attempts: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let handler = {
        let attempts = log_of_attempts.clone();
        Handler::typed("h", move |step: Step, ctx: Context| {
            let attempts = attempts.clone();
            async move {
                attempts
                    .lock()
                    .unwrap()
                    .push((step.key.clone(), ctx.attempt()));
                match (step.key.as_str(), ctx.attempt()) {
                    ("flaky", 1) => panic!("boom"),
                    ("flaky", 2) => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    }
                    ("flaky", _) => Ok(()),
                    _ => Err(HandlerError::permanent("invalid order")),
                }
            }
        })
    };
    let alerts: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let started = Instant::now();
    let router = {
        let alerts = alerts.clone();
        Router::new(&bus)
            .on_dead_letter(move |dl| alerts.lock().unwrap().push(dl.clone()))
            .route(
                Route::new("in", "g", handler)
                    .with_retry(quick_retry(5))
                    .with_timeout(TimeoutPolicy {
                        attempt_timeout: Duration::from_secs(2),
                    })
                    .with_consumer(eager_commits()),
            )
            .start()
            .unwrap()
    };
    until("both finished", || committed(&log, "g", "in", 0) == 2).await;
    let elapsed = started.elapsed();
    router.shutdown().await;
    let mut attempts = log_of_attempts.lock().unwrap().clone();
    attempts.sort();
    let expected = [("broken", 1), ("flaky", 1), ("flaky", 2), ("flaky", 3)];
    let expected: Vec<(String, u32)> = expected.iter().map(|(k, a)| (k.to_string(), *a)).collect();
    assert_eq!(attempts, expected);
    // The timed-out attempt cost exactly its timeout, plus two jittered delays (< 100 + 200 ms).
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(2400),
        "{elapsed:?}"
    );
    let alerts = alerts.lock().unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].headers.attempts, 1);
    assert_eq!(alerts[0].headers.error, "invalid order");
    assert_eq!(alerts[0].headers.kind, DeadLetterKind::Permanent);
}

/// Publishes `events` (key index, fail count) to a topic, handles them with failures
/// injected, and checks per-key order and final commits.
fn check_ordering(partitions: u32, concurrency: usize, events: Vec<(u8, u8)>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path());
        create_topic(&log, "t", partitions);
        let bus = EmbeddedBus::new(log.clone());
        let publisher = bus.publisher();
        let mut published: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut failures: HashMap<(String, u32), u8> = HashMap::new();
        for (seq, (key, fail)) in events.iter().enumerate() {
            let key = format!("k{key}");
            published.entry(key.clone()).or_default().push(seq as u32);
            failures.insert((key.clone(), seq as u32), *fail);
            publisher
                .publish("t", step(&key, seq as u32))
                .await
                .unwrap();
        }
        let handled: Arc<Mutex<BTreeMap<String, Vec<u32>>>> = Arc::default();
        let running: Arc<Mutex<HashSet<String>>> = Arc::default();
        let failures = Arc::new(failures);
        let handler = {
            let handled = handled.clone();
            let running = running.clone();
            Handler::typed("h", move |step: Step, ctx: Context| {
                let (handled, running, failures) =
                    (handled.clone(), running.clone(), failures.clone());
                async move {
                    assert!(
                        running.lock().unwrap().insert(step.key.clone()),
                        "key ran twice at once"
                    );
                    tokio::time::sleep(Duration::from_millis(u64::from(step.seq % 7))).await;
                    running.lock().unwrap().remove(&step.key);
                    if u32::from(failures[&(step.key.clone(), step.seq)]) >= ctx.attempt() {
                        return Err(HandlerError::transient("injected"));
                    }
                    handled
                        .lock()
                        .unwrap()
                        .entry(step.key)
                        .or_default()
                        .push(step.seq);
                    Ok(())
                }
            })
        };
        let consumer = ConsumerPolicy {
            concurrency,
            in_flight_max: concurrency * 2,
            fetch_bytes_max: 512,
            ..ConsumerPolicy::default()
        };
        let router = Router::new(&bus)
            .route(
                Route::new("t", "g", handler)
                    .with_retry(quick_retry(4))
                    .with_consumer(consumer),
            )
            .start()
            .unwrap();
        let total = events.len();
        until("all handled", || {
            handled
                .lock()
                .unwrap()
                .values()
                .map(Vec::len)
                .sum::<usize>()
                == total
        })
        .await;
        router.shutdown().await;
        assert_eq!(*handled.lock().unwrap(), published);
        let topic = log.topic("t").unwrap();
        for (index, partition) in topic.partitions().iter().enumerate() {
            assert_eq!(
                committed(&log, "g", "t", index as u32),
                partition.high_watermark()
            );
        }
        assert!(log.topic("t.dlq").is_none(), "nothing was dead-lettered");
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn same_key_events_are_handled_in_published_order_under_random_failures(
        partitions in 1u32..4,
        concurrency in 1usize..6,
        events in proptest::collection::vec((0u8..6, prop_oneof![4 => Just(0u8), 1 => 1u8..4]), 1..60),
    ) {
        check_ordering(partitions, concurrency, events);
    }
}

#[tokio::test(start_paused = true)]
async fn a_restart_redelivers_only_what_was_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "t", 2);
    let publisher = EmbeddedBus::new(log.clone()).publisher();
    let mut all = HashMap::new();
    for seq in 0..60 {
        let event = step(&format!("k{}", seq % 6), seq);
        let at = publisher.publish("t", event.clone()).await.unwrap();
        all.insert(event.id, (at.partition, at.offset));
    }
    let recorder = |seen: Arc<Mutex<Vec<String>>>, hang: bool| {
        Handler::raw("h", move |event: Event, _ctx: Context| {
            let seen = seen.clone();
            async move {
                let step: Step = event.decode().unwrap();
                if hang && step.seq == 40 {
                    // The first process never finishes this event (nor k4's later events).
                    std::future::pending::<()>().await;
                }
                seen.lock().unwrap().push(event.id);
                Ok(())
            }
        })
    };

    let first: Arc<Mutex<Vec<String>>> = Arc::default();
    let bus = EmbeddedBus::new(log.clone());
    let router = Router::new(&bus)
        .route(Route::new("t", "g", recorder(first.clone(), true)).with_consumer(eager_commits()))
        .start()
        .unwrap();
    // 60 events, of which k4's seq 40, 46, 52, 58 never finish in the first run.
    until("first run stuck", || first.lock().unwrap().len() == 56).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(router); // a crash: nothing in flight is committed
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cut = [committed(&log, "g", "t", 0), committed(&log, "g", "t", 1)];

    let second: Arc<Mutex<Vec<String>>> = Arc::default();
    let bus = EmbeddedBus::new(log.clone());
    let router = Router::new(&bus)
        .route(Route::new("t", "g", recorder(second.clone(), false)).with_consumer(eager_commits()))
        .start()
        .unwrap();
    let expected: usize = all.values().filter(|(p, o)| *o >= cut[*p as usize]).count();
    until("second run done", || {
        second.lock().unwrap().len() == expected
    })
    .await;
    router.shutdown().await;

    let first: HashSet<String> = first.lock().unwrap().iter().cloned().collect();
    let second = second.lock().unwrap().clone();
    let second_set: HashSet<String> = second.iter().cloned().collect();
    assert_eq!(
        second.len(),
        second_set.len(),
        "no duplicates within one run"
    );
    for (id, (partition, offset)) in &all {
        assert!(
            first.contains(id) || second_set.contains(id),
            "event {id} lost"
        );
        let uncommitted = *offset >= cut[*partition as usize];
        assert_eq!(
            second_set.contains(id),
            uncommitted,
            "event {id} at {partition}/{offset}"
        );
    }
    assert!(second.len() < 60, "the first run's commits were used");
    assert!(second.len() >= 4, "the stuck events were redelivered");
}

#[tokio::test(start_paused = true)]
async fn two_groups_each_see_every_event_and_dedupe_drops_a_republished_event() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "t", 3);
    let bus = EmbeddedBus::new(log.clone());
    let publisher = bus.publisher();
    let mut ids = Vec::new();
    for seq in 0..30 {
        let event = step(&format!("k{seq}"), seq);
        ids.push(event.id.clone());
        publisher.publish("t", event).await.unwrap();
    }
    // The same event (same id) published again: a producer retry.
    let again = step("k0", 0).with_id(ids[0].clone());
    publisher.publish("t", again).await.unwrap();

    let counts: Arc<Mutex<HashMap<(String, String), u32>>> = Arc::default();
    let counting = |group: &'static str| {
        let counts = counts.clone();
        Handler::raw("count", move |event: Event, _ctx: Context| {
            let counts = counts.clone();
            async move {
                *counts
                    .lock()
                    .unwrap()
                    .entry((group.to_string(), event.id))
                    .or_default() += 1;
                Ok(())
            }
        })
    };
    let window = Arc::new(MemoryDedupeWindow::new(1000).unwrap());
    let router = Router::new(&bus)
        .route(Route::new("t", "billing", counting("billing")).with_inbox(window))
        .route(Route::new("t", "audit", counting("audit")))
        .start()
        .unwrap();
    until("both groups done", || {
        (0..3).all(|p| {
            let hw = log
                .topic("t")
                .unwrap()
                .partition(p)
                .unwrap()
                .high_watermark();
            committed(&log, "billing", "t", p) == hw && committed(&log, "audit", "t", p) == hw
        })
    })
    .await;
    router.shutdown().await;
    let counts = counts.lock().unwrap();
    for (index, id) in ids.iter().enumerate() {
        assert_eq!(
            counts[&("billing".to_string(), id.clone())],
            1,
            "billing, event {index}"
        );
        let audit = if index == 0 { 2 } else { 1 };
        assert_eq!(
            counts[&("audit".to_string(), id.clone())],
            audit,
            "audit, event {index}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn members_join_and_leave_while_events_flow_without_loss_or_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "t", 4);
    let bus = EmbeddedBus::new(log.clone());
    let in_handler: Arc<Vec<AtomicBool>> =
        Arc::new((0..4).map(|_| AtomicBool::new(false)).collect());
    let overlaps = Arc::new(AtomicUsize::new(0));
    let handled: Arc<Mutex<HashMap<String, HashSet<usize>>>> = Arc::default();
    let member = |name: usize| {
        let (in_handler, overlaps, handled) =
            (in_handler.clone(), overlaps.clone(), handled.clone());
        let handler = Handler::raw("h", move |event: Event, ctx: Context| {
            let (in_handler, overlaps, handled) =
                (in_handler.clone(), overlaps.clone(), handled.clone());
            async move {
                let flag = &in_handler[ctx.partition() as usize];
                if flag.swap(true, Ordering::SeqCst) {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
                flag.store(false, Ordering::SeqCst);
                handled
                    .lock()
                    .unwrap()
                    .entry(event.id)
                    .or_default()
                    .insert(name);
                Ok(())
            }
        });
        let consumer = ConsumerPolicy {
            concurrency: 1,
            in_flight_max: 8,
            commit_interval: Duration::from_millis(50),
            ..ConsumerPolicy::default()
        };
        let group = GroupPolicy {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_secs(1),
            rebalance_timeout: Duration::from_secs(30),
        };
        Router::new(&bus)
            .route(
                Route::new("t", "g", handler)
                    .with_consumer(consumer)
                    .with_group_policy(group),
            )
            .start()
            .unwrap()
    };
    let producer = {
        let publisher = bus.publisher();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for seq in 0..400 {
                let event = step(&format!("k{}", seq % 13), seq);
                ids.push(event.id.clone());
                publisher.publish("t", event).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            ids
        })
    };
    let a = member(0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b = member(1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let c = member(2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    a.shutdown().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(b); // a crash: its partitions are released uncommitted
    let ids = producer.await.unwrap();
    until("every event handled", || {
        let handled = handled.lock().unwrap();
        ids.iter().all(|id| handled.contains_key(id))
    })
    .await;
    c.shutdown().await;
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "a partition was handled by two members at once"
    );
    let handled = handled.lock().unwrap();
    let members: HashSet<usize> = handled.values().flatten().copied().collect();
    assert_eq!(
        members.len(),
        3,
        "every member handled something: {members:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn one_trace_and_an_intact_causation_chain_span_publish_handle_publish_handle() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    for topic in ["placed", "paid", "shipped"] {
        create_topic(&log, topic, 2);
    }
    let bus = EmbeddedBus::new(log.clone());
    let forward = |to: &'static str| {
        Handler::typed("forward", move |handled: Step, ctx: Context| async move {
            let next = step(&handled.key, handled.seq + 1);
            ctx.publish(to, next)
                .await
                .map_err(HandlerError::transient)?;
            Ok(())
        })
    };
    let last: Arc<Mutex<Vec<Event>>> = Arc::default();
    let collect = {
        let last = last.clone();
        Handler::raw("collect", move |_event: Event, ctx: Context| {
            let last = last.clone();
            async move {
                last.lock().unwrap().push(ctx.event().clone());
                Ok(())
            }
        })
    };
    let router = Router::new(&bus)
        .route(Route::new("placed", "payments", forward("paid")))
        .route(Route::new("paid", "shipping", forward("shipped")))
        .route(Route::new("shipped", "email", collect))
        .start()
        .unwrap();
    let root_trace = TraceParent::new_root();
    let root = step("order-1", 0).with_traceparent(root_trace);
    bus.publisher()
        .publish("placed", root.clone())
        .await
        .unwrap();
    until("the chain arrived", || !last.lock().unwrap().is_empty()).await;
    router.shutdown().await;

    let paid: Vec<Event> = read_all(&log, "paid")
        .into_iter()
        .map(|(_, r)| {
            let headers = r
                .headers
                .iter()
                .map(|h| (h.key.as_str(), h.value.as_deref()));
            Event::from_record(r.key.as_deref(), headers, r.value.as_deref()).unwrap()
        })
        .collect();
    assert_eq!(paid.len(), 1);
    let paid = &paid[0];
    let shipped = &last.lock().unwrap()[0];
    for event in [paid, shipped] {
        let trace = event.traceparent.expect("traceparent");
        assert_eq!(trace.trace_id, root_trace.trace_id, "one trace");
        assert_eq!(event.correlationid.as_deref(), Some(root.id.as_str()));
        assert_eq!(event.partitionkey.as_deref(), Some("order-1"));
    }
    assert_eq!(paid.causationid.as_deref(), Some(root.id.as_str()));
    assert_eq!(shipped.causationid.as_deref(), Some(paid.id.as_str()));
    assert_ne!(
        paid.traceparent.unwrap().parent_id,
        root_trace.parent_id,
        "a child span"
    );
    assert_eq!(shipped.decode::<Step>().unwrap().seq, 2);
}

#[tokio::test(start_paused = true)]
async fn in_flight_events_are_bounded_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "t", 1);
    let bus = EmbeddedBus::new(log.clone());
    let publisher = bus.publisher();
    // Key "stuck" never finishes its first event; its 7 later events wait behind it. With a
    // bound of 8 the partition holds exactly the stuck key's 8 events and fetches nothing
    // more; with a bound of 9 one slot stays free and the other keys flow through it.
    for seq in 0..8 {
        publisher.publish("t", step("stuck", seq)).await.unwrap();
    }
    for seq in 8..14 {
        let key = format!("free{seq}");
        publisher.publish("t", step(&key, seq)).await.unwrap();
    }
    let handled: Arc<Mutex<Vec<(&'static str, u32)>>> = Arc::default();
    let route = |group: &'static str, in_flight_max: usize| {
        let handled = handled.clone();
        let handler = Handler::typed("h", move |step: Step, _ctx: Context| {
            let handled = handled.clone();
            async move {
                if step.key == "stuck" {
                    std::future::pending::<()>().await;
                }
                handled.lock().unwrap().push((group, step.seq));
                Ok(())
            }
        });
        let consumer = ConsumerPolicy {
            concurrency: 2,
            in_flight_max,
            ..ConsumerPolicy::default()
        };
        let timeout = TimeoutPolicy {
            attempt_timeout: Duration::from_secs(3600),
        };
        Route::new("t", group, handler)
            .with_consumer(consumer)
            .with_timeout(timeout)
    };
    let router = Router::new(&bus)
        .route(route("tight", 8))
        .route(route("roomy", 9))
        .start()
        .unwrap();
    let roomy_done = || {
        handled
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.0 == "roomy")
            .count()
            == 6
    };
    until("the roomy group's free events", roomy_done).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(router);
    let handled = handled.lock().unwrap();
    let tight: Vec<u32> = handled
        .iter()
        .filter(|h| h.0 == "tight")
        .map(|h| h.1)
        .collect();
    let roomy: Vec<u32> = handled
        .iter()
        .filter(|h| h.0 == "roomy")
        .map(|h| h.1)
        .collect();
    assert_eq!(
        tight,
        Vec::<u32>::new(),
        "nothing beyond the bound was fetched"
    );
    assert_eq!(roomy, (8..14).collect::<Vec<u32>>());
}

/// The embedded bus behind a transport whose first joins fail as a broker's do while it is
/// unreachable.
#[derive(Debug)]
struct UnreachableAtFirst {
    bus: EmbeddedBus,
    failed_joins_left: AtomicUsize,
}

impl ConsumeTransport for UnreachableAtFirst {
    fn engine(&self) -> &'static str {
        "the embedded log"
    }

    fn now_ms(&self) -> i64 {
        ConsumeTransport::now_ms(&self.bus)
    }

    fn check_route(
        &self,
        topic: &str,
        group: &str,
        policy: &GroupPolicy,
    ) -> Result<(), TransportError> {
        self.bus.check_route(topic, group, policy)
    }

    fn join<'a>(
        &'a self,
        group: &'a str,
        topic: &'a str,
        policy: &'a GroupPolicy,
        start_from: StartFrom,
    ) -> BoxFuture<'a, Result<Box<dyn Membership>, TransportError>> {
        let fail = self
            .failed_joins_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if fail {
            return Box::pin(async {
                Err(TransportError::Unavailable {
                    reason: "broker unreachable".to_string(),
                })
            });
        }
        self.bus.join(group, topic, policy, start_from)
    }
}

#[tokio::test(start_paused = true)]
async fn a_route_asks_again_to_join_while_the_transport_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "in", 2);
    let bus = EmbeddedBus::new(log.clone());
    let publisher = bus.publisher();
    for seq in 0..4 {
        publisher.publish("in", step("k", seq)).await.unwrap();
    }
    let transport = Arc::new(UnreachableAtFirst {
        bus: bus.clone(),
        failed_joins_left: AtomicUsize::new(3),
    });
    let handled = Arc::new(AtomicUsize::new(0));
    let handler = {
        let handled = handled.clone();
        Handler::typed("count", move |_: Step, _ctx: Context| {
            let handled = handled.clone();
            async move {
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
    };
    let router = Router::new(Transport::new(transport.clone(), publisher))
        .route(Route::new("in", "g", handler))
        .start()
        .unwrap();
    until("the events handled after the failed joins", || {
        handled.load(Ordering::SeqCst) == 4
    })
    .await;
    router.shutdown().await;
    assert_eq!(transport.failed_joins_left.load(Ordering::SeqCst), 0);
}
