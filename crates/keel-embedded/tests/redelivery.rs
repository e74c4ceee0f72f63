//! End-to-end tests of redelivery through `<topic>.retry` on a real embedded log: retry
//! topics (a route that gives up order for a failing key to free its partition) and dead
//! letters replayed to the one group that gave up on them. Both must reach only the
//! addressed group.
//!
//! Paused tokio time, as in `runtime.rs`, so retry delays cost no wall-clock time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use keel_embedded::EmbeddedBus;
use keel_embedded::admin::dead_letters::{self, CanaryOutcome, DeadLetterFilter};
use keel_runtime::dead_letter::{
    DLQ_ATTEMPTS_HEADER, DLQ_GROUP_HEADER, DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER,
    DLQ_TOPIC_HEADER,
};
use keel_runtime::redelivery::{RETRY_ATTEMPTS_HEADER, RETRY_GROUP_HEADER};
use keel_runtime::{
    ConsumerPolicy, Context, DeadLetter, Handler, HandlerError, Redelivery, RetryMode, Route,
    Router,
};

mod support;

use support::{
    Step, committed, create_topic, eager_commits, header, open_log, quick_retry, read_all, step,
    until,
};

/// What a handler saw: key, sequence number, attempt, and the topic it read the event from.
type Seen = Arc<Mutex<Vec<(String, u32, u32, String)>>>;

/// A handler that records every successful call and fails as `fail` says for (key, seq,
/// attempt): `Some(true)` permanently, `Some(false)` transiently.
fn recording(
    name: &str,
    seen: &Seen,
    fail: impl Fn(&str, u32, u32) -> Option<bool> + Send + Sync + 'static,
) -> Handler {
    let seen = seen.clone();
    let fail = Arc::new(fail);
    Handler::typed(name, move |step: Step, ctx: Context| {
        let seen = seen.clone();
        let fail = fail.clone();
        async move {
            match fail(&step.key, step.seq, ctx.attempt()) {
                Some(true) => return Err(HandlerError::permanent("refused for good")),
                Some(false) => return Err(HandlerError::transient("the warehouse is busy")),
                None => {}
            }
            seen.lock()
                .unwrap()
                .push((step.key, step.seq, ctx.attempt(), ctx.topic().to_string()));
            Ok(())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_retry_topic_frees_the_key_gives_up_its_order_and_reaches_only_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "orders", 1);
    let bus = EmbeddedBus::new(log.clone());
    let publisher = bus.publisher();
    for (key, seq) in [("k", 0), ("k", 1), ("k", 2), ("poison", 0)] {
        publisher.publish("orders", step(key, seq)).await.unwrap();
    }
    let shipped: Seen = Arc::default();
    let audited: Seen = Arc::default();
    // k/0 fails its first two attempts; the poison event fails every attempt.
    let ship = recording("ship", &shipped, |key, seq, attempt| {
        (key == "poison" || (key == "k" && seq == 0 && attempt < 3)).then_some(false)
    });
    let audit = recording("audit", &audited, |_, _, _| None);
    let alerts: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let router = {
        let alerts = alerts.clone();
        Router::new(&bus)
            .on_dead_letter(move |dl| alerts.lock().unwrap().push(dl.clone()))
            .route(
                Route::new("orders", "shipping", ship)
                    .with_retry(quick_retry(3))
                    .with_retry_mode(RetryMode::Topic)
                    .with_consumer(eager_commits()),
            )
            .route(Route::new("orders", "audit", audit).with_consumer(eager_commits()))
            .start()
            .unwrap()
    };
    until("k/0 handled and the poison event dead-lettered", || {
        shipped
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.0 == "k" && s.1 == 0)
            && alerts.lock().unwrap().len() == 1
    })
    .await;
    until("every group passed every redelivery", || {
        committed(&log, "audit", "orders.retry", 0) == 4
            && committed(&log, "shipping", "orders.retry", 0) == 4
            && committed(&log, "shipping", "orders", 0) == 4
    })
    .await;
    router.shutdown().await;

    // The key's later events did not wait for its failing one: order was given up for it.
    let shipped = shipped.lock().unwrap().clone();
    let k: Vec<(u32, u32, &str)> = shipped
        .iter()
        .filter(|s| s.0 == "k")
        .map(|s| (s.1, s.2, s.3.as_str()))
        .collect();
    assert_eq!(
        k,
        [(1, 1, "orders"), (2, 1, "orders"), (0, 3, "orders.retry")]
    );

    // Each failed attempt but the last moved the event to orders.retry, addressed to the
    // group, counting its attempts; the poison event's last attempt dead-lettered it.
    let retries = read_all(&log, "orders.retry");
    let mut described: Vec<(String, &str, &str)> = retries
        .iter()
        .map(|(_, r)| {
            let redelivery = Redelivery::decode(&r.headers).expect("redelivery headers");
            assert_eq!(redelivery.topic, "orders");
            assert_eq!(redelivery.partition, 0);
            assert!(redelivery.first_failure_ms.is_some());
            assert_eq!(header(r, RETRY_GROUP_HEADER), "shipping");
            let step: Step = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            (
                format!("{}/{}", step.key, step.seq),
                header(r, RETRY_ATTEMPTS_HEADER),
                if redelivery.offset == 0 {
                    "first"
                } else {
                    "poison"
                },
            )
        })
        .collect();
    described.sort();
    assert_eq!(
        described,
        [
            ("k/0".to_string(), "1", "first"),
            ("k/0".to_string(), "2", "first"),
            ("poison/0".to_string(), "1", "poison"),
            ("poison/0".to_string(), "2", "poison"),
        ]
    );
    let dead = read_all(&log, "orders.dlq");
    assert_eq!(dead.len(), 1);
    let dead = &dead[0].1;
    assert_eq!(
        header(dead, DLQ_TOPIC_HEADER),
        "orders",
        "the origin, not the retry topic"
    );
    assert_eq!(header(dead, DLQ_PARTITION_HEADER), "0");
    assert_eq!(header(dead, DLQ_OFFSET_HEADER), "3");
    assert_eq!(header(dead, DLQ_ATTEMPTS_HEADER), "3");
    assert_eq!(header(dead, DLQ_GROUP_HEADER), "shipping");
    assert!(
        dead.headers
            .iter()
            .all(|h| !h.key.starts_with("keel_retry_")),
        "a dead letter carries no redelivery headers"
    );
    let alerts = alerts.lock().unwrap();
    assert!(alerts[0].first_in_group);
    assert_eq!(alerts[0].dead_letter_topic, "orders.dlq");

    // The other group handled each event once, from the topic, and skipped every retry.
    let mut audited: Vec<(String, u32, u32, String)> = audited.lock().unwrap().clone();
    audited.sort();
    let expected: Vec<(String, u32, u32, String)> = [("k", 0), ("k", 1), ("k", 2), ("poison", 0)]
        .iter()
        .map(|(key, seq)| (key.to_string(), *seq, 1, "orders".to_string()))
        .collect();
    assert_eq!(audited, expected);
}

#[tokio::test(start_paused = true)]
async fn a_dead_letter_replayed_to_its_group_reaches_that_group_only_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "orders", 2);
    let bus = EmbeddedBus::new(log.clone());
    let publisher = bus.publisher();
    for (key, seq) in [("a", 0), ("bad", 0), ("c", 0)] {
        publisher.publish("orders", step(key, seq)).await.unwrap();
    }
    let billed: Seen = Arc::default();
    let audited: Seen = Arc::default();
    let broken = Arc::new(AtomicBool::new(true));
    let bill = {
        let broken = broken.clone();
        recording("bill", &billed, move |key, _, _| {
            (key == "bad" && broken.load(Ordering::SeqCst)).then_some(true)
        })
    };
    let audit = recording("audit", &audited, |_, _, _| None);
    let router = Router::new(&bus)
        .route(
            Route::new("orders", "billing", bill)
                .with_retry(quick_retry(3))
                .with_consumer(eager_commits()),
        )
        .route(Route::new("orders", "audit", audit).with_consumer(eager_commits()))
        .start()
        .unwrap();
    until(
        "the bad event dead-lettered and every event audited",
        || {
            log.topic("orders.dlq").is_some_and(|t| {
                t.partitions()
                    .iter()
                    .map(|p| p.high_watermark())
                    .sum::<u64>()
                    == 1
            }) && audited.lock().unwrap().len() == 3
                && billed.lock().unwrap().len() == 2
        },
    )
    .await;

    // The handler is fixed; the dead letter goes back to billing only.
    broken.store(false, Ordering::SeqCst);
    let all = DeadLetterFilter::default();
    let plan = dead_letters::plan_replay(&log, "orders", all.clone(), false, false, "test")
        .unwrap()
        .to_group("billing");
    let report = dead_letters::replay(&log, &plan, bus_now()).unwrap();
    assert_eq!(report.replayed.len(), 1);
    let (target, partition, offset) = report.replayed[0].target.clone().unwrap();
    assert_eq!(target, "orders.retry");
    until("billing handled the replayed event", || {
        billed.lock().unwrap().iter().any(|s| s.0 == "bad")
    })
    .await;
    until("audit read past the replayed record", || {
        committed(&log, "audit", "orders.retry", partition) > offset
            && committed(&log, "billing", "orders.retry", partition) > offset
    })
    .await;

    // Replaying again finds it replayed already: delivered once.
    let again = dead_letters::plan_replay(&log, "orders", all, false, false, "again")
        .unwrap()
        .to_group("billing");
    let again = dead_letters::replay(&log, &again, bus_now()).unwrap();
    assert!(again.replayed.is_empty());
    assert_eq!(again.skipped_replayed, 1);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    router.shutdown().await;

    let billed = billed.lock().unwrap().clone();
    let bad: Vec<&(String, u32, u32, String)> = billed.iter().filter(|s| s.0 == "bad").collect();
    assert_eq!(bad.len(), 1, "billing handled the replay once: {billed:?}");
    assert_eq!(bad[0].2, 1, "a replay starts with a fresh set of attempts");
    assert_eq!(bad[0].3, "orders.retry");
    let mut audited_keys: Vec<String> = audited
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.0.clone())
        .collect();
    audited_keys.sort();
    assert_eq!(
        audited_keys,
        ["a", "bad", "c"],
        "audit never saw the replay"
    );
    let mut per_group: HashMap<String, usize> = HashMap::new();
    for (_, record) in read_all(&log, "orders.retry") {
        *per_group
            .entry(header(&record, RETRY_GROUP_HEADER).to_string())
            .or_default() += 1;
    }
    assert_eq!(per_group, HashMap::from([("billing".to_string(), 1)]));
}

#[tokio::test(start_paused = true)]
async fn a_canary_is_handled_only_after_its_last_redelivery_is() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "orders", 1);
    let bus = EmbeddedBus::new(log.clone());
    bus.publisher()
        .publish("orders", step("bad", 0))
        .await
        .unwrap();
    // Permanent failures until fixed; then the first attempt of a delivery fails
    // transiently (off to orders.retry) and the second waits for `release`.
    let fixed = Arc::new(AtomicBool::new(false));
    let release = Arc::new(tokio::sync::Notify::new());
    let handled = Arc::new(AtomicBool::new(false));
    let handler = {
        let (fixed, release, handled) = (fixed.clone(), release.clone(), handled.clone());
        Handler::typed("bill", move |_step: Step, ctx: Context| {
            let (fixed, release, handled) = (fixed.clone(), release.clone(), handled.clone());
            async move {
                if !fixed.load(Ordering::SeqCst) {
                    return Err(HandlerError::permanent("refused for good"));
                }
                if ctx.attempt() == 1 {
                    return Err(HandlerError::transient("not yet"));
                }
                release.notified().await;
                handled.store(true, Ordering::SeqCst);
                Ok(())
            }
        })
    };
    let router = Router::new(&bus)
        .route(
            Route::new("orders", "billing", handler)
                .with_retry(quick_retry(3))
                .with_retry_mode(RetryMode::Topic)
                .with_consumer(eager_commits()),
        )
        .start()
        .unwrap();
    until("the dead letter", || log.topic("orders.dlq").is_some()).await;
    fixed.store(true, Ordering::SeqCst);
    let plan = dead_letters::plan_replay(
        &log,
        "orders",
        DeadLetterFilter::default(),
        false,
        true,
        "canary",
    )
    .unwrap()
    .to_group("billing");
    let report = dead_letters::replay(&log, &plan, bus_now()).unwrap();
    let (_, partition, offset) = report.replayed[0].target.clone().unwrap();
    until(
        "the replayed record finished (moved on to a redelivery)",
        || committed(&log, "billing", "orders.retry", partition) > offset,
    )
    .await;
    assert_eq!(
        dead_letters::canary_outcome(&log, &report.id).unwrap(),
        CanaryOutcome::Pending,
        "the group passed the replayed record, but the event is still being retried"
    );
    release.notify_one();
    until("handled", || handled.load(Ordering::SeqCst)).await;
    until("committed", || {
        dead_letters::canary_outcome(&log, &report.id).unwrap() == CanaryOutcome::Handled
    })
    .await;
    router.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_redelivery_not_yet_due_leaves_its_slot_to_due_ones() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "orders", 1);
    create_topic(&log, "orders.retry", 1);
    // Two redeliveries for billing, in this order: one due in five minutes, one due now.
    let now = bus_now();
    let records = [
        billing_redelivery("late", now + 300_000),
        billing_redelivery("due", now),
    ];
    let retry = log.topic("orders.retry").unwrap();
    retry.partition(0).unwrap().append(&records).unwrap();
    let seen: Seen = Arc::default();
    let bus = EmbeddedBus::new(log.clone());
    let router = billing_one_at_a_time(&bus, &seen);
    until("both handled and committed", || {
        seen.lock().unwrap().len() == 2 && committed(&log, "billing", "orders.retry", 0) == 2
    })
    .await;
    router.shutdown().await;
    let order: Vec<String> = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect();
    assert_eq!(
        order,
        ["due", "late"],
        "the waiting redelivery took no slot from the due one behind it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_gives_up_a_held_redelivery_uncommitted() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    create_topic(&log, "orders", 1);
    create_topic(&log, "orders.retry", 1);
    let record = billing_redelivery("late", bus_now() + 300_000);
    let retry = log.topic("orders.retry").unwrap();
    retry.partition(0).unwrap().append(&[record]).unwrap();
    let seen: Seen = Arc::default();
    let bus = EmbeddedBus::new(log.clone());
    let router = billing_one_at_a_time(&bus, &seen);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    router.shutdown().await;
    assert!(seen.lock().unwrap().is_empty(), "not due, not handled");
    assert_eq!(committed(&log, "billing", "orders.retry", 0), 0);

    let router = billing_one_at_a_time(&bus, &seen);
    until("handled after the restart", || {
        seen.lock().unwrap().len() == 1 && committed(&log, "billing", "orders.retry", 0) == 1
    })
    .await;
    router.shutdown().await;
}

/// A redelivery of `step(key, 0)` addressed to billing, due at `due_ms`.
fn billing_redelivery(key: &str, due_ms: i64) -> keel_log::NewRecord {
    let mut record = keel_runtime::event_record(&step(key, 0));
    let headers = Redelivery {
        group: "billing".into(),
        attempts: 1,
        due_ms,
        topic: "orders".into(),
        partition: 0,
        offset: 0,
        first_failure_ms: None,
    };
    record.headers.extend(headers.encode());
    record
}

/// Billing on orders with retry topics, one handler call at a time per partition.
fn billing_one_at_a_time(bus: &EmbeddedBus, seen: &Seen) -> keel_runtime::RouterHandle {
    let one_at_a_time = ConsumerPolicy {
        concurrency: 1,
        ..eager_commits()
    };
    Router::new(bus)
        .route(
            Route::new("orders", "billing", recording("bill", seen, |_, _, _| None))
                .with_retry_mode(RetryMode::Topic)
                .with_consumer(one_at_a_time),
        )
        .start()
        .unwrap()
}

/// Wall-clock now, as the operator tools take it.
fn bus_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
