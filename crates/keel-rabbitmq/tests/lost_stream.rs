//! A topic Keel created whose partition stream RabbitMQ no longer has (deleted by hand here;
//! after a crash, a stream whose node forgot its coordinator answers the same 404) is
//! unavailable — the publisher keeps the event and tries again — not "topic does not exist",
//! which only a topic never created gets. On the RabbitMQ at `KEEL_TEST_RABBITMQ_URL`
//! (unset: not run; set and unreachable: fails).

use bytes::Bytes;
use keel_core::{NewRecord, PublishTransport, SendError};
use keel_rabbitmq::{RabbitConfig, RabbitTransport};
use lapin::options::QueueDeleteOptions;
use lapin::{Connection, ConnectionProperties};

const URL_VAR: &str = "KEEL_TEST_RABBITMQ_URL";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_topic_missing_a_partition_stream_is_unavailable_not_unknown() {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("rabbitmq lost stream: not run, {URL_VAR} is unset");
        return;
    };
    let prefix = format!("lost-stream-{}.", uuid::Uuid::now_v7());
    let config = RabbitConfig::new(&url).with_prefix(&prefix);
    let rabbit = RabbitTransport::connect(&config).expect("RabbitMQ transport");
    rabbit
        .publish_transport()
        .ensure_topic("orders", 2)
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at {url} is unreachable: {e}"));

    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("an AMQP connection");
    let channel = connection.create_channel().await.expect("a channel");
    let delete = |name: String| {
        let channel = channel.clone();
        async move {
            channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await
                .unwrap_or_else(|e| panic!("delete {name}: {e}"));
        }
    };
    delete(format!("{prefix}orders.0")).await;

    // The transport that created the topic still counts two partitions: the publish itself
    // finds the stream gone.
    let remembered = rabbit.publish_transport().send_to("orders", 0, record());
    // A new transport counts the partitions afresh and finds the first missing.
    let fresh = RabbitTransport::connect(&config).expect("RabbitMQ transport");
    let counted = fresh.publish_transport().send("orders", record());
    for (what, outcome) in [("remembered", remembered.await), ("counted", counted.await)] {
        match outcome {
            Err(SendError::Unavailable { reason, .. }) => assert!(
                reason.contains(&format!("no stream '{prefix}orders.0'")),
                "{what}: {reason}"
            ),
            other => panic!("{what}: a publish to the lost stream answered {other:?}"),
        }
    }
    match fresh
        .publish_transport()
        .send("never-created", record())
        .await
    {
        Err(SendError::UnknownTopic { topic }) => assert_eq!(topic, "never-created"),
        other => panic!("a publish to a topic never created answered {other:?}"),
    }

    delete(format!("{prefix}orders.1")).await;
    delete(format!("{prefix}keel.topics")).await;
}

fn record() -> NewRecord {
    NewRecord::new(Some(Bytes::from_static(b"k")), "v".to_string())
}
