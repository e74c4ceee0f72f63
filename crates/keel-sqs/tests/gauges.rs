//! The lag and dead-letter gauges on SQS, on the server at `KEEL_TEST_SQS_URL` (moto; unset:
//! not run, unreachable: fails): the embedded log's series (`keel_consumer_lag_events`,
//! `keel_consumer_lag_seconds`, `keel_dead_letters`, `keel_dead_letter_oldest_age_seconds`)
//! read from the queues' own counts. A group with four events waiting and one dead letter
//! kept shows both, a scrape takes nothing from the queue, and once a router handled the
//! four the group's lag is 0 events and 0 seconds. (The conformance suite's gauge check
//! needs stored offsets, which SQS has not.)

use std::time::{Duration, Instant};

use keel_runtime::conformance::{WAIT, event, gauge, scrape};
use keel_runtime::dead_letter::dead_letter_topic;
use keel_runtime::{Handler, Route, Router};
use keel_sqs::DEAD_LETTER_KEEPER;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_and_dead_letters_are_the_queues_counts_under_the_embedded_names() {
    let Some(sqs) = support::connect("gauges").await else {
        return;
    };
    sqs.ensure_topic("orders", 2).await.expect("topic");
    sqs.ensure_group("orders", "billing").await.expect("group");
    let dlq = dead_letter_topic("orders");
    sqs.ensure_topic(&dlq, 2).await.expect("dead-letter topic");
    sqs.queue_url(&dlq, DEAD_LETTER_KEEPER)
        .await
        .expect("keeper");
    let publisher = sqs.publisher();
    for n in 0..4 {
        publisher
            .publish("orders", event(&format!("k{}", n % 2), n))
            .await
            .expect("publish");
    }
    publisher
        .publish(&dlq, event("k0", 99))
        .await
        .expect("dead letter");

    let metrics = sqs.metrics().clone();
    let lag = |text: &str, unit: &str| {
        let labels = [
            ("topic", "orders"),
            ("group", "billing"),
            ("partition", "0"),
        ];
        gauge(text, &format!("keel_consumer_lag_{unit}"), &labels)
    };
    let dead = |text: &str, family: &str| gauge(text, family, &[("topic", "orders")]);
    let text = until(&metrics, "four waiting, one dead letter", |text| {
        lag(text, "events") == Some(4.0) && dead(text, "keel_dead_letters") == Some(1.0)
    })
    .await;
    let seconds = lag(&text, "seconds").expect("lag in seconds");
    assert!((0.0..WAIT.as_secs_f64()).contains(&seconds), "{text}");
    let oldest = dead(&text, "keel_dead_letter_oldest_age_seconds").expect("oldest's age");
    assert!((0.0..WAIT.as_secs_f64()).contains(&oldest), "{text}");
    // The peek took nothing: the next scrape counts the same.
    let text = scrape(&metrics).await;
    assert_eq!(lag(&text, "events"), Some(4.0), "{text}");
    assert_eq!(dead(&text, "keel_dead_letters"), Some(1.0), "{text}");
    assert_eq!(
        gauge(
            &text,
            "keel_consumer_lag_events",
            &[
                ("topic", &dlq),
                ("group", DEAD_LETTER_KEEPER),
                ("partition", "0")
            ]
        ),
        None,
        "the keeper's queue is dead letters, not lag: {text}"
    );

    let handler = Handler::raw("record", |_, _| async { Ok(()) });
    let router = Router::new(&sqs)
        .route(Route::new("orders", "billing", handler))
        .start()
        .expect("router");
    until(&metrics, "caught up", |text| {
        lag(text, "events") == Some(0.0) && lag(text, "seconds") == Some(0.0)
    })
    .await;
    router.shutdown().await;
}

/// Scrapes until `done` holds, failing after [`WAIT`] with `what` and the last scrape.
async fn until(metrics: &keel_runtime::Metrics, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(metrics).await;
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out: {what}\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
