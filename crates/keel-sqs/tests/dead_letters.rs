//! Dead letters on SQS, on the server at `KEEL_TEST_SQS_URL` (moto; unset: not run,
//! unreachable: fails). SNS keeps nothing, so creating a `.dlq` topic subscribes a queue
//! that keeps its dead letters (`DEAD_LETTER_KEEPER`); the conformance suite's dead-letter
//! check reads `.dlq` through the admin port, which SQS cannot offer, so this test reads
//! the kept queue with the SDK instead and checks Keel's dead-letter headers came along.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use keel_core::Header;
use keel_runtime::conformance::{WAIT, event};
use keel_runtime::{
    DeadLetterHeaders, Handler, HandlerError, RetryPolicy, Route, Router,
    dead_letter::dead_letter_topic,
};
use keel_sqs::DEAD_LETTER_KEEPER;

mod support;

/// The headers of a message body Keel wrote (`"h": [[name, base64 or null], …]`).
fn headers_of(body: &str) -> Vec<Header> {
    let envelope: serde_json::Value = serde_json::from_str(body).expect("a JSON envelope");
    let headers = envelope["h"].as_array().expect("headers");
    headers
        .iter()
        .map(|pair| Header {
            key: pair[0].as_str().expect("name").to_owned().into(),
            value: pair[1]
                .as_str()
                .map(|v| Bytes::from(STANDARD.decode(v).expect("base64"))),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_kept_in_the_dead_letter_queue_with_its_headers() {
    let Some(sqs) = support::connect("dead letters").await else {
        return;
    };
    sqs.ensure_topic("orders", 1).await.expect("topic");
    let handler = Handler::raw("record", |_, _| async {
        Err(HandlerError::transient("always fails"))
    });
    let retry = RetryPolicy {
        attempts_max: 2,
        delay_min: Duration::from_millis(10),
        delay_max: Duration::from_millis(20),
        multiplier: 2,
        jitter_seed: Some(7),
    };
    let route = Route::new("orders", "billing", handler).with_retry(retry);
    let router = Router::new(&sqs).route(route).start().expect("router");
    sqs.publisher()
        .publish("orders", event("poison", 0))
        .await
        .expect("publish");

    let dead_letters = dead_letter_topic("orders");
    let deadline = Instant::now() + WAIT;
    let queue = loop {
        // The router creates the `.dlq` topic (and its keeping queue) with the first dead letter.
        if let Ok(queue) = sqs.queue_url(&dead_letters, DEAD_LETTER_KEEPER).await {
            break queue;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the .dlq topic"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let message = loop {
        let received = sqs
            .sqs_client()
            .receive_message()
            .queue_url(&queue)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if let Some(message) = received.messages().first() {
            break message.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the dead letter"
        );
    };
    router.shutdown().await;
    let headers = headers_of(message.body().expect("body"));
    let dead = DeadLetterHeaders::decode(&headers).expect("keel_dlq_* headers");
    assert_eq!(
        (dead.topic.as_str(), dead.group.as_str(), dead.attempts),
        ("orders", "billing", 2)
    );
    assert_eq!(dead.error, "always fails");
    assert!(
        headers.iter().any(|h| h.key == "ce_id"),
        "the event's own headers are kept"
    );
}
