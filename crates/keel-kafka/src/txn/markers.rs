//! Transaction markers: the control batch ending a producer's transaction in a partition, as
//! Kafka writes it (KIP-98). One record, in a batch with the transactional and control bits
//! set, whose key is `version: i16 = 0, type: i16` (0 abort, 1 commit) and whose value is
//! `version: i16 = 0, coordinator_epoch: i32`. Encoded and decoded by `kafka-protocol`'s
//! record batch codec (read back through keel-log's checked decoder); this file only fills in and reads those two small fields.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Marker type of an abort.
const ABORT: i16 = 0;
/// Marker type of a commit.
const COMMIT: i16 = 1;
/// The coordinator epoch written into markers: `keel serve` is one coordinator that never
/// moves, so its epoch never changes.
const COORDINATOR_EPOCH: i32 = 0;

/// The marker batch ending `producer_id`'s transaction (commit or abort), base offset 0 (the
/// log assigns it).
pub(crate) fn encode(producer_id: i64, epoch: i16, commit: bool, now_ms: i64) -> BytesMut {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(if commit { COMMIT } else { ABORT });
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(COORDINATOR_EPOCH);
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
    };
    let mut buf = BytesMut::with_capacity(96);
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options)
        .expect("a one-record uncompressed batch always encodes");
    buf
}

/// Whether the control batch `bytes` (one whole stored batch) is a commit marker; `None` when
/// it holds no marker record Keel knows (Kafka's other control types are skipped alike).
pub(crate) fn is_commit(bytes: &[u8]) -> Option<bool> {
    // keel-log's decoder checks every count against the bytes before decoding.
    let records = keel_log::decode_records(Bytes::copy_from_slice(bytes)).ok()?;
    let mut key = records.into_iter().next()?.key?;
    if key.len() < 4 || key.get_i16() != 0 {
        return None;
    }
    match key.get_i16() {
        COMMIT => Some(true),
        ABORT => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_reads_back_as_written() {
        for commit in [true, false] {
            let bytes = encode(42, 3, commit, 1_000);
            let header = keel_log::check_batch(&bytes, u32::MAX).expect("a valid batch");
            let producer = crate::producers::BatchProducer::read(&bytes, &header);
            assert!(producer.transactional && producer.control);
            assert_eq!((producer.id, producer.epoch), (42, 3));
            assert_eq!(is_commit(&bytes), Some(commit));
        }
    }
}
