//! Helpers shared by the runtime's integration tests: a log in a temporary directory, topics
//! without fsync, the `Step` test event, fast retries and eager commits, waiting in paused
//! time, and reading back what a topic holds.
//!
//! Not every test binary uses every helper (`metrics.rs` builds its own log on a manual
//! clock and its own events), so the binaries that use a subset allow dead code on
//! `mod support`.

use std::sync::Arc;
use std::time::Duration;

use keel_core::{Event, EventType};
use keel_log::{FsyncPolicy, Log, LogOptions, Record, TopicConfig};
use keel_runtime::{ConsumerPolicy, RetryPolicy};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// The typed test event: a key and a sequence number within the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Step {
    pub(crate) key: String,
    pub(crate) seq: u32,
}

impl EventType for Step {
    const TYPE: &'static str = "test.step";
    const VERSION: u32 = 1;
}

/// A `Step` event with `key` as its partition key.
pub(crate) fn step(key: &str, seq: u32) -> Event {
    let step = Step {
        key: key.to_string(),
        seq,
    };
    Event::from_typed("/test", &step)
        .expect("typed event")
        .with_partition_key(key)
}

/// A log in `dir` without background threads.
pub(crate) fn open_log(dir: &std::path::Path) -> Arc<Log> {
    let options = LogOptions {
        background: false,
        ..LogOptions::default()
    };
    Arc::new(Log::open_with(dir, options).expect("open log"))
}

/// Creates `name` with `partitions` partitions and no fsync.
pub(crate) fn create_topic(log: &Log, name: &str, partitions: u32) {
    let config = TopicConfig::new(partitions).with_fsync(FsyncPolicy::Never);
    log.create_topic(name, config).expect("create topic");
}

/// Fast retries, so tests show the policy's effect without long waits.
pub(crate) fn quick_retry(attempts_max: u32) -> RetryPolicy {
    RetryPolicy {
        attempts_max,
        delay_min: Duration::from_millis(100),
        delay_max: Duration::from_secs(1),
        multiplier: 2,
        jitter_seed: Some(42),
    }
}

/// A commit after every finished event, so committed offsets are exact when a test looks.
pub(crate) fn eager_commits() -> ConsumerPolicy {
    ConsumerPolicy {
        commit_interval: Duration::ZERO,
        ..ConsumerPolicy::default()
    }
}

/// Waits (in paused time) until `done` holds, failing after ten virtual minutes.
pub(crate) async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The offset `group` committed in `topic`'s `partition`, 0 when none.
pub(crate) fn committed(log: &Log, group: &str, topic: &str, partition: u32) -> u64 {
    log.group_offsets()
        .fetch(group, topic, partition)
        .map_or(0, |c| c.offset)
}

/// Every stored record of `topic` with its partition, partition by partition.
pub(crate) fn read_all(log: &Log, topic: &str) -> Vec<(u32, Record)> {
    let topic = log.topic(topic).expect("topic");
    let mut out = Vec::new();
    for (index, partition) in topic.partitions().iter().enumerate() {
        let mut offset = partition.log_start_offset();
        while offset < partition.high_watermark() {
            let records = partition.read_records(offset, 1 << 20).expect("read");
            offset = records.last().expect("records").offset + 1;
            out.extend(records.into_iter().map(|r| (index as u32, r)));
        }
    }
    out
}

/// The header `name` of `record` as text; panics when it is missing.
pub(crate) fn header<'a>(record: &'a Record, name: &str) -> &'a str {
    let value = record
        .headers
        .iter()
        .find(|h| h.key == name)
        .unwrap_or_else(|| panic!("header {name} missing"))
        .value
        .as_ref()
        .expect("header value");
    std::str::from_utf8(value).expect("utf-8 header")
}
