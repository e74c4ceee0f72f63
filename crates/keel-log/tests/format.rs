//! The on-disk format is a contract (`docs/log-format.md`): a data directory written by
//! format version 1 is kept in `fixtures/format-v1` and must stay readable, and writing the
//! same records today must produce the same bytes.
//!
//! Regenerate the fixture only for a deliberate format change (with a new version directory):
//! `KEEL_WRITE_FORMAT_FIXTURE=1 cargo test -p keel-log --test format`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use keel_log::{FsyncPolicy, Log, LogOptions, ManualClock, NewRecord, TopicConfig};

const FILES: &[&str] = &[
    "topics/events/topic.conf",
    "topics/events/0/00000000000000000000.log",
    "topics/events/0/00000000000000000000.index",
    "topics/events/0/00000000000000000000.timeindex",
    "topics/events/0/00000000000000000006.log",
    "topics/events/0/00000000000000000006.index",
    "topics/events/0/00000000000000000006.timeindex",
    "topics/events/0/00000000000000000012.log",
    "topics/events/0/00000000000000000012.index",
    "topics/events/0/00000000000000000012.timeindex",
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1")
}

fn options() -> LogOptions {
    LogOptions {
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        background: false,
        ..LogOptions::default()
    }
}

fn write_sample(root: &Path) {
    let log = Log::open_with(root, options()).expect("open");
    let config = TopicConfig::new(1)
        .with_segment_bytes(1024)
        .with_fsync(FsyncPolicy::Always);
    let partition = log
        .create_topic("events", config)
        .expect("create")
        .partition(0)
        .expect("p0")
        .clone();
    for i in 0..16i64 {
        let record = NewRecord {
            key: Some(Bytes::from(format!("key-{}", i % 3))),
            value: Some(Bytes::from(format!(
                "{{\"n\":{i},\"pad\":\"{}\"}}",
                "x".repeat(60)
            ))),
            headers: vec![keel_log::Header {
                key: "ce_id".into(),
                value: Some(Bytes::from(format!("id-{i}"))),
            }],
            timestamp_ms: Some(1_700_000_000_000 + i * 1000),
        };
        partition.append(&[record]).expect("append");
    }
}

#[test]
fn version_1_data_directory_is_still_readable() {
    let copy = tempfile::tempdir().expect("tempdir");
    for file in FILES {
        let target = copy.path().join(file);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(fixture_dir().join(file), &target).expect("copy fixture");
    }
    let log = Log::open_with(copy.path(), options()).expect("open fixture");
    assert!(
        log.recovery_report().repaired.is_empty(),
        "a clean fixture needs no repair"
    );
    let partition = log
        .topic("events")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();
    assert_eq!(partition.high_watermark(), 16);
    assert_eq!(partition.segment_count(), 3);
    let mut records = Vec::new();
    for segment_base in [0, 6, 12] {
        records.extend(partition.read_records(segment_base, 1 << 20).expect("read"));
    }
    assert_eq!(records.len(), 16);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.offset, i as u64);
        assert_eq!(
            record.key.as_deref(),
            Some(format!("key-{}", i % 3).as_bytes())
        );
        assert_eq!(
            record.headers[0].value.as_deref(),
            Some(format!("id-{i}").as_bytes())
        );
    }
    assert_eq!(
        partition
            .offset_for_timestamp(1_700_000_005_500)
            .expect("time lookup"),
        Some(6)
    );
}

#[test]
fn writing_today_produces_the_version_1_bytes() {
    let fresh = tempfile::tempdir().expect("tempdir");
    write_sample(fresh.path());
    if std::env::var_os("KEEL_WRITE_FORMAT_FIXTURE").is_some() {
        for file in FILES {
            let target = fixture_dir().join(file);
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            std::fs::copy(fresh.path().join(file), target).expect("write fixture");
        }
    }
    for file in FILES {
        let expected = std::fs::read(fixture_dir().join(file)).expect("fixture file");
        let actual = std::fs::read(fresh.path().join(file)).expect("written file");
        assert!(
            expected == actual,
            "{file} differs from format v1 ({} vs {} bytes)",
            actual.len(),
            expected.len()
        );
    }
}
