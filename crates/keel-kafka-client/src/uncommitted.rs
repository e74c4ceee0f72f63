//! [`Uncommitted`]: the records a Kafka member fetched and has not committed yet, per
//! partition, so the lag gauge can say how long the next record to handle has waited
//! (`keel_consumer_lag_seconds`); librdkafka's statistics give lag in events only.
//!
//! A member reads each partition in offset order from its committed offset and commits the
//! lowest offset it has not finished, so the record at the commit — the oldest unhandled
//! one, the embedded log's measure — is the first record it holds past its last commit, or
//! the next one it fetches.
//!
//! Not here: lag in events (librdkafka's statistics, `member.rs`) or how gauges are encoded
//! (`keel_runtime::Metrics`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use keel_core::Record;
use keel_runtime::admin::groups::age_ms;

/// The fetched, uncommitted records of one member's partitions. Each partition holds at
/// most the records of the runtime's in-flight window (the runtime fetches only while it
/// has room), 16 bytes apiece.
#[derive(Debug, Default)]
pub(crate) struct Uncommitted {
    partitions: Mutex<BTreeMap<u32, VecDeque<Held>>>,
}

/// One fetched record: where it is and when it was written.
#[derive(Debug, Clone, Copy)]
struct Held {
    offset: u64,
    timestamp_ms: i64,
}

impl Uncommitted {
    /// Forgets what `partition` held: a lease starts, or restarts from the commit, and its
    /// records come again.
    pub(crate) fn reset(&self, partition: u32) {
        self.partitions().remove(&partition);
    }

    /// Notes `records`, fetched from `partition` in offset order, but none below `from`: the
    /// runtime skips those (they were handled before a restart).
    pub(crate) fn fetched(&self, partition: u32, records: &[Record], from: u64) {
        let mut partitions = self.partitions();
        let held = partitions.entry(partition).or_default();
        held.extend(records.iter().filter(|r| r.offset >= from).map(|r| Held {
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
        }));
    }

    /// Notes that the group stored `offset` as `partition`'s commit: the records below it
    /// are finished.
    pub(crate) fn committed(&self, partition: u32, offset: u64) {
        let mut partitions = self.partitions();
        let Some(held) = partitions.get_mut(&partition) else {
            return;
        };
        while held.front().is_some_and(|h| h.offset < offset) {
            held.pop_front();
        }
    }

    /// How long, at `now_ms`, the oldest record this member holds in `partition` and has
    /// not committed has waited since it was written, in ms.
    ///
    /// 0 when it holds none: every record it fetched is committed, so it is caught up with
    /// what reached it. Records librdkafka has not handed over yet — just after an
    /// assignment, or written since the last fetch — are not seen until they are fetched
    /// (librdkafka prefetches, so within a fetch round trip while the runtime has room);
    /// from then on their age counts from when they were written.
    pub(crate) fn age_ms(&self, partition: u32, now_ms: i64) -> u64 {
        self.partitions()
            .get(&partition)
            .and_then(VecDeque::front)
            .map_or(0, |oldest| age_ms(now_ms, oldest.timestamp_ms))
    }

    fn partitions(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, VecDeque<Held>>> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64, timestamp_ms: i64) -> Record {
        Record {
            offset,
            timestamp_ms,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    /// Fetches `(offset, timestamp)` records from offset `from`, commits `commit` (if any),
    /// and checks the age at 1,000 ms.
    fn check(fetched: &[(u64, i64)], from: u64, commit: Option<u64>, age_at_1000: u64) {
        let uncommitted = Uncommitted::default();
        let records: Vec<Record> = fetched.iter().map(|&(o, ts)| record(o, ts)).collect();
        uncommitted.fetched(0, &records, from);
        if let Some(offset) = commit {
            uncommitted.committed(0, offset);
        }
        assert_eq!(
            uncommitted.age_ms(0, 1_000),
            age_at_1000,
            "fetched {fetched:?} from {from}, committed {commit:?}"
        );
    }

    #[test]
    fn the_age_is_the_first_uncommitted_records() {
        check(&[], 0, None, 0);
        check(&[(5, 100), (6, 900)], 5, None, 900);
        check(&[(5, 100), (6, 900)], 5, Some(6), 100);
        check(&[(5, 100), (6, 900)], 5, Some(7), 0);
        // Skipped records (below the fetch's start) are never held.
        check(&[(4, 0), (5, 100)], 5, None, 900);
        // A timestamp ahead of the clock is age 0, and timestamps need not grow with offsets.
        check(&[(5, 2_000), (6, 100)], 5, None, 0);
        check(&[(5, 2_000), (6, 100)], 5, Some(6), 900);
    }

    #[test]
    fn a_reset_forgets_a_partition_and_only_it() {
        let uncommitted = Uncommitted::default();
        uncommitted.fetched(0, &[record(0, 100)], 0);
        uncommitted.fetched(1, &[record(0, 200)], 0);
        uncommitted.reset(0);
        assert_eq!(uncommitted.age_ms(0, 1_000), 0);
        assert_eq!(uncommitted.age_ms(1, 1_000), 800);
        uncommitted.committed(2, 10);
        assert_eq!(uncommitted.age_ms(2, 1_000), 0);
    }
}
