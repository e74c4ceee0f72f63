//! The open-file budget (`LogOptions::open_files_max`): many more segment files than the
//! budget, written, compacted and read round-robin on the real disk with every record checked,
//! before and after a restart; a partition whose files were closed keeps its sticky fsync
//! failure.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use keel_log::sim::SimStorage;
use keel_log::{
    AppendError, CleanupPolicy, FsyncPolicy, Log, LogOptions, NewRecord, Partition, TopicConfig,
};

/// Far below the files the test opens: 30 partitions of about 5 segments, 3 files each.
const BUDGET: usize = 16;
const TOPICS: usize = 6;
const PARTITIONS: u32 = 5;
const ROUNDS: u64 = 30;
/// Topic 0 syncs every append; the last one is compacted (keys cycle over three).
const COMPACTED: usize = TOPICS - 1;
const KEYS: u64 = 3;

fn open(dir: &Path) -> Log {
    let options = LogOptions {
        background: false,
        open_files_max: BUDGET,
        ..LogOptions::default()
    };
    Log::open_with(dir, options).expect("open log")
}

/// The value written at `offset` of topic `t`'s partition `p`: about 100 bytes, so a 1 KiB
/// segment rolls every few appends.
fn value(t: usize, p: u32, offset: u64) -> String {
    format!("t{t}-p{p}-o{offset}-{}", "x".repeat(80))
}

fn key(t: usize, offset: u64) -> String {
    format!(
        "k{}",
        if t == COMPACTED {
            offset % KEYS
        } else {
            offset
        }
    )
}

fn partitions(log: &Log) -> Vec<(usize, u32, Arc<Partition>)> {
    (0..TOPICS)
        .flat_map(|t| {
            let topic = log.topic(&format!("t{t}")).expect("topic exists");
            (0..PARTITIONS).map(move |p| (t, p, topic.partition(p).unwrap().clone()))
        })
        .collect()
}

/// Appends `rounds` records to every partition in turn, checking the offsets and the budget.
fn write_round_robin(log: &Log, from: u64, to: u64) {
    let partitions = partitions(log);
    for offset in from..to {
        for (t, p, partition) in &partitions {
            let record = NewRecord::new(
                Some(Bytes::from(key(*t, offset))),
                Bytes::from(value(*t, *p, offset)),
            );
            let info = partition.append(&[record]).unwrap();
            assert_eq!(info.base_offset, offset, "t{t} p{p}");
        }
        let files = log.open_files();
        assert!(files.open <= BUDGET, "{files:?} after offset {offset}");
    }
}

/// Reads every partition whole, round-robin a chunk at a time, and checks every record: its
/// value is the one written at its offset, every offset is there (the compacted topic keeps at
/// least the newest record of each key), and nothing is past `end`.
fn check_round_robin(log: &Log, end: u64) {
    let partitions = partitions(log);
    let mut next: Vec<u64> = partitions
        .iter()
        .map(|(_, _, p)| p.log_start_offset())
        .collect();
    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); partitions.len()];
    while next.iter().any(|&n| n < end) {
        for (i, (t, p, partition)) in partitions.iter().enumerate() {
            if next[i] >= end {
                continue;
            }
            let records = partition.read_records(next[i], 512).unwrap();
            assert!(!records.is_empty(), "t{t} p{p} stopped at {}", next[i]);
            for record in records {
                let expected = value(*t, *p, record.offset);
                assert_eq!(record.value.as_deref(), Some(expected.as_bytes()));
                assert_eq!(
                    record.key.as_deref(),
                    Some(key(*t, record.offset).as_bytes())
                );
                seen[i].push(record.offset);
                next[i] = record.offset + 1;
            }
        }
        let files = log.open_files();
        assert!(files.open <= BUDGET, "{files:?} while reading");
    }
    for (i, (t, p, _)) in partitions.iter().enumerate() {
        if *t == COMPACTED {
            for newest in end - KEYS..end {
                assert!(seen[i].contains(&newest), "t{t} p{p} lost offset {newest}");
            }
        } else {
            assert_eq!(seen[i], (0..end).collect::<Vec<_>>(), "t{t} p{p}");
        }
    }
}

#[test]
fn more_segment_files_than_the_budget_are_written_compacted_and_read_round_robin() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for t in 0..TOPICS {
        let mut config = TopicConfig::new(PARTITIONS).with_segment_bytes(1024);
        if t != 0 {
            config = config.with_fsync(FsyncPolicy::Never);
        }
        if t == COMPACTED {
            config = config.with_cleanup(CleanupPolicy::Compact);
        }
        log.create_topic(&format!("t{t}"), config).unwrap();
    }
    write_round_robin(&log, 0, ROUNDS);
    let segments: usize = partitions(&log)
        .iter()
        .map(|(_, _, p)| p.segment_count())
        .sum();
    assert!(3 * segments > 10 * BUDGET, "only {segments} segments");
    // Compaction renames cleaned segments over the old ones while their files may be closed.
    log.run_maintenance().unwrap();
    check_round_robin(&log, ROUNDS);
    let files = log.open_files();
    assert!(files.closes > 0 && files.reopens > 0, "{files:?}");
    assert_eq!(files.max, BUDGET);
    drop(log);

    // A restart recovers every partition within the budget, and the writers reopen.
    let log = open(dir.path());
    assert!(log.open_files().open <= BUDGET, "{:?}", log.open_files());
    check_round_robin(&log, ROUNDS);
    write_round_robin(&log, ROUNDS, ROUNDS + 5);
    check_round_robin(&log, ROUNDS + 5);
}

#[test]
fn a_partition_whose_files_were_closed_keeps_its_sticky_fsync_failure() {
    let storage = SimStorage::new();
    let options = LogOptions {
        storage: Arc::new(storage.clone()),
        background: false,
        open_files_max: 4,
        ..LogOptions::default()
    };
    let log = Log::open_with("/data", options).unwrap();
    let failing = log.create_topic("failing", TopicConfig::new(1)).unwrap();
    let partition = failing.partition(0).unwrap().clone();
    let record = |value: &'static str| NewRecord::new(None::<Bytes>, Bytes::from(value));
    partition.append(&[record("kept")]).unwrap();
    storage.fail_next_syncs(1);
    assert!(poisoned(partition.append(&[record("lost")])));

    // Twelve newer files push the failing partition's three out of a budget of four.
    let closes = log.open_files().closes;
    let others = log
        .create_topic("others", TopicConfig::new(4).with_fsync(FsyncPolicy::Never))
        .unwrap();
    for other in others.partitions() {
        other.append(&[record("other")]).unwrap();
    }
    let files = log.open_files();
    assert!(files.open <= 4 && files.closes >= closes + 3, "{files:?}");

    // Its files reopen for reads and writes, and it still refuses appends and flushes.
    let reopens = log.open_files().reopens;
    let values: Vec<_> = partition
        .read_records(0, 1 << 20)
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, [Bytes::from("kept")]);
    assert!(log.open_files().reopens > reopens);
    assert!(poisoned(partition.append(&[record("after")])));
    assert!(matches!(partition.flush(), Err(AppendError::Poisoned(_))));
    let failed = log.failed_partitions();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].0.as_str(), failed[0].1), ("failing", 0));
}

fn poisoned<T>(result: Result<T, AppendError>) -> bool {
    matches!(result, Err(AppendError::Poisoned(_)))
}
