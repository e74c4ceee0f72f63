//! Compressed batches written by a real client (kafka-python; see `fixtures/make_fixtures.py`)
//! are stored as received and read back record for record.

use std::sync::Arc;

use keel_log::sim::SimStorage;
use keel_log::{Log, LogOptions, ManualClock, TopicConfig};

fn check(codec: &str) {
    let batch = std::fs::read(format!(
        "{}/tests/fixtures/batch-{codec}.bin",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
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
    partition
        .append_batches(b"".to_vec())
        .expect_err("empty append is refused");
    partition.append_batches(batch.clone()).expect("append");
    let second = partition.append_batches(batch).expect("append again");
    assert_eq!(
        second.base_offset, 5,
        "{codec}: base offset rewritten on append"
    );
    let records = partition.read_records(0, 1 << 20).expect("read");
    assert_eq!(records.len(), 10, "{codec}");
    for (i, record) in records.iter().enumerate() {
        let n = i % 5;
        assert_eq!(record.offset, i as u64, "{codec}");
        assert_eq!(record.timestamp_ms, 1_700_000_000_000 + n as i64, "{codec}");
        let expected_key = (n != 4).then(|| format!("key-{n}"));
        assert_eq!(
            record.key.as_deref(),
            expected_key.as_deref().map(str::as_bytes),
            "{codec}"
        );
        assert_eq!(
            record.value.as_deref(),
            Some(format!("value-{n}-").repeat(20).as_bytes()),
            "{codec}"
        );
        assert_eq!(record.headers.len(), 2, "{codec}");
        assert_eq!(record.headers[0].key, "ce_type", "{codec}");
        assert_eq!(
            record.headers[1].value.as_deref(),
            Some(n.to_string().as_bytes()),
            "{codec}"
        );
    }
}

#[test]
fn uncompressed() {
    check("none");
}

#[test]
fn gzip() {
    check("gzip");
}

#[test]
fn snappy() {
    check("snappy");
}

#[test]
fn lz4() {
    check("lz4");
}

#[test]
fn zstd() {
    check("zstd");
}
