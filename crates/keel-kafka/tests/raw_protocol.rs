//! The broker against hand-made requests: idempotent retries and sequence gaps, producer
//! state after a restart, and bad input (truncated, oversized and malformed frames, unknown
//! api keys and versions, bad CRC and magic) — each answered with the right error code or a
//! closed connection, while other clients keep being served and nothing is stored; topic
//! settings changed while the broker runs (AlterConfigs, IncrementalAlterConfigs).

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource, AlterableConfig as ReplacedConfig,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiVersionsRequest, BrokerId, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, FetchRequest, FetchResponse, IncrementalAlterConfigsRequest,
    ListOffsetsRequest, MetadataRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use keel_kafka::BrokerConfig;
use support::{RawClient, TestBroker, batch, fetch_request, produce_request, producer_id};

const OK: i16 = 0;
const CORRUPT_MESSAGE: i16 = 2;
const UNSUPPORTED_VERSION: i16 = 35;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

fn create_topic(client: &mut RawClient, name: &str) {
    let response = client.call(
        7,
        &CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.into())))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]),
    );
    assert_eq!(response.topics[0].error_code, OK, "{response:?}");
}

fn produce(client: &mut RawClient, topic: &str, records: Bytes) -> (i16, i64) {
    let response: ProduceResponse = client.call(9, &produce_request(topic, records));
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn idempotent_retries_are_stored_once_and_gaps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "idem");
    let id = producer_id(&mut client);
    let check = |client: &mut RawClient, records: Bytes, expected: (i16, i64)| {
        assert_eq!(produce(client, "idem", records), expected);
    };
    check(&mut client, batch("a", 3, id, 0, 0), (OK, 0));
    check(&mut client, batch("b", 2, id, 0, 3), (OK, 3));
    // A retry of either recent batch: success with the first attempt's offset, not stored.
    check(&mut client, batch("b", 2, id, 0, 3), (OK, 3));
    check(&mut client, batch("a", 3, id, 0, 0), (OK, 0));
    // A gap in sequences, and a sequence from the past that is not a retry.
    check(
        &mut client,
        batch("c", 1, id, 0, 6),
        (OUT_OF_ORDER_SEQUENCE_NUMBER, -1),
    );
    check(
        &mut client,
        batch("c", 1, id, 0, 1),
        (OUT_OF_ORDER_SEQUENCE_NUMBER, -1),
    );
    // A new epoch starts over at 0; the old epoch is fenced.
    check(&mut client, batch("d", 1, id, 1, 0), (OK, 5));
    check(
        &mut client,
        batch("e", 1, id, 0, 5),
        (INVALID_PRODUCER_EPOCH, -1),
    );
    // A producer without idempotence is never deduplicated.
    check(&mut client, batch("f", 1, -1, -1, -1), (OK, 6));
    check(&mut client, batch("f", 1, -1, -1, -1), (OK, 7));
    let topic = broker.log.topic("idem").unwrap();
    let partition = &topic.partitions()[0];
    assert_eq!(partition.high_watermark(), 8);
    let keys: Vec<String> = partition
        .read_records(0, 1 << 20)
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.key.unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(
        keys,
        ["a-0", "a-1", "a-2", "b-0", "b-1", "d-0", "f-0", "f-0"]
    );
}

/// Idempotent producers writing one partition at once — their durability waits shared since
/// the producer state is held only for the check and the write — keep the rules exactly: each
/// producer's batches are stored in sequence order, a retry is answered with its first
/// attempt's offset and stored once, and a gap is refused.
#[test]
fn concurrent_idempotent_producers_keep_order_and_refuse_gaps() {
    const PRODUCERS: usize = 6;
    const BATCHES: i32 = 15;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    create_topic(&mut RawClient::connect(broker.address), "shared");
    let address = broker.address;
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|n| {
            std::thread::spawn(move || {
                let mut client = RawClient::connect(address);
                let id = producer_id(&mut client);
                let mut offsets = Vec::new();
                for n_batch in 0..BATCHES {
                    let records = || batch(&format!("p{n}-{n_batch}"), 2, id, 0, n_batch * 2);
                    let (code, offset) = produce(&mut client, "shared", records());
                    assert_eq!(code, OK, "producer {n} batch {n_batch}");
                    if n_batch % 5 == 0 {
                        assert_eq!(produce(&mut client, "shared", records()), (OK, offset));
                    }
                    if n_batch % 7 == 0 {
                        let gap = batch("gap", 1, id, 0, n_batch * 2 + 3);
                        assert_eq!(
                            produce(&mut client, "shared", gap),
                            (OUT_OF_ORDER_SEQUENCE_NUMBER, -1)
                        );
                    }
                    offsets.push(offset);
                }
                offsets
            })
        })
        .collect();
    let mut all = Vec::new();
    for producer in producers {
        let offsets = producer.join().unwrap();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "a producer's batches in sequence order: {offsets:?}"
        );
        all.extend(offsets);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        PRODUCERS * BATCHES as usize,
        "every batch stored once"
    );
    let topic = broker.log.topic("shared").unwrap();
    assert_eq!(
        topic.partitions()[0].high_watermark(),
        (PRODUCERS * BATCHES as usize * 2) as u64,
        "no retry and no gap stored"
    );
}

#[test]
fn producer_state_is_rebuilt_from_the_log_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let broker = TestBroker::start(dir.path());
        let mut client = RawClient::connect(broker.address);
        create_topic(&mut client, "idem");
        let id = producer_id(&mut client);
        assert_eq!(
            produce(&mut client, "idem", batch("a", 2, id, 0, 0)),
            (OK, 0)
        );
        assert_eq!(
            produce(&mut client, "idem", batch("b", 2, id, 0, 2)),
            (OK, 2)
        );
        id
    };
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    // The retry of the last batch before the restart is recognised; the sequence goes on.
    assert_eq!(
        produce(&mut client, "idem", batch("b", 2, id, 0, 2)),
        (OK, 2)
    );
    assert_eq!(
        produce(&mut client, "idem", batch("c", 1, id, 0, 5)),
        (OUT_OF_ORDER_SEQUENCE_NUMBER, -1)
    );
    assert_eq!(
        produce(&mut client, "idem", batch("c", 1, id, 0, 4)),
        (OK, 4)
    );
    // Ids handed out after the restart are above every id in the log.
    assert!(producer_id(&mut client) > id);
    assert_eq!(
        broker.log.topic("idem").unwrap().partitions()[0].high_watermark(),
        5
    );
}

/// A request frame with a raw header: api key, version, correlation id, null client id.
fn raw_request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Asserts that another client is still served normally.
fn still_serving(broker: &TestBroker) {
    let mut other = RawClient::connect(broker.address);
    let response = other.call(3, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, OK);
    let metadata = other.call(12, &MetadataRequest::default().with_topics(None));
    assert_eq!(metadata.brokers.len(), 1);
}

#[test]
fn unknown_api_keys_and_versions_get_unsupported_version_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    // (api key, version): an unknown key, a key not served (DescribeTopicPartitions), a
    // served key at a version outside the advertised range, both too new and too old.
    for (n, (api_key, version)) in [(999, 0), (75, 0), (0, 13), (1, 3)].into_iter().enumerate() {
        let correlation_id = 100 + n as i32;
        client.send_frame(&raw_request(api_key, version, correlation_id, &[]));
        let frame = client
            .read_frame()
            .expect("an answer, not a dropped connection");
        assert_eq!(
            frame[..4],
            correlation_id.to_be_bytes(),
            "key {api_key} v{version}"
        );
        assert_eq!(
            frame[4..6],
            UNSUPPORTED_VERSION.to_be_bytes(),
            "key {api_key} v{version}"
        );
    }
    // ApiVersions newer than served: a v0 answer with the error and the served versions.
    client.send_frame(&raw_request(18, 99, 7, &[]));
    let frame = client.read_frame().unwrap();
    assert_eq!(frame[..4], 7i32.to_be_bytes());
    assert_eq!(frame[4..6], UNSUPPORTED_VERSION.to_be_bytes());
    let served = i32::from_be_bytes(frame[6..10].try_into().unwrap());
    assert!(served >= 10, "{served} api keys listed");
    // The same connection still works.
    assert_eq!(
        client.call(3, &ApiVersionsRequest::default()).error_code,
        OK
    );
}

#[test]
fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        request_bytes_max: 64 * 1024,
        ..BrokerConfig::default()
    };
    let broker = TestBroker::start_with(dir.path(), config);
    // Oversized: the length prefix alone closes the connection.
    let mut oversized = RawClient::connect(broker.address);
    oversized.send_raw(&(64 * 1024 + 1i32).to_be_bytes());
    assert!(oversized.closed_by_server());
    // Negative length.
    let mut negative = RawClient::connect(broker.address);
    negative.send_raw(&(-5i32).to_be_bytes());
    assert!(negative.closed_by_server());
    // Shorter than a request header.
    let mut short = RawClient::connect(broker.address);
    short.send_frame(&[0, 3, 0]);
    assert!(short.closed_by_server());
    // A Metadata v1 body cut in the middle of its topic array.
    let mut malformed = RawClient::connect(broker.address);
    malformed.send_frame(&raw_request(3, 1, 1, &[0, 0, 0, 5, 0, 3, b'a']));
    assert!(malformed.closed_by_server());
    // A huge array count in a tiny body must not take the process down.
    let mut hostile = RawClient::connect(broker.address);
    hostile.send_frame(&raw_request(3, 1, 1, &[0x7f, 0xff, 0xff, 0xff]));
    assert!(hostile.closed_by_server());
    // Truncated: the client announces 100 bytes, sends 10 and stops writing.
    let mut truncated = RawClient::connect(broker.address);
    truncated.send_raw(&100i32.to_be_bytes());
    truncated.send_raw(&[0; 10]);
    // The other clients were served all along, before the truncated frame completes.
    still_serving(&broker);
    drop(truncated);
    still_serving(&broker);
}

#[test]
fn corrupt_batches_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "bad");
    let good = batch("g", 3, -1, -1, -1);
    let corrupt = |at: usize| {
        let mut bytes = good.to_vec();
        bytes[at] ^= 0x40;
        Bytes::from(bytes)
    };
    // A flipped byte in the CRC, in a record, the magic byte; a cut batch; two batches glued.
    let cut = good.slice(..good.len() - 5);
    let twice = Bytes::from([good.to_vec(), good.to_vec()].concat());
    for (what, records, expected) in [
        ("crc", corrupt(17), CORRUPT_MESSAGE),
        ("record", corrupt(good.len() - 3), CORRUPT_MESSAGE),
        ("magic", corrupt(16), CORRUPT_MESSAGE),
        ("truncated", cut, CORRUPT_MESSAGE),
        ("two batches", twice, 87),
    ] {
        assert_eq!(
            produce(&mut client, "bad", records),
            (expected, -1),
            "{what}"
        );
    }
    let topic = broker.log.topic("bad").unwrap();
    let partition = &topic.partitions()[0];
    assert_eq!(partition.high_watermark(), 0, "nothing stored");
    assert_eq!(produce(&mut client, "bad", good), (OK, 0));
    assert_eq!(partition.high_watermark(), 3);
    still_serving(&broker);
}

/// A Fetch of partition 0 of `topic`.
fn fetch(
    client: &mut RawClient,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> (FetchResponse, Duration) {
    let start = Instant::now();
    let response = client.call(11, &fetch_request(topic, offset, max_wait_ms, min_bytes));
    (response, start.elapsed())
}

fn records_of(response: &FetchResponse) -> usize {
    response.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |r| r.len())
}

#[test]
fn fetch_long_polls_until_data_arrives_or_max_wait_passes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "poll");

    // Nothing to read: the answer comes after max_wait, empty.
    let (response, waited) = fetch(&mut client, "poll", 0, 400, 1);
    assert_eq!(records_of(&response), 0);
    assert!(
        waited >= Duration::from_millis(350),
        "answered after {waited:?}"
    );

    // A record arrives while the fetch waits: it is answered with it, long before max_wait.
    let address = broker.address;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut other = RawClient::connect(address);
        produce(&mut other, "poll", batch("p", 2, -1, -1, -1))
    });
    let (response, waited) = fetch(&mut client, "poll", 0, 10_000, 1);
    assert_eq!(producer.join().unwrap(), (OK, 0));
    assert!(records_of(&response) > 0);
    assert_eq!(response.responses[0].partitions[0].high_watermark, 2);
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");

    // Less than min_bytes stored: answered at max_wait with what there is.
    let (response, waited) = fetch(&mut client, "poll", 0, 300, 1 << 20);
    assert!(records_of(&response) > 0);
    assert!(
        waited >= Duration::from_millis(250),
        "answered after {waited:?}"
    );

    // Past the high watermark: OFFSET_OUT_OF_RANGE at once.
    let (response, _) = fetch(&mut client, "poll", 7, 5_000, 1);
    assert_eq!(response.responses[0].partitions[0].error_code, 1);
}

/// A record set of 16 KiB or more leaves the broker from the buffer it was read into, beside
/// the frame kafka-protocol encoded (`api/fetch_frame.rs`): the client reads the same bytes,
/// at both forms of the length prefix (v11: `INT32`, v12: varint), and the frame's length is
/// right, or the pipelined answer after it would not parse.
#[test]
fn large_record_sets_are_fetched_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "large");
    let produced = batch("a-record-of-some-length", 4_000, -1, -1, -1);
    assert!(produced.len() > 64 * 1024, "{} bytes", produced.len());
    assert_eq!(produce(&mut client, "large", produced.clone()), (OK, 0));
    for version in [11, 12] {
        let request = fetch_request("large", 0, 0, 1);
        let first = client.send(version, &request);
        let second = client.send(version, &request);
        for correlation_id in [first, second] {
            let response = client.receive::<FetchRequest>(version, correlation_id);
            let partition = &response.responses[0].partitions[0];
            assert_eq!(partition.error_code, OK, "v{version}");
            assert_eq!(partition.high_watermark, 4_000, "v{version}");
            assert_eq!(partition.records.as_ref(), Some(&produced), "v{version}");
        }
    }
}

/// A long-polling fetch wakes for an append that did not come through Kafka (here straight
/// into the log, as a dead-letter replay through the operator API or a registry write
/// appends): it waits on its partition's own signal, not on the produce path.
#[test]
fn a_long_poll_wakes_for_an_append_made_outside_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "replayed");
    let partition = broker.log.topic("replayed").unwrap().partitions()[0].clone();
    let appender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        partition
            .append(&[keel_log::NewRecord::new(None::<Vec<u8>>, "replayed")])
            .unwrap()
    });
    let (response, waited) = fetch(&mut client, "replayed", 0, 20_000, 1);
    assert_eq!(appender.join().unwrap().base_offset, 0);
    assert!(records_of(&response) > 0, "answered with the record");
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}, not at max_wait"
    );
}

#[test]
fn list_offsets_by_time_describe_configs_and_delete_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    let created = client.call(
        7,
        &CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("timed")))
                .with_num_partitions(1)
                .with_replication_factor(-1)
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("60000"))),
                ]),
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("typo")))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.msec"))
                        .with_value(Some(StrBytes::from_static_str("1"))),
                ]),
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("replicated")))
                .with_num_partitions(1)
                .with_replication_factor(3),
        ]),
    );
    let codes: Vec<i16> = created.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [OK, 40, 38]);
    let message = created.topics[1]
        .error_message
        .as_deref()
        .unwrap()
        .to_string();
    assert!(message.contains("retention.msec"), "{message}");
    assert!(broker.log.topic("typo").is_none());

    // Batch timestamps are 1_700_000_000_000 + i.
    assert_eq!(
        produce(&mut client, "timed", batch("t", 5, -1, -1, -1)),
        (OK, 0)
    );
    let base = 1_700_000_000_000i64;
    let list = |client: &mut RawClient, timestamp: i64| {
        let response = client.call(
            6,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("timed")))
                        .with_partitions(vec![
                            ListOffsetsPartition::default().with_timestamp(timestamp),
                        ]),
                ]),
        );
        let partition = &response.topics[0].partitions[0];
        (partition.error_code, partition.offset, partition.timestamp)
    };
    assert_eq!(list(&mut client, -1), (OK, 5, -1));
    assert_eq!(list(&mut client, -2), (OK, 0, -1));
    assert_eq!(list(&mut client, base + 2), (OK, 2, base + 2));
    assert_eq!(list(&mut client, base + 99), (OK, -1, -1));

    let described = client.call(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("timed"))
                .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")])),
        ]),
    );
    let configs = &described.results[0].configs;
    assert_eq!(configs.len(), 1);
    assert_eq!(
        configs[0].value.as_deref().map(|v| v.to_string()),
        Some("60000".into())
    );

    let committed = keel_log::OffsetCommit {
        topic: "timed".into(),
        partition: 0,
        offset: 5,
        metadata: String::new(),
    };
    let offsets = broker.log.group_offsets();
    offsets.commit("billing", &[committed], 0).unwrap();
    let delete = |client: &mut RawClient, name: &'static str| {
        client
            .call(
                4,
                &DeleteTopicsRequest::default()
                    .with_topic_names(vec![TopicName(StrBytes::from_static_str(name))]),
            )
            .responses[0]
            .error_code
    };
    assert_eq!(delete(&mut client, "timed"), OK);
    assert!(broker.log.topic("timed").is_none());
    // Its groups' offsets went with it, as in Kafka: a topic created again starts empty.
    assert_eq!(offsets.fetch("billing", "timed", 0), None);
    assert_eq!(delete(&mut client, "timed"), 3);
    // Keel's own topics are refused (INVALID_TOPIC_EXCEPTION), whatever a client asks.
    broker
        .log
        .create_topic("_keel_schemas", keel_log::TopicConfig::new(1))
        .unwrap();
    assert_eq!(delete(&mut client, "_keel_schemas"), 17);
    assert!(broker.log.topic("_keel_schemas").is_some());
}

#[test]
fn shutdown_answers_a_waiting_fetch_instead_of_waiting_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "quiet");
    let waiting = std::thread::spawn(move || {
        let start = Instant::now();
        let answered = client
            .try_call(11, &fetch_request("quiet", 0, 25_000, 1))
            .is_some();
        (answered, start.elapsed())
    });
    // Give the fetch time to reach its wait. Should it arrive only after the shutdown began,
    // the server closes the connection without answering, which the test also accepts: what
    // must never happen is a shutdown held up for the fetch's 25 s.
    std::thread::sleep(Duration::from_millis(500));
    let stopping = Instant::now();
    drop(broker);
    let stopped = stopping.elapsed();
    let (answered, waited) = waiting.join().unwrap();
    assert!(
        stopped < Duration::from_secs(5),
        "shutdown took {stopped:?}"
    );
    assert!(
        waited < Duration::from_secs(6),
        "the fetch ended after {waited:?}"
    );
    eprintln!("fetch answered before the shutdown closed its connection: {answered}");
}

/// IncrementalAlterConfigs v1 on one resource: (error code, message).
fn alter_incrementally(
    client: &mut RawClient,
    (resource_type, name): (i8, &str),
    changes: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, String) {
    let configs = changes
        .iter()
        .map(|(key, operation, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_config_operation(*operation)
                .with_value(value.map(|v| StrBytes::from_string(v.into())))
        })
        .collect();
    let response = client.call(
        1,
        &IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                IncrementalResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.into()))
                    .with_configs(configs),
            ]),
    );
    let answer = &response.responses[0];
    let message = answer.error_message.as_deref().unwrap_or_default();
    (answer.error_code, message.to_string())
}

#[test]
fn topic_settings_change_while_the_broker_runs() {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    const APPEND: i8 = 2;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "tuned");
    let topic = ("tuned", 2);
    let config = || broker.log.topic("tuned").unwrap().config();
    let mut changed = config();
    changed.retention_ms = Some(60_000);
    changed.segment_bytes = 1 << 20;
    broker.log.alter_topic_config("tuned", changed).unwrap();
    // 100 records make a batch of about 3 KiB, within the default limit.
    let big = || batch("big", 100, -1, -1, -1);
    assert!(big().len() > 2048);
    assert_eq!(produce(&mut client, "tuned", big()), (OK, 0));

    // SET and DELETE change what they name and keep the rest.
    let (code, message) = alter_incrementally(
        &mut client,
        (topic.1, topic.0),
        &[
            ("max.message.bytes", SET, Some("2048")),
            ("retention.ms", DELETE, None),
        ],
        false,
    );
    assert_eq!((code, message.as_str()), (OK, ""));
    let now = config();
    assert_eq!(
        (now.max_batch_bytes, now.retention_ms, now.segment_bytes),
        (2048, None, 1 << 20)
    );
    // In force for the next produce.
    let (code, _) = produce(&mut client, "tuned", big());
    assert_eq!(code, 10, "MESSAGE_TOO_LARGE");

    // Refusals name the problem and change nothing.
    let before = config();
    for (resource, changes, expected) in [
        (
            (2, "tuned"),
            vec![("cleanup.policy", APPEND, Some("compact"))],
            (40, "operation 2 (APPEND or SUBTRACT)"),
        ),
        (
            (2, "tuned"),
            vec![("retention.msec", SET, Some("1"))],
            (40, "config 'retention.msec': not supported by Keel"),
        ),
        (
            (2, "tuned"),
            vec![("segment.bytes", SET, Some("10"))],
            (40, "config 'segment.bytes'"),
        ),
        (
            (2, "missing"),
            vec![("retention.ms", SET, Some("1"))],
            (3, "topic 'missing' does not exist"),
        ),
        (
            (4, "1"),
            vec![("log.retention.ms", SET, Some("1"))],
            (42, "resource type 4 is not altered by Keel"),
        ),
        (
            (2, "_keel_schemas"),
            vec![("retention.ms", SET, Some("1"))],
            (17, "Keel's own"),
        ),
    ] {
        let (code, message) = alter_incrementally(&mut client, resource, &changes, false);
        assert_eq!(code, expected.0, "{changes:?}: {message}");
        assert!(message.contains(expected.1), "{changes:?}: {message}");
    }
    let (code, _) = alter_incrementally(
        &mut client,
        (2, "tuned"),
        &[("retention.ms", SET, Some("5000"))],
        true,
    );
    assert_eq!(code, OK);
    assert_eq!(config(), before, "validate_only changes nothing");

    // AlterConfigs replaces the whole set: what it does not name goes back to the default.
    let response = client.call(
        2,
        &AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("tuned"))
                .with_configs(vec![
                    ReplacedConfig::default()
                        .with_name(StrBytes::from_static_str("cleanup.policy"))
                        .with_value(Some(StrBytes::from_static_str("compact"))),
                ]),
        ]),
    );
    assert_eq!(response.responses[0].error_code, OK, "{response:?}");
    let defaults = keel_log::TopicConfig::new(1);
    let now = config();
    assert_eq!(now.cleanup, keel_log::CleanupPolicy::Compact);
    assert_eq!(
        (now.max_batch_bytes, now.segment_bytes),
        (defaults.max_batch_bytes, defaults.segment_bytes)
    );
    let described = client.call(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("tuned"))
                .with_configuration_keys(Some(vec![StrBytes::from_static_str("cleanup.policy")])),
        ]),
    );
    let value = described.results[0].configs[0].value.as_deref();
    assert_eq!(value.map(|v| v.to_string()).as_deref(), Some("compact"));
}
