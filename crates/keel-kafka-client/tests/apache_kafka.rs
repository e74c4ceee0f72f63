//! Keel's service code on the real Apache Kafka broker, with clients nobody here wrote on
//! both sides: events Keel's publisher sends are read by kcat and confluent-kafka as
//! CloudEvents binary-mode records in the partition the Java client's partitioner picks for
//! their key, and events kcat and confluent-kafka produce in that mode are handled by Keel's
//! router, each key in order.
//!
//! Runs against `KEEL_TEST_KAFKA_BROKERS` (`scripts/services start kafka` serves Apache Kafka
//! on 127.0.0.1:29092; `scripts/services env` prints the variable): unset, the test says it
//! did not run; set, an unreachable broker or a missing client fails it.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_core::Event;
use keel_kafka_client::{KafkaConfig, KafkaTransport};
use keel_runtime::{Handler, Route, Router};
use serde_json::Value;

const BROKERS_VAR: &str = "KEEL_TEST_KAFKA_BROKERS";
const PARTITIONS: u32 = 3;
const KEYS: u32 = 6;
const KEEL_EVENTS: u32 = 30;
const PYTHON_EVENTS: u32 = 10;
const KCAT_EVENTS: u32 = 4;
const WAIT: Duration = Duration::from_secs(90);

/// The broker list, or `None` (with a message) when the suite is not to run.
fn brokers() -> Option<String> {
    match std::env::var(BROKERS_VAR) {
        Ok(brokers) => Some(brokers),
        Err(_) => {
            eprintln!("apache kafka: not run, {BROKERS_VAR} is unset");
            None
        }
    }
}

/// A topic no earlier run used.
fn fresh_topic() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("keel-apache-kafka-{}-{nanos}", std::process::id())
}

/// Runs `program` with `args` (and `stdin`), failing the test with its stderr unless it succeeds.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} is required for this test ({e}); .ci/run installs it")
        });
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// What kcat's JSON output says of one record.
#[derive(Debug)]
struct Seen {
    partition: u32,
    key: String,
    headers: BTreeMap<String, String>,
    payload: Value,
}

/// Every record of `topic`, read from the beginning with kcat (`-J`: one JSON object a line).
fn kcat_read(brokers: &str, topic: &str) -> Vec<Seen> {
    let out = run(
        "kcat",
        &[
            "-b",
            brokers,
            "-t",
            topic,
            "-C",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-J",
        ],
        None,
    );
    out.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).expect("kcat JSON line");
            // kcat lists headers as a flat [name, value, name, value, ...] array.
            let flat = record["headers"].as_array().cloned().unwrap_or_default();
            let headers = flat
                .chunks(2)
                .map(|pair| {
                    (
                        pair[0].as_str().unwrap_or_default().to_owned(),
                        pair[1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            Seen {
                partition: record["partition"].as_u64().expect("partition") as u32,
                key: record["key"].as_str().unwrap_or_default().to_owned(),
                headers,
                payload: record["payload"]
                    .as_str()
                    .and_then(|p| serde_json::from_str(p).ok())
                    .unwrap_or(Value::Null),
            }
        })
        .collect()
}

/// confluent-kafka (librdkafka in Python) consumes the topic in a group, checks each record
/// (Keel's and kcat's) is a binary-mode CloudEvent, then produces its own in the same mode.
const PYTHON_CLIENT: &str = r#"
import json, sys, time, uuid
from confluent_kafka import Consumer, Producer
brokers, topic, expected, produce = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
consumer = Consumer({"bootstrap.servers": brokers, "group.id": "python-" + topic,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.subscribe([topic])
seen, deadline = 0, time.time() + 60
while seen < expected and time.time() < deadline:
    message = consumer.poll(0.5)
    if message is None or message.error():
        continue
    headers = dict(message.headers() or [])
    assert headers["ce_specversion"] == b"1.0", headers
    assert headers["ce_type"] in (b"order.placed", b"order.paid"), headers
    assert json.loads(message.value())["key"] == message.key().decode(), message.value()
    seen += 1
consumer.close()
assert seen == expected, "confluent-kafka read %d of %d" % (seen, expected)
producer = Producer({"bootstrap.servers": brokers, "acks": "all", "partitioner": "murmur2_random"})
for n in range(produce):
    key = "order-%d" % (n % 3)
    producer.produce(topic, key=key, value=json.dumps({"key": key, "n": n}), headers=[
        ("ce_specversion", "1.0"), ("ce_id", str(uuid.uuid4())), ("ce_source", "/python"),
        ("ce_type", "order.shipped"), ("content-type", "application/json")])
assert producer.flush(30) == 0
print(seen)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_kcat_and_confluent_kafka_exchange_cloudevents_through_apache_kafka() {
    let Some(brokers) = brokers() else { return };
    let topic = fresh_topic();
    let kafka = KafkaTransport::connect(&KafkaConfig::new(brokers.clone()))
        .unwrap_or_else(|e| panic!("{BROKERS_VAR}={brokers}: {e}"));
    let partitions = kafka
        .ensure_topic(&topic, PARTITIONS)
        .await
        .unwrap_or_else(|e| panic!("{BROKERS_VAR}={brokers} is unreachable: {e}"));
    assert_eq!(partitions, PARTITIONS);

    // Keel publishes; Apache Kafka acknowledges each event at a partition of the key's choice.
    let publisher = kafka.publisher();
    let mut keel_partition_of_key = BTreeMap::new();
    for n in 0..KEEL_EVENTS {
        let key = format!("order-{}", n % KEYS);
        let event = Event::new("/keel", "order.placed")
            .with_partition_key(key.clone())
            .with_data_json(&serde_json::json!({ "key": key, "n": n }));
        let published = publisher.publish(&topic, event).await.expect("publish");
        let first = keel_partition_of_key.insert(key.clone(), published.partition);
        assert!(
            first.is_none_or(|p| p == published.partition),
            "{key} moved"
        );
    }

    // kcat reads Keel's records as binary-mode CloudEvents in the partitions Keel chose.
    let seen = kcat_read(&brokers, &topic);
    assert_eq!(seen.len(), KEEL_EVENTS as usize, "kcat read {seen:?}");
    for record in &seen {
        assert_eq!(record.headers["ce_specversion"], "1.0");
        assert_eq!(record.headers["ce_type"], "order.placed");
        assert_eq!(record.headers["ce_source"], "/keel");
        assert_eq!(record.payload["key"], record.key.as_str());
        assert_eq!(keel_partition_of_key[&record.key], record.partition);
    }

    // kcat as the control of the key → partition mapping: its murmur2 partitioner is the Java
    // client's, and each of its records lands where Keel put the same key.
    for n in 0..KCAT_EVENTS {
        let key = format!("order-{}", n % KEYS);
        let line = format!("{key}\t{}\n", serde_json::json!({ "key": key, "n": n }));
        let id = format!("ce_id=kcat-{topic}-{n}");
        run(
            "kcat",
            &[
                "-b",
                &brokers,
                "-t",
                &topic,
                "-P",
                "-K",
                "\t",
                "-X",
                "partitioner=murmur2_random",
                "-X",
                "acks=all",
                "-H",
                "ce_specversion=1.0",
                "-H",
                &id,
                "-H",
                "ce_source=/kcat",
                "-H",
                "ce_type=order.paid",
                "-H",
                "content-type=application/json",
            ],
            Some(&line),
        );
    }
    let by_kcat: Vec<Seen> = kcat_read(&brokers, &topic)
        .into_iter()
        .filter(|r| r.headers.get("ce_source").map(String::as_str) == Some("/kcat"))
        .collect();
    assert_eq!(by_kcat.len(), KCAT_EVENTS as usize);
    for record in &by_kcat {
        assert_eq!(
            keel_partition_of_key[&record.key], record.partition,
            "kcat (Java's murmur2) and Keel put {} in different partitions",
            record.key
        );
    }

    // confluent-kafka reads Keel's events in a consumer group and produces its own.
    let read = run(
        "python3",
        &[
            "-c",
            PYTHON_CLIENT,
            &brokers,
            &topic,
            &(KEEL_EVENTS + KCAT_EVENTS).to_string(),
            &PYTHON_EVENTS.to_string(),
        ],
        None,
    );
    assert!(read.trim().parse::<u32>().is_ok(), "python said {read}");

    // Keel's router handles every event of every producer, each key's events in order.
    let total = KEEL_EVENTS + KCAT_EVENTS + PYTHON_EVENTS;
    let handled: Arc<Mutex<Vec<(String, String, i64)>>> = Arc::default();
    let sink = handled.clone();
    let handler = Handler::raw("record", move |event: Event, _| {
        let sink = sink.clone();
        async move {
            let data: Value = serde_json::from_slice(event.data.as_deref().unwrap_or_default())
                .expect("JSON data");
            sink.lock().unwrap().push((
                event.source.clone(),
                data["key"].as_str().unwrap_or_default().to_owned(),
                data["n"].as_i64().unwrap_or(-1),
            ));
            Ok(())
        }
    });
    let router = Router::new(&kafka)
        .route(Route::new(&topic, format!("keel-{topic}"), handler))
        .start()
        .expect("router");
    let deadline = Instant::now() + WAIT;
    while handled.lock().unwrap().len() < total as usize {
        assert!(
            Instant::now() < deadline,
            "the router handled {} of {total} events",
            handled.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(router);
    let handled = handled.lock().unwrap().clone();
    assert_eq!(handled.len(), total as usize, "nothing handled twice");
    for source in ["/keel", "/python", "/kcat"] {
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        for (_, key, n) in handled.iter().filter(|(s, _, _)| s == source) {
            let previous = last.insert(key, *n);
            assert!(
                previous.is_none_or(|p| p < *n),
                "{source} {key}: {n} after {previous:?}"
            );
        }
    }
}
