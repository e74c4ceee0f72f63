//! The publish port on Kafka: the outbox relay publishes committed events to `keel serve`
//! through `KafkaPublisher`, and a dead letter through the port lands in `<topic>.dlq`
//! (created with the source's partition count) with the `keel_dlq_*` headers.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_core::{Event, PublishPort};
use keel_kafka_client::{KafkaConfig, KafkaPublisher};
use keel_sql::{RelayOptions, SqliteOutbox};
use support::Serve;

fn stored_count(serve: &Serve, topic: &str) -> u64 {
    let topic = serve.log.topic(topic).expect("topic");
    (0..topic.config().partitions)
        .map(|p| topic.partition(p).unwrap().high_watermark())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_relay_publishes_committed_events_to_kafka() {
    let serve = Serve::start().await;
    serve.create_topic("orders", 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let outbox = SqliteOutbox::open(&path).unwrap();
    let publisher = KafkaPublisher::new(&KafkaConfig::new(serve.bootstrap()))
        .unwrap()
        .publisher();
    let options = RelayOptions {
        poll_interval: Duration::from_millis(20),
        ..RelayOptions::default()
    };
    let relay = outbox.relay(Arc::new(publisher), options).unwrap();
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    for n in 0..30 {
        let tx = connection.transaction().unwrap();
        let event = Event::new("/tests", "order.placed")
            .with_partition_key(format!("order-{}", n % 5))
            .with_data_json(&serde_json::json!({ "n": n }));
        outbox.enqueue(&tx, "orders", &event).unwrap();
        if n % 3 == 0 {
            tx.rollback().unwrap();
        } else {
            tx.commit().unwrap();
        }
    }
    relay.wake();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_count(&serve, "orders") < 20 {
        assert!(
            Instant::now() < deadline,
            "the relay did not publish 20 events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.shutdown().await;
    assert_eq!(
        stored_count(&serve, "orders"),
        20,
        "rolled-back events never"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_through_the_port_lands_in_the_dlq_topic_with_its_headers() {
    let serve = Serve::start().await;
    serve.create_topic("payments", 3);
    let publisher = KafkaPublisher::new(&KafkaConfig::new(serve.bootstrap()))
        .unwrap()
        .publisher();
    let event = Event::new("/tests", "payment.taken").with_partition_key("p-1");
    let headers = vec![("keel_dlq_error".to_string(), b"broker said no".to_vec())];
    PublishPort::publish_dead_letter(&publisher, "payments", event.clone(), headers)
        .await
        .unwrap();
    let dlq = serve
        .log
        .topic("payments.dlq")
        .expect("created on first use");
    assert_eq!(dlq.config().partitions, 3, "the source's partition count");
    let partition = dlq.partition_for(Some(b"p-1"));
    let stored = dlq
        .partition(partition)
        .unwrap()
        .read_records(0, 1 << 20)
        .unwrap();
    assert_eq!(stored.len(), 1);
    let header = |name: &str| {
        stored[0]
            .headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value.clone())
    };
    assert_eq!(header("ce_id").as_deref(), Some(event.id.as_bytes()));
    assert_eq!(
        header("keel_dlq_error").as_deref(),
        Some(&b"broker said no"[..])
    );
    let error = PublishPort::publish(&publisher, "payments", Event::new("", "x"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), keel_core::PortErrorKind::Rejected, "{error}");
}
