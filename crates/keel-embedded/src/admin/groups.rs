//! Consumer groups as an operator sees them: which groups exist, how far behind each one is
//! per partition (in events and in age of the oldest unconsumed event), and moving a group's
//! committed offsets (reset to earliest, latest, an offset or a time).
//!
//! A group exists once it has committed an offset. Lag is measured against the committed
//! offset, which is the lowest unfinished offset of the partition (see the crate docs), so a
//! partition with events in flight shows them as lag. Not here: live membership (members and
//! generations live in the in-process coordinator and are gone when the process is).

use keel_log::{AppendError, Log, OffsetCommit, ReadError};
use serde::{Deserialize, Serialize};

use crate::lag::Lag;

/// How far one group is behind in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartitionLag {
    /// The group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The first offset still stored.
    pub log_start_offset: u64,
    /// One past the last readable offset.
    pub high_watermark: u64,
    /// The group's committed offset (the next it reads), if it committed one here.
    pub committed_offset: Option<u64>,
    /// Events not yet consumed: high watermark − committed offset (from the log start when
    /// nothing is committed, as a new group starting at the earliest event would read).
    pub lag_events: u64,
    /// Age of the oldest unconsumed event: now − its timestamp, in ms; 0 when caught up.
    pub lag_ms: u64,
}

/// One group's totals over its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupSummary {
    /// The group.
    pub group: String,
    /// Topics it committed offsets in.
    pub topics: Vec<String>,
    /// Sum of lag over its partitions.
    pub lag_events: u64,
    /// The largest per-partition lag in ms.
    pub lag_ms: u64,
}

/// Where to move a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// The first stored offset of each partition: everything is read again.
    Earliest,
    /// The high watermark: everything stored is skipped.
    Latest,
    /// This offset in every selected partition, clamped to the stored range.
    Offset(u64),
    /// The first event at or after this time (ms since the epoch); the high watermark when
    /// every event is older.
    Time(i64),
}

/// One partition's move in a reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OffsetReset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The committed offset before, if any.
    pub offset_before: Option<u64>,
    /// The committed offset after.
    pub offset_after: u64,
}

/// Why a groups operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupsError {
    /// The topic does not exist.
    #[error("topic '{0}' does not exist")]
    TopicNotFound(String),
    /// The group has no committed offsets.
    #[error("group '{0}' has no committed offsets")]
    GroupNotFound(String),
    /// The partition does not exist.
    #[error("topic '{topic}' has no partition {partition}")]
    PartitionNotFound {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
    },
    /// Reading the log failed.
    #[error("cannot read the log: {0}")]
    Read(#[from] ReadError),
    /// Committing the new offsets failed.
    #[error("cannot commit offsets: {0}")]
    Commit(#[from] AppendError),
}

/// Every group with committed offsets, with its totals, by name.
pub fn list_groups(log: &Log, now_ms: i64) -> Result<Vec<GroupSummary>, GroupsError> {
    let mut out = Vec::new();
    for group in log.group_offsets().groups() {
        let lags = group_lag(log, &group, now_ms)?;
        let mut topics: Vec<String> = lags.iter().map(|l| l.topic.clone()).collect();
        topics.dedup();
        out.push(GroupSummary {
            lag_events: lags.iter().map(|l| l.lag_events).sum(),
            lag_ms: lags.iter().map(|l| l.lag_ms).max().unwrap_or(0),
            group,
            topics,
        });
    }
    Ok(out)
}

/// The lag of `group` in every partition of every topic it committed offsets in, by topic
/// and partition. Topics deleted since are left out.
pub fn group_lag(log: &Log, group: &str, now_ms: i64) -> Result<Vec<PartitionLag>, GroupsError> {
    let committed = log.group_offsets().group(group);
    if committed.is_empty() {
        return Err(GroupsError::GroupNotFound(group.to_string()));
    }
    let mut topics: Vec<String> = committed.iter().map(|(t, _, _)| t.clone()).collect();
    topics.dedup();
    let mut out = Vec::new();
    for name in topics {
        let Some(topic) = log.topic(&name) else {
            continue;
        };
        for (index, partition) in topic.partitions().iter().enumerate() {
            let index = index as u32;
            let committed_offset = committed
                .iter()
                .find(|(t, p, _)| *t == name && *p == index)
                .map(|(_, _, c)| c.offset);
            // Measured from the log start when nothing is committed: see `lag.rs`.
            let lag = Lag::of(partition, committed_offset);
            out.push(PartitionLag {
                group: group.to_string(),
                topic: name.clone(),
                partition: index,
                log_start_offset: lag.log_start_offset,
                high_watermark: lag.high_watermark,
                committed_offset,
                lag_events: lag.events(),
                lag_ms: lag.age_ms(partition, now_ms)?.unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// The moves a reset of `group` in `topic` (one partition, or all) to `target` would make.
/// Nothing is written; pass the result to [`apply_reset`]. A group without committed offsets
/// is refused: a mistyped name would otherwise create a group that shows lag forever.
pub fn plan_reset(
    log: &Log,
    group: &str,
    topic: &str,
    partition: Option<u32>,
    target: ResetTarget,
) -> Result<Vec<OffsetReset>, GroupsError> {
    let handle = log
        .topic(topic)
        .ok_or_else(|| GroupsError::TopicNotFound(topic.to_string()))?;
    if log.group_offsets().group(group).is_empty() {
        return Err(GroupsError::GroupNotFound(group.to_string()));
    }
    let count = handle.partitions().len() as u32;
    let indexes: Vec<u32> = match partition {
        Some(index) if index >= count => {
            return Err(GroupsError::PartitionNotFound {
                topic: topic.to_string(),
                partition: index,
            });
        }
        Some(index) => vec![index],
        None => (0..count).collect(),
    };
    let mut plan = Vec::with_capacity(indexes.len());
    for index in indexes {
        let partition = handle.partition(index).expect("checked above");
        let (start, end) = (partition.log_start_offset(), partition.high_watermark());
        let offset_after = match target {
            ResetTarget::Earliest => start,
            ResetTarget::Latest => end,
            ResetTarget::Offset(offset) => offset.clamp(start, end),
            ResetTarget::Time(time_ms) => partition.offset_for_timestamp(time_ms)?.unwrap_or(end),
        };
        plan.push(OffsetReset {
            topic: topic.to_string(),
            partition: index,
            offset_before: log
                .group_offsets()
                .fetch(group, topic, index)
                .map(|c| c.offset),
            offset_after,
        });
    }
    Ok(plan)
}

/// Deletes `group`: tombstones every committed offset it has, in one batch, and returns how
/// many partitions it had offsets in. Same duty as [`apply_reset`]: no member may run.
pub fn delete_group(log: &Log, group: &str) -> Result<usize, GroupsError> {
    let partitions: Vec<(String, u32)> = log
        .group_offsets()
        .group(group)
        .into_iter()
        .map(|(topic, partition, _)| (topic, partition))
        .collect();
    if partitions.is_empty() {
        return Err(GroupsError::GroupNotFound(group.to_string()));
    }
    log.group_offsets().delete_offsets(group, &partitions)?;
    Ok(partitions.len())
}

/// Commits a planned reset as one atomic batch.
///
/// Call it only while no member of `group` runs on this log: in another process that is
/// impossible (the log has one owner), in this process it is the caller's duty (a running
/// member's next commit would overwrite the reset).
pub fn apply_reset(
    log: &Log,
    group: &str,
    plan: &[OffsetReset],
    now_ms: i64,
) -> Result<(), GroupsError> {
    if plan.is_empty() {
        return Ok(());
    }
    let commits: Vec<OffsetCommit> = plan
        .iter()
        .map(|r| OffsetCommit {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset_after,
            metadata: "reset".to_string(),
        })
        .collect();
    log.group_offsets().commit(group, &commits, now_ms)?;
    Ok(())
}
