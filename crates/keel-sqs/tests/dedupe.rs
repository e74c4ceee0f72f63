//! Deduplication on SQS/SNS, on the server at `KEEL_TEST_SQS_URL` (moto; unset: not run,
//! unreachable: fails). An event published twice (an outbox relay that did not see its
//! first publish answered) is delivered once while its first copy is still in the group's
//! queue: the promise both AWS and moto keep. AWS keeps a `MessageDeduplicationId` for five
//! minutes whether or not the first copy was deleted; moto 5.2.1 compares a new message
//! only with those still in the queue, so an event published again after its first copy
//! was handled and deleted is delivered again there — shown below, so that a moto closing
//! the gap is noticed. Either way, the inbox keeps the effect once (docs/engines.md).

use keel_runtime::conformance::event;
use keel_sqs::SqsTransport;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_twice_is_delivered_once_while_its_first_copy_waits() {
    let Some(sqs) = support::connect("dedupe").await else {
        return;
    };
    sqs.ensure_topic("orders", 1).await.expect("topic");
    let queue = sqs.queue_url("orders", "billing").await.expect("queue");
    let publisher = sqs.publisher();
    let order = event("k", 0);
    for _ in 0..2 {
        publisher
            .publish("orders", order.clone())
            .await
            .expect("publish");
    }
    let receipts = receive_all(&sqs, &queue).await;
    assert_eq!(receipts.len(), 1, "published twice, delivered once");

    sqs.sqs_client()
        .delete_message()
        .queue_url(&queue)
        .receipt_handle(&receipts[0])
        .send()
        .await
        .expect("delete");
    publisher
        .publish("orders", order.clone())
        .await
        .expect("publish");
    assert_eq!(
        receive_all(&sqs, &queue).await.len(),
        1,
        "moto delivers an event published again after its first copy was deleted (AWS, \
         within five minutes, does not); if moto stopped, docs/engines.md says otherwise"
    );
}

/// The receipts of every message waiting in `queue`: receives until one long poll finds
/// nothing (each received message stays invisible for the rest of the test).
async fn receive_all(sqs: &SqsTransport, queue: &str) -> Vec<String> {
    let mut receipts = Vec::new();
    loop {
        let received = sqs
            .sqs_client()
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .send()
            .await
            .expect("receive");
        if received.messages().is_empty() {
            return receipts;
        }
        receipts.extend(
            received
                .messages()
                .iter()
                .filter_map(|m| m.receipt_handle().map(str::to_string)),
        );
    }
}
