//! The outbox and its relay on SQLite, the same API and decisions as on PostgreSQL
//! (`postgres.rs`): atomicity, per-key order, poison rows moved aside, and follow-up events
//! enqueued in an inbox handler's transaction.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keel_core::Event;
use keel_runtime::{HandlerError, Route, Router};
use keel_sql::{AfterPublish, RelayOptions, SqliteInbox, SqliteOutbox};
use support::{Step, check_per_key_order, embedded, step, steps, until};

const WAIT: Duration = Duration::from_secs(30);

fn quick(options: RelayOptions) -> RelayOptions {
    RelayOptions {
        poll_interval: Duration::from_millis(20),
        housekeeping_interval: Duration::from_millis(20),
        retry_delay_min: Duration::from_millis(10),
        retry_delay_max: Duration::from_millis(100),
        ..options
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_are_published_in_key_order_and_rolled_back_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let outbox = SqliteOutbox::open(&path).unwrap();
    let (bus, publisher) = embedded(&dir.path().join("log"), "orders", 3, None);
    let keys: Vec<String> = (0..10).map(|k| format!("key-{k}")).collect();
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch("CREATE TABLE orders (id TEXT PRIMARY KEY)")
        .unwrap();
    let relay = outbox
        .relay(
            Arc::new(publisher),
            quick(RelayOptions {
                batch_rows_max: 7,
                after_publish: AfterPublish::Delete,
                ..RelayOptions::default()
            }),
        )
        .unwrap();
    for seq in 0..20 {
        let tx = connection.transaction().unwrap();
        tx.execute(
            "INSERT INTO orders VALUES (?1)",
            [format!("rolled-back-{seq}")],
        )
        .unwrap();
        outbox
            .enqueue(&tx, "orders", &step("rolled-back", seq))
            .unwrap();
        tx.rollback().unwrap();
        let tx = connection.transaction().unwrap();
        let events: Vec<(&str, Event)> = keys.iter().map(|k| ("orders", step(k, seq))).collect();
        outbox.enqueue_batch(&tx, &events).unwrap();
        tx.commit().unwrap();
        relay.wake();
    }
    until("every event published", WAIT, || async {
        steps(bus.log(), "orders").len() >= 200
    })
    .await;
    until("an empty outbox", WAIT, || async {
        outbox.backlog().await.unwrap().pending == 0
    })
    .await;
    relay.shutdown().await;
    let seen = steps(bus.log(), "orders");
    assert_eq!(check_per_key_order(&seen, &keys, 20), 0);
    let rows: i64 = connection
        .query_row("SELECT count(*) FROM keel_outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "published rows are deleted in Delete mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_transport_rejects_is_moved_aside_without_blocking_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let outbox = SqliteOutbox::open(&path).unwrap();
    let (bus, publisher) = embedded(&dir.path().join("log"), "orders", 1, Some(4096));
    // The dead-letter topic has the same limit: the dead letter is stored without its data.
    let mut dlq_config = keel_log::TopicConfig::new(1);
    dlq_config.max_batch_bytes = 4096;
    bus.log().create_topic("orders.dlq", dlq_config).unwrap();
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    let tx = connection.transaction().unwrap();
    let big = Event::new("/test", "test.big")
        .with_partition_key("k")
        .with_data("application/octet-stream", vec![7u8; 10_000]);
    outbox
        .enqueue_batch(
            &tx,
            &[
                ("orders", step("k", 0)),
                ("orders", big),
                ("orders", step("k", 1)),
            ],
        )
        .unwrap();
    tx.commit().unwrap();
    let relay = outbox
        .relay(
            Arc::new(publisher),
            quick(RelayOptions {
                rejected_attempts_max: 3,
                ..RelayOptions::default()
            }),
        )
        .unwrap();
    until("the row behind the poison row", WAIT, || async {
        steps(bus.log(), "orders").len() == 2
    })
    .await;
    until("the dead letter", WAIT, || async {
        bus.log()
            .topic("orders.dlq")
            .is_some_and(|t| t.partitions()[0].high_watermark() == 1)
    })
    .await;
    assert_eq!(relay.metrics().dead_lettered(), 1);
    relay.shutdown().await;
    let dead_letter = &bus.log().topic("orders.dlq").unwrap().partitions()[0]
        .read_records(0, 1 << 20)
        .unwrap()[0];
    assert_eq!(dead_letter.value, None, "the data was dropped");
    let incomplete = keel_runtime::IncompletePayload::decode(&dead_letter.headers)
        .expect("a dead letter without its data is marked, so replay refuses it");
    assert_eq!(incomplete.loss, keel_runtime::PayloadLoss::Dropped);
    assert!(
        incomplete.original.contains("keel_outbox_dead row"),
        "{incomplete:?}"
    );
    let (attempts, error): (i64, String) = connection
        .query_row("SELECT attempts, error FROM keel_outbox_dead", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(attempts, 3);
    assert!(error.contains("max_batch_bytes"), "{error}");
    let seqs: Vec<u32> = steps(bus.log(), "orders")
        .into_iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(seqs, [0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_handler_enqueues_follow_ups_only_when_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let (bus, publisher) = embedded(&dir.path().join("log"), "steps", 2, None);
    bus.log()
        .create_topic(
            "done",
            keel_log::TopicConfig::new(1).with_fsync(keel_log::FsyncPolicy::Never),
        )
        .unwrap();
    let inbox = SqliteInbox::open(&path).unwrap();
    let outbox = SqliteOutbox::open(&path).unwrap();
    let handler = inbox.handler("follow", |tx, step: Step| {
        if step.seq % 2 == 1 {
            tx.enqueue("done", Event::new("/test", "test.never"))?;
            return Err(HandlerError::permanent("odd steps fail after enqueueing"));
        }
        tx.enqueue("done", support::step(&step.key, step.seq))?;
        Ok(())
    });
    let router = Router::new(&bus)
        .route(Route::new("steps", "g", handler))
        .start()
        .unwrap();
    for seq in 0..10 {
        publisher.publish("steps", step("k", seq)).await.unwrap();
    }
    let relay = outbox
        .relay(Arc::new(publisher), quick(RelayOptions::default()))
        .unwrap();
    until("five follow-ups", WAIT, || async {
        steps(bus.log(), "done").len() == 5
    })
    .await;
    until("an empty outbox", WAIT, || async {
        outbox.backlog().await.unwrap().pending == 0
    })
    .await;
    router.shutdown().await;
    relay.shutdown().await;
    let seqs: Vec<u32> = steps(bus.log(), "done")
        .into_iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(
        seqs,
        [0, 2, 4, 6, 8],
        "rolled-back handlers enqueued nothing"
    );
    let causes: Vec<Option<String>> = support::events(bus.log(), "done")
        .into_iter()
        .map(|e| e.causationid)
        .collect();
    assert!(
        causes.iter().all(Option::is_some),
        "follow-ups are caused by the handled event"
    );
}

/// A transport that is down: every publish fails transiently.
struct Down;

impl keel_core::PublishPort for Down {
    fn publish<'a>(
        &'a self,
        _topic: &'a str,
        _event: Event,
    ) -> keel_core::BoxFuture<'a, Result<(), keel_core::PortError>> {
        Box::pin(async { Err(keel_core::PortError::transient("broker unreachable")) })
    }

    fn publish_dead_letter<'a>(
        &'a self,
        _topic: &'a str,
        _event: Event,
        _headers: Vec<(String, Vec<u8>)>,
    ) -> keel_core::BoxFuture<'a, Result<(), keel_core::PortError>> {
        Box::pin(async { Err(keel_core::PortError::transient("broker unreachable")) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_that_is_down_keeps_rows_and_the_metrics_show_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let outbox = SqliteOutbox::open(&path).unwrap();
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    let tx = connection.transaction().unwrap();
    outbox
        .enqueue_batch(
            &tx,
            &[
                ("orders", step("a", 0)),
                ("orders", step("b", 0)),
                ("orders", step("a", 1)),
            ],
        )
        .unwrap();
    tx.commit().unwrap();
    let metrics = keel_sql::OutboxMetrics::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let relay = outbox
        .relay_with_metrics(
            Arc::new(Down),
            quick(RelayOptions::default()),
            metrics.clone(),
        )
        .unwrap();
    until(
        "failures counted and the backlog measured",
        WAIT,
        || async {
            let backlog = metrics.backlog();
            backlog.pending == 3 && backlog.oldest_age_ms > 0 && {
                let mut text = String::new();
                prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
                text.contains("keel_outbox_publish_failures_total{kind=\"transient\"}")
            }
        },
    )
    .await;
    relay.shutdown().await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("keel_outbox_backlog_events 3"), "{text}");
    assert!(
        text.contains("keel_outbox_oldest_unpublished_age_seconds"),
        "{text}"
    );
    let (attempts_a1, attempts_b0): (i64, i64) = connection
        .query_row(
            "SELECT (SELECT attempts FROM keel_outbox WHERE id = 3), (SELECT attempts FROM keel_outbox WHERE id = 2)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        attempts_a1, 0,
        "a later row of a failing key is not attempted"
    );
    assert!(attempts_b0 > 0, "the head of each key is retried");
    let dead: i64 = connection
        .query_row("SELECT count(*) FROM keel_outbox_dead", [], |r| r.get(0))
        .unwrap();
    assert_eq!(dead, 0, "transient failures never move a row aside");
}
