//! DeleteRecords (21) against hand-made requests: the low watermark moves and ListOffsets'
//! earliest follows it, across a restart; what Kafka refuses is refused with its codes (an
//! offset past the high watermark, an unknown partition, Keel's own topics), and nothing
//! moves then.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, DeleteRecordsRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use keel_log::{NewRecord, TopicConfig};
use support::{RawClient, TestBroker};

const OK: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.into()))
}

/// DeleteRecords of one partition at `version`: its error code and low watermark.
fn delete_before(
    client: &mut RawClient,
    version: i16,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64) {
    let response = client.call(
        version,
        &DeleteRecordsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default()
                            .with_partition_index(partition)
                            .with_offset(offset),
                    ]),
            ]),
    );
    let result = &response.topics[0].partitions[0];
    (result.error_code, result.low_watermark)
}

/// ListOffsets' earliest offset of partition 0.
fn earliest(client: &mut RawClient, topic: &str) -> i64 {
    let response = client.call(
        6,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-2)]),
            ]),
    );
    response.topics[0].partitions[0].offset
}

#[test]
fn delete_records_moves_the_low_watermark_durably_and_refuses_what_kafka_refuses() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = TestBroker::start(dir.path());
        let topic = broker
            .log
            .create_topic("purged", TopicConfig::new(1))
            .unwrap();
        for i in 0..10 {
            let record = NewRecord::new(Some(Bytes::from("k")), Bytes::from(format!("{i}")));
            topic.partition(0).unwrap().append(&[record]).unwrap();
        }
        let mut client = RawClient::connect(broker.address);
        assert_eq!(earliest(&mut client, "purged"), 0);

        assert_eq!(delete_before(&mut client, 2, "purged", 0, 4), (OK, 4));
        assert_eq!(earliest(&mut client, "purged"), 4);
        // Behind the low watermark: nothing changes, the answer is where it is (v0 too).
        assert_eq!(delete_before(&mut client, 0, "purged", 0, 2), (OK, 4));
        // Past the high watermark, or another negative offset than -1: refused.
        assert_eq!(
            delete_before(&mut client, 2, "purged", 0, 11),
            (OFFSET_OUT_OF_RANGE, -1)
        );
        assert_eq!(
            delete_before(&mut client, 2, "purged", 0, -7),
            (OFFSET_OUT_OF_RANGE, -1)
        );
        assert_eq!(
            delete_before(&mut client, 2, "purged", 3, 1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1)
        );
        assert_eq!(
            delete_before(&mut client, 2, "missing", 0, 1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1)
        );
        assert_eq!(earliest(&mut client, "purged"), 4);

        // Keel's own topics are only Keel's to trim.
        let internal = broker
            .log
            .create_topic("_keel_schemas", TopicConfig::new(1))
            .unwrap();
        internal
            .partition(0)
            .unwrap()
            .append(&[NewRecord::new(None::<Bytes>, "s")])
            .unwrap();
        assert_eq!(
            delete_before(&mut client, 2, "_keel_schemas", 0, 1),
            (INVALID_TOPIC_EXCEPTION, -1)
        );
        assert_eq!(internal.partition(0).unwrap().log_start_offset(), 0);

        // -1: everything readable.
        assert_eq!(delete_before(&mut client, 1, "purged", 0, -1), (OK, 10));
    }
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    assert_eq!(earliest(&mut client, "purged"), 10);
}
