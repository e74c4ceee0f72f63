//! Partition behaviour through the public API, on the simulated disk and the real one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use keel_log::sim::SimStorage;
use keel_log::{
    AppendError, BatchError, CheckedBatches, CleanupPolicy, DurableStep, DurableWait, FsyncPolicy,
    Log, LogOptions, ManualClock, NewRecord, Partition, ReadError, TopicConfig, compact,
};

fn sim_log(storage: &SimStorage, clock: Arc<ManualClock>) -> Log {
    let options = LogOptions {
        storage: Arc::new(storage.clone()),
        clock,
        background: false,
        ..LogOptions::default()
    };
    Log::open_with("/data", options).expect("open log")
}

fn record(key: &str, value: &str) -> NewRecord {
    NewRecord::new(
        Some(Bytes::copy_from_slice(key.as_bytes())),
        Bytes::copy_from_slice(value.as_bytes()),
    )
}

fn values(records: &[keel_log::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).unwrap())
        .collect()
}

#[test]
fn appends_get_dense_offsets_and_read_back() {
    let storage = SimStorage::new();
    let log = sim_log(&storage, Arc::new(ManualClock::new(1_000)));
    let topic = log.create_topic("orders", TopicConfig::new(2)).unwrap();
    let p = topic.partition(0).unwrap();
    let first = p.append(&[record("a", "1"), record("a", "2")]).unwrap();
    let second = p.append(&[record("b", "3")]).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (0, 1));
    assert_eq!((second.base_offset, second.last_offset), (2, 2));
    assert_eq!(p.high_watermark(), 3);
    assert_eq!(
        values(&p.read_records(0, 1 << 20).unwrap()),
        ["1", "2", "3"]
    );
    assert_eq!(values(&p.read_records(1, 1 << 20).unwrap()), ["2", "3"]);
    assert!(p.read_records(3, 1 << 20).unwrap().is_empty());
    assert!(matches!(
        p.read(4, 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn segments_roll_by_size_and_survive_reopen() {
    let storage = SimStorage::new();
    let clock = Arc::new(ManualClock::new(1_000));
    {
        let log = sim_log(&storage, clock.clone());
        let topic = log
            .create_topic("t", TopicConfig::new(1).with_segment_bytes(1024))
            .unwrap();
        let p = topic.partition(0).unwrap();
        for i in 0..100 {
            p.append(&[record("k", &format!("value-{i:04}"))]).unwrap();
        }
        assert!(
            p.segment_count() > 3,
            "expected several segments, got {}",
            p.segment_count()
        );
    }
    let log = sim_log(&storage, clock);
    let p = log.topic("t").unwrap().partition(0).unwrap().clone();
    assert_eq!(p.high_watermark(), 100);
    let mut all = Vec::new();
    let mut offset = 0;
    while offset < p.high_watermark() {
        let records = p.read_records(offset, 1).unwrap();
        offset = records.last().unwrap().offset + 1;
        all.extend(records);
    }
    assert_eq!(all.len(), 100);
    assert!(all.iter().enumerate().all(|(i, r)| r.offset == i as u64));
    assert_eq!(values(&p.read_records(57, 40).unwrap())[0], "value-0057");
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let storage = SimStorage::new();
    let log = sim_log(&storage, Arc::new(ManualClock::new(0)));
    let p = log
        .create_topic("t", TopicConfig::new(1).with_segment_bytes(2048))
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    for i in 0..200i64 {
        let mut r = record("k", "v");
        r.timestamp_ms = Some(10_000 + i * 10);
        p.append(&[r]).unwrap();
    }
    let cases = [
        (0, Some(0)),
        (10_000, Some(0)),
        (10_001, Some(1)),
        (10_500, Some(50)),
        (11_990, Some(199)),
        (11_991, None),
    ];
    for (ts, expected) in cases {
        assert_eq!(
            p.offset_for_timestamp(ts).unwrap(),
            expected,
            "timestamp {ts}"
        );
    }
}

#[test]
fn torn_tail_is_truncated_on_reopen_and_acknowledged_data_stays() {
    let storage = SimStorage::new();
    let clock = Arc::new(ManualClock::new(1_000));
    let log = sim_log(&storage, clock.clone());
    let p = log
        .create_topic("t", TopicConfig::new(1).with_fsync(FsyncPolicy::Never))
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    for i in 0..10 {
        p.append(&[record("k", &format!("{i}"))]).unwrap();
    }
    p.flush().unwrap();
    for i in 10..20 {
        p.append(&[record("k", &format!("{i}"))]).unwrap();
    }
    let path = p.segment_paths()[0].clone();
    drop(p);
    drop(log);
    // Simulate a torn write: the unsynced tail is cut mid-batch.
    let mut bytes = storage.file_bytes(&path).unwrap();
    let cut = bytes.len() - 7;
    bytes.truncate(cut);
    storage.overwrite_file(&path, bytes);
    let log = sim_log(&storage, clock);
    let p = log.topic("t").unwrap().partition(0).unwrap().clone();
    assert_eq!(p.high_watermark(), 19);
    let report = log.recovery_report();
    assert_eq!(report.repaired.len(), 1);
    assert!(report.repaired[0].2.truncated_bytes > 0);
    assert_eq!(values(&p.read_records(0, 1 << 20).unwrap()).len(), 19);
    // The partition accepts appends after recovery, at the next offset.
    assert_eq!(p.append(&[record("k", "new")]).unwrap().base_offset, 19);
}

#[test]
fn power_cut_keeps_every_acknowledged_append_under_fsync_always() {
    for seed in 0..20 {
        let storage = SimStorage::new();
        let clock = Arc::new(ManualClock::new(1_000));
        let log = sim_log(&storage, clock.clone());
        let p = log
            .create_topic("t", TopicConfig::new(1).with_segment_bytes(1024))
            .unwrap()
            .partition(0)
            .unwrap()
            .clone();
        let mut acknowledged = 0;
        for i in 0..50 {
            acknowledged = p
                .append(&[record("k", &format!("{i}"))])
                .unwrap()
                .last_offset
                + 1;
        }
        storage.power_cut(seed);
        std::mem::forget(p);
        std::mem::forget(log);
        let log = sim_log(&storage, clock);
        let p = log.topic("t").unwrap().partition(0).unwrap().clone();
        assert_eq!(p.high_watermark(), acknowledged, "seed {seed}");
    }
}

#[test]
fn failed_fsync_is_sticky() {
    let storage = SimStorage::new();
    let (_log, p) = one_partition(&storage);
    p.append(&[record("k", "ok")]).unwrap();
    storage.fail_next_syncs(1);
    assert!(matches!(
        p.append(&[record("k", "lost")]),
        Err(AppendError::Poisoned(_))
    ));
    // The next sync would succeed, but the partition stays read-only: the kernel may have
    // dropped the pages the failed sync could not write.
    assert!(matches!(
        p.append(&[record("k", "after")]),
        Err(AppendError::Poisoned(_))
    ));
    assert_eq!(p.high_watermark(), 1);
}

/// A failed fsync poisons the partition on every path that syncs: a segment roll (which
/// syncs under every policy) and the interval flusher or a shutdown's flush, whatever
/// succeeds afterwards; the log names the partition for a health check.
#[test]
fn a_failed_fsync_is_sticky_on_rolls_and_flushes() {
    let check = |what: &str, fsync: FsyncPolicy, fail: &dyn Fn(&Partition)| {
        let storage = SimStorage::new();
        let log = sim_log(&storage, Arc::new(ManualClock::new(1_000)));
        let mut config = TopicConfig::new(1).with_fsync(fsync);
        config.segment_bytes = 1024;
        let p = log
            .create_topic("t", config)
            .unwrap()
            .partition(0)
            .unwrap()
            .clone();
        p.append(&[record("k", "ok")]).unwrap();
        assert!(log.failed_partitions().is_empty());
        storage.fail_next_syncs(1);
        fail(&p);
        // Every later sync would succeed; the partition stays read-only all the same.
        for _ in 0..3 {
            let refused = p.append(&[record("k", &"x".repeat(600))]);
            assert!(
                matches!(refused, Err(AppendError::Poisoned(_))),
                "{what}: {refused:?}"
            );
            assert!(matches!(p.flush(), Err(AppendError::Poisoned(_))), "{what}");
        }
        let failed = log.failed_partitions();
        assert_eq!(failed.len(), 1, "{what}: {failed:?}");
        assert_eq!((failed[0].0.as_str(), failed[0].1), ("t", 0), "{what}");
        assert!(
            failed[0].2.contains("simulated fdatasync failure"),
            "{what}: {failed:?}"
        );
        assert!(
            log.flush().is_err(),
            "{what}: a shutdown's flush reports it"
        );
    };
    // The roll's sync fails: the append that needed the roll fails.
    check("roll", FsyncPolicy::Never, &|p| {
        p.append(&[record("k", &"x".repeat(600))]).unwrap();
        assert!(p.append(&[record("k", &"x".repeat(600))]).is_err());
    });
    // The interval flusher's sync fails.
    check(
        "interval flush",
        FsyncPolicy::Interval(Duration::from_millis(10)),
        &|p| {
            p.append(&[record("k", "unsynced")]).unwrap();
            assert!(matches!(p.flush(), Err(AppendError::Io(_))));
        },
    );
}

/// A log and the one partition of its topic that takes batches of at most 1,024 bytes.
/// Topic `t` of one partition with default settings (`fsync = always`) on the simulated disk.
fn one_partition(storage: &SimStorage) -> (Log, Arc<Partition>) {
    let log = sim_log(storage, Arc::new(ManualClock::new(1_000)));
    let partition = log
        .create_topic("t", TopicConfig::new(1))
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    (log, partition)
}

fn kilobyte_batches(storage: &SimStorage) -> (Log, Arc<Partition>) {
    let log = sim_log(storage, Arc::new(ManualClock::new(1_000)));
    let mut config = TopicConfig::new(1);
    config.max_batch_bytes = 1024;
    let partition = log
        .create_topic("t", config)
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    (log, partition)
}

#[test]
fn oversized_and_invalid_batches_are_refused_and_nothing_is_stored() {
    let storage = SimStorage::new();
    let (_log, p) = kilobyte_batches(&storage);
    let big = NewRecord::new(None::<Bytes>, vec![7u8; 4096]);
    assert!(matches!(
        p.append(&[big]),
        Err(AppendError::RecordTooLarge { .. })
    ));
    let mut batch = keel_log::encode_batch(&[record("k", "v")], 0)
        .unwrap()
        .to_vec();
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    assert!(matches!(
        p.append_batches(batch),
        Err(AppendError::InvalidBatch(_))
    ));
    assert!(matches!(
        p.append_batches(vec![1, 2, 3]),
        Err(AppendError::InvalidBatch(_))
    ));
    assert_eq!(p.high_watermark(), 0);
    assert_eq!(p.append(&[record("k", "v")]).unwrap().base_offset, 0);
}

#[test]
fn checked_batches_are_checked_once_and_still_bounded_by_the_partition() {
    let storage = SimStorage::new();
    let (_log, p) = kilobyte_batches(&storage);
    let batch = |value: Vec<u8>| {
        keel_log::encode_batch(&[NewRecord::new(None::<Bytes>, value)], 0).unwrap()
    };
    let mut damaged = batch(b"v".to_vec());
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    assert!(matches!(
        CheckedBatches::check(damaged, u32::MAX),
        Err(BatchError::BadCrc { .. })
    ));
    // Checked against a looser limit than the partition's: the append still refuses it.
    let big = CheckedBatches::check(batch(vec![7u8; 4096]), u32::MAX).unwrap();
    assert!(matches!(
        p.append_checked_batches(big),
        Err(AppendError::RecordTooLarge { .. })
    ));
    assert_eq!(p.high_watermark(), 0);
    let mut two = batch(b"a".to_vec());
    two.extend_from_slice(&batch(b"b".to_vec()));
    let checked = CheckedBatches::check(two, 1024).unwrap();
    assert_eq!(checked.headers().len(), 2);
    let info = p.append_checked_batches(checked).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 1));
    assert_eq!(values(&p.read_records(0, 1 << 20).unwrap()), ["a", "b"]);
}

#[test]
fn retention_deletes_whole_old_segments() {
    let storage = SimStorage::new();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let log = sim_log(&storage, clock.clone());
    let mut config = TopicConfig::new(1).with_segment_bytes(1024);
    config.retention_ms = Some(60_000);
    let p = log
        .create_topic("t", config)
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    for i in 0..60 {
        p.append(&[record("k", &format!("old-{i}"))]).unwrap();
    }
    clock.advance(120_000);
    for i in 0..5 {
        p.append(&[record("k", &format!("new-{i}"))]).unwrap();
    }
    let before = p.segment_count();
    log.run_maintenance().unwrap();
    assert!(p.segment_count() < before);
    assert!(p.log_start_offset() > 0);
    let remaining = values(&p.read_records(p.log_start_offset(), 1 << 20).unwrap());
    assert!(remaining.iter().any(|v| v == "new-4"));
    assert!(matches!(
        p.read(0, 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn compaction_keeps_latest_per_key_and_drops_old_tombstones() {
    let storage = SimStorage::new();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let log = sim_log(&storage, clock.clone());
    let mut config = TopicConfig::new(1)
        .with_segment_bytes(1024)
        .with_cleanup(CleanupPolicy::Compact);
    config.delete_retention_ms = 1_000;
    let p = log
        .create_topic("t", config)
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    assert!(matches!(
        p.append(&[NewRecord::new(None::<Bytes>, "x")]),
        Err(AppendError::KeyRequired)
    ));
    for round in 0..20 {
        for key in ["a", "b", "c"] {
            p.append(&[record(key, &format!("{key}{round}"))]).unwrap();
        }
    }
    p.append(&[NewRecord {
        key: Some(Bytes::from_static(b"c")),
        ..NewRecord::default()
    }])
    .unwrap();
    for i in 0..30 {
        p.append(&[record("d", &format!("d{i}"))]).unwrap();
    }
    clock.advance(10_000);
    let outcome = compact(&p).unwrap();
    assert!(outcome.records_removed > 0);
    let records = p.read_records(p.log_start_offset(), 1 << 24).unwrap();
    let latest = |key: &str| {
        records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key.as_bytes()))
            .map(|r| r.value.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(latest("a"), [Some(Bytes::from("a19"))]);
    assert_eq!(latest("b"), [Some(Bytes::from("b19"))]);
    assert!(latest("c").is_empty(), "old tombstone and its key are gone");
    assert!(records.windows(2).all(|w| w[0].offset < w[1].offset));
}

#[test]
fn committed_offsets_survive_reopen() {
    let storage = SimStorage::new();
    let clock = Arc::new(ManualClock::new(5));
    {
        let log = sim_log(&storage, clock.clone());
        let commit = |p, o| keel_log::OffsetCommit {
            topic: "orders".into(),
            partition: p,
            offset: o,
            metadata: String::new(),
        };
        log.group_offsets()
            .commit("billing", &[commit(0, 10), commit(1, 20)], 5)
            .unwrap();
        log.group_offsets()
            .commit("billing", &[commit(0, 11)], 6)
            .unwrap();
        log.group_offsets()
            .commit("audit", &[commit(0, 1)], 7)
            .unwrap();
        log.group_offsets().delete_group("audit").unwrap();
        log.group_offsets()
            .commit("billing", &[commit(2, 30), commit(3, 40)], 8)
            .unwrap();
        // Partition 9 has no offset: skipped, not a tombstone for nothing.
        log.group_offsets()
            .delete_offsets("billing", &[("orders".into(), 2), ("orders".into(), 9)])
            .unwrap();
    }
    let log = sim_log(&storage, clock);
    let offsets = log.group_offsets();
    assert_eq!(offsets.fetch("billing", "orders", 0).unwrap().offset, 11);
    assert_eq!(offsets.fetch("billing", "orders", 1).unwrap().offset, 20);
    assert_eq!(
        offsets.fetch("billing", "orders", 2),
        None,
        "deleted by delete_offsets"
    );
    assert_eq!(offsets.fetch("billing", "orders", 3).unwrap().offset, 40);
    assert_eq!(offsets.groups(), ["billing"]);
}

#[test]
fn deleting_a_topic_forgets_its_committed_offsets_so_a_new_topic_of_that_name_starts_empty() {
    let storage = SimStorage::new();
    let clock = Arc::new(ManualClock::new(5));
    let commit = |topic: &str, offset| keel_log::OffsetCommit {
        topic: topic.into(),
        partition: 0,
        offset,
        metadata: String::new(),
    };
    {
        let log = sim_log(&storage, clock.clone());
        for name in ["orders", "payments"] {
            log.create_topic(name, TopicConfig::new(1)).unwrap();
        }
        let offsets = log.group_offsets();
        offsets
            .commit("billing", &[commit("orders", 7), commit("payments", 3)], 5)
            .unwrap();
        offsets.commit("audit", &[commit("orders", 2)], 5).unwrap();
        log.delete_topic("orders").unwrap();
        assert_eq!(offsets.fetch("billing", "orders", 0), None);
        assert_eq!(offsets.groups(), ["billing"], "audit had only orders");
        log.create_topic("orders", TopicConfig::new(1)).unwrap();
    }
    // The tombstones are stored: a reopened log does not bring the old offsets back.
    let log = sim_log(&storage, clock);
    let offsets = log.group_offsets();
    assert_eq!(offsets.fetch("billing", "orders", 0), None);
    assert_eq!(offsets.fetch("audit", "orders", 0), None);
    assert_eq!(offsets.fetch("billing", "payments", 0).unwrap().offset, 3);
}

#[test]
fn keel_s_own_topics_cannot_be_deleted() {
    let storage = SimStorage::new();
    let log = sim_log(&storage, Arc::new(ManualClock::new(0)));
    log.create_topic("_keel_schemas", TopicConfig::new(1))
        .unwrap();
    log.create_topic("keel.dlq.audit", TopicConfig::new(1))
        .unwrap();
    for name in ["__consumer_offsets", "_keel_schemas", "keel.dlq.audit"] {
        let error = log.delete_topic(name).unwrap_err().to_string();
        assert!(error.contains("internal to Keel"), "{name}: {error}");
    }
    assert!(log.topic("_keel_schemas").is_some());
}

#[test]
fn wait_for_wakes_when_an_append_lands() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    let p = log
        .create_topic("t", TopicConfig::new(1))
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    assert_eq!(p.wait_for(0, Duration::from_millis(10)), 0);
    let writer = {
        let p = p.clone();
        std::thread::spawn(move || p.append(&[record("k", "v")]).unwrap())
    };
    assert_eq!(p.wait_for(0, Duration::from_secs(30)), 1);
    writer.join().unwrap();
}

#[test]
fn group_commit_shares_fsyncs_between_concurrent_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    let p = log
        .create_topic("t", TopicConfig::new(1))
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    p.append(&[record("k", &format!("{t}-{i}"))]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(p.high_watermark(), 400);
    let stats = p.sync_stats();
    assert!(stats.syncs < 400, "400 appends took {} fsyncs", stats.syncs);
}

#[test]
fn segments_roll_by_age() {
    let storage = SimStorage::new();
    let clock = Arc::new(ManualClock::new(1_000));
    let log = sim_log(&storage, clock.clone());
    let mut config = TopicConfig::new(1);
    config.segment_ms = 60_000;
    let p = log
        .create_topic("t", config)
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    p.append(&[record("k", "first")]).unwrap();
    clock.advance(59_999);
    p.append(&[record("k", "young")]).unwrap();
    assert_eq!(p.segment_count(), 1);
    clock.advance(1);
    p.append(&[record("k", "old enough")]).unwrap();
    assert_eq!(p.segment_count(), 2);
    assert_eq!(values(&p.read_records(2, 1 << 20).unwrap()), ["old enough"]);
}

#[test]
fn keys_pick_partitions_like_java_and_keyless_records_spread_evenly() {
    let storage = SimStorage::new();
    let log = sim_log(&storage, Arc::new(ManualClock::new(0)));
    let topic = log.create_topic("t", TopicConfig::new(4)).unwrap();
    assert_eq!(
        topic.partition_for(Some(b"21")),
        keel_log::partition_for_key(b"21", 4)
    );
    let mut counts = [0u32; 4];
    for _ in 0..400 {
        counts[topic.partition_for(None) as usize] += 1;
    }
    assert_eq!(counts, [100; 4]);
}

#[test]
fn invalid_topic_names_and_settings_are_refused_with_their_reason() {
    let storage = SimStorage::new();
    let log = sim_log(&storage, Arc::new(ManualClock::new(0)));
    let cases: &[(&str, u32, &str)] = &[
        ("", 1, "empty"),
        ("a/b", 1, "only ASCII letters"),
        ("..", 1, "reserved"),
        ("__internal", 1, "internal"),
        ("ok", 0, "partitions"),
        ("ok", 5000, "partitions"),
    ];
    for (name, partitions, reason) in cases {
        let error = log
            .create_topic(name, TopicConfig::new(*partitions))
            .unwrap_err()
            .to_string();
        assert!(error.contains(reason), "{name:?}/{partitions}: {error}");
    }
    log.create_topic("ok", TopicConfig::new(1)).unwrap();
    assert!(
        log.create_topic("ok", TopicConfig::new(1))
            .unwrap_err()
            .to_string()
            .contains("already exists")
    );
    log.delete_topic("ok").unwrap();
    assert!(log.topic("ok").is_none());
    assert!(
        log.delete_topic("ok")
            .unwrap_err()
            .to_string()
            .contains("does not exist")
    );
}

/// A log on `storage` with its maintenance thread running (interval flushes).
fn background_log(storage: &SimStorage) -> Log {
    let options = LogOptions {
        storage: Arc::new(storage.clone()),
        clock: Arc::new(ManualClock::new(0)),
        background: true,
        ..LogOptions::default()
    };
    Log::open_with("/data", options).unwrap()
}

/// Polls (10 s at most) until the maintenance thread synced `partition`.
fn wait_for_a_background_sync(partition: &Partition) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while partition.sync_stats().syncs == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the maintenance thread never synced"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let storage = SimStorage::new();
    let log = background_log(&storage);
    let config = TopicConfig::new(1).with_fsync(FsyncPolicy::Interval(Duration::from_millis(20)));
    let p = log
        .create_topic("t", config)
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    p.append(&[record("k", "v")]).unwrap();
    assert_eq!(
        p.sync_stats().syncs,
        0,
        "interval appends are acknowledged before any sync"
    );
    wait_for_a_background_sync(&p);
    storage.power_cut(7);
    drop(p);
    std::mem::forget(log);
    let reopened = sim_log(&storage, Arc::new(ManualClock::new(0)));
    assert_eq!(
        reopened
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .high_watermark(),
        1
    );
}

/// The maintenance thread sleeps until its next deadline, which without an interval topic is
/// the next retention check (minutes away): a topic altered to `fsync = interval` wakes it.
#[test]
fn a_topic_altered_to_an_interval_is_synced_in_the_background() {
    let storage = SimStorage::new();
    let log = background_log(&storage);
    let never = TopicConfig::new(1).with_fsync(FsyncPolicy::Never);
    let p = log
        .create_topic("t", never.clone())
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    p.append(&[record("k", "v")]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(p.sync_stats().syncs, 0, "fsync = never: nothing syncs");
    log.alter_topic_config(
        "t",
        never.with_fsync(FsyncPolicy::Interval(Duration::from_millis(20))),
    )
    .unwrap();
    wait_for_a_background_sync(&p);
}

#[test]
fn a_data_directory_has_one_owning_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = Log::open(dir.path()).unwrap();
    // flock locks belong to open file descriptions, so a second open in this same process
    // is refused exactly as another process would be.
    let second = Log::open(dir.path());
    assert!(
        matches!(second, Err(keel_log::OpenError::Locked { .. })),
        "{second:?}"
    );
    drop(first);
    Log::open(dir.path()).expect("the lock is released when the log is dropped");
}

/// Writes of two producers followed by their waits share one fdatasync (the broker writes
/// idempotent batches under its producer state and waits outside it); nothing is visible or
/// acknowledged before the wait, and a failed sync fails every wait it would have covered.
#[test]
fn written_batches_share_one_sync_and_are_seen_only_once_durable() {
    let storage = SimStorage::new();
    let (_log, p) = one_partition(&storage);
    let checked = |value: &str| {
        let bytes = keel_log::encode_batch(&[record("k", value)], 1_000).unwrap();
        CheckedBatches::check(bytes, u32::MAX).unwrap()
    };
    let syncs = p.sync_stats().syncs;
    let first = p.write_checked_batches(checked("a")).unwrap();
    let second = p.write_checked_batches(checked("b")).unwrap();
    assert_eq!((first.base_offset, second.base_offset), (0, 1));
    assert_eq!(p.high_watermark(), 0, "not visible before a sync covers it");
    p.wait_durable(first.last_offset + 1).unwrap();
    p.wait_durable(second.last_offset + 1).unwrap();
    assert_eq!(p.sync_stats().syncs, syncs + 1, "one sync for both writers");
    assert_eq!(values(&p.read_records(0, 1 << 20).unwrap()), ["a", "b"]);

    let third = p.write_checked_batches(checked("c")).unwrap();
    storage.fail_next_syncs(1);
    assert!(matches!(
        p.wait_durable(third.last_offset + 1),
        Err(AppendError::Poisoned(_))
    ));
    assert!(matches!(
        p.wait_durable(third.last_offset + 1),
        Err(AppendError::Poisoned(_))
    ));
    assert_eq!(
        p.high_watermark(),
        2,
        "the unsynced batch never became visible"
    );
}

/// Counts the wakes of a task.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Wakes {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn poll(self: &Arc<Self>, wait: &mut DurableWait) -> Poll<()> {
        let waker = Waker::from(self.clone());
        Pin::new(wait).poll(&mut Context::from_waker(&waker))
    }
}

/// Async waiters (the broker's produce requests) hold no thread: the first claims the sync,
/// the others wait on it and are woken once a round covered them; one round serves every
/// writer before it. A claim dropped unrun (its request cancelled) wakes the waiters to claim
/// again, and a failed sync fails every waiter it would have covered.
#[test]
fn async_waiters_share_one_claimed_sync() {
    let storage = SimStorage::new();
    let (_log, p) = one_partition(&storage);
    let write = |value: &str| {
        let bytes = keel_log::encode_batch(&[record("k", value)], 1_000).unwrap();
        let checked = CheckedBatches::check(bytes, u32::MAX).unwrap();
        p.write_checked_batches(checked).unwrap().last_offset + 1
    };
    let wakes = Arc::new(Wakes::default());
    let syncs = p.sync_stats().syncs;
    let a = write("a");
    let DurableStep::Sync(claim) = p.durable_step(a) else {
        panic!("nobody syncs yet: the first waiter claims the sync");
    };
    let b = write("b");
    let DurableStep::Wait(mut wait_b) = p.durable_step(b) else {
        panic!("the sync is claimed: the second waiter waits");
    };
    assert!(wakes.poll(&mut wait_b).is_pending());
    assert_eq!(p.high_watermark(), 0, "not visible before a sync covers it");
    claim.run();
    assert_eq!(wakes.count(), 1, "woken by the round that covered it");
    assert!(wakes.poll(&mut wait_b).is_ready());
    assert!(matches!(p.durable_step(b), DurableStep::Done(Ok(()))));
    assert_eq!(
        p.sync_stats().syncs,
        syncs + 1,
        "one round for both writers"
    );
    assert_eq!(p.high_watermark(), 2);

    let c = write("c");
    let DurableStep::Sync(claim) = p.durable_step(c) else {
        panic!("the claim was given back");
    };
    let DurableStep::Wait(mut wait_c) = p.durable_step(c) else {
        panic!("claimed again");
    };
    assert!(wakes.poll(&mut wait_c).is_pending());
    drop(claim);
    assert_eq!(wakes.count(), 2, "a dropped claim wakes its waiters");
    assert!(wakes.poll(&mut wait_c).is_ready());
    let DurableStep::Sync(claim) = p.durable_step(c) else {
        panic!("a waiter of a dropped claim claims the sync itself");
    };

    let DurableStep::Wait(mut wait_c) = p.durable_step(c) else {
        panic!("claimed again");
    };
    assert!(wakes.poll(&mut wait_c).is_pending());
    storage.fail_next_syncs(1);
    claim.run();
    assert_eq!(wakes.count(), 3);
    assert!(wakes.poll(&mut wait_c).is_ready());
    assert!(matches!(
        p.durable_step(c),
        DurableStep::Done(Err(AppendError::Poisoned(_)))
    ));
    assert_eq!(
        p.high_watermark(),
        2,
        "the unsynced batch never became visible"
    );
}

#[test]
fn added_partitions_start_empty_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path()).unwrap();
        let topic = log.create_topic("grow", TopicConfig::new(2)).unwrap();
        topic
            .partition(1)
            .unwrap()
            .append(&[record("k", "old")])
            .unwrap();
        // What an addition cut by a crash before its commit leaves: never served.
        let leftover = dir.path().join("topics/grow/2");
        std::fs::create_dir_all(&leftover).unwrap();
        std::fs::write(leftover.join("00000000000000000000.log"), b"not a batch").unwrap();

        assert!(matches!(
            log.add_partitions("grow", 2),
            Err(keel_log::TopicError::PartitionsNotIncreased {
                have: 2,
                asked: 2,
                ..
            })
        ));
        let grown = log.add_partitions("grow", 4).unwrap();
        assert_eq!(grown.partitions().len(), 4);
        assert_eq!(
            topic.partitions().len(),
            2,
            "a topic fetched before keeps its count"
        );
        assert_eq!(grown.partition(2).unwrap().high_watermark(), 0);
        grown
            .partition(3)
            .unwrap()
            .append(&[record("k", "new")])
            .unwrap();
        assert_eq!(log.topic("grow").unwrap().partitions().len(), 4);
        assert!(matches!(
            log.add_partitions("missing", 3),
            Err(keel_log::TopicError::NotFound(_))
        ));
    }
    let log = Log::open(dir.path()).unwrap();
    let topic = log.topic("grow").unwrap();
    assert_eq!(topic.config().partitions, 4);
    let values = |p: u32| -> Vec<Option<Bytes>> {
        let partition = topic.partition(p).unwrap();
        partition
            .read_records(0, 1 << 20)
            .unwrap()
            .into_iter()
            .map(|r| r.value)
            .collect()
    };
    assert_eq!(values(1), [Some(Bytes::from("old"))]);
    assert!(values(2).is_empty());
    assert_eq!(values(3), [Some(Bytes::from("new"))]);
}

// Deleting records before an offset (Kafka's DeleteRecords): readers start there, whole
// segments before it go, and the new start survives a reopen and a power cut.

/// Record `i`, stamped `1_000 + i` ms, its value `i:` and 100 bytes of padding.
fn numbered(i: u64) -> NewRecord {
    let value = format!("{i}:{}", "x".repeat(100));
    let mut record = NewRecord::new(Some(Bytes::from("k")), Bytes::from(value));
    record.timestamp_ms = Some(1_000 + i as i64);
    record
}

fn first_value_of_t(log: &Log, offset: u64) -> Result<String, ReadError> {
    let records = log
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .read_records(offset, 1 << 20)?;
    let value = records[0].value.clone().unwrap();
    let value = String::from_utf8(value.to_vec()).unwrap();
    Ok(value.split(':').next().unwrap().to_owned())
}

/// A log of one topic "t" whose partition 0 holds records 0..30, one per append, in segments
/// of 1 KiB (about six records each).
fn filled(storage: &SimStorage) -> Log {
    let log = sim_log(storage, Arc::new(ManualClock::new(5_000)));
    let topic = log
        .create_topic("t", TopicConfig::new(1).with_segment_bytes(1024))
        .unwrap();
    let partition = topic.partition(0).unwrap();
    for i in 0..30 {
        partition.append(&[numbered(i)]).unwrap();
    }
    log.flush().unwrap();
    assert!(
        partition.segment_count() > 3,
        "{}",
        partition.segment_count()
    );
    log
}

#[test]
fn readers_start_at_the_new_log_start_and_whole_segments_before_it_go() {
    let storage = SimStorage::new();
    let log = filled(&storage);
    let partition = log.topic("t").unwrap().partition(0).unwrap().clone();
    let segments = partition.segment_count();

    assert_eq!(partition.delete_records_before(17).unwrap(), 17);
    assert_eq!(partition.log_start_offset(), 17);
    assert_eq!(partition.high_watermark(), 30);
    assert_eq!(first_value_of_t(&log, 17).unwrap(), "17");
    assert!(matches!(
        partition.read(16, 1 << 20),
        Err(ReadError::OffsetOutOfRange { log_start: 17, .. })
    ));
    assert!(partition.segment_count() < segments);
    // A timestamp before the start finds the start, not a deleted record.
    assert_eq!(partition.offset_for_timestamp(0).unwrap(), Some(17));

    // Deleting less than is already deleted changes nothing; past the end is refused.
    assert_eq!(partition.delete_records_before(5).unwrap(), 17);
    assert!(matches!(
        partition.delete_records_before(31),
        Err(ReadError::OffsetOutOfRange { offset: 31, .. })
    ));
    // Up to the high watermark: nothing readable, and appends go on from there.
    assert_eq!(partition.delete_records_before(30).unwrap(), 30);
    partition.append(&[numbered(30)]).unwrap();
    assert_eq!(first_value_of_t(&log, 30).unwrap(), "30");
}

#[test]
fn the_log_start_survives_a_reopen_and_a_power_cut() {
    let storage = SimStorage::new();
    let log = filled(&storage);
    log.topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .delete_records_before(13)
        .unwrap();
    drop(log);
    storage.power_cut(7);

    let log = sim_log(&storage, Arc::new(ManualClock::new(6_000)));
    let partition = log.topic("t").unwrap().partition(0).unwrap().clone();
    assert_eq!(partition.log_start_offset(), 13);
    assert_eq!(partition.high_watermark(), 30);
    assert_eq!(first_value_of_t(&log, 13).unwrap(), "13");
    assert!(matches!(
        partition.read(12, 1 << 20),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}
