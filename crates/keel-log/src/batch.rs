//! Kafka RecordBatch v2: the unit keel-log stores, validates and serves.
//!
//! keel-log reads the fixed 61-byte batch header itself ([`BatchHeader`]), because storage
//! decisions — offsets, lengths, CRC, timestamps — need only those bytes and must never pay for
//! decoding records. Record-level decoding (varints, headers, compression) and re-encoding
//! for compaction are the `kafka-protocol` crate's job ([`decode_records`]); the one encoder
//! on the append path, [`encode_batch`] (uncompressed, no producer id), is written here
//! because its cost is the embedded appenders' (see its docs). The byte layout is
//! specified in `docs/log-format.md`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
    Record as WireRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

use crate::compression::{check_compressed, decompress};
use keel_core::{NewRecord, Record};

/// Bytes before `batchLength` ends: `baseOffset` (8) and `batchLength` (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed batch header, up to and including `recordCount`.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The smallest legal `batchLength` value (a header with no records).
pub(crate) const BATCH_LENGTH_MIN: u32 = (BATCH_HEADER_BYTES - LOG_OVERHEAD) as u32;

/// Byte positions of the batch header's fields, as in `docs/log-format.md`: public so the
/// fuzzers and corruption tests aim at fields without restating the format.
pub mod layout {
    /// `baseOffset` (8 bytes; not covered by the CRC).
    pub const BASE_OFFSET_AT: usize = 0;
    /// `batchLength` (4 bytes): bytes after this field.
    pub const LENGTH_AT: usize = 8;
    /// `magic` (1 byte), always 2.
    pub const MAGIC_AT: usize = 16;
    /// `crc` (4 bytes): CRC-32C of everything from [`CRC_COVERS_FROM`] on.
    pub const CRC_AT: usize = 17;
    /// First byte the CRC covers.
    pub const CRC_COVERS_FROM: usize = 21;
    /// `attributes` (2 bytes): compression, timestamp type, flags.
    pub const ATTRIBUTES_AT: usize = 21;
    /// `lastOffsetDelta` (4 bytes).
    pub const LAST_OFFSET_DELTA_AT: usize = 23;
    /// `baseTimestamp` (8 bytes).
    pub const BASE_TIMESTAMP_AT: usize = 27;
    /// `maxTimestamp` (8 bytes).
    pub const MAX_TIMESTAMP_AT: usize = 35;
    /// `recordCount` (4 bytes), the header's last field.
    pub const RECORD_COUNT_AT: usize = 57;
}

use layout::{
    ATTRIBUTES_AT, BASE_TIMESTAMP_AT, CRC_AT, CRC_COVERS_FROM, LAST_OFFSET_DELTA_AT, MAGIC_AT,
    MAX_TIMESTAMP_AT, RECORD_COUNT_AT,
};

/// The fields of a batch header that storage needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: u64,
    /// `batchLength`: bytes after the length field.
    pub batch_length: u32,
    /// Offset of the last record is `base_offset + last_offset_delta`.
    pub last_offset_delta: u32,
    /// Timestamp of the first record, in ms since the epoch.
    pub base_timestamp_ms: i64,
    /// Largest record timestamp in the batch, in ms since the epoch.
    pub max_timestamp_ms: i64,
    /// Number of records.
    pub record_count: u32,
    /// Compression codec id (attributes bits 0-2).
    pub compression: u8,
}

/// Why bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than a header, or than the header's length announces.
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// `batchLength` outside the legal range.
    #[error("batch length {length} is out of range ({min}..={max})")]
    BadLength {
        /// The length found.
        length: i64,
        /// Smallest legal length.
        min: u32,
        /// Largest accepted length.
        max: u32,
    },
    /// The magic byte is not 2.
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    BadMagic(i8),
    /// The stored CRC does not match the bytes.
    #[error("batch CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Header fields contradict each other.
    #[error("inconsistent batch header: {0}")]
    Inconsistent(&'static str),
    /// Records inside a valid batch could not be decoded.
    #[error("records could not be decoded: {0}")]
    Records(String),
    /// The compressed records section announces more than it may expand to.
    #[error("compressed records refused: {0}")]
    Compression(String),
}

impl BatchHeader {
    /// Parses the header at the start of `bytes` without checking the CRC. `max_batch_bytes`
    /// bounds the on-disk size (`12 + batchLength`) accepted.
    pub fn parse(bytes: &[u8], max_batch_bytes: u32) -> Result<BatchHeader, BatchError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: bytes.len(),
            });
        }
        let length = i32::from_be_bytes(array(bytes, 8));
        let max_length = max_batch_bytes.saturating_sub(LOG_OVERHEAD as u32);
        if length < BATCH_LENGTH_MIN as i32 || length as u32 > max_length {
            return Err(BatchError::BadLength {
                length: i64::from(length),
                min: BATCH_LENGTH_MIN,
                max: max_length,
            });
        }
        let magic = bytes[MAGIC_AT] as i8;
        if magic != 2 {
            return Err(BatchError::BadMagic(magic));
        }
        let last_offset_delta = i32::from_be_bytes(array(bytes, LAST_OFFSET_DELTA_AT));
        let record_count = i32::from_be_bytes(array(bytes, RECORD_COUNT_AT));
        if last_offset_delta < 0 || record_count < 0 {
            return Err(BatchError::Inconsistent(
                "negative lastOffsetDelta or recordCount",
            ));
        }
        let base_offset = i64::from_be_bytes(array(bytes, 0));
        if base_offset < 0 {
            return Err(BatchError::Inconsistent("negative baseOffset"));
        }
        let attributes = i16::from_be_bytes(array(bytes, ATTRIBUTES_AT));
        Ok(BatchHeader {
            base_offset: base_offset as u64,
            batch_length: length as u32,
            last_offset_delta: last_offset_delta as u32,
            base_timestamp_ms: i64::from_be_bytes(array(bytes, BASE_TIMESTAMP_AT)),
            max_timestamp_ms: i64::from_be_bytes(array(bytes, MAX_TIMESTAMP_AT)),
            record_count: record_count as u32,
            compression: (attributes & 0x7) as u8,
        })
    }

    /// Size of the whole batch on disk.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// One past the last offset: where the next batch starts.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }
}

/// Parses the header of the batch at the start of `bytes` and checks its CRC-32C.
pub fn check_batch(bytes: &[u8], max_batch_bytes: u32) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes, max_batch_bytes)?;
    if bytes.len() < header.size() {
        return Err(BatchError::Truncated {
            needed: header.size(),
            available: bytes.len(),
        });
    }
    let stored = u32::from_be_bytes(array(bytes, CRC_AT));
    let computed = crc32c::crc32c(&bytes[CRC_COVERS_FROM..header.size()]);
    if stored != computed {
        return Err(BatchError::BadCrc { stored, computed });
    }
    Ok(header)
}

/// Overwrites the base offset of the batch at the start of `bytes`. The CRC does not cover it.
pub(crate) fn set_base_offset(bytes: &mut [u8], base_offset: u64) {
    bytes[..8].copy_from_slice(&(base_offset as i64).to_be_bytes());
}

/// Splits a buffer of concatenated batches into whole, CRC-checked batches. Used on the append
/// path, where every batch must be valid before any is written; a compressed batch whose
/// announced size could not be decompressed within the limits is refused here too, so no
/// later read has to meet it.
pub fn check_batches(bytes: &[u8], max_batch_bytes: u32) -> Result<Vec<BatchHeader>, BatchError> {
    let mut headers = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = check_batch(&bytes[position..], max_batch_bytes)?;
        check_compressed(
            &bytes[position + BATCH_HEADER_BYTES..position + header.size()],
            header.compression,
        )?;
        position += header.size();
        headers.push(header);
    }
    Ok(headers)
}

/// Record batches whose framing and CRC-32C were checked once, owned so they cannot change
/// before they are appended ([`Partition::append_checked_batches`](crate::Partition::append_checked_batches)
/// writes them without a second CRC pass). A broker checks a batch before deciding anything
/// about it (a retried idempotent batch must be valid to be recognised as a retry); the CRC
/// pass was a fifth of `keel serve`'s instructions per produced record when it ran twice.
/// The bytes are a `BytesMut` so a broker can hand over the request buffer it read them into
/// without copying (the append rewrites the base offsets in place).
#[derive(Debug)]
pub struct CheckedBatches {
    bytes: BytesMut,
    headers: Vec<BatchHeader>,
}

impl CheckedBatches {
    /// Checks every batch in `bytes` as [`check_batches`] does and keeps the result.
    pub fn check(bytes: BytesMut, max_batch_bytes: u32) -> Result<CheckedBatches, BatchError> {
        let headers = check_batches(&bytes, max_batch_bytes)?;
        Ok(CheckedBatches { bytes, headers })
    }

    /// The headers of the batches, in order.
    pub fn headers(&self) -> &[BatchHeader] {
        &self.headers
    }

    /// The checked bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn into_parts(self) -> (BytesMut, Vec<BatchHeader>) {
        (self.bytes, self.headers)
    }
}

/// Encodes records as one uncompressed batch with base offset 0 and relative offsets; the log
/// assigns the real base offset on append.
///
/// Written here rather than through `kafka-protocol`'s encoder, which takes its own record
/// type: converting to it (a header map per record, a clone of every key and value) cost
/// more than the encoding itself, about 13,000 instructions of an embedded event-store
/// append's 42,000 (callgrind, `BENCHMARKS.md`). The bytes are the ones that encoder writes
/// (a test compares them) except that duplicate header keys are all kept, as Kafka keeps
/// them; its map kept the last value only.
pub fn encode_batch(
    records: &[NewRecord],
    default_timestamp_ms: i64,
) -> Result<BytesMut, BatchError> {
    let count = i32::try_from(records.len())
        .ok()
        .filter(|count| *count > 0)
        .ok_or_else(|| BatchError::Records(format!("{} records in one batch", records.len())))?;
    let timestamp = |record: &NewRecord| record.timestamp_ms.unwrap_or(default_timestamp_ms);
    let first_timestamp = records.iter().map(timestamp).min().expect("count > 0");
    let max_timestamp = records.iter().map(timestamp).max().expect("count > 0");
    let mut buf = BytesMut::with_capacity(BATCH_HEADER_BYTES + records_size_hint(records));
    buf.put_i64(0); // baseOffset: the log assigns it
    buf.put_i32(0); // batchLength, filled in below
    buf.put_i32(NO_PARTITION_LEADER_EPOCH);
    buf.put_i8(2); // magic
    buf.put_u32(0); // crc, filled in below
    buf.put_i16(0); // attributes: no compression, creation time, not transactional
    buf.put_i32(count - 1); // lastOffsetDelta
    buf.put_i64(first_timestamp);
    buf.put_i64(max_timestamp);
    buf.put_i64(NO_PRODUCER_ID);
    buf.put_i16(NO_PRODUCER_EPOCH);
    buf.put_i32(NO_SEQUENCE);
    buf.put_i32(count);
    debug_assert_eq!(buf.len(), BATCH_HEADER_BYTES);
    let mut body = Vec::new();
    for (offset_delta, record) in (0..).zip(records) {
        body.clear();
        body.push(0); // attributes
        put_varlong(&mut body, timestamp(record) - first_timestamp);
        put_varint(&mut body, offset_delta);
        put_bytes(&mut body, record.key.as_deref())?;
        put_bytes(&mut body, record.value.as_deref())?;
        put_varint(&mut body, length(record.headers.len())?);
        for header in &record.headers {
            put_bytes(&mut body, Some(header.key.as_bytes()))?;
            put_bytes(&mut body, header.value.as_deref())?;
        }
        put_varint(&mut buf, length(body.len())?);
        buf.extend_from_slice(&body);
    }
    let batch_length = i32::try_from(buf.len() - LOG_OVERHEAD)
        .map_err(|_| BatchError::Records(format!("a batch of {} bytes", buf.len())))?;
    buf[layout::LENGTH_AT..layout::LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    let crc = crc32c::crc32c(&buf[CRC_COVERS_FROM..]);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(buf)
}

/// Bytes the records' keys, values and headers take, plus a little per record: enough that
/// encoding a batch rarely grows its buffer.
fn records_size_hint(records: &[NewRecord]) -> usize {
    let len = |bytes: &Option<Bytes>| bytes.as_ref().map_or(0, Bytes::len);
    records
        .iter()
        .map(|r| {
            let headers: usize = r
                .headers
                .iter()
                .map(|h| h.key.len() + len(&h.value) + 4)
                .sum();
            len(&r.key) + len(&r.value) + headers + 24
        })
        .sum()
}

/// A length as the wire's `int32`, refused beyond it.
fn length(len: usize) -> Result<i32, BatchError> {
    i32::try_from(len).map_err(|_| BatchError::Records(format!("a length of {len} bytes")))
}

/// Bytes preceded by their varint length, or the length -1 for `None`.
fn put_bytes(buf: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), BatchError> {
    match bytes {
        Some(bytes) => {
            put_varint(buf, length(bytes.len())?);
            buf.extend_from_slice(bytes);
        }
        None => put_varint(buf, -1),
    }
    Ok(())
}

/// A zigzag varint, as RecordBatch v2 records use for lengths and deltas.
fn put_varint(buf: &mut impl BufMut, value: i32) {
    put_unsigned_varint(buf, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

/// A zigzag varlong (the timestamp delta).
fn put_varlong(buf: &mut impl BufMut, value: i64) {
    put_unsigned_varint(buf, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned_varint(buf: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Encodes already-offset records (compaction keeps original offsets) as uncompressed batches.
pub(crate) fn encode_wire(records: &[WireRecord]) -> Result<BytesMut, BatchError> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options)
        .map_err(|error| BatchError::Records(error.to_string()))?;
    Ok(buf)
}

/// Decodes every record of one whole batch (which must start `bytes`), decompressing as needed.
pub fn decode_records(bytes: Bytes) -> Result<Vec<Record>, BatchError> {
    decode_wire(bytes).map(|records| records.into_iter().map(crate::record::from_wire).collect())
}

/// Decodes one batch into the `kafka-protocol` record type, keeping producer fields.
///
/// The records section is walked by [`check_records`] (after decompression, in the decoder's
/// decompression hook) before the decoder sees it, because the decoder trusts the counts it
/// reads: it reserves `recordCount` records and `headerCount` headers up front, and adds
/// deltas to the base offset and timestamp unchecked. A CRC-valid batch from a hostile or
/// broken producer could otherwise abort the process with a huge allocation, or panic on
/// overflow in a debug build, on every read of it.
pub(crate) fn decode_wire(mut bytes: Bytes) -> Result<Vec<WireRecord>, BatchError> {
    let header = BatchHeader::parse(&bytes, u32::MAX)?;
    let checked_decompress =
        |records: &mut Bytes, compression: Compression| -> anyhow::Result<Bytes> {
            let records = decompress(records, compression)?;
            check_records(&records, &header)?;
            Ok(records)
        };
    RecordBatchDecoder::decode_with_custom_compression(&mut bytes, Some(checked_decompress))
        .map(|set| set.records)
        .map_err(|error| BatchError::Records(format!("{error:#}")))
}

/// Checks that the (decompressed) records section holds `recordCount` well-formed records
/// whose counts fit the bytes present and whose offsets and timestamps do not overflow, by
/// walking the same fields as `kafka-protocol`'s record decoder. Bounded by the section's
/// length: every record and every header takes at least one byte.
fn check_records(mut records: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    let bad = |what: &'static str| BatchError::Inconsistent(what);
    for _ in 0..header.record_count {
        let size = varint(&mut records).ok_or(bad("record length truncated"))?;
        let size = usize::try_from(size).map_err(|_| bad("negative record length"))?;
        if size > records.len() {
            return Err(bad("record longer than the batch"));
        }
        let (mut record, rest) = records.split_at(size);
        records = rest;
        record = record.get(1..).ok_or(bad("record attributes missing"))?;
        let timestamp_delta = varlong(&mut record).ok_or(bad("timestamp delta truncated"))?;
        header
            .base_timestamp_ms
            .checked_add(timestamp_delta)
            .ok_or(bad("record timestamp overflows"))?;
        let offset_delta = varint(&mut record).ok_or(bad("offset delta truncated"))?;
        (header.base_offset as i64)
            .checked_add(i64::from(offset_delta))
            .ok_or(bad("record offset overflows"))?;
        for _ in ["key", "value"] {
            let length = varint(&mut record).ok_or(bad("key or value length truncated"))?;
            if length >= 0 {
                record = record
                    .get(length as usize..)
                    .ok_or(bad("key or value longer than the record"))?;
            }
        }
        let headers = varint(&mut record).ok_or(bad("header count truncated"))?;
        // A header takes at least two bytes: its key length and its value length.
        if usize::try_from(headers).map_or(true, |count| count > record.len() / 2) {
            return Err(bad("header count does not fit the record"));
        }
    }
    Ok(())
}

/// Reads a zigzag varint of at most 5 bytes, as Kafka encodes record fields.
fn varint(bytes: &mut &[u8]) -> Option<i32> {
    let zigzag = unsigned_varint(bytes, 5)? as u32;
    Some(((zigzag >> 1) as i32) ^ -((zigzag & 1) as i32))
}

/// Reads a zigzag varlong of at most 10 bytes.
fn varlong(bytes: &mut &[u8]) -> Option<i64> {
    let zigzag = unsigned_varint(bytes, 10)?;
    Some(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
}

fn unsigned_varint(bytes: &mut &[u8], max_bytes: usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << (i * 7);
        if byte < 0x80 {
            break;
        }
    }
    Some(value)
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N]
        .try_into()
        .expect("caller checked the length")
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::TimestampType;
    use proptest::prelude::*;

    use super::*;
    use keel_core::Header;

    /// The record as `kafka-protocol`'s encoder takes it: the reference `encode_batch` is
    /// checked against.
    fn to_wire(record: &NewRecord, offset: i64, default_timestamp_ms: i64) -> WireRecord {
        WireRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset,
            // Sequences must advance with offsets or the encoder splits every record into its own
            // batch; starting at NO_SEQUENCE keeps the batch's baseSequence at "none".
            sequence: NO_SEQUENCE.wrapping_add(offset as i32),
            timestamp: record.timestamp_ms.unwrap_or(default_timestamp_ms),
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record
                .headers
                .iter()
                .map(|Header { key, value }| (key.to_string().into(), value.clone()))
                .collect(),
        }
    }

    fn reference(records: &[NewRecord], default_timestamp_ms: i64) -> BytesMut {
        let wire: Vec<WireRecord> = (0..)
            .zip(records)
            .map(|(offset, record)| to_wire(record, offset, default_timestamp_ms))
            .collect();
        encode_wire(&wire).unwrap()
    }

    fn bytes() -> impl Strategy<Value = Option<Bytes>> {
        prop::option::of(prop::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from))
    }

    fn record() -> impl Strategy<Value = NewRecord> {
        let header = ("[a-z_]{0,12}", bytes()).prop_map(|(key, value)| Header::new(key, value));
        (
            bytes(),
            bytes(),
            prop::collection::vec(header, 0..5),
            prop::option::of(-1_000_000i64..2_000_000_000_000),
        )
            .prop_map(|(key, value, mut headers, timestamp_ms)| {
                // The reference's header map keeps one value per key.
                let mut seen = std::collections::HashSet::new();
                headers.retain(|h| seen.insert(h.key.clone()));
                NewRecord {
                    key,
                    value,
                    headers,
                    timestamp_ms,
                }
            })
    }

    proptest! {
        /// `encode_batch` writes the bytes `kafka-protocol`'s encoder writes, and they decode
        /// back to the records.
        #[test]
        fn encode_batch_writes_what_kafka_protocol_writes(
            records in prop::collection::vec(record(), 1..20),
            default_timestamp_ms in 0i64..2_000_000_000_000,
        ) {
            let encoded = encode_batch(&records, default_timestamp_ms).unwrap();
            prop_assert_eq!(&encoded[..], &reference(&records, default_timestamp_ms)[..]);
            let decoded = decode_records(encoded.freeze()).unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (decoded, record) in decoded.iter().zip(&records) {
                prop_assert_eq!(&decoded.key, &record.key);
                prop_assert_eq!(&decoded.value, &record.value);
                prop_assert_eq!(&decoded.headers, &record.headers);
            }
        }
    }

    #[test]
    fn an_empty_batch_is_refused() {
        assert!(encode_batch(&[], 0).is_err());
    }
}
