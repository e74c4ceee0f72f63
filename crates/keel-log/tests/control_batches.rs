//! Control batches (Kafka's transaction markers, which `keel serve` writes when a transaction
//! ends) hold no records for readers: `read_records` and `replay` skip them, and
//! `read_records_from` says where the next read starts, past a trailing marker.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record as WireRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use keel_log::sim::SimStorage;
use keel_log::{Log, LogOptions, ManualClock, NewRecord, Partition, TopicConfig};

/// One batch of one record: a commit marker when `control`, else a transactional record.
fn batch(control: bool) -> Vec<u8> {
    let (key, value) = if control {
        (&[0u8, 0, 0, 1][..], &[0u8, 0, 0, 0, 0, 0][..])
    } else {
        (&b"key"[..], &b"in a transaction"[..])
    };
    let record = WireRecord {
        transactional: true,
        control,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: 7,
        producer_epoch: 0,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: if control { -1 } else { 0 },
        timestamp: 1_000,
        key: Some(Bytes::copy_from_slice(key)),
        value: Some(Bytes::copy_from_slice(value)),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options).unwrap();
    buf.to_vec()
}

fn partition() -> (Log, Arc<Partition>) {
    let options = LogOptions {
        storage: Arc::new(SimStorage::new()),
        clock: Arc::new(ManualClock::new(0)),
        background: false,
        ..LogOptions::default()
    };
    let log = Log::open_with("/c", options).expect("open");
    let partition = log
        .create_topic("t", TopicConfig::new(1))
        .expect("create")
        .partition(0)
        .expect("p0")
        .clone();
    (log, partition)
}

#[test]
fn readers_skip_markers_and_move_past_them() {
    let (_log, partition) = partition();
    partition.append_batches(batch(false)).unwrap(); // 0
    partition.append_batches(batch(true)).unwrap(); // 1: the commit marker
    let offsets =
        |records: Vec<keel_log::Record>| -> Vec<u64> { records.iter().map(|r| r.offset).collect() };
    assert_eq!(offsets(partition.read_records(0, 1 << 20).unwrap()), [0]);
    let trailing = partition.read_records_from(1, 1 << 20).unwrap();
    assert_eq!((trailing.records.len(), trailing.next_offset), (0, 2));
    let nothing = partition.read_records_from(2, 1 << 20).unwrap();
    assert_eq!((nothing.records.len(), nothing.next_offset), (0, 2));

    partition
        .append(&[NewRecord::new(Some("k"), "after")])
        .unwrap(); // 2
    assert_eq!(offsets(partition.read_records(1, 1 << 20).unwrap()), [2]);
    let mut replayed = Vec::new();
    // One batch per read: replay must not stop at a read that found only the marker.
    partition.replay(1, |r| replayed.push(r.offset)).unwrap();
    assert_eq!(replayed, [0, 2]);
}
