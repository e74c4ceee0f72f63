//! A member that dies with messages in flight, on the SQS/SNS server at `KEEL_TEST_SQS_URL`
//! (moto; unset: not run, unreachable: fails). The dead member is played with raw SDK
//! calls: it receives the first of a key's ten messages, handles it (its inbox mark says so)
//! and never deletes it. SQS holds the key's message group while the message is in flight,
//! so the next member gets nothing of the key until the visibility timeout (the group's
//! session timeout) brings it back; then it gets all ten in order, and the inbox drops the
//! one already handled: each event is handled once.
//!
//! One message in flight, not several: moto 5.2.1 hands a FIFO group's expired in-flight
//! messages back last-first when there were several (its receive skips each while the
//! others are still pending), an order real SQS does not produce.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_core::GroupPolicy;
use keel_runtime::conformance::{event, until};
use keel_runtime::{Handler, Inbox, MemoryDedupeWindow, Route, Router};

mod support;

/// The group's session timeout, which is its messages' visibility timeout.
const SESSION_TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_a_dead_member_come_back_after_the_visibility_timeout_and_are_handled_once() {
    let Some(sqs) = support::connect("takeover").await else {
        return;
    };
    sqs.ensure_topic("orders", 1).await.expect("topic");
    let queue = sqs.queue_url("orders", "billing").await.expect("queue");
    let events: Vec<_> = (0..10).map(|n| event("k", n)).collect();
    let publisher = sqs.publisher();
    for event in &events {
        publisher
            .publish("orders", event.clone())
            .await
            .expect("publish");
    }

    // The dead member: one message received and handled, not deleted.
    let inbox = Arc::new(MemoryDedupeWindow::new(100).expect("window"));
    let received_at = Instant::now();
    let received = sqs
        .sqs_client()
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(1)
        .visibility_timeout(SESSION_TIMEOUT.as_secs() as i32)
        .send()
        .await
        .expect("receive");
    assert_eq!(received.messages().len(), 1, "the dead member's message");
    for event in &events[..1] {
        inbox
            .mark_processed("billing/record", &event.id)
            .await
            .expect("mark");
    }

    let handled: Arc<Mutex<Vec<(u32, Instant)>>> = Arc::default();
    let seen = handled.clone();
    let handler = Handler::raw("record", move |event, _| {
        let data = String::from_utf8(event.data.as_deref().expect("data").to_vec()).expect("utf-8");
        let seq: u32 = data.rsplit('/').next().expect("seq").parse().expect("seq");
        seen.lock().unwrap().push((seq, Instant::now()));
        async { Ok(()) }
    });
    let route = Route::new("orders", "billing", handler)
        .with_inbox(inbox)
        .with_group_policy(GroupPolicy {
            session_timeout: SESSION_TIMEOUT,
            heartbeat_interval: Duration::from_millis(200),
            rebalance_timeout: Duration::from_secs(20),
        });
    let router = Router::new(&sqs).route(route).start().expect("router");
    until("the nine events not handled before", || {
        handled.lock().unwrap().len() >= 9
    })
    .await;
    router.shutdown().await;

    let handled = handled.lock().unwrap();
    let seqs: Vec<u32> = handled.iter().map(|h| h.0).collect();
    assert_eq!(seqs, (1..10).collect::<Vec<_>>(), "each once, in order");
    let first = handled[0].1.duration_since(received_at);
    assert!(
        first >= SESSION_TIMEOUT,
        "the key waited for the visibility timeout ({first:?})"
    );
}
