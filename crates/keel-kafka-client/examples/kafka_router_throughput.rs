//! The router on Apache Kafka next to librdkafka's own consumer, in one run (issue 15's
//! engine comparison, `scripts/bench-engines`): a fresh topic of 4 partitions gets
//! `KEEL_BENCH_EVENTS` (default 20,000) 100-byte events over 10,000 keys, then a librdkafka
//! consumer group (the `rdkafka` crate, no Keel: the engine's client at full speed) reads
//! the topic from the start, committing in the background as librdkafka does by default,
//! then a router with a no-op handler handles them all (`keel_runtime::throughput`), then a
//! router of another group with the SQLite inbox (`keel_sql::conformance::throughput`). Each
//! is timed from its start, group join included. Prints two lines: events per second of
//! each and each router's ratio to the client. The run's topic and groups are deleted at
//! the end.
//!
//! Not `kafka_throughput`, whose "consume" half is Keel's own `KafkaMember` and whose
//! workload differs (1,024 keys).
//!
//! `cargo run --release -p keel-kafka-client --example kafka_router_throughput` with
//! `KEEL_TEST_KAFKA_BROKERS` set (`scripts/services env`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_core::GroupPolicy;
use keel_kafka_client::{KafkaConfig, KafkaTransport};
use keel_runtime::throughput;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

const PARTITIONS: u32 = 4;
/// The longest the client may go without a record before the run counts as failed.
const IDLE_MAX: Duration = Duration::from_secs(60);
/// How long a group's last member may take to leave before its deletion is given up (the
/// broker's session timeout is the bound; a clean leave takes well under a second).
const GROUP_LEAVE_MAX: Duration = Duration::from_secs(10);

/// The routers' group policy: the benchmark's, with the shortest session Apache Kafka
/// accepts by default (`group.min.session.timeout.ms`, 6 s; the benchmark's 3 s is refused).
fn group_policy() -> GroupPolicy {
    GroupPolicy {
        session_timeout: Duration::from_secs(6),
        ..throughput::group_policy()
    }
}

#[tokio::main]
async fn main() {
    let brokers = std::env::var("KEEL_TEST_KAFKA_BROKERS").expect("KEEL_TEST_KAFKA_BROKERS");
    let events = throughput::events();
    // Topics outlive the run on a real cluster: named after the process and the time.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let topic = format!("bench-engines-{}-{nanos}", std::process::id());
    let kafka = KafkaTransport::connect(&KafkaConfig::new(&brokers)).expect("transport");
    kafka.ensure_topic(&topic, PARTITIONS).await.expect("topic");
    let publish = throughput::publish(&kafka.publisher(), &topic, events).await;
    let raw = {
        let (brokers, topic) = (brokers.clone(), topic.clone());
        tokio::task::spawn_blocking(move || raw_consume(&brokers, &topic, events))
            .await
            .expect("the client's thread")
    };
    let group = format!("{topic}-router");
    let router =
        throughput::router_no_op(kafka.transport(), &topic, &group, group_policy(), events).await;
    throughput::report(events, publish, "librdkafka", raw, router);
    let inbox = keel_sql::conformance::throughput::router_inbox(
        kafka.transport(),
        &topic,
        &format!("{topic}-inbox"),
        group_policy(),
        events,
    )
    .await;
    throughput::report_inbox(events, "librdkafka", raw, inbox);
    delete_run(&brokers, &topic).await;
}

/// Deletes the run's topic and its three groups (naming on stderr what could not be), so runs do not pile up on the shared
/// broker (each 100,000-event topic keeps its records until retention).
async fn delete_run(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let options = AdminOptions::new();
    let groups = ["librdkafka", "router", "inbox"].map(|half| format!("{topic}-{half}"));
    for group in &groups {
        delete_group(&admin, &options, group).await;
    }
    let topic_deleted = admin.delete_topics(&[topic], &options).await;
    for result in topic_deleted.into_iter().flatten() {
        if let Err((name, error)) = result {
            eprintln!("not deleted: {name} ({error})");
        }
    }
}

/// Deletes `group`, asking again while the broker still counts a member that is leaving (a
/// router's member leaves in the background after its run).
async fn delete_group(
    admin: &AdminClient<DefaultClientContext>,
    options: &AdminOptions,
    group: &str,
) {
    let deadline = Instant::now() + GROUP_LEAVE_MAX;
    loop {
        let results = admin.delete_groups(&[group], options).await;
        match results.as_ref().map(|results| &results[0]) {
            Ok(Err((_, RDKafkaErrorCode::NonEmptyGroup))) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Ok(_)) => return,
            Ok(Err((name, error))) => return eprintln!("not deleted: {name} ({error})"),
            Err(error) => return eprintln!("not deleted: {group} ({error})"),
        }
    }
}

/// librdkafka alone: one consumer joining a group of its own on `topic` from the earliest
/// offset, polling until every event arrived (librdkafka's threads fetch ahead; offsets are
/// committed in the background, its default). A plain thread: librdkafka's consumer is a
/// blocking handle.
fn raw_consume(brokers: &str, topic: &str, events: u64) -> Duration {
    let started = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-librdkafka"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut seen = 0u64;
    let mut last = Instant::now();
    while seen < events {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                seen += 1;
                last = Instant::now();
            }
            Some(Err(error)) => panic!("librdkafka consumer: {error}"),
            None => assert!(
                last.elapsed() < IDLE_MAX,
                "librdkafka read {seen} of {events} events, then nothing for {IDLE_MAX:?}"
            ),
        }
    }
    started.elapsed()
}
