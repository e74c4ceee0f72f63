//! kafka-python and confluent-kafka (librdkafka) against the broker: produce with keys and
//! headers, plain and idempotent, then consume one partition from the beginning. What they
//! read must be exactly what they wrote, and what the log stored must match byte for byte.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{TestBroker, python_module, run, script};

/// Runs one client script and checks what it consumed and what the broker stored.
fn check(module: &str, script_name: &str, client: &str, idempotent: bool) {
    if !python_module(module) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let count = 300;
    let topic = format!("t-{client}-{}", u8::from(idempotent));
    let output = run(Command::new("python3").args([
        &script(script_name),
        &broker.bootstrap(),
        &topic,
        &count.to_string(),
        &u8::from(idempotent).to_string(),
    ]));
    let consumed: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let expected: Vec<usize> = (1..count).step_by(3).collect();
    assert_eq!(consumed.len(), expected.len(), "{client}: records consumed");
    for (n, (record, i)) in consumed.iter().zip(&expected).enumerate() {
        assert_eq!(record["partition"], 1);
        assert_eq!(
            record["offset"], n as u64,
            "{client}: offsets are dense from 0"
        );
        assert_eq!(record["key"], format!("key-{i}"));
        assert_eq!(record["value"], format!("value-{i}"));
        assert_eq!(
            record["headers"],
            serde_json::json!([["seq", i.to_string()], ["client", client]])
        );
    }

    // The stored batches: three partitions, every record once, producer ids set exactly
    // when the producer was idempotent.
    let topic = broker
        .log
        .topic(&topic)
        .expect("created by the client's CreateTopics");
    assert_eq!(topic.partitions().len(), 3);
    let mut stored = 0;
    for partition in topic.partitions() {
        let records = partition.read_records(0, 16 << 20).unwrap();
        stored += records.len();
        let read = partition.read(0, 16 << 20).unwrap();
        let producer_id = i64::from_be_bytes(read.bytes[43..51].try_into().unwrap());
        assert_eq!(
            producer_id >= 0,
            idempotent,
            "{client}: producer id {producer_id}"
        );
    }
    assert_eq!(stored, count, "{client}: every record stored exactly once");
}

#[test]
fn kafka_python_produces_and_consumes() {
    check("kafka", "kafka_python_client.py", "kafka-python", false);
}

#[test]
fn kafka_python_idempotent_producer() {
    check("kafka", "kafka_python_client.py", "kafka-python", true);
}

#[test]
fn confluent_kafka_produces_and_consumes() {
    check("confluent_kafka", "confluent_client.py", "confluent", false);
}

#[test]
fn confluent_kafka_idempotent_producer() {
    check("confluent_kafka", "confluent_client.py", "confluent", true);
}
