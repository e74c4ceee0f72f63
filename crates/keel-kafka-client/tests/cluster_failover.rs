//! Failover on a real three-node Apache Kafka cluster: a transactional outbox (SQLite)
//! publishes through Keel's producer (`acks=all`, idempotent) at a steady rate, three
//! routers in one consumer group apply each event through a shared SQLite inbox, and one
//! broker — the group's coordinator, which also leads a share of the topic's partitions — is
//! killed with SIGKILL mid-run and started again later. Checked at the end: every event the
//! relay marked published had its effect applied exactly once, each key's effects in the
//! order the outbox holds them, and the group went on handling without the node (the node
//! is restarted only after an event enqueued after the kill was handled). The test prints
//! how long handling stalled around the kill (BENCHMARKS.md records runs).
//!
//! Runs against `KEEL_TEST_KAFKA_CLUSTER` (`scripts/services start kafka-cluster` serves three
//! Apache Kafka nodes on 127.0.0.1:39092/39192/39292 with replication factor 3 and
//! `min.insync.replicas=2`; the test kills and restarts a node with `scripts/services
//! kafka-node`, under the same `KEEL_SERVICES_DIR`). Unset, the test says it did not run;
//! set, an unreachable cluster fails it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_core::Event;
use keel_kafka_client::{KafkaConfig, KafkaPublisher, KafkaTransport};
use keel_runtime::{Route, Router, RouterHandle};
use keel_sql::{RelayHandle, RelayOptions, SqliteInbox, SqliteOutbox};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rusqlite::Connection;
use serde_json::json;

const CLUSTER_VAR: &str = "KEEL_TEST_KAFKA_CLUSTER";
const PARTITIONS: u32 = 6;
const KEYS: u64 = 24;
const MEMBERS: usize = 3;
/// Events the outbox receives per second, spread over the keys in turn.
const RATE_PER_S: u64 = 25;
/// When the node dies, after the first event.
const KILL_AT: Duration = Duration::from_secs(8);
/// How long the group may take to handle an event enqueued after the kill; the node stays
/// down until it did, then `STEADY` longer, and events keep coming `STEADY` after the
/// node is back.
const RECOVERY_WAIT: Duration = Duration::from_secs(90);
const STEADY: Duration = Duration::from_secs(5);
/// How long the group may take to handle the last events once the outbox stops growing;
/// only a broken system takes this long.
const DRAIN_WAIT: Duration = Duration::from_secs(120);

/// The cluster's bootstrap list, or `None` (with a message) when the test is not to run.
fn cluster() -> Option<String> {
    match std::env::var(CLUSTER_VAR) {
        Ok(brokers) => Some(brokers),
        Err(_) => {
            eprintln!("kafka cluster failover: not run, {CLUSTER_VAR} is unset");
            None
        }
    }
}

/// Milliseconds since the epoch: the clock both the enqueue and the effect are stamped with.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// `scripts/services kafka-node ACTION NODE`, under the caller's `KEEL_SERVICES_DIR`. Its
/// output goes to the test's own (never to a pipe: a restarted node must not hold it open).
fn kafka_node(action: &str, node: i32) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services");
    let status = Command::new(script)
        .args(["kafka-node", action, &node.to_string()])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("run scripts/services: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "scripts/services kafka-node {action} {node}: {status}"
        ))
    }
}

/// The cluster as a plain librdkafka client sees it, for the checks the port does not
/// offer: replicas, topic configs and the group coordinator's partition.
struct Cluster {
    consumer: BaseConsumer,
    admin: AdminClient<DefaultClientContext>,
}

impl Cluster {
    fn new(brokers: &str) -> Cluster {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("allow.auto.create.topics", "false");
        Cluster {
            consumer: config.create().expect("metadata client"),
            admin: config.create().expect("admin client"),
        }
    }

    /// Each partition's (leader, replica count) of `topic`.
    fn partitions(&self, topic: &str) -> Vec<(i32, usize)> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let topic = &metadata.topics()[0];
        topic
            .partitions()
            .iter()
            .map(|p| (p.leader(), p.replicas().len()))
            .collect()
    }

    async fn min_insync_replicas(&self, topic: &str) -> String {
        let results = self
            .admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
            .await
            .expect("describe configs");
        let config = results[0].as_ref().expect("topic config");
        config
            .get("min.insync.replicas")
            .and_then(|entry| entry.value.clone())
            .expect("min.insync.replicas")
    }

    /// The node coordinating `group`: the leader of the `__consumer_offsets` partition the
    /// group id hashes to (Kafka's `Utils.abs(groupId.hashCode) % partitions`).
    fn coordinator(&self, group: &str) -> i32 {
        let offsets = self.partitions("__consumer_offsets");
        let hash = group.encode_utf16().fold(0i32, |h, unit| {
            h.wrapping_mul(31).wrapping_add(i32::from(unit))
        });
        let abs = if hash == i32::MIN { 0 } else { hash.abs() };
        offsets[abs as usize % offsets.len()].0
    }

    /// Deletes what the run created on the shared cluster: its topic, the topics the routers
    /// made beside it (`<topic>.retry`, ...) and its group.
    async fn remove(&self, topic: &str, group: &str) {
        let metadata = self
            .consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        let prefix = format!("{topic}.");
        let topics: Vec<&str> = metadata
            .topics()
            .iter()
            .map(|t| t.name())
            .filter(|name| *name == topic || name.starts_with(&prefix))
            .collect();
        let options = AdminOptions::new();
        for result in self
            .admin
            .delete_topics(&topics, &options)
            .await
            .expect("delete the topic")
        {
            result.unwrap_or_else(|(name, code)| panic!("delete topic {name}: {code}"));
        }
        // The members' LeaveGroup may still be in flight on the coordinator.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let results = self
                .admin
                .delete_groups(&[group], &options)
                .await
                .expect("delete the group");
            match &results[0] {
                Err((_, RDKafkaErrorCode::NonEmptyGroup)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                result => {
                    result
                        .as_ref()
                        .unwrap_or_else(|(name, code)| panic!("delete group {name}: {code}"));
                    break;
                }
            }
        }
    }
}

/// A node this test killed. Dropped — when the run ends, or when it fails or is cancelled
/// while the node is down — it starts the node again, so a failed run never leaves the
/// shared cluster one node short.
struct KilledNode(i32);

impl KilledNode {
    fn kill(node: i32) -> KilledNode {
        kafka_node("kill", node).unwrap_or_else(|e| panic!("{e}"));
        KilledNode(node)
    }
}

impl Drop for KilledNode {
    fn drop(&mut self) {
        match kafka_node("start", self.0) {
            Ok(()) => {}
            // A second panic while unwinding would abort and hide the first failure.
            Err(e) if std::thread::panicking() => eprintln!("{e}"),
            Err(e) => panic!("{e}"),
        }
    }
}

/// One member of the group: its own client (as a separate process would have), its own
/// connection to the shared inbox database.
fn member(brokers: &str, topic: &str, group: &str, inbox_path: &Path, n: usize) -> RouterHandle {
    let config = KafkaConfig::new(brokers).with_client_id(format!("failover-member-{n}"));
    let kafka = KafkaTransport::connect(&config).expect("transport");
    let inbox = SqliteInbox::open(inbox_path).expect("inbox");
    let handler = inbox.handler_raw("apply", move |tx, event: Event| {
        let data: serde_json::Value =
            serde_json::from_slice(event.data.as_deref().unwrap_or_default())?;
        tx.execute(
            "INSERT INTO effects (event_id, key, seq, partition, member, enqueued_ms, applied_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            (
                &event.id,
                data["key"].as_str().unwrap_or_default(),
                data["seq"].as_i64(),
                tx.context().partition(),
                n as i64,
                data["enqueued_ms"].as_i64(),
                now_ms(),
            ),
        )?;
        Ok(())
    });
    Router::new(&kafka)
        .route(Route::new(topic, group, handler))
        .start()
        .expect("router")
}

/// Puts one event per tick into the outbox, key after key, each carrying its key's
/// sequence number and when it was enqueued, until `stop` says so (or its sender is gone);
/// returns how many it enqueued.
async fn produce(
    outbox: SqliteOutbox,
    relay: &RelayHandle,
    topic: &str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let mut connection = Connection::open(outbox.path()).expect("outbox connection");
    connection
        .busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE_PER_S as u32);
    let mut n = 0;
    // Until told, or until the task that would tell has gone (it failed).
    while !*stop.borrow() && stop.has_changed().is_ok() {
        tick.tick().await;
        let key = format!("account-{}", n % KEYS);
        let event = Event::new("/failover", "account.changed")
            .with_partition_key(key.clone())
            .with_data_json(&json!({ "key": key, "seq": n / KEYS, "enqueued_ms": now_ms() }));
        let tx = connection.transaction().expect("begin");
        outbox.enqueue(&tx, topic, &event).expect("enqueue");
        tx.commit().expect("commit");
        relay.wake();
        n += 1;
    }
    n
}

/// Waits until an event enqueued after `killed_ms` was applied; when it was.
async fn group_back(inbox_path: &Path, killed_ms: i64) -> i64 {
    let deadline = Instant::now() + RECOVERY_WAIT;
    loop {
        let back: Option<i64> = Connection::open(inbox_path)
            .and_then(|c| {
                c.query_row(
                    "SELECT MIN(applied_ms) FROM effects WHERE enqueued_ms > ?1",
                    [killed_ms],
                    |r| r.get(0),
                )
            })
            .expect("query effects");
        if let Some(back) = back {
            return back;
        }
        assert!(
            Instant::now() < deadline,
            "the group handled nothing enqueued after the kill within {RECOVERY_WAIT:?}, without the node"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the effects table says at the end, for the asserts and the report.
struct Effects {
    /// (key, seq) in the order the effects were applied.
    applied: Vec<(String, i64)>,
    /// (applied_ms, enqueued_ms, partition) of each effect, in applied order.
    times: Vec<(i64, i64, u32)>,
}

fn effects(inbox_path: &Path) -> Effects {
    let connection = Connection::open(inbox_path).expect("inbox database");
    let mut statement = connection
        .prepare("SELECT key, seq, applied_ms, enqueued_ms, partition FROM effects ORDER BY id")
        .expect("select effects");
    let rows: Vec<(String, i64, i64, i64, u32)> = statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .expect("query effects")
        .collect::<Result<_, _>>()
        .expect("read effects");
    Effects {
        applied: rows.iter().map(|r| (r.0.clone(), r.1)).collect(),
        times: rows.iter().map(|r| (r.2, r.3, r.4)).collect(),
    }
}

/// The ids of the events the relay marked published.
fn published(outbox_path: &Path) -> Vec<String> {
    let connection = Connection::open(outbox_path).expect("outbox database");
    let mut statement = connection
        .prepare("SELECT event_id FROM keel_outbox WHERE published_at_ms IS NOT NULL")
        .expect("select published");
    statement
        .query_map([], |row| row.get(0))
        .expect("query published")
        .collect::<Result<_, _>>()
        .expect("read published")
}

fn applied_count(inbox_path: &Path) -> u64 {
    Connection::open(inbox_path)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM effects", [], |r| r.get::<_, i64>(0)))
        .expect("count effects") as u64
}

/// Longest pause between two consecutive effects applied at or after `from_ms`: across
/// the group (its length and start), and per partition (its length).
fn longest_pauses(times: &[(i64, i64, u32)], from_ms: i64) -> ((i64, i64), BTreeMap<u32, i64>) {
    let mut applied: Vec<(i64, u32)> = times.iter().map(|t| (t.0, t.2)).collect();
    applied.sort_unstable();
    let mut group = (0, from_ms);
    let mut last = from_ms;
    let mut last_of: BTreeMap<u32, i64> = BTreeMap::new();
    let mut partitions: BTreeMap<u32, i64> = BTreeMap::new();
    for (at, p) in applied.into_iter().filter(|(at, _)| *at >= from_ms) {
        if at - last > group.0 {
            group = (at - last, last);
        }
        let previous = last_of.insert(p, at).unwrap_or(from_ms);
        let longest = partitions.entry(p).or_default();
        *longest = (*longest).max(at - previous);
        last = at;
    }
    (group, partitions)
}

/// The `q` quantile of end-to-end latencies (applied − enqueued) of effects enqueued in
/// `[from_ms, to_ms)`.
fn latency_quantile(times: &[(i64, i64, u32)], from_ms: i64, to_ms: i64, q: f64) -> i64 {
    let mut latencies: Vec<i64> = times
        .iter()
        .filter(|t| (from_ms..to_ms).contains(&t.1))
        .map(|t| t.0 - t.1)
        .collect();
    latencies.sort_unstable();
    let index = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
    latencies.get(index).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_killed_mid_run_loses_nothing_and_the_group_goes_on() {
    let Some(brokers) = cluster() else { return };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let topic = format!("keel-failover-{}-{nanos}", std::process::id());
    let group = format!("keel-failover-{nanos}");
    let config = KafkaConfig::new(brokers.clone()).with_client_id("failover-relay");
    let publisher = KafkaPublisher::new(&config).expect("producer");
    let partitions = publisher
        .ensure_topic(&topic, PARTITIONS)
        .await
        .unwrap_or_else(|e| panic!("{CLUSTER_VAR}={brokers} is unreachable: {e}"));
    assert_eq!(partitions, PARTITIONS);
    let cluster = Cluster::new(&brokers);
    assert!(
        cluster
            .partitions(&topic)
            .iter()
            .all(|(_, replicas)| *replicas == 3),
        "the cluster's default replication factor is 3: {:?}",
        cluster.partitions(&topic)
    );
    assert_eq!(cluster.min_insync_replicas(&topic).await, "2");

    let dir = tempfile::tempdir().expect("temporary directory");
    let inbox_path = dir.path().join("inbox.db");
    let outbox_path = dir.path().join("outbox.db");
    SqliteInbox::open(&inbox_path).expect("inbox");
    Connection::open(&inbox_path)
        .and_then(|c| {
            c.execute_batch(
                "CREATE TABLE effects (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL,
                 key TEXT NOT NULL, seq INTEGER NOT NULL, partition INTEGER NOT NULL,
                 member INTEGER NOT NULL, enqueued_ms INTEGER NOT NULL, applied_ms INTEGER NOT NULL)",
            )
        })
        .expect("effects table");
    let routers: Vec<RouterHandle> = (0..MEMBERS)
        .map(|n| member(&brokers, &topic, &group, &inbox_path, n))
        .collect();

    let outbox = SqliteOutbox::open(&outbox_path).expect("outbox");
    let options = RelayOptions {
        poll_interval: Duration::from_millis(20),
        ..RelayOptions::default()
    };
    let relay = outbox
        .relay(Arc::new(publisher.publisher()), options)
        .expect("relay");

    let started_ms = now_ms();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let chaos = {
        let cluster_brokers = brokers.clone();
        let group = group.clone();
        let topic = topic.clone();
        let inbox_path = inbox_path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(KILL_AT).await;
            let cluster = Cluster::new(&cluster_brokers);
            let victim = cluster.coordinator(&group);
            let led: Vec<usize> = cluster
                .partitions(&topic)
                .iter()
                .enumerate()
                .filter(|(_, (leader, _))| *leader == victim)
                .map(|(p, _)| p)
                .collect();
            let killed_ms = now_ms();
            let killed = tokio::task::spawn_blocking(move || KilledNode::kill(victim))
                .await
                .expect("kill");
            eprintln!(
                "killed node {victim}: the group's coordinator, leader of partitions {led:?}"
            );
            // The group goes on without the node; only then does it come back.
            let back_ms = group_back(&inbox_path, killed_ms).await;
            tokio::time::sleep(STEADY).await;
            let restart_ms = now_ms();
            tokio::task::spawn_blocking(move || drop(killed))
                .await
                .expect("restart");
            let restarted_ms = now_ms();
            tokio::time::sleep(STEADY).await;
            stop.send_replace(true);
            (killed_ms, back_ms, restart_ms, restarted_ms)
        })
    };
    let enqueued = produce(outbox.clone(), &relay, &topic, stopped).await;
    let (killed_ms, back_ms, restart_ms, restarted_ms) =
        chaos.await.expect("the kill and the restart");

    let deadline = Instant::now() + DRAIN_WAIT;
    while applied_count(&inbox_path) < enqueued {
        assert!(
            Instant::now() < deadline,
            "{} of {enqueued} effects applied {DRAIN_WAIT:?} after the last enqueue",
            applied_count(&inbox_path)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.shutdown().await;
    for router in routers {
        router.shutdown().await;
    }
    cluster.remove(&topic, &group).await;

    // Every event the relay marked published was applied, once; nothing else was.
    let published = published(&outbox_path);
    assert_eq!(
        published.len() as u64,
        enqueued,
        "the relay published every event"
    );
    let effects = effects(&inbox_path);
    assert_eq!(effects.applied.len() as u64, enqueued, "each effect once");
    // Each key's effects in the order they were enqueued: 0, 1, 2, ... with no gap.
    let mut next_of: BTreeMap<&str, i64> = BTreeMap::new();
    for (key, seq) in &effects.applied {
        let next = next_of.entry(key.as_str()).or_insert(0);
        assert_eq!(
            *seq, *next,
            "{key}: effect {seq} applied when {next} was due"
        );
        *next += 1;
    }
    let ((pause, pause_at), partition_pauses) = longest_pauses(&effects.times, killed_ms);
    // Before the kill, leaving out the events still on their way when it came.
    let p99_before = latency_quantile(&effects.times, started_ms, killed_ms - 2_000, 0.99);
    let worst_after = latency_quantile(&effects.times, killed_ms, i64::MAX, 1.0);
    // Two nodes left, the backlog of the pause worked off, the node not yet back.
    let p99_two_nodes = latency_quantile(&effects.times, back_ms + 2_000, restart_ms, 0.99);
    let p99_restarted = latency_quantile(&effects.times, restarted_ms, i64::MAX, 0.99);
    eprintln!(
        "failover: {enqueued} events at {RATE_PER_S}/s over {PARTITIONS} partitions, {MEMBERS} members; \
         node killed at +{} ms, restart begun at +{} ms, up at +{} ms; \
         first event enqueued after the kill applied {} ms after it; \
         longest pause in the group's handling after the kill: {pause} ms (from +{} ms); \
         longest pause per partition (ms): {partition_pauses:?}; \
         end-to-end latency p99 until 2 s before the kill {p99_before} ms, worst after it {worst_after} ms, \
         p99 on two nodes (from 2 s after the first post-kill effect until the restart) {p99_two_nodes} ms, \
         p99 once the node was back {p99_restarted} ms",
        killed_ms - started_ms,
        restart_ms - started_ms,
        restarted_ms - started_ms,
        back_ms - killed_ms,
        pause_at - started_ms,
    );
}
