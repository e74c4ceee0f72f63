//! A group's deletion on RabbitMQ removes what the group owns — its members queue, its
//! lease queues and its offset queues — and nothing shared: the topic's streams keep their
//! events and another group on the same topic keeps its committed offsets. (The conformance
//! suite checks the refusal while members run and the deletion through the port; this
//! checks which queues go.) On the RabbitMQ at `KEEL_TEST_RABBITMQ_URL` (unset: not run; set
//! and unreachable: fails), in a namespace of its own, deleted at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keel_core::{AdminTransport, GroupPolicy, TransportError};
use keel_rabbitmq::{RabbitAdmin, RabbitConfig, RabbitTransport};
use keel_runtime::conformance::{WAIT, event, quick_consumer};
use keel_runtime::{Handler, Route, Router};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

const URL_VAR: &str = "KEEL_TEST_RABBITMQ_URL";
const EVENTS: u64 = 4;
const PARTITIONS: u32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_group_loses_its_queues_and_the_topic_and_other_groups_keep_theirs() {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("rabbitmq group deletion: not run, {URL_VAR} is unset");
        return;
    };
    let prefix = format!("group-deletion-{}.", uuid::Uuid::now_v7());
    let rabbit = RabbitTransport::connect(&RabbitConfig::new(&url).with_prefix(&prefix))
        .expect("RabbitMQ transport");
    let admin = rabbit.admin();
    admin
        .create_topic("orders", PARTITIONS)
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at {url} is unreachable: {e}"));
    let publisher = rabbit.publisher();
    for n in 0..EVENTS {
        let key = format!("k{n}");
        publisher
            .publish("orders", event(&key, n as u32))
            .await
            .expect("publish");
    }
    let handled = Arc::new(AtomicUsize::new(0));
    let route = |group: &str| {
        let handled = handled.clone();
        let handler = Handler::raw("count", move |_, _| {
            handled.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        });
        Route::new("orders", group, handler)
            .with_consumer(quick_consumer())
            .with_group_policy(GroupPolicy {
                session_timeout: Duration::from_secs(3),
                heartbeat_interval: Duration::from_millis(200),
                rebalance_timeout: Duration::from_secs(20),
            })
    };
    let router = Router::new(&rabbit)
        .route(route("billing"))
        .route(route("shipping"))
        .start()
        .expect("router");
    for group in ["billing", "shipping"] {
        until_committed_all(&admin, group).await;
    }
    router.shutdown().await;

    // A member's leave may reach RabbitMQ just after the shutdown returns.
    let deadline = Instant::now() + WAIT;
    loop {
        match admin.delete_group("billing").await {
            Ok(()) => break,
            Err(TransportError::GroupActive { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("deleting the stopped group: {error}"),
        }
    }

    assert_eq!(admin.committed("billing").await.expect("committed"), []);
    assert_eq!(admin.groups().await.expect("groups"), ["shipping"]);
    assert_eq!(committed_total(&admin, "shipping").await, Ok(EVENTS));
    let stored: u64 = admin
        .partition_offsets("orders")
        .await
        .expect("the topic's streams")
        .iter()
        .map(|p| p.high_watermark - p.log_start)
        .sum();
    assert_eq!(stored, EVENTS, "the streams keep every event");

    let amqp = Amqp::connect(&url, &prefix).await;
    let owned = |group: &str| {
        let mut names = vec![format!("keel.members.{group}.orders")];
        for partition in 0..PARTITIONS {
            names.push(format!("keel.lease.{group}.orders.{partition}"));
            names.push(format!("keel.offset.{group}.orders.{partition}"));
        }
        names
    };
    for queue in owned("billing") {
        assert!(!amqp.exists(&queue).await, "{queue} outlived its group");
    }
    for queue in owned("shipping") {
        assert!(
            amqp.exists(&queue).await,
            "{queue} of the other group is gone"
        );
    }

    amqp.delete_namespace(&admin).await;
}

/// Waits until `group` committed past every event of `orders`. A registry stream declared
/// a moment ago may answer that it has no replica yet: asked again.
async fn until_committed_all(admin: &RabbitAdmin, group: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        match committed_total(admin, group).await {
            Ok(EVENTS) => return,
            Ok(_) => {}
            Err(error) => eprintln!("{group}'s commits not read yet: {error}"),
        }
        assert!(Instant::now() < deadline, "{group} never committed all");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum of `group`'s committed offsets in `orders`: offsets are dense from 0 here.
async fn committed_total(admin: &RabbitAdmin, group: &str) -> Result<u64, TransportError> {
    Ok(admin
        .committed(group)
        .await?
        .iter()
        .filter(|o| o.topic == "orders")
        .map(|o| o.offset)
        .sum())
}

/// A plain AMQP connection, for what the transport does not show: which queues exist.
struct Amqp {
    connection: Connection,
    prefix: String,
}

impl Amqp {
    async fn connect(url: &str, prefix: &str) -> Amqp {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("an AMQP connection");
        Amqp {
            connection,
            prefix: prefix.to_string(),
        }
    }

    /// Whether the queue `name` of the namespace exists (a passive declaration; its 404
    /// closes the channel, so each asks on a channel of its own).
    async fn exists(&self, name: &str) -> bool {
        let channel = self.connection.create_channel().await.expect("a channel");
        let passive = QueueDeclareOptions::default().passive();
        let name = format!("{}{name}", self.prefix);
        channel
            .queue_declare(name.as_str().into(), passive, FieldTable::default())
            .await
            .is_ok()
    }

    /// Deletes every stream and queue the test's namespace may hold: each topic's
    /// partitions, each group's queues on each topic, and the two registries.
    async fn delete_namespace(&self, admin: &RabbitAdmin) {
        let topics = admin.topics().await.expect("topics");
        let mut names = vec!["keel.topics".to_string(), "keel.groups".to_string()];
        for topic in &topics {
            for partition in 0..topic.partitions {
                names.push(format!("{}.{partition}", topic.name));
                for group in ["billing", "shipping"] {
                    names.push(format!("keel.lease.{group}.{}.{partition}", topic.name));
                    names.push(format!("keel.offset.{group}.{}.{partition}", topic.name));
                }
            }
            for group in ["billing", "shipping"] {
                names.push(format!("keel.members.{group}.{}", topic.name));
            }
        }
        for name in names {
            let channel = self.connection.create_channel().await.expect("a channel");
            let name = format!("{}{name}", self.prefix);
            // A queue that is not there is deleted already (or answers 404).
            let _ = channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
}
