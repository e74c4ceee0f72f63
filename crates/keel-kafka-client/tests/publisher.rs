//! The Kafka publisher against `keel serve`'s listener: what it stores is what the embedded
//! publisher would store for the same event, keys land in the partition `keel-log` maps them
//! to, and bad input gets an error naming the problem.

mod support;

use keel_core::AdminTransport;
use keel_core::Event;
use keel_kafka_client::{KafkaAdmin, KafkaConfig, KafkaPublisher};
use keel_runtime::{PublishError, event_record};
use support::Serve;

fn event(key: &str, n: u32) -> Event {
    Event::new("/tests", "order.placed")
        .with_partition_key(key)
        .with_correlation_id(format!("corr-{n}"))
        .with_data_json(&serde_json::json!({ "n": n }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_records_are_the_embedded_mapping_in_the_keyed_partition() {
    let serve = Serve::start().await;
    serve.create_topic("orders", 4);
    let publisher = KafkaPublisher::new(&KafkaConfig::new(serve.bootstrap()))
        .unwrap()
        .publisher();
    let topic = serve.log.topic("orders").unwrap();
    for n in 0..20 {
        let key = format!("order-{}", n % 7);
        let sent = event(&key, n);
        let published = publisher.publish("orders", sent.clone()).await.unwrap();
        assert_eq!(published.topic, "orders");
        assert_eq!(
            published.partition,
            topic.partition_for(Some(key.as_bytes())),
            "murmur2 as keel-log and the Java client"
        );
        let stored = topic
            .partition(published.partition)
            .unwrap()
            .read_records(published.offset, 1 << 20)
            .unwrap()
            .into_iter()
            .find(|r| r.offset == published.offset)
            .expect("the acknowledged record is stored");
        // The publisher gave the event a root trace; compare against the same event.
        let decoded = Event::from_record(
            stored.key.as_deref(),
            stored
                .headers
                .iter()
                .map(|h| (h.key.as_str(), h.value.as_deref())),
            stored.value.as_deref(),
        )
        .unwrap();
        assert!(decoded.traceparent.is_some(), "a root trace was added");
        let expected = event_record(&sent.with_traceparent(decoded.traceparent.unwrap()));
        assert_eq!(stored.key, expected.key);
        assert_eq!(stored.value, expected.value);
        assert_eq!(
            stored.headers, expected.headers,
            "CloudEvents binary headers"
        );
        assert_eq!(
            decoded.correlationid.as_deref(),
            Some(format!("corr-{n}").as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_event_is_refused_before_anything_is_sent() {
    let serve = Serve::start().await;
    serve.create_topic("orders", 1);
    let publisher = KafkaPublisher::new(&KafkaConfig::new(serve.bootstrap()))
        .unwrap()
        .publisher();
    let invalid = Event::new("", "order.placed");
    let error = publisher.publish("orders", invalid).await.unwrap_err();
    assert!(matches!(error, PublishError::InvalidEvent(_)), "{error}");
    let partition = serve
        .log
        .topic("orders")
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    assert_eq!(partition.high_watermark(), 0, "nothing stored");
}

/// Producers Keel did not write pick any codec (zstd is a common choice for the Java client):
/// a topic written in one must not stop Keel's Kafka clients reading it. The broker stores the
/// batch as the producer compressed it, so the read decompresses on the client side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_in_every_kafka_codec_are_read_back() {
    let serve = Serve::start().await;
    let admin = KafkaAdmin::connect(&KafkaConfig::new(serve.bootstrap())).unwrap();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        serve.create_topic(&topic, 1);
        let config = KafkaConfig::new(serve.bootstrap()).set("compression.type", codec);
        let publisher = KafkaPublisher::new(&config)
            .unwrap_or_else(|e| panic!("a {codec} producer: {e}"))
            .publisher();
        let sent = event("order-1", 7);
        let published = publisher.publish(&topic, sent.clone()).await.unwrap();
        let read = admin
            .read(&topic, 0, published.offset, 1 << 20)
            .await
            .unwrap_or_else(|e| panic!("reading {topic}: {e}"));
        let record = read
            .iter()
            .find(|r| r.offset == published.offset)
            .unwrap_or_else(|| panic!("{topic}: the acknowledged record is read back"));
        assert_eq!(record.value, event_record(&sent).value, "{codec}");
    }
}
