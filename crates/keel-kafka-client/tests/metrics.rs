//! The router's metrics on Kafka: handled events are counted per topic and group as on the
//! embedded log, and consumer lag (high watermark − committed offset, from librdkafka's
//! statistics) shows events the group has not finished.

mod support;

use std::time::{Duration, Instant};

use keel_core::Event;
use keel_kafka_client::{KafkaConfig, KafkaTransport};
use keel_runtime::{ConsumerPolicy, Handler, Route, Router};
use support::Serve;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handled_events_and_consumer_lag_are_reported() {
    let serve = Serve::start_fast_groups().await;
    serve.create_topic("orders", 1);
    let config = KafkaConfig::new(serve.bootstrap()).set("statistics.interval.ms", "100");
    let kafka = KafkaTransport::connect(&config).unwrap();
    // Events 0..5 are handled; event 5 never finishes, so 5..10 stay uncommitted.
    let handler = Handler::raw("stall", |event: Event, _| async move {
        if event.data.as_deref() >= Some(&b"5"[..]) {
            std::future::pending::<()>().await;
        }
        Ok(())
    });
    let consumer = ConsumerPolicy {
        commit_interval: Duration::from_millis(20),
        ..ConsumerPolicy::default()
    };
    let router = Router::new(&kafka)
        .route(Route::new("orders", "billing", handler).with_consumer(consumer))
        .start()
        .unwrap();
    let publisher = kafka.publisher();
    for n in 0..10 {
        let event = Event::new("/tests", "order.placed")
            .with_partition_key("k")
            .with_data("text/plain", n.to_string().into_bytes());
        publisher.publish("orders", event).await.unwrap();
    }
    let handled = r#"keel_events_handled_total{topic="orders",group="billing"} 5"#;
    let lag = r#"keel_consumer_lag_events{topic="orders",group="billing",partition="0"} 5"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Off the executor: the gauges ask the cluster at each scrape.
        let metrics = kafka.metrics().clone();
        let text = tokio::task::spawn_blocking(move || metrics.encode())
            .await
            .unwrap();
        if text.contains(handled) && text.contains(lag) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {handled} and {lag}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(router);
}
