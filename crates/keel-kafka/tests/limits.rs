//! The broker's limits on what a client can make it hold: decompression bombs, topics and
//! partitions, and (with a real client producing throughout) floods of idle and half-sent
//! connections. Each limit refuses with Kafka's error code or closes only the offending
//! connection, and counts what it refused in `/metrics`.

mod support;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use support::{RawClient, TestBroker, batch};

const CORRUPT_MESSAGE: i16 = 2;

fn name(value: &str) -> TopicName {
    TopicName(StrBytes::from_string(value.into()))
}

fn create_topic(client: &mut RawClient, topic: &str, configs: &[(&str, &str)]) -> i16 {
    let configs = configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_value(Some(StrBytes::from_string(value.to_string())))
        })
        .collect();
    let response = client.call(
        7,
        &CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(configs),
        ]),
    );
    response.topics[0].error_code
}

fn produce(client: &mut RawClient, topic: &str, records: Bytes) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let response: ProduceResponse = client.call(9, &request);
    response.responses[0].partition_responses[0].error_code
}

/// A CRC-valid batch of one record whose snappy records section is about 100 bytes and
/// announces `claimed` bytes once decompressed.
fn snappy_bomb(claimed: u64) -> Bytes {
    let plain = batch("bomb", 1, -1, -1, -1);
    let mut records = Vec::new();
    let mut n = claimed;
    while n >= 0x80 {
        records.push((n as u8) | 0x80);
        n >>= 7;
    }
    records.push(n as u8);
    // A literal of 60 bytes: plausible snappy after the lying length.
    records.push(59 << 2);
    records.extend_from_slice(&[b'x'; 60]);
    let mut bomb = BytesMut::from(&plain[..61]);
    bomb.put_slice(&records);
    let length = (bomb.len() - 12) as i32;
    bomb[8..12].copy_from_slice(&length.to_be_bytes());
    bomb[21..23].copy_from_slice(&2i16.to_be_bytes());
    let crc = crc32c(&bomb[21..]);
    bomb[17..21].copy_from_slice(&crc.to_be_bytes());
    bomb.freeze()
}

/// CRC-32C (Castagnoli), bitwise: the batch checksum, without another dependency.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// This process's peak virtual and resident sizes, in KiB (`VmPeak`, `VmHWM`).
fn memory_peaks_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    (field("VmPeak:"), field("VmHWM:"))
}

#[test]
fn a_snappy_bomb_is_refused_with_corrupt_message_and_memory_stays_flat() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    assert_eq!(create_topic(&mut client, "plain", &[]), 0);
    assert_eq!(
        create_topic(&mut client, "compacted", &[("cleanup.policy", "compact")]),
        0
    );
    let bomb = snappy_bomb(u32::MAX as u64);
    assert!(bomb.len() < 200, "the bomb is {} bytes", bomb.len());
    let before = memory_peaks_kib();
    for _ in 0..20 {
        for topic in ["plain", "compacted"] {
            assert_eq!(
                produce(&mut client, topic, bomb.clone()),
                CORRUPT_MESSAGE,
                "{topic}"
            );
        }
    }
    let after = memory_peaks_kib();
    for topic in ["plain", "compacted"] {
        let stored = broker.log.topic(topic).unwrap().partitions()[0].high_watermark();
        assert_eq!(stored, 0, "nothing of a refused bomb is stored in {topic}");
        assert_eq!(produce(&mut client, topic, batch("ok", 1, -1, -1, -1)), 0);
    }
    assert!(
        after.0 - before.0 < 256 * 1024 && after.1 - before.1 < 64 * 1024,
        "memory grew from {before:?} to {after:?} KiB (VmPeak, VmHWM)"
    );
}

/// Connections that never send anything, and connections that announce a frame and send a
/// part of it, opened as fast as the broker accepts them.
fn flood(address: std::net::SocketAddr, count: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    (0..count)
        .filter_map(|i| {
            let mut stream = std::net::TcpStream::connect(address).ok()?;
            if i % 2 == 1 {
                // A Metadata frame of 1,000 bytes, of which 12 arrive.
                let _ = stream.write_all(&1000i32.to_be_bytes());
                let _ = stream.write_all(&[0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0]);
            }
            Some(stream)
        })
        .collect()
}

#[test]
fn idle_and_half_sent_connections_never_keep_a_real_client_from_producing() {
    if !support::python_module("confluent_kafka") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = keel_kafka::BrokerConfig {
        connections_max: 1_000,
        request_timeout_ms: 2_000,
        ..keel_kafka::BrokerConfig::default()
    };
    let broker = TestBroker::start_with(dir.path(), config);
    let mut client = RawClient::connect(broker.address);
    assert_eq!(create_topic(&mut client, "steady", &[]), 0);
    drop(client);
    let address = broker.address;
    // Three waves of 1,500 connections (3x the limit each) while the producer runs.
    let flooding = std::thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.extend(flood(address, 1_500));
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        held.len()
    });
    let output = support::run(std::process::Command::new("python3").args([
        &support::script("steady_producer.py"),
        &broker.bootstrap(),
        "steady",
        "6",
    ]));
    let opened = flooding.join().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("producer under the flood: {report}");
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent > 100, "{report}");
    // The warm-up record is sent but not counted as delivered.
    assert_eq!(report["delivered"].as_u64(), Some(sent - 1), "{report}");
    assert!(
        report["slowest_ms"].as_f64().unwrap() < 1_000.0,
        "a delivery took a second or more: {report}"
    );
    let stored = broker.log.topic("steady").unwrap().partitions()[0].high_watermark();
    assert_eq!(stored, sent, "every record stored once");
    let listener = broker.metrics.listener();
    let evicted = listener.closed_by_count(keel_listener::CloseReason::Evicted);
    let timed_out = listener.closed_by_count(keel_listener::CloseReason::RequestTimeout);
    assert!(opened >= 4_000, "the flood opened {opened} connections");
    // The idle ones make room for newcomers; the half-sent ones go at their request timeout
    // unless they were the idlest first.
    assert!(
        evicted + timed_out >= 3_000,
        "of {opened}: {evicted} evicted, {timed_out} timed out; {report}"
    );
    assert!(listener.open() <= 1_000 + 50, "open: {}", listener.open());
}

#[test]
fn an_idle_connection_and_a_half_sent_frame_are_closed_after_their_timeouts() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = keel_kafka::BrokerConfig {
        connection_idle_ms: 300,
        request_timeout_ms: 600,
        ..keel_kafka::BrokerConfig::default()
    };
    let broker = TestBroker::start_with(dir.path(), config);
    let closed_after = |half_frame: bool| {
        let mut stream = std::net::TcpStream::connect(broker.address).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let started = std::time::Instant::now();
        if half_frame {
            stream.write_all(&100i32.to_be_bytes()).unwrap();
            stream.write_all(&[0, 3]).unwrap();
        }
        // Blocks until the broker closes the connection (EOF), or fails after 10 s.
        let read = stream.read(&mut [0u8; 1]).expect("closed, not timed out");
        assert_eq!(read, 0);
        started.elapsed()
    };
    let idle = closed_after(false);
    let half = closed_after(true);
    assert!(
        idle.as_millis() >= 300 && idle.as_millis() < 5_000,
        "{idle:?}"
    );
    assert!(
        half.as_millis() >= 600 && half.as_millis() < 5_000,
        "{half:?}"
    );
    let listener = broker.metrics.listener();
    assert_eq!(
        listener.closed_by_count(keel_listener::CloseReason::Idle),
        1
    );
    assert_eq!(
        listener.closed_by_count(keel_listener::CloseReason::RequestTimeout),
        1
    );
}

#[test]
fn topics_and_partitions_past_the_server_limits_are_refused_with_policy_violation() {
    const POLICY_VIOLATION: i16 = 44;
    let dir = tempfile::tempdir().unwrap();
    let config = keel_kafka::BrokerConfig {
        topics_max: 2,
        partitions_max: 3,
        ..keel_kafka::BrokerConfig::default()
    };
    let broker = TestBroker::start_with(dir.path(), config);
    let mut client = RawClient::connect(broker.address);
    assert_eq!(create_topic(&mut client, "one", &[]), 0);
    assert_eq!(create_topic(&mut client, "two", &[]), 0);
    assert_eq!(create_topic(&mut client, "three", &[]), POLICY_VIOLATION);
    assert!(broker.log.topic("three").is_none());
    let text = {
        let mut registry = prometheus_client::registry::Registry::default();
        broker.metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    };
    assert!(
        text.contains(r#"keel_kafka_limit_refusals_total{limit="topics_max"} 1"#),
        "{text}"
    );
}
