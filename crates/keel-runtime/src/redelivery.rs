//! Redelivery: `<topic>.retry`, the topic through which an event reaches *one* group again —
//! a retry-topic retry ([`RetryMode::Topic`](crate::RetryMode::Topic)) or a dead letter
//! replayed to the group that gave up on it (`keel dlq replay --to-group`).
//!
//! Every route on `<topic>` also consumes `<topic>.retry` as the same group, with the same
//! handler and inbox. A redelivery record carries the event unchanged (key, value, `ce_*`
//! headers, so the event id and an inbox still recognise it) plus the `keel_retry_*` headers
//! below ([`Redelivery`]): the group it is addressed to, the attempts already made, when it
//! is due, and where the event was first read. Other groups reading the topic finish such a
//! record without handling it, so they never see the event; the addressed group waits until
//! it is due, then runs the remaining attempts.
//!
//! A redelivery read before it is due is held by the partition worker ([`NotDue`]) rather
//! than started: a waiting chain would hold one of the partition's `concurrency` slots for
//! the whole backoff, so a few long waits would starve due redeliveries behind them.
//!
//! Not here: when to redeliver (`pipeline.rs`) and the replay tool
//! (`keel dlq replay --to-group`).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

use keel_core::{Header, NewRecord, Record, header_text};
use tokio::time::Instant;

use crate::dead_letter::text_headers;
use crate::limits::RETRY_SUFFIX;

/// Header: the consumer group the record is addressed to; no other group handles it.
pub const RETRY_GROUP_HEADER: &str = "keel_retry_group";
/// Header: handler attempts already made (decimal; 0 for a replayed dead letter).
pub const RETRY_ATTEMPTS_HEADER: &str = "keel_retry_attempts";
/// Header: wall-clock time before which the next attempt does not start, ms since the epoch.
pub const RETRY_DUE_HEADER: &str = "keel_retry_due_ms";
/// Header: the topic the event was first read from.
pub const RETRY_TOPIC_HEADER: &str = "keel_retry_topic";
/// Header: its partition there (decimal).
pub const RETRY_PARTITION_HEADER: &str = "keel_retry_partition";
/// Header: its offset there (decimal).
pub const RETRY_OFFSET_HEADER: &str = "keel_retry_offset";
/// Header: wall-clock time of the first failure, ms since the epoch; absent for a replay.
pub const RETRY_FIRST_FAILURE_HEADER: &str = "keel_retry_first_failure_ms";

/// Prefix of every redelivery header; a redelivery record's old ones are replaced.
const RETRY_HEADER_PREFIX: &str = "keel_retry_";

/// The redelivery topic of `topic`: `<topic>.retry`.
pub fn retry_topic(topic: &str) -> String {
    format!("{topic}{RETRY_SUFFIX}")
}

/// What a redelivery record says beyond the event: its `keel_retry_*` headers, encoded and
/// decoded here, next to each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redelivery {
    /// The group the record is addressed to.
    pub group: String,
    /// Handler attempts already made.
    pub attempts: u32,
    /// Not before this wall-clock time, ms since the epoch.
    pub due_ms: i64,
    /// The topic the event was first read from.
    pub topic: String,
    /// Its partition there.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
    /// The first failure, ms since the epoch; `None` for a replayed dead letter.
    pub first_failure_ms: Option<i64>,
}

impl Redelivery {
    /// The `keel_retry_*` headers, one per field (the first failure only when known).
    pub fn encode(&self) -> Vec<Header> {
        let mut fields = vec![
            (RETRY_GROUP_HEADER, self.group.clone()),
            (RETRY_ATTEMPTS_HEADER, self.attempts.to_string()),
            (RETRY_DUE_HEADER, self.due_ms.to_string()),
            (RETRY_TOPIC_HEADER, self.topic.clone()),
            (RETRY_PARTITION_HEADER, self.partition.to_string()),
            (RETRY_OFFSET_HEADER, self.offset.to_string()),
        ];
        if let Some(first) = self.first_failure_ms {
            fields.push((RETRY_FIRST_FAILURE_HEADER, first.to_string()));
        }
        text_headers(fields)
    }

    /// Decodes the `keel_retry_*` headers among `headers`; `None` if one is missing or
    /// malformed (the record was not written as a redelivery).
    pub fn decode(headers: &[Header]) -> Option<Redelivery> {
        let text = |name| header_text(headers, name);
        let first_failure_ms = match text(RETRY_FIRST_FAILURE_HEADER) {
            Some(value) => Some(value.parse().ok()?),
            None => None,
        };
        Some(Redelivery {
            group: text(RETRY_GROUP_HEADER)?.to_string(),
            attempts: text(RETRY_ATTEMPTS_HEADER)?.parse().ok()?,
            due_ms: text(RETRY_DUE_HEADER)?.parse().ok()?,
            topic: text(RETRY_TOPIC_HEADER)?.to_string(),
            partition: text(RETRY_PARTITION_HEADER)?.parse().ok()?,
            offset: text(RETRY_OFFSET_HEADER)?.parse().ok()?,
            first_failure_ms,
        })
    }
}

/// The redelivery record of `record`: its key and value, its headers without any
/// `keel_retry_*` or `keel_dlq_*` ones, plus `redelivery`'s.
pub(crate) fn redelivery_record(record: &Record, redelivery: &Redelivery) -> NewRecord {
    let mut headers: Vec<Header> = record
        .headers
        .iter()
        .filter(|h| !h.key.starts_with(RETRY_HEADER_PREFIX) && !h.key.starts_with("keel_dlq_"))
        .cloned()
        .collect();
    headers.extend(redelivery.encode());
    NewRecord {
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
        timestamp_ms: None,
    }
}

/// The redeliveries of one partition addressed to this group and read before they were due,
/// earliest first. They stay unfinished in the schedule (the commit point does not pass
/// them) but run no chain until due, so they take no `concurrency` slot; they are bounded by
/// the partition's `in_flight_max`, as every fetched event is.
///
/// Due times are measured on tokio's clock from the moment a record is read (`due_ms` minus
/// the transport clock's now), as the chain's own wait does, so paused-time tests stay exact.
#[derive(Debug, Default)]
pub(crate) struct NotDue {
    by_due: BinaryHeap<Reverse<Held>>,
}

/// One held redelivery.
#[derive(Debug)]
struct Held {
    due: Instant,
    offset: u64,
    record: Record,
}

impl NotDue {
    /// Holds `record` if it is a redelivery for `group` not due at `now_ms` (the transport's clock);
    /// otherwise gives it back to be started now. Records for other groups and undecodable
    /// ones are given back: their chain finishes them at once.
    pub(crate) fn hold(
        &mut self,
        group: &str,
        offset: u64,
        record: Record,
        now_ms: i64,
    ) -> Option<Record> {
        let wait_ms = match Redelivery::decode(&record.headers) {
            Some(r) if r.group == group => r.due_ms.saturating_sub(now_ms),
            _ => 0,
        };
        if wait_ms <= 0 {
            return Some(record);
        }
        let due = Instant::now() + Duration::from_millis(wait_ms.unsigned_abs());
        self.by_due.push(Reverse(Held {
            due,
            offset,
            record,
        }));
        None
    }

    /// The earliest held record if it is due now.
    pub(crate) fn take_due(&mut self) -> Option<(u64, Record)> {
        let Reverse(head) = self.by_due.peek()?;
        if head.due > Instant::now() {
            return None;
        }
        let Reverse(held) = self.by_due.pop()?;
        Some((held.offset, held.record))
    }

    /// When the earliest held record comes due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.by_due.peek().map(|Reverse(held)| held.due)
    }

    /// Lets go of every held record (the partition is draining), returning their offsets.
    pub(crate) fn release_all(&mut self) -> Vec<u64> {
        self.by_due
            .drain()
            .map(|Reverse(held)| held.offset)
            .collect()
    }

    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.by_due.len()
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    /// By due time, then offset: ties start in log order.
    fn cmp(&self, other: &Held) -> Ordering {
        (self.due, self.offset).cmp(&(other.due, other.offset))
    }
}

/// Whether `name` is a header only a redelivery record carries, so a dead letter made of a
/// redelivered event drops it.
pub fn is_redelivery_header(name: &str) -> bool {
    name.starts_with(RETRY_HEADER_PREFIX)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn headers_round_trip_with_and_without_a_first_failure() {
        for first_failure_ms in [Some(1_700_000_000_000), None] {
            let redelivery = Redelivery {
                group: "billing".into(),
                attempts: 2,
                due_ms: 1_700_000_000_500,
                topic: "orders".into(),
                partition: 3,
                offset: 42,
                first_failure_ms,
            };
            assert_eq!(Redelivery::decode(&redelivery.encode()), Some(redelivery));
        }
    }

    #[test]
    fn a_missing_or_malformed_header_is_not_a_redelivery() {
        let good = Redelivery {
            group: "g".into(),
            attempts: 1,
            due_ms: 5,
            topic: "t".into(),
            partition: 0,
            offset: 0,
            first_failure_ms: None,
        }
        .encode();
        let without_due: Vec<Header> = good
            .iter()
            .filter(|h| h.key != RETRY_DUE_HEADER)
            .cloned()
            .collect();
        assert_eq!(Redelivery::decode(&without_due), None);
        let mut bad_attempts = good.clone();
        bad_attempts[1].value = Some(Bytes::from_static(b"two"));
        assert_eq!(Redelivery::decode(&bad_attempts), None);
    }
}
