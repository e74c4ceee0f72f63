//! Corruption test: bytes damaged on the real disk, then the log reopened, table-driven.
//!
//! Damage in the active segment (a flipped byte, a torn write) is cut by recovery at the first
//! bad batch: every batch before it reads back intact, the recovery report says how much was
//! cut and why, and appends continue at the first lost offset. Zeros after the last batch (the
//! space a segment writes ahead of its end, or a tail some file systems zero-fill after a power
//! cut) end the log: they are cut too, and not reported, unless non-zero bytes follow them —
//! then the zero header was a torn write and is reported as one. Damage inside a sealed segment is never cut (recovery does
//! not rescan sealed data): the read that reaches the damaged batch fails with
//! `ReadError::Corrupt`, naming topic, partition, segment file, byte and offset, while batches
//! before it and later segments stay readable and the partition keeps taking appends.
//!
//! The last cases are regressions found by the `batch_decode` fuzz target: CRC-valid batches
//! whose record section lies about its counts must fail to decode, not abort the process.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use keel_log::{
    BATCH_HEADER_BYTES, BatchHeader, FsyncPolicy, Log, LogOptions, NewRecord, Partition, ReadError,
    TopicConfig, batch_layout, check_batch, check_batches, decode_records, encode_batch,
};

/// Batches written before damage is done.
const BATCHES: u64 = 8;
/// Where a damaged byte sits, relative to the start of a batch.
const BASE_OFFSET_HIGH_BYTE: usize = batch_layout::BASE_OFFSET_AT + 3;
const BASE_OFFSET_LOW_BYTE: usize = batch_layout::BASE_OFFSET_AT + 7;
const LENGTH_HIGH_BYTE: usize = batch_layout::LENGTH_AT;
const LENGTH_LOW_BYTE: usize = batch_layout::LENGTH_AT + 3;
const MAGIC: usize = batch_layout::MAGIC_AT;
const CRC: usize = batch_layout::CRC_AT + 1;
const RECORDS: usize = BATCH_HEADER_BYTES + 9;

/// What is done to the active segment's file.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// XOR a byte of batch `batch` at `at` (relative to the batch start) with `mask`.
    Flip { batch: usize, at: usize, mask: u8 },
    /// Cut the file `keep` bytes into batch `batch` (a torn write).
    Tear { batch: usize, keep: usize },
    /// Replace batch `batch` and everything after it with zeros, and add `extra` zeros.
    Zero { batch: usize, extra: usize },
    /// Zero `zeros` bytes from `keep` bytes into batch `batch` on, keeping what follows, and
    /// add a page of zeros: a torn write into the space a segment writes ahead of its end.
    ZeroFrom {
        batch: usize,
        keep: usize,
        zeros: usize,
    },
}

#[test]
fn damage_in_the_active_segment_is_cut_at_the_first_bad_batch() {
    let last = BATCHES as usize - 1;
    let middle = 3;
    // (what, damage, first lost batch, words the recovery report must contain; empty: the
    // zeros end the log and nothing is reported)
    let cases: &[(&str, Damage, usize, &str)] = &[
        (
            "length high byte, last batch",
            flip(last, LENGTH_HIGH_BYTE),
            last,
            "out of range",
        ),
        (
            "length low byte, last batch",
            flip(last, LENGTH_LOW_BYTE),
            last,
            "batch",
        ),
        ("CRC, last batch", flip(last, CRC), last, "CRC-32C mismatch"),
        (
            "records body, last batch",
            flip(last, RECORDS),
            last,
            "CRC-32C mismatch",
        ),
        ("magic, middle batch", flip(middle, MAGIC), middle, "magic"),
        // baseOffset is not covered by the CRC-32C: only the density rule catches it.
        (
            "base offset high byte, middle batch",
            flip(middle, BASE_OFFSET_HIGH_BYTE),
            middle,
            "does not follow",
        ),
        (
            "base offset low byte, last batch",
            flip(last, BASE_OFFSET_LOW_BYTE),
            last,
            "does not follow",
        ),
        (
            "length high byte, middle batch",
            flip(middle, LENGTH_HIGH_BYTE),
            middle,
            "out of range",
        ),
        (
            "CRC, middle batch",
            flip(middle, CRC),
            middle,
            "CRC-32C mismatch",
        ),
        (
            "records body, middle batch",
            flip(middle, RECORDS),
            middle,
            "CRC-32C mismatch",
        ),
        (
            "records body, first batch",
            flip(0, RECORDS),
            0,
            "CRC-32C mismatch",
        ),
        (
            "torn inside the last batch's records",
            tear(last, 75),
            last,
            "truncated",
        ),
        (
            "torn inside the last batch's header",
            tear(last, 20),
            last,
            "truncated",
        ),
        (
            // Its base offset (non-zero): a torn tail of zero bytes only is the end of the log.
            "torn after nine bytes of a middle batch",
            tear(middle, 9),
            middle,
            "truncated",
        ),
        (
            "zeros after the last batch",
            zero(BATCHES as usize, 4096),
            BATCHES as usize,
            "",
        ),
        ("last batch zeroed", zero(last, 0), last, ""),
        (
            "middle batches zeroed, tail extended",
            zero(middle, 100),
            middle,
            "",
        ),
        (
            "torn inside the last batch's records, then zeros",
            Damage::ZeroFrom {
                batch: last,
                keep: 75,
                zeros: usize::MAX,
            },
            last,
            "CRC-32C mismatch",
        ),
        (
            "a middle batch's header zeroed, whole batches after it",
            Damage::ZeroFrom {
                batch: middle,
                keep: 0,
                zeros: BATCH_HEADER_BYTES,
            },
            middle,
            "out of range",
        ),
    ];
    for &(what, damage, first_lost, reason) in cases {
        check_active(what, damage, first_lost, reason);
    }
}

#[test]
fn damage_in_a_sealed_segment_fails_the_read_that_reaches_it() {
    // (what, byte inside the damaged batch, mask)
    let cases: &[(&str, usize, u8)] = &[
        ("records body", RECORDS, 0x01),
        ("CRC", CRC, 0x80),
        ("magic", MAGIC, 0x02),
        ("length high byte", LENGTH_HIGH_BYTE, 0x7f),
        ("length low byte", LENGTH_LOW_BYTE, 0x04),
    ];
    for &(what, at, mask) in cases {
        check_sealed(what, at, mask);
    }
}

fn flip(batch: usize, at: usize) -> Damage {
    let mask = if at == LENGTH_HIGH_BYTE { 0x7f } else { 0x01 };
    Damage::Flip { batch, at, mask }
}

fn tear(batch: usize, keep: usize) -> Damage {
    Damage::Tear { batch, keep }
}

fn zero(batch: usize, extra: usize) -> Damage {
    Damage::Zero { batch, extra }
}

/// Writes `BATCHES` batches to one segment, damages it, reopens and checks recovery.
fn check_active(what: &str, damage: Damage, first_lost: usize, reason: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = {
        let log = open(dir.path());
        let partition = create(&log, 1 << 20);
        for i in 0..BATCHES {
            partition.append(&batch_records(i)).expect("append");
        }
        assert_eq!(partition.segment_count(), 1, "{what}");
        partition.segment_paths()[0].clone()
    };
    // Closing the log cut the zeros written ahead: the file holds whole batches only.
    let batches = layout(&path);
    let original = std::fs::read(&path).expect("segment");
    let mut bytes = original.clone();
    match damage {
        Damage::Flip { batch, at, mask } => bytes[batches[batch].0 + at] ^= mask,
        Damage::Tear { batch, keep } => bytes.truncate(batches[batch].0 + keep),
        Damage::Zero { batch, extra } => {
            let from = batches.get(batch).map_or(bytes.len(), |b| b.0);
            bytes[from..].fill(0);
            bytes.resize(bytes.len() + extra, 0);
        }
        Damage::ZeroFrom { batch, keep, zeros } => {
            let from = batches[batch].0 + keep;
            let to = from.saturating_add(zeros).min(bytes.len());
            bytes[from..to].fill(0);
            bytes.resize(bytes.len() + 4096, 0);
        }
    }
    std::fs::write(&path, &bytes).expect("damage the segment");

    let log = open(dir.path());
    let partition = log
        .topic("t")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();
    let cut_at = batches.get(first_lost).map_or(original.len(), |b| b.0);
    let lost_offset = batches
        .get(first_lost)
        .map_or(next_offset(&batches), |b| b.1.base_offset);
    assert_eq!(
        partition.high_watermark(),
        lost_offset,
        "{what}: high watermark"
    );
    assert_eq!(
        std::fs::read(&path).expect("segment"),
        original[..cut_at],
        "{what}: file"
    );
    let report = &log.recovery_report().repaired;
    if reason.is_empty() {
        assert!(
            report.is_empty(),
            "{what}: a zero tail reported: {report:?}"
        );
    } else {
        check_report(what, report, bytes.len() - cut_at, reason);
    }
    check_reads_and_appends(what, &partition, &batches, &original[..cut_at], first_lost);
}

/// The recovery report names partition 0 of `t`, `cut` bytes and a reason with `reason`.
fn check_report(
    what: &str,
    report: &[(String, u32, keel_log::PartitionRecovery)],
    cut: usize,
    reason: &str,
) {
    let repaired = report
        .iter()
        .find(|(topic, partition, _)| topic == "t" && *partition == 0)
        .map(|(_, _, repaired)| repaired)
        .unwrap_or_else(|| panic!("{what}: nothing reported in {report:?}"));
    assert_eq!(repaired.truncated_bytes, cut as u64, "{what}: cut");
    let why = repaired.truncation_reason.as_deref().unwrap_or_default();
    assert!(
        why.contains(reason),
        "{what}: reason {why:?} lacks {reason:?}"
    );
}

/// Every batch before the first lost one reads back intact, in one read and batch by batch,
/// and the partition continues at the first lost offset.
fn check_reads_and_appends(
    what: &str,
    partition: &Partition,
    batches: &[(usize, BatchHeader)],
    kept: &[u8],
    first_lost: usize,
) {
    let lost_offset = batches
        .get(first_lost)
        .map_or(next_offset(batches), |b| b.1.base_offset);
    let everything = partition.read(0, 1 << 20).expect("read from 0");
    assert_eq!(
        everything.bytes[..],
        kept[..],
        "{what}: bytes before the damage"
    );
    for (i, (_, header)) in batches[..first_lost].iter().enumerate() {
        let records = partition
            .read_records(header.base_offset, 1)
            .expect("read a batch");
        let values: Vec<_> = records.iter().map(|r| r.value.clone()).collect();
        let expected: Vec<_> = batch_records(i as u64)
            .into_iter()
            .map(|r| r.value)
            .collect();
        assert_eq!(values, expected, "{what}: batch {i}");
    }
    // The partition continues at the first lost offset.
    let info = partition
        .append(&[NewRecord::new(Some("k"), "after")])
        .expect("append");
    assert_eq!(info.base_offset, lost_offset, "{what}: next offset");
    let records = partition
        .read_records(lost_offset, 1 << 20)
        .expect("read the append");
    assert_eq!(records.len(), 1, "{what}");
    assert_eq!(records[0].value.as_deref(), Some(&b"after"[..]), "{what}");
}

/// Fills several small segments, damages a batch in the middle of the first (sealed) one,
/// reopens and checks what reads see.
fn check_sealed(what: &str, at: usize, mask: u8) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sealed, batches, high_watermark) = {
        let log = open(dir.path());
        let partition = create(&log, 1024);
        let mut i = 0;
        while partition.segment_count() < 3 {
            partition.append(&batch_records(i)).expect("append");
            i += 1;
        }
        let sealed = partition.segment_paths()[0].clone();
        (sealed.clone(), layout(&sealed), partition.high_watermark())
    };
    assert!(
        batches.len() >= 3,
        "{what}: only {} batches sealed",
        batches.len()
    );
    let damaged = batches.len() / 2;
    let (position, header) = batches[damaged];
    let mut bytes = std::fs::read(&sealed).expect("segment");
    bytes[position + at] ^= mask;
    std::fs::write(&sealed, &bytes).expect("damage the segment");

    let log = open(dir.path());
    let partition = log
        .topic("t")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();
    assert_eq!(
        partition.high_watermark(),
        high_watermark,
        "{what}: nothing is cut"
    );
    assert!(
        log.recovery_report().repaired.is_empty(),
        "{what}: sealed data is not repaired"
    );

    // The read that reaches the damaged batch fails, and says where.
    let error = partition.read(header.base_offset, 1 << 20).expect_err(what);
    let ReadError::Corrupt(message) = error else {
        panic!("{what}: expected Corrupt, got {error:?}");
    };
    let segment = sealed
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    for needle in [
        "topic 't' partition 0".to_string(),
        format!("reading offset {}", header.base_offset),
        segment,
        format!("at byte {position}"),
    ] {
        assert!(
            message.contains(&needle),
            "{what}: {message:?} lacks {needle:?}"
        );
    }
    assert!(
        partition.read_records(header.base_offset, 1 << 20).is_err(),
        "{what}: decoding reads fail too"
    );
    // Batches before it still read, whatever the read size: a large read stops before it.
    let before = partition.read(0, 1 << 20).expect("read before the damage");
    assert_eq!(
        before.bytes[..],
        bytes[..position],
        "{what}: batches before the damage"
    );
    for (i, (_, header)) in batches[..damaged].iter().enumerate() {
        let records = partition
            .read_records(header.base_offset, 1)
            .expect("read a batch");
        assert_eq!(
            records[0].value,
            batch_records(i as u64)[0].value,
            "{what}: batch {i}"
        );
    }
    // Later segments are unaffected, and the partition keeps taking appends.
    let later = next_offset(&batches);
    let records = partition
        .read_records(later, 1 << 20)
        .expect("read the next segment");
    assert_eq!(records.first().map(|r| r.offset), Some(later), "{what}");
    let info = partition
        .append(&[NewRecord::new(Some("k"), "after")])
        .expect("append");
    assert_eq!(info.base_offset, high_watermark, "{what}: next offset");
    let records = partition
        .read_records(high_watermark, 1 << 20)
        .expect("read the append");
    assert_eq!(records[0].value.as_deref(), Some(&b"after"[..]), "{what}");
}

/// Regressions from the `batch_decode` fuzz target (`fuzz/regressions/batch_decode/`): the
/// record decoder reserved `recordCount` records and `headerCount` headers before reading
/// them, so one small CRC-valid batch claiming 2^31 records aborted the process on
/// allocation. Such batches are accepted on append (their header is consistent) and must
/// then fail to decode, cleanly, while the partition keeps serving.
#[test]
fn batches_whose_records_lie_about_their_counts_fail_to_decode_cleanly() {
    // One minimal record: length 6, attributes, timestamp delta 0, offset delta 0, null key,
    // null value, no headers.
    let minimal = [0x0c, 0, 0, 0, 0x01, 0x01, 0];
    // The same with i32::MAX headers and nothing after.
    let many_headers = [0x14, 0, 0, 0, 0x01, 0x01, 0xfe, 0xff, 0xff, 0xff, 0x0f];
    // Timestamp delta +1 on a base timestamp of i64::MAX.
    let late = [0x0c, 0, 0x02, 0, 0x01, 0x01, 0];
    let cases: &[(&str, i32, i64, &[u8], &str)] = &[
        (
            "2^31-1 records claimed, one present",
            i32::MAX,
            0,
            &minimal,
            "record length",
        ),
        (
            "i32::MAX headers claimed",
            1,
            0,
            &many_headers,
            "header count",
        ),
        (
            "timestamp past i64::MAX",
            1,
            i64::MAX,
            &late,
            "timestamp overflows",
        ),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(dir.path());
    let partition = create(&log, 1 << 20);
    for &(what, count, base_timestamp, records, reason) in cases {
        let batch = forge_batch(count, base_timestamp, records);
        let error = decode_records(Bytes::from(batch.clone())).expect_err(what);
        assert!(error.to_string().contains(reason), "{what}: {error}");
        let info = partition
            .append_batches(batch)
            .expect("the header is consistent");
        let error = partition
            .read_records(info.base_offset, 1 << 20)
            .expect_err(what);
        assert!(matches!(error, ReadError::Corrupt(_)), "{what}: {error:?}");
        let info = partition
            .append(&[NewRecord::new(Some("k"), "v")])
            .expect("append");
        let records = partition
            .read_records(info.base_offset, 1 << 20)
            .expect(what);
        assert_eq!(records[0].value.as_deref(), Some(&b"v"[..]), "{what}");
    }
}

/// A CRC-valid batch with the given record count, base timestamp and records section.
fn forge_batch(record_count: i32, base_timestamp: i64, records: &[u8]) -> Vec<u8> {
    let mut batch = encode_batch(&[NewRecord::default()], 0)
        .expect("encode")
        .to_vec();
    batch.truncate(keel_log::BATCH_HEADER_BYTES);
    batch.extend_from_slice(records);
    let length = (batch.len() - keel_log::LOG_OVERHEAD) as u32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[23..27].copy_from_slice(&(record_count - 1).to_be_bytes());
    batch[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
    batch[57..61].copy_from_slice(&record_count.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    check_batch(&batch, u32::MAX).expect("forged batch is CRC-valid");
    batch
}

fn open(root: &Path) -> Log {
    let options = LogOptions {
        background: false,
        ..LogOptions::default()
    };
    Log::open_with(root, options).expect("open log")
}

fn create(log: &Log, segment_bytes: u64) -> std::sync::Arc<Partition> {
    let config = TopicConfig::new(1)
        .with_fsync(FsyncPolicy::Always)
        .with_segment_bytes(segment_bytes);
    let topic = log.create_topic("t", config).expect("create topic");
    topic.partition(0).expect("p0").clone()
}

/// Batch `i`: two records with recognisable values, about 150 bytes on disk.
fn batch_records(i: u64) -> Vec<NewRecord> {
    (0..2)
        .map(|r| {
            NewRecord::new(
                Some(format!("key-{i}")),
                format!("value-{i}-{r}-{}", "x".repeat(30)),
            )
        })
        .collect()
}

/// Positions and headers of the batches in a segment file.
fn layout(path: &PathBuf) -> Vec<(usize, BatchHeader)> {
    let bytes = std::fs::read(path).expect("segment");
    let headers = check_batches(&bytes, u32::MAX).expect("an undamaged segment");
    let mut position = 0;
    headers
        .into_iter()
        .map(|header| {
            let at = position;
            position += header.size();
            (at, header)
        })
        .collect()
}

fn next_offset(batches: &[(usize, BatchHeader)]) -> u64 {
    batches.last().map_or(0, |(_, header)| header.next_offset())
}
