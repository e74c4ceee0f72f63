//! Pre-extended segments on the simulated disk: the active segment's file runs ahead of its
//! last batch with zeros (`preallocate_bytes`), and nothing about that may show after a
//! crash, a roll or a clean shutdown.
//!
//! The cases of the crash analysis in `segment.rs` ("Pre-extension"), each replayed over many
//! power-cut seeds: a cut with a zero tail, a torn append into the zeros, a cut in the middle
//! of an extension, a sealed segment whose cut to its end was not yet durable. After every
//! reopen each segment file must be a whole chain of CRC-valid batches — the zeros cut, never
//! read, never counted — every acknowledged record must be there and appends must continue
//! at the high watermark.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use keel_log::sim::SimStorage;
use keel_log::{
    FsyncPolicy, Log, LogOptions, ManualClock, NewRecord, Partition, PartitionRecovery,
    TopicConfig, check_batches,
};

/// Power cuts tried per scenario; each seed tears the unsynced bytes at another position.
const SEEDS: u64 = 64;

#[test]
fn the_active_segment_runs_ahead_and_a_roll_or_a_clean_shutdown_cuts_it() {
    let storage = SimStorage::new();
    let (log, partition) = create(&storage, config(FsyncPolicy::Always, 8192, 2048));
    partition.append(&[record(1, 10)]).expect("append");
    let active = partition.segment_paths()[0].clone();
    let bytes = storage.file_bytes(&active).expect("segment");
    let end = logical_end(&bytes);
    assert_eq!(bytes.len(), end + 2048, "zeros written ahead of the end");
    assert!(bytes[end..].iter().all(|&b| b == 0));
    assert_eq!(
        partition.size_bytes(),
        end as u64,
        "sizes count batches only"
    );
    while partition.segment_count() < 3 {
        partition.append(&[record(2, 500)]).expect("append");
    }
    for sealed in &partition.segment_paths()[..2] {
        assert_whole_batches(&storage, sealed, "a sealed segment");
    }
    let active = partition.segment_paths()[2].clone();
    let live = storage.file_bytes(&active).expect("active");
    assert!(
        live.len() > logical_end(&live),
        "the new segment runs ahead too"
    );
    drop(partition);
    drop(log);
    assert_whole_batches(
        &storage,
        &active,
        "the active segment after a clean shutdown",
    );
}

#[test]
fn each_sync_round_writes_one_step_of_zeros_until_the_chunk_is_ahead() {
    let storage = SimStorage::new();
    let step = keel_log::limits::PREALLOCATE_STEP_BYTES;
    let (_log, partition) = create(
        &storage,
        config(FsyncPolicy::Always, 1 << 20, 3 * step as u64),
    );
    let path = partition.segment_paths()[0].clone();
    let mut lengths = Vec::new();
    for i in 0..5 {
        partition.append(&[record(i, 10)]).expect("append");
        lengths.push(storage.file_bytes(&path).expect("segment").len());
    }
    // The first three rounds add a step each; then less than a whole step is missing, and
    // the file keeps its size (a top-up would make every sync write the inode's block).
    let grown: Vec<usize> = lengths.windows(2).map(|pair| pair[1] - pair[0]).collect();
    assert_eq!(grown, [step, step, 0, 0], "file lengths: {lengths:?}");
    let bytes = storage.file_bytes(&path).expect("segment");
    let first_batch = keel_log::BatchHeader::parse(&bytes, u32::MAX).expect("header");
    assert_eq!(
        lengths[0],
        first_batch.size() + step,
        "one step past the first batch"
    );
}

#[test]
fn without_preallocation_the_file_ends_at_its_last_batch() {
    let storage = SimStorage::new();
    let (_log, partition) = create(&storage, config(FsyncPolicy::Always, 8192, 0));
    partition.append(&[record(1, 10)]).expect("append");
    assert_whole_batches(&storage, &partition.segment_paths()[0], "no zeros");
}

#[test]
fn a_power_cut_with_a_zero_tail_keeps_every_acknowledged_record_and_reports_nothing() {
    for seed in 0..SEEDS {
        let storage = SimStorage::new();
        let (log, partition) = create(&storage, config(FsyncPolicy::Always, 4096, 1024));
        let mut acknowledged = 0;
        for i in 0..50 {
            acknowledged = partition
                .append(&[record(i, 40)])
                .expect("append")
                .last_offset
                + 1;
        }
        let (_log, partition, recovery) = power_cut_and_reopen(&storage, seed, log, partition);
        assert_eq!(partition.high_watermark(), acknowledged, "seed {seed}");
        assert_eq!(recovery, None, "seed {seed}: zeros are no damage");
        check_recovered(&storage, &partition, &format!("seed {seed}"));
    }
}

#[test]
fn a_torn_append_into_the_zeros_is_cut_and_reported() {
    let (mut torn, mut whole) = (0, 0);
    for seed in 0..SEEDS {
        let storage = SimStorage::new();
        // `never`: the last append stays unsynced; the flush before it wrote the zeros ahead
        // and made them durable, so the cut tears an append that overwrote zeros.
        let (log, partition) = create(&storage, config(FsyncPolicy::Never, 1024, 1024));
        for i in 0..3 {
            partition.append(&[record(i, 20)]).expect("append");
        }
        partition.flush().expect("flush");
        partition.append(&[record(3, 400)]).expect("append");
        let (_log, partition, recovery) = power_cut_and_reopen(&storage, seed, log, partition);
        let what = format!("seed {seed}");
        match (partition.high_watermark(), recovery) {
            (3, Some((bytes, reason))) => {
                assert!(bytes > 0 && !reason.is_empty(), "{what}: {reason}");
                torn += 1;
            }
            (3, None) => {}
            (4, None) => whole += 1,
            other => panic!("{what}: unexpected recovery {other:?}"),
        }
        check_recovered(&storage, &partition, &what);
    }
    assert!(torn > 0, "no seed tore the append: the case was not tested");
    assert!(whole > 0, "no seed kept the append whole");
}

#[test]
fn a_power_cut_in_the_middle_of_an_extension_loses_nothing() {
    for seed in 0..SEEDS {
        let storage = SimStorage::new();
        let (log, partition) = create(&storage, config(FsyncPolicy::Always, 65_536, 4096));
        // The first sync writes 4 KiB of zeros past the first batch; the second append runs
        // past them, so its sync extends again — and fails before the zeros are durable.
        partition.append(&[record(0, 40)]).expect("append");
        let before = storage
            .file_bytes(&partition.segment_paths()[0])
            .expect("segment");
        storage.fail_next_syncs(1);
        partition
            .append(&[record(1, 4200)])
            .expect_err("the sync fails");
        let during = storage
            .file_bytes(&partition.segment_paths()[0])
            .expect("segment");
        assert!(
            during.len() > before.len(),
            "the failed round extended the file"
        );
        let (_log, partition, _) = power_cut_and_reopen(&storage, seed, log, partition);
        let what = format!("seed {seed}");
        let survived = partition.high_watermark();
        assert!((1..=2).contains(&survived), "{what}: {survived} records");
        check_recovered(&storage, &partition, &what);
    }
}

#[test]
fn a_sealed_segment_left_with_zeros_is_cut_at_open() {
    let storage = SimStorage::new();
    let (log, partition) = create(&storage, config(FsyncPolicy::Always, 1024, 1024));
    while partition.segment_count() < 3 {
        partition.append(&[record(0, 100)]).expect("append");
    }
    let high_watermark = partition.high_watermark();
    let sealed = partition.segment_paths()[0].clone();
    let mut bytes = storage.file_bytes(&sealed).expect("sealed");
    let end = bytes.len();
    // A crash after the roll, before the cut of the zeros reached the disk.
    bytes.resize(end + 4096, 0);
    storage.overwrite_file(&sealed, bytes);
    std::mem::forget(partition);
    std::mem::forget(log);
    let (log, partition) = open(&storage);
    assert!(
        log.recovery_report().repaired.is_empty(),
        "zeros are no damage"
    );
    assert_eq!(partition.high_watermark(), high_watermark);
    assert_eq!(storage.file_bytes(&sealed).expect("sealed").len(), end);
    check_recovered(&storage, &partition, "sealed segment with zeros");
}

fn config(fsync: FsyncPolicy, segment_bytes: u64, preallocate_bytes: u64) -> TopicConfig {
    TopicConfig::new(1)
        .with_fsync(fsync)
        .with_segment_bytes(segment_bytes)
        .with_preallocate_bytes(preallocate_bytes)
}

fn options(storage: &SimStorage) -> LogOptions {
    LogOptions {
        storage: Arc::new(storage.clone()),
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        background: false,
        ..LogOptions::default()
    }
}

fn create(storage: &SimStorage, config: TopicConfig) -> (Log, Arc<Partition>) {
    let log = Log::open_with("/data", options(storage)).expect("open log");
    let partition = log
        .create_topic("t", config)
        .expect("create")
        .partition(0)
        .expect("p0")
        .clone();
    (log, partition)
}

fn open(storage: &SimStorage) -> (Log, Arc<Partition>) {
    let log = Log::open_with("/data", options(storage)).expect("reopen log");
    let partition = log.topic("t").and_then(|topic| topic.partition(0).cloned());
    (log, partition.expect("partition t/0"))
}

/// Cuts the power (no clean shutdown: the log is forgotten, not dropped) and reopens;
/// returns the log, the partition and what its recovery cut and why, if anything.
fn power_cut_and_reopen(
    storage: &SimStorage,
    seed: u64,
    log: Log,
    partition: Arc<Partition>,
) -> (Log, Arc<Partition>, Option<(u64, String)>) {
    storage.power_cut(seed);
    std::mem::forget(partition);
    std::mem::forget(log);
    let (log, partition) = open(storage);
    let recovery = log
        .recovery_report()
        .repaired
        .iter()
        .find(|(topic, ..)| topic == "t")
        .map(|(_, _, repaired): &(String, u32, PartitionRecovery)| {
            let reason = repaired.truncation_reason.clone().unwrap_or_default();
            (repaired.truncated_bytes, reason)
        });
    (log, partition, recovery)
}

/// Every segment file is whole batches (the zeros cut), every record up to the high
/// watermark reads back, and an append continues at the high watermark.
fn check_recovered(storage: &SimStorage, partition: &Partition, what: &str) {
    for path in partition.segment_paths() {
        assert_whole_batches(storage, &path, what);
    }
    let high_watermark = partition.high_watermark();
    let mut offset = partition.log_start_offset();
    while offset < high_watermark {
        let records = partition.read_records(offset, 1 << 20).expect("read");
        assert!(!records.is_empty(), "{what}: nothing at {offset}");
        for record in &records {
            assert_eq!(record.offset, offset, "{what}: offsets are dense");
            offset += 1;
        }
    }
    let info = partition
        .append(&[record(99, 10)])
        .expect("append after recovery");
    assert_eq!(info.base_offset, high_watermark, "{what}: next offset");
}

fn assert_whole_batches(storage: &SimStorage, path: &Path, what: &str) {
    let bytes = storage.file_bytes(path).expect("segment file");
    check_batches(&bytes, u32::MAX)
        .unwrap_or_else(|error| panic!("{what}: {} is not whole batches: {error}", path.display()));
}

/// Where the batches of a segment file end: the first zero header, or the file's end.
fn logical_end(bytes: &[u8]) -> usize {
    let mut position = 0;
    while position + keel_log::BATCH_HEADER_BYTES <= bytes.len()
        && bytes[position..position + keel_log::BATCH_HEADER_BYTES]
            .iter()
            .any(|&b| b != 0)
    {
        let header = keel_log::BatchHeader::parse(&bytes[position..], u32::MAX).expect("header");
        position += header.size();
    }
    position
}

fn record(i: u64, value_bytes: usize) -> NewRecord {
    NewRecord::new(
        Some(Bytes::from(format!("key-{i}"))),
        Bytes::from(format!("{i}:{}", "v".repeat(value_bytes))),
    )
}
