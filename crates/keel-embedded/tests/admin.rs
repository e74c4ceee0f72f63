//! The operator tools (`keel_embedded::admin`) on a real embedded log: group lag and offset
//! resets with exact numbers, and dead letters produced by a real router, then listed, shown,
//! replayed (bounded, once, keeping the event id), purged with confirmation, canaried and
//! audited.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use keel_embedded::EmbeddedBus;
use keel_embedded::admin::audit::{self, AuditAction};
use keel_embedded::admin::dead_letters::{
    self, CanaryOutcome, DeadLetterError, DeadLetterFilter, DeadLetterStatus, REPLAY_ID_HEADER,
    REPLAY_OF_HEADER,
};
use keel_embedded::admin::groups::{self, GroupsError, ResetTarget};
use keel_log::{Log, NewRecord, OffsetCommit, Record};
use keel_runtime::{Context, Handler, HandlerError, Route, Router, RouterHandle};

// Admin tests retry nothing, so `quick_retry` is unused here.
#[allow(dead_code)]
mod support;

use support::{Step, create_topic, eager_commits, header, open_log, read_all, step, until};

fn committed(log: &Log, group: &str, topic: &str, partition: u32) -> Option<u64> {
    log.group_offsets()
        .fetch(group, topic, partition)
        .map(|c| c.offset)
}

/// Two partitions with known timestamps: p0 offsets 0..5 at 1000..1005 ms, p1 offsets 0..3
/// at 2000..2003 ms.
fn lag_fixture(dir: &std::path::Path) -> Arc<Log> {
    let log = open_log(dir);
    create_topic(&log, "orders", 2);
    let topic = log.topic("orders").unwrap();
    for (index, count, base_ms) in [(0u32, 5i64, 1000i64), (1, 3, 2000)] {
        let records: Vec<NewRecord> = (0..count)
            .map(|i| NewRecord {
                timestamp_ms: Some(base_ms + i),
                ..NewRecord::new(Some("k"), "v")
            })
            .collect();
        topic.partition(index).unwrap().append(&records).unwrap();
    }
    log
}

fn commit(log: &Log, group: &str, offsets: &[(u32, u64)]) {
    let commits: Vec<OffsetCommit> = offsets
        .iter()
        .map(|&(partition, offset)| OffsetCommit {
            topic: "orders".into(),
            partition,
            offset,
            metadata: String::new(),
        })
        .collect();
    log.group_offsets().commit(group, &commits, 0).unwrap();
}

#[test]
fn lag_is_exact_in_events_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let log = lag_fixture(dir.path());
    commit(&log, "caught-up", &[(0, 5), (1, 3)]);
    commit(&log, "behind", &[(0, 2), (1, 3)]);
    commit(&log, "half", &[(0, 0)]);
    let now_ms = 10_000;
    // (group, partition, committed, lag events, lag ms)
    let cases: &[(&str, u32, Option<u64>, u64, u64)] = &[
        ("caught-up", 0, Some(5), 0, 0),
        ("caught-up", 1, Some(3), 0, 0),
        ("behind", 0, Some(2), 3, 10_000 - 1002),
        ("behind", 1, Some(3), 0, 0),
        ("half", 0, Some(0), 5, 10_000 - 1000),
        // Nothing committed in p1: measured from the log start.
        ("half", 1, None, 3, 10_000 - 2000),
    ];
    for &(group, partition, offset, events, ms) in cases {
        let lags = groups::group_lag(&log, group, now_ms).unwrap();
        let lag = &lags[partition as usize];
        assert_eq!(
            (
                lag.partition,
                lag.committed_offset,
                lag.lag_events,
                lag.lag_ms
            ),
            (partition, offset, events, ms),
            "{group} p{partition}"
        );
        assert_eq!(lag.high_watermark, [5, 3][partition as usize]);
    }
    let summaries = groups::list_groups(&log, now_ms).unwrap();
    let totals: Vec<(&str, u64, u64)> = summaries
        .iter()
        .map(|s| (s.group.as_str(), s.lag_events, s.lag_ms))
        .collect();
    assert_eq!(
        totals,
        [("behind", 3, 8998), ("caught-up", 0, 0), ("half", 8, 9000)]
    );
    assert!(matches!(
        groups::group_lag(&log, "nobody", now_ms),
        Err(GroupsError::GroupNotFound(_))
    ));
    // One topic's share: the same figures, and nothing where the group never committed.
    assert_eq!(
        groups::group_lag_in_topic(&log, "behind", "orders", now_ms).unwrap(),
        groups::group_lag(&log, "behind", now_ms).unwrap()
    );
    assert!(
        groups::group_lag_in_topic(&log, "behind", "payments", now_ms)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn reset_moves_offsets_to_each_target() {
    let dir = tempfile::tempdir().unwrap();
    let log = lag_fixture(dir.path());
    commit(&log, "g", &[(0, 2), (1, 1)]);
    // (target, partition filter, expected offsets of p0 and p1 afterwards)
    let cases: &[(ResetTarget, Option<u32>, [u64; 2])] = &[
        (ResetTarget::Earliest, None, [0, 0]),
        (ResetTarget::Latest, None, [5, 3]),
        (ResetTarget::Offset(1), None, [1, 1]),
        (ResetTarget::Offset(4), None, [4, 3]),
        (ResetTarget::Time(1003), None, [3, 0]),
        (ResetTarget::Time(2001), None, [5, 1]),
        (ResetTarget::Time(99_999), None, [5, 3]),
        (ResetTarget::Earliest, Some(1), [5, 0]),
    ];
    for &(target, partition, expected) in cases {
        let plan = groups::plan_reset(&log, "g", "orders", partition, target).unwrap();
        let before = [
            committed(&log, "g", "orders", 0),
            committed(&log, "g", "orders", 1),
        ];
        for r in &plan {
            assert_eq!(r.offset_before, before[r.partition as usize]);
        }
        groups::apply_reset(&log, "g", &plan, 1).unwrap();
        let after = [
            committed(&log, "g", "orders", 0).unwrap(),
            committed(&log, "g", "orders", 1).unwrap(),
        ];
        assert_eq!(after, expected, "{target:?} {partition:?}");
    }
    assert!(matches!(
        groups::plan_reset(&log, "g", "orders", Some(2), ResetTarget::Earliest),
        Err(GroupsError::PartitionNotFound { partition: 2, .. })
    ));
    assert!(matches!(
        groups::plan_reset(&log, "g", "nope", None, ResetTarget::Earliest),
        Err(GroupsError::TopicNotFound(_))
    ));
}

/// A router whose `ship` handler fails permanently for key `poison` while `broken` holds,
/// and records the event ids it handled.
fn start(
    bus: &EmbeddedBus,
    broken: Arc<AtomicBool>,
    handled: Arc<Mutex<Vec<String>>>,
) -> RouterHandle {
    let handler = Handler::typed("ship", move |step: Step, ctx: Context| {
        let broken = broken.clone();
        let handled = handled.clone();
        async move {
            if step.key == "poison" && broken.load(Ordering::SeqCst) {
                return Err(HandlerError::permanent("no such warehouse"));
            }
            handled.lock().unwrap().push(ctx.event().id.clone());
            Ok(())
        }
    });
    Router::new(bus)
        .route(Route::new("orders", "shipping", handler).with_consumer(eager_commits()))
        .start()
        .unwrap()
}

/// Publishes three poison events and two good ones, runs the broken handler until all are
/// finished, and returns the poison event ids in order.
async fn poison_fixture(log: &Arc<Log>, bus: &EmbeddedBus) -> Vec<String> {
    create_topic(log, "orders", 1);
    let publisher = bus.publisher();
    let mut poison = Vec::new();
    for seq in 0..3 {
        let event = step("poison", seq);
        poison.push(event.id.clone());
        publisher.publish("orders", event).await.unwrap();
    }
    for seq in 0..2 {
        publisher.publish("orders", step("ok", seq)).await.unwrap();
    }
    let router = start(bus, Arc::new(AtomicBool::new(true)), Arc::default());
    until("all finished", || {
        committed(log, "shipping", "orders", 0) == Some(5)
    })
    .await;
    router.shutdown().await;
    poison
}

#[tokio::test(start_paused = true)]
async fn dead_letters_list_show_replay_once_bounded_purge_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let bus = EmbeddedBus::new(log.clone());
    let poison = poison_fixture(&log, &bus).await;
    let far_future = i64::MAX / 2;

    // List: three pending dead letters of one cause.
    let summaries = dead_letters::summaries(&log, far_future).unwrap();
    assert_eq!(summaries.len(), 1);
    let summary = &summaries[0];
    assert_eq!(summary.dead_letter_topic, "orders.dlq");
    assert_eq!(
        (summary.pending, summary.replayed, summary.purged),
        (3, 0, 0)
    );
    assert!(summary.oldest_pending_age_ms > 0);
    assert_eq!(summary.causes.len(), 1);
    let cause = &summary.causes[0];
    assert_eq!(
        (
            cause.group.as_str(),
            cause.handler.as_str(),
            cause.kind.as_str(),
            cause.pending
        ),
        ("shipping", "ship", "permanent", 3)
    );

    // Show: by offset (through the source topic's name) and by event id, headers decoded.
    let by_offset = DeadLetterFilter {
        partition: Some(0),
        offset: Some(1),
        ..DeadLetterFilter::default()
    };
    let shown = dead_letters::dead_letters(&log, "orders", &by_offset, 10).unwrap();
    assert_eq!(shown.len(), 1);
    let second = &shown[0];
    let headers = second.headers.as_ref().expect("keel_dlq_* headers");
    assert_eq!(
        (headers.topic.as_str(), headers.partition, headers.offset),
        ("orders", 0, 1)
    );
    assert_eq!(
        (headers.group.as_str(), headers.handler.as_str()),
        ("shipping", "ship")
    );
    assert_eq!((headers.attempts, headers.kind.as_str()), (1, "permanent"));
    assert_eq!(headers.error, "no such warehouse");
    assert!(headers.first_failure_ms <= headers.last_failure_ms);
    assert_eq!(second.event_id.as_deref(), Some(poison[1].as_str()));
    assert_eq!(second.event_type.as_deref(), Some("test.step"));
    assert_eq!(second.key.as_deref(), Some("poison"));
    let by_id = DeadLetterFilter {
        event_id: Some(poison[2].clone()),
        ..DeadLetterFilter::default()
    };
    let shown = dead_letters::dead_letters(&log, "orders.dlq", &by_id, 10).unwrap();
    assert_eq!(shown.iter().map(|d| d.offset).collect::<Vec<_>>(), [2]);

    // Purge needs confirmation and writes nothing without it.
    let all = DeadLetterFilter::default();
    assert!(matches!(
        dead_letters::purge(&log, "orders.dlq", &all, false, "test purge", 1),
        Err(DeadLetterError::NotConfirmed { count: 3 })
    ));
    assert!(audit::history(&log, None).unwrap().is_empty());

    // A replay is bounded by the dead letters that existed when it was planned.
    let plan =
        dead_letters::plan_replay(&log, "orders", all.clone(), false, false, "test replay 1")
            .unwrap();
    let dlq = log.topic("orders.dlq").unwrap();
    let late = read_all(&log, "orders.dlq")[0].1.clone();
    dlq.partitions()[0]
        .append(&[NewRecord {
            key: late.key,
            value: late.value,
            headers: late.headers,
            timestamp_ms: None,
        }])
        .unwrap();
    let report = dead_letters::replay(&log, &plan, 2).unwrap();
    let replayed: Vec<(u64, Option<String>)> = report
        .replayed
        .iter()
        .map(|i| (i.offset, i.event_id.clone()))
        .collect();
    assert_eq!(
        replayed,
        (0..3)
            .map(|i| (i, Some(poison[i as usize].clone())))
            .collect::<Vec<_>>()
    );
    let targets: Vec<_> = report
        .replayed
        .iter()
        .map(|i| i.target.clone().unwrap())
        .collect();
    assert_eq!(
        targets,
        (5..8)
            .map(|o| ("orders".to_string(), 0, o))
            .collect::<Vec<_>>()
    );

    // The replayed records keep key, value and event id; keel_dlq_* headers are gone.
    let orders: Vec<Record> = read_all(&log, "orders")
        .into_iter()
        .map(|(_, record)| record)
        .collect();
    for (i, record) in orders[5..].iter().enumerate() {
        assert_eq!(header(record, "ce_id"), poison[i]);
        assert_eq!(record.key.as_deref(), Some(&b"poison"[..]));
        assert_eq!(record.value, orders[i].value);
        assert!(
            record
                .headers
                .iter()
                .all(|h| !h.key.starts_with("keel_dlq_"))
        );
        assert_eq!(
            header(record, REPLAY_OF_HEADER),
            format!("orders.dlq/0/{i}")
        );
        assert_eq!(header(record, REPLAY_ID_HEADER), report.id);
    }

    // The late copy is purged (confirmed); a second replay of everything replays nothing.
    let late_only = DeadLetterFilter {
        offset: Some(3),
        partition: Some(0),
        ..DeadLetterFilter::default()
    };
    let purged = dead_letters::purge(&log, "orders", &late_only, true, "test purge", 3).unwrap();
    assert_eq!(
        purged.purged.iter().map(|i| i.offset).collect::<Vec<_>>(),
        [3]
    );
    let plan =
        dead_letters::plan_replay(&log, "orders", all.clone(), false, false, "test replay 2")
            .unwrap();
    let again = dead_letters::replay(&log, &plan, 4).unwrap();
    assert!(again.replayed.is_empty());
    assert_eq!((again.skipped_replayed, again.skipped_purged), (3, 1));
    assert_eq!(read_all(&log, "orders").len(), 8, "nothing appended twice");

    // With the handler fixed, each replayed poison event is handled exactly once.
    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let router = start(&bus, Arc::new(AtomicBool::new(false)), handled.clone());
    until("replays handled", || {
        committed(&log, "shipping", "orders", 0) == Some(8)
    })
    .await;
    router.shutdown().await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in handled.lock().unwrap().iter() {
        *counts.entry(id.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), 3);
    assert!(poison.iter().all(|id| counts[id] == 1), "{counts:?}");

    // Statuses and the audit log.
    let statuses: Vec<DeadLetterStatus> = dead_letters::dead_letters(&log, "orders", &all, 10)
        .unwrap()
        .iter()
        .map(|d| d.status)
        .collect();
    assert_eq!(
        statuses,
        [
            DeadLetterStatus::Replayed,
            DeadLetterStatus::Replayed,
            DeadLetterStatus::Replayed,
            DeadLetterStatus::Purged
        ]
    );
    let history = audit::history(&log, Some("orders.dlq")).unwrap();
    let summary: Vec<(AuditAction, usize, &str, i64)> = history
        .iter()
        .map(|e| (e.action, e.items.len(), e.command.as_str(), e.time_ms))
        .collect();
    assert_eq!(
        summary,
        [
            (AuditAction::Replay, 3, "test replay 1", 2),
            (AuditAction::Purge, 1, "test purge", 3),
            (AuditAction::Replay, 0, "test replay 2", 4),
        ]
    );
    assert_eq!(
        history[0].items[0].event_id.as_deref(),
        Some(poison[0].as_str())
    );
    let summaries = dead_letters::summaries(&log, far_future).unwrap();
    assert_eq!(
        (
            summaries[0].pending,
            summaries[0].replayed,
            summaries[0].purged
        ),
        (0, 3, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn canary_reports_dead_lettered_again_or_handled() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let bus = EmbeddedBus::new(log.clone());
    let poison = poison_fixture(&log, &bus).await;
    let all = DeadLetterFilter::default();

    // Still broken: the canary comes back as a dead letter.
    let plan =
        dead_letters::plan_replay(&log, "orders", all.clone(), false, true, "canary 1").unwrap();
    let first = dead_letters::replay(&log, &plan, 1).unwrap();
    assert_eq!(first.replayed.len(), 1, "a canary replays one event");
    assert_eq!(
        first.replayed[0].event_id.as_deref(),
        Some(poison[0].as_str())
    );
    assert_eq!(
        dead_letters::canary_outcome(&log, &first.id).unwrap(),
        CanaryOutcome::Pending
    );
    let broken = Arc::new(AtomicBool::new(true));
    let router = start(&bus, broken.clone(), Arc::default());
    until("canary dead-lettered", || {
        matches!(
            dead_letters::canary_outcome(&log, &first.id).unwrap(),
            CanaryOutcome::DeadLettered {
                partition: 0,
                offset: 3
            }
        )
    })
    .await;
    router.shutdown().await;

    // Fixed: the next canary (the first is replayed already) is handled.
    let plan = dead_letters::plan_replay(&log, "orders", all, false, true, "canary 2").unwrap();
    let second = dead_letters::replay(&log, &plan, 2).unwrap();
    assert_eq!(
        second.replayed[0].event_id.as_deref(),
        Some(poison[1].as_str())
    );
    broken.store(false, Ordering::SeqCst);
    let router = start(&bus, broken, Arc::default());
    until("canary handled", || {
        dead_letters::canary_outcome(&log, &second.id).unwrap() == CanaryOutcome::Handled
    })
    .await;
    router.shutdown().await;
    assert!(matches!(
        dead_letters::canary_outcome(&log, "no-such-canary"),
        Err(DeadLetterError::CanaryNotFound(_))
    ));
    let actions: Vec<AuditAction> = audit::history(&log, None)
        .unwrap()
        .iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, [AuditAction::Canary, AuditAction::Canary]);
}

#[tokio::test(start_paused = true)]
async fn an_audit_action_written_by_a_newer_keel_is_listed_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let bus = EmbeddedBus::new(log.clone());
    poison_fixture(&log, &bus).await;
    // A newer Keel sharing the log records an action this build does not know, naming the
    // first dead letter.
    create_topic(&log, audit::AUDIT_TOPIC, 1);
    let newer = r#"{"id":"archive-1-x","time_ms":7,"action":"archive","dead_letter_topic":"orders.dlq","items":[{"partition":0,"offset":0,"event_id":null,"group":"shipping","target":null}],"command":"keel dlq archive"}"#;
    log.topic(audit::AUDIT_TOPIC)
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[NewRecord::new(Some("orders.dlq"), newer)])
        .unwrap();

    let history = audit::history(&log, None).unwrap();
    let listed: Vec<(AuditAction, &str)> = history
        .iter()
        .map(|e| (e.action, e.command.as_str()))
        .collect();
    assert_eq!(listed, [(AuditAction::Unrecognised, "keel dlq archive")]);
    // The dead letter it names is neither replayed nor purged for this build.
    let summaries = dead_letters::summaries(&log, i64::MAX / 2).unwrap();
    assert_eq!(
        (
            summaries[0].pending,
            summaries[0].replayed,
            summaries[0].purged
        ),
        (3, 0, 0)
    );
}
