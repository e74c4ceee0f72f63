//! Fuzz target: RecordBatch v2 decoding — `BatchHeader::parse`, `check_batch`,
//! `check_batches` and `decode_records` on arbitrary bytes.
//!
//! Input: one flags byte, then the bytes. Flag bit 0 seals the bytes into CRC-valid batches
//! (`keel_log_fuzz::seal_batches`) so the record decoder is reached; bit 1 also makes their
//! offsets dense; bits 2-3 pick `max_batch_bytes`.
//!
//! Properties: nothing panics or aborts; whatever is accepted re-verifies — a checked header
//! equals the parsed one, lies inside the input and carries a CRC that an independent CRC-32C
//! confirms; `check_batches` covers the input exactly, batch by batch; decoded records number
//! `recordCount` and survive a re-encode and decode unchanged.

#![no_main]

use bytes::Bytes;
use keel_log::{
    BatchHeader, NewRecord, check_batch, check_batches, decode_records, encode_batch,
    limits::BATCH_BYTES_MAX_CEILING,
};
use libfuzzer_sys::fuzz_target;

const MAX_BATCH_BYTES: [u32; 4] = [64, 4096, 1 << 20, BATCH_BYTES_MAX_CEILING];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if flags & 1 != 0 {
        keel_log_fuzz::seal_batches(&mut bytes, flags & 2 != 0);
    }
    let max = MAX_BATCH_BYTES[usize::from((flags >> 2) & 3)];

    let parsed = BatchHeader::parse(&bytes, max);
    if let Ok(header) = &parsed {
        assert!(header.size() >= keel_log::BATCH_HEADER_BYTES);
        assert!(header.size() <= max as usize);
        assert!(header.last_offset() >= header.base_offset);
        assert!(header.base_offset <= i64::MAX as u64);
    }
    if let Ok(header) = check_batch(&bytes, max) {
        assert_eq!(parsed.as_ref().ok(), Some(&header));
        assert!(header.size() <= bytes.len());
        let stored = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
        assert_eq!(stored, crc32c::crc32c(&bytes[21..header.size()]));
        let batch = Bytes::copy_from_slice(&bytes[..header.size()]);
        if let Ok(records) = decode_records(batch) {
            assert_eq!(records.len(), header.record_count as usize);
            round_trip(&records);
        }
    }
    if let Ok(headers) = check_batches(&bytes, max) {
        let mut position = 0;
        for header in &headers {
            assert_eq!(check_batch(&bytes[position..], max).as_ref(), Ok(header));
            position += header.size();
        }
        assert_eq!(position, bytes.len());
    }
    // The decoder on its own, CRC-valid or not, must fail cleanly.
    let _ = decode_records(Bytes::copy_from_slice(&bytes));
});

/// Re-encodes decoded records and decodes them again: keys, values and headers must survive.
/// Timestamps are fixed, because the encoder stores them as deltas from the first one.
fn round_trip(records: &[keel_log::Record]) {
    if records.is_empty() {
        return;
    }
    let again: Vec<NewRecord> = records
        .iter()
        .map(|record| NewRecord {
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record.headers.clone(),
            timestamp_ms: Some(0),
        })
        .collect();
    let encoded = encode_batch(&again, 0).expect("decoded records re-encode");
    let header = check_batch(&encoded, u32::MAX).expect("a fresh batch is valid");
    assert_eq!(header.record_count as usize, records.len());
    let decoded = decode_records(encoded.freeze()).expect("a fresh batch decodes");
    assert_eq!(decoded.len(), records.len());
    for (before, after) in records.iter().zip(&decoded) {
        assert_eq!(before.key, after.key);
        assert_eq!(before.value, after.value);
        assert_eq!(before.headers, after.headers);
    }
}
