//! The lag and dead-letter gauges of the embedded log: `LogGauges`, the runtime's
//! [`GaugeSource`] read from the log at each scrape — the committed offsets of every group
//! (whichever process or tool consumed), the high watermarks, one record timestamp per
//! lagging partition, and the `<topic>.dlq` topics.
//!
//! Not here: what lag means (`lag.rs`, shared with `keel groups lag`) or how gauges are
//! encoded (the runtime's `Metrics`).

use std::sync::Arc;

use keel_core::Clock;
use keel_log::{Log, ReadError};
use keel_runtime::limits::{DLQ_SUFFIX, LAG_PARTITIONS_MAX};
use keel_runtime::{ConsumerLag, DeadLetterDepth, GaugeSource};

use crate::lag::{Lag, age_ms, oldest_timestamp_ms};

/// The gauges of one log, with ages measured against the bus's clock.
#[derive(Debug)]
pub(crate) struct LogGauges {
    log: Arc<Log>,
    clock: Arc<dyn Clock>,
}

impl LogGauges {
    pub(crate) fn new(log: Arc<Log>, clock: Arc<dyn Clock>) -> LogGauges {
        LogGauges { log, clock }
    }
}

impl GaugeSource for LogGauges {
    /// Only partitions with a commit are measured: see `lag.rs` for why this differs from
    /// `keel groups lag`. Reading stops one past [`LAG_PARTITIONS_MAX`], so the runtime
    /// can say the rest were left out.
    fn lags(&self) -> Vec<ConsumerLag> {
        let now_ms = self.clock.now_ms();
        let offsets = self.log.group_offsets();
        let mut lags = Vec::new();
        for group in offsets.groups() {
            for (topic, partition, committed) in offsets.group(&group) {
                if lags.len() > LAG_PARTITIONS_MAX {
                    return lags;
                }
                let Some(log_partition) = self
                    .log
                    .topic(&topic)
                    .and_then(|t| t.partition(partition).cloned())
                else {
                    continue;
                };
                let lag = Lag::of(&log_partition, Some(committed.offset));
                lags.push(ConsumerLag {
                    topic,
                    group: group.clone(),
                    partition,
                    events: lag.events(),
                    age_ms: unread_as_none(lag.age_ms(&log_partition, now_ms)),
                });
            }
        }
        lags
    }

    fn dead_letters(&self) -> Vec<DeadLetterDepth> {
        let now_ms = self.clock.now_ms();
        let mut out = Vec::new();
        for topic in self.log.topics() {
            let Some(source) = topic.name().strip_suffix(DLQ_SUFFIX) else {
                continue;
            };
            let mut depth = 0;
            let mut oldest_ms: Option<i64> = None;
            for partition in topic.partitions() {
                let start = partition.log_start_offset();
                let stored = partition.high_watermark().saturating_sub(start);
                depth += stored;
                if stored > 0
                    && let Some(ts) = unread_as_none(oldest_timestamp_ms(partition, start))
                {
                    oldest_ms = Some(oldest_ms.map_or(ts, |o| o.min(ts)));
                }
            }
            out.push(DeadLetterDepth {
                topic: source.to_string(),
                depth,
                oldest_age_ms: oldest_ms.map(|ts| age_ms(now_ms, ts)),
            });
        }
        out
    }
}

/// A value read from the log, or `None` when the read failed: the gauge is then left out of
/// this scrape rather than reported wrong.
fn unread_as_none<T>(read: Result<Option<T>, ReadError>) -> Option<T> {
    read.unwrap_or_else(|error| {
        tracing::debug!(%error, "metrics could not read a record timestamp");
        None
    })
}
