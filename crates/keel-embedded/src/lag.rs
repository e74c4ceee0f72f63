//! Consumer lag of one partition on the log, for the `keel_consumer_lag_*` gauges
//! (`gauges.rs`): how many events a group has not consumed yet, and how old the oldest of
//! them is. The formula (`next_offset`, `age_ms`) is `keel_runtime::admin::groups`', the
//! one `keel groups lag` uses on every transport, so an operator never sees two answers.
//!
//! Not here: which partitions to measure, which is where the two callers honestly differ.
//!
//! | caller | partitions measured | a partition without a commit |
//! |---|---|---|
//! | `admin::groups` | every partition of each topic the group committed in | measured from the log start, as a new group starting at the earliest event would read |
//! | metrics | only partitions with a committed offset | no series |
//!
//! The admin tool answers "what would this group still read", so it shows partitions the
//! group never reached. The metrics follow commits so that a series appears when a route
//! first commits and the number of series is bounded by what was committed, not by how many
//! partitions the topics have; a partition nobody consumes is not an alert.

use keel_log::{Partition, ReadError};
pub(crate) use keel_runtime::admin::groups::age_ms;
use keel_runtime::admin::groups::next_offset;

/// Where a consumer stands in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lag {
    /// The first offset still stored.
    pub(crate) log_start_offset: u64,
    /// One past the last readable offset.
    pub(crate) high_watermark: u64,
    /// The next offset the consumer reads: its committed offset (the log start without one),
    /// clamped to the stored range. Events retention removed cannot be consumed any more, so
    /// they are not lag.
    pub(crate) next_offset: u64,
}

impl Lag {
    /// The lag of a consumer whose committed offset in `partition` is `committed` (`None`:
    /// nothing committed, measured from the log start). Reads no records.
    pub(crate) fn of(partition: &Partition, committed: Option<u64>) -> Lag {
        let log_start_offset = partition.log_start_offset();
        let high_watermark = partition.high_watermark();
        Lag {
            log_start_offset,
            high_watermark,
            next_offset: next_offset(log_start_offset, high_watermark, committed),
        }
    }

    /// Events not yet consumed: high watermark − next offset.
    pub(crate) fn events(&self) -> u64 {
        self.high_watermark - self.next_offset
    }

    /// Age of the oldest unconsumed event (the one at the next offset) at `now_ms`, in ms;
    /// `Some(0)` when caught up, `None` when that record cannot be found (compaction removed
    /// it together with the rest of its batch). Reads one batch.
    pub(crate) fn age_ms(
        &self,
        partition: &Partition,
        now_ms: i64,
    ) -> Result<Option<u64>, ReadError> {
        if self.events() == 0 {
            return Ok(Some(0));
        }
        Ok(oldest_timestamp_ms(partition, self.next_offset)?.map(|ts| age_ms(now_ms, ts)))
    }
}

/// The timestamp of the record at `offset`, or of the first one after it in the same batch;
/// `None` when that batch holds no such record.
pub(crate) fn oldest_timestamp_ms(
    partition: &Partition,
    offset: u64,
) -> Result<Option<i64>, ReadError> {
    // At least one whole batch is returned however small the limit, and it may begin before
    // `offset`.
    let records = partition.read_records(offset, 1)?;
    Ok(records
        .iter()
        .find(|r| r.offset >= offset)
        .map(|r| r.timestamp_ms))
}
