//! Helpers shared by keel-log's fuzz targets: turning arbitrary bytes into batch chains the
//! decoder cannot reject at the CRC gate, and a reference model of active-segment recovery.
//!
//! This is not a test suite of its own: each target in `fuzz_targets/` states the properties
//! it checks, and uses these helpers so that the fuzzer spends its time past the CRC check
//! (a random input almost never carries a valid CRC-32C) instead of in front of it.

use keel_log::batch_layout::{
    CRC_AT, CRC_COVERS_FROM, LAST_OFFSET_DELTA_AT, LENGTH_AT, MAGIC_AT, RECORD_COUNT_AT,
};
use keel_log::{BATCH_HEADER_BYTES, BatchHeader, LOG_OVERHEAD, check_batch};

/// The smallest legal `batchLength`: a header without records.
const BATCH_LENGTH_MIN: usize = BATCH_HEADER_BYTES - LOG_OVERHEAD;

/// Rewrites `bytes` in place into a chain of batches with in-range lengths, magic 2 and a
/// correct CRC-32C, keeping every other byte the fuzzer chose (the length the fuzzer wrote
/// picks the split, modulo the room left). With `dense_offsets` the base offsets, record counts
/// and last offset deltas are also made consistent, as an append would write them, so that
/// recovery keeps long chains and reads have something to walk.
pub fn seal_batches(bytes: &mut [u8], dense_offsets: bool) {
    let mut at = 0;
    let mut next_offset: u64 = 0;
    while bytes.len() - at >= BATCH_HEADER_BYTES {
        let room = bytes.len() - at - LOG_OVERHEAD;
        let chosen = u32::from_be_bytes(field(bytes, at + LENGTH_AT)) as usize;
        let length = BATCH_LENGTH_MIN + chosen % (room - BATCH_LENGTH_MIN + 1);
        bytes[at + LENGTH_AT..at + LENGTH_AT + 4].copy_from_slice(&(length as u32).to_be_bytes());
        bytes[at + MAGIC_AT] = 2;
        if dense_offsets {
            let delta = u32::from_be_bytes(field(bytes, at + LAST_OFFSET_DELTA_AT)) % 64;
            bytes[at..at + 8].copy_from_slice(&next_offset.to_be_bytes());
            bytes[at + LAST_OFFSET_DELTA_AT..at + LAST_OFFSET_DELTA_AT + 4]
                .copy_from_slice(&delta.to_be_bytes());
            bytes[at + RECORD_COUNT_AT..at + RECORD_COUNT_AT + 4]
                .copy_from_slice(&(delta + 1).to_be_bytes());
            next_offset += u64::from(delta) + 1;
        }
        let end = at + LOG_OVERHEAD + length;
        let crc = crc32c::crc32c(&bytes[at + CRC_COVERS_FROM..end]);
        bytes[at + CRC_AT..at + CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

/// What recovery of an active segment must keep, computed independently of keel-log's scan.
#[derive(Debug, Default)]
pub struct ValidPrefix {
    /// Byte position where the kept prefix ends (the segment's size after recovery).
    pub end: usize,
    /// One past the last offset kept (the segment base when nothing is kept).
    pub next_offset: u64,
    /// Every kept batch: its byte position and header.
    pub batches: Vec<(usize, BatchHeader)>,
}

/// The longest prefix of whole, CRC-valid batches each starting exactly one past the previous
/// batch's last offset (the first at the segment's base) and within the 32-bit relative offsets
/// of the segment's index: the rules of the recovery decision table in `docs/log-format.md`.
pub fn valid_prefix(bytes: &[u8], segment_base: u64, max_batch_bytes: u32) -> ValidPrefix {
    let mut prefix = ValidPrefix {
        next_offset: segment_base,
        ..ValidPrefix::default()
    };
    while prefix.end < bytes.len() {
        let Ok(header) = check_batch(&bytes[prefix.end..], max_batch_bytes) else {
            break;
        };
        if header.base_offset != prefix.next_offset
            || header.base_offset - segment_base > u64::from(u32::MAX)
        {
            break;
        }
        prefix.batches.push((prefix.end, header));
        prefix.next_offset = header.next_offset();
        prefix.end += header.size();
    }
    prefix
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N]
        .try_into()
        .expect("caller checked the length")
}
