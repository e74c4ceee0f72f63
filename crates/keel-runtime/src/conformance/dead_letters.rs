//! The dead-letter replay check of the conformance suite: the operator's replay with a
//! canary (`admin::replay`) run through the harness's ports only — the admin port reads the
//! dead letters, the audit log and the group's commits; the publisher's transport appends the
//! replayed events and the audit records — against a router that gives up on an event and
//! later handles it. Kept apart from `conformance.rs` (which it borrows helpers from) so
//! the operator tools' check grows on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_core::PublishTransport;

use super::{
    Harness, Seen, WAIT, count_by, create_topic, event, name, publish, quick_retry, recording,
    route, start, stored,
};
use crate::DeadLetterHeaders;
use crate::admin::dead_letters::{self, DeadLetterFilter};
use crate::admin::replay::{self, CanaryOutcome, ReplayReport};
use crate::dead_letter::{DeadLetterKind, IncompletePayload, PayloadLoss, dead_letter_topic};
use crate::error::HandlerError;
use crate::publisher::event_record;
use crate::router::Router;

/// Dead-letter replay through the ports: a canary of an event that still fails lands in the
/// dead letters again (and the canary says so); once the handler is fixed, a canary of that
/// new dead letter is handled by the group (its committed offset passes the replayed
/// record); a full replay afterwards replays nothing twice and refuses a dead letter that
/// does not hold its event; the counts agree.
pub async fn dead_letter_replay_with_a_canary_through_the_ports<H: Harness>(harness: &H) {
    create_topic(harness, "orders", 1).await;
    let admin = harness.admin();
    let publisher = harness.publisher();
    let transport: &dyn PublishTransport = publisher.transport().as_ref();
    let fixed = Arc::new(AtomicBool::new(false));
    let seen: Seen = Arc::default();
    let handler = recording("r", &seen, {
        let fixed = fixed.clone();
        move |key, _, _| {
            (key == "poison" && !fixed.load(Ordering::SeqCst))
                .then(|| HandlerError::permanent("card declined"))
        }
    });
    let route = route(harness, "orders", "billing", handler).with_retry(quick_retry(2));
    let handle = start(Router::new(harness.transport()).route(route));
    publish(harness, "orders", [event("poison", 0), event("k", 1)]).await;
    let dlq = dead_letter_topic("orders");
    let dlq_base = dlq.as_str();
    wait_for("the poison event in the dead letters", || async move {
        stored(harness, dlq_base).await.len() == 1
    })
    .await;
    let topic = name(harness, "orders");
    let admin_port = admin.as_ref();

    // A canary while the handler still fails: back in the dead letters.
    let first = replay_canary(harness, &topic).await;
    assert_eq!(first.replayed.len(), 1, "one canary: {first:?}");
    let target = first.replayed[0].target.clone().expect("where it went");
    assert_eq!(
        (&target.0, target.1),
        (&topic, 0),
        "the event's own partition"
    );
    let first_id = first.id.as_str();
    wait_for(
        "the failing canary back in the dead letters",
        || async move {
            matches!(
                replay::canary_outcome(admin_port, first_id).await,
                Ok(CanaryOutcome::DeadLettered { .. })
            )
        },
    )
    .await;

    // Fixed: a canary of the new dead letter (the first is replayed already) is handled.
    fixed.store(true, Ordering::SeqCst);
    let second = replay_canary(harness, &topic).await;
    assert_eq!(
        (second.replayed.len(), second.skipped_replayed),
        (1, 1),
        "the canary takes the pending dead letter, not the replayed one: {second:?}"
    );
    assert_eq!(second.replayed[0].offset, 1, "the second dead letter");
    let second_id = second.id.as_str();
    wait_for("the group to handle the canary", || async move {
        replay::canary_outcome(admin_port, second_id)
            .await
            .expect("canary outcome")
            == CanaryOutcome::Handled
    })
    .await;
    assert!(count_by(&seen, |s| s.1 == "poison") >= 3, "handled at last");
    handle.shutdown().await;

    // A dead letter without its event, then a full replay: nothing twice, that one refused.
    let mut dataless = event_record(&event("lost", 2));
    dataless.value = None;
    dataless.headers.extend(
        DeadLetterHeaders {
            topic: topic.clone(),
            partition: 0,
            offset: 9,
            group: name(harness, "billing"),
            handler: "r".into(),
            attempts: 1,
            first_failure_ms: 1,
            last_failure_ms: 1,
            error: "too large".into(),
            kind: DeadLetterKind::Permanent,
        }
        .encode(),
    );
    dataless.headers.extend(
        IncompletePayload {
            loss: PayloadLoss::Dropped,
            original: "the outbox".into(),
        }
        .encode(),
    );
    transport
        .send_to(&name(harness, &dlq), 0, dataless)
        .await
        .expect("store a dataless dead letter");
    let plan = replay::plan_replay(
        admin.as_ref(),
        &topic,
        DeadLetterFilter::default(),
        false,
        false,
        "conformance: replay all",
    )
    .await
    .expect("plan");
    let all = replay::replay(admin.as_ref(), transport, &plan, now_ms())
        .await
        .expect("replay");
    assert!(all.replayed.is_empty(), "nothing replayed twice: {all:?}");
    assert_eq!(all.skipped_replayed, 2, "{all:?}");
    assert_eq!(all.refused.len(), 1, "the dataless one refused: {all:?}");
    assert_eq!(all.refused[0].original, "the outbox");

    let summaries = dead_letters::summaries(admin.as_ref(), now_ms())
        .await
        .expect("summaries");
    let summary = summaries
        .iter()
        .find(|s| s.dead_letter_topic == name(harness, &dlq))
        .expect("the dead-letter topic listed");
    assert_eq!(
        (summary.pending, summary.replayed, summary.purged),
        (1, 2, 0),
        "{summary:?}"
    );
}

/// Plans and runs a canary replay of `topic`'s dead letters through the harness's ports.
async fn replay_canary<H: Harness>(harness: &H, topic: &str) -> ReplayReport {
    let admin = harness.admin();
    let publisher = harness.publisher();
    let plan = replay::plan_replay(
        admin.as_ref(),
        topic,
        DeadLetterFilter::default(),
        false,
        true,
        "conformance: canary",
    )
    .await
    .expect("plan a canary");
    replay::replay(
        admin.as_ref(),
        publisher.transport().as_ref(),
        &plan,
        now_ms(),
    )
    .await
    .expect("canary replay")
}

/// Waits until the asynchronous condition holds, failing after [`WAIT`] with `what`.
async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
