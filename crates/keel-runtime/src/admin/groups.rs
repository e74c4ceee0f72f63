//! Consumer groups as an operator sees them: which groups exist, how far behind each one is
//! per partition (in events and in age of the oldest unconsumed event), and moving a
//! group's committed offsets (reset to earliest, latest, an offset or a time), and deleting
//! a group, recorded in the audit log.
//!
//! A group exists once it has committed an offset. Lag is measured against the committed
//! offset, which is the lowest unfinished offset of the partition (the runtime's commit
//! point), so a partition with events in flight shows them as lag. Every partition of each
//! topic the group committed in is measured, one without a commit from its first stored
//! offset, as a new group starting at the earliest event would read: the answer is "what
//! would this group still read". Not here: live membership.

use std::collections::{BTreeMap, HashMap};

use futures_util::{StreamExt, stream};
use keel_core::{AdminTransport, GroupOffset, PublishTransport, TransportError};
use serde::{Deserialize, Serialize};

use super::audit::{self, AuditAction, AuditEntry, AuditError, AuditItem};

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
    /// Events not yet consumed: those from the committed offset to the high watermark (from
    /// the log start when nothing is committed, as a new group starting at the earliest
    /// event would read).
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
    /// The transport refused or could not answer (a running group's reset is
    /// [`TransportError::GroupActive`]).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The audit log of a deletion could not be written (before anything was deleted, when
    /// its topic cannot be made).
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Groups [`list_groups`] measures at the same time: on a cluster a measure is mostly
/// round trips (an OffsetFetch as the group, a ListOffsets per topic), so measuring one
/// after another left `keel groups list` of a broker with a thousand groups waiting
/// minutes; 8 is what the console's sampler runs at once too.
const LIST_GROUPS_CONCURRENCY: usize = 8;

/// Every group with committed offsets, with its totals, in the order the transport lists
/// them (by name).
pub async fn list_groups(
    admin: &dyn AdminTransport,
    now_ms: i64,
) -> Result<Vec<GroupSummary>, GroupsError> {
    let measured: Vec<_> = stream::iter(admin.groups().await?)
        .map(|group| async move {
            let lags = group_lag(admin, &group, now_ms).await;
            (group, lags)
        })
        .buffered(LIST_GROUPS_CONCURRENCY)
        .collect()
        .await;
    let mut out = Vec::new();
    for (group, lags) in measured {
        match lags {
            Ok(lags) => out.push(GroupSummary::of(group, &lags)),
            // An engine may list a group whose members never committed (Kafka does).
            Err(GroupsError::GroupNotFound(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(out)
}

impl GroupSummary {
    /// The totals of `group` over its partitions' lags, as [`group_lag`] answers them (by
    /// topic, then partition).
    pub fn of(group: String, lags: &[PartitionLag]) -> GroupSummary {
        let mut topics: Vec<String> = lags.iter().map(|l| l.topic.clone()).collect();
        topics.dedup();
        GroupSummary {
            lag_events: lags.iter().map(|l| l.lag_events).sum(),
            lag_ms: lags.iter().map(|l| l.lag_ms).max().unwrap_or(0),
            group,
            topics,
        }
    }
}

/// The lag of `group` in every partition of every topic it committed offsets in, by topic
/// and partition. Topics deleted since are left out.
pub async fn group_lag(
    admin: &dyn AdminTransport,
    group: &str,
    now_ms: i64,
) -> Result<Vec<PartitionLag>, GroupsError> {
    lag_in(admin, group, None, now_ms).await
}

/// [`group_lag`] in `topic` only: empty when the group committed nothing there. What a
/// topic's page shows of each group, without measuring the group's other topics.
pub async fn group_lag_in_topic(
    admin: &dyn AdminTransport,
    group: &str,
    topic: &str,
    now_ms: i64,
) -> Result<Vec<PartitionLag>, GroupsError> {
    lag_in(admin, group, Some(topic), now_ms).await
}

async fn lag_in(
    admin: &dyn AdminTransport,
    group: &str,
    only_topic: Option<&str>,
    now_ms: i64,
) -> Result<Vec<PartitionLag>, GroupsError> {
    let committed = admin.committed(group).await?;
    if committed.is_empty() {
        return Err(GroupsError::GroupNotFound(group.to_string()));
    }
    // By topic, then partition: a group may commit in thousands of partitions, and each
    // is looked up once per measure.
    let mut by_topic: BTreeMap<&str, HashMap<u32, u64>> = BTreeMap::new();
    for c in committed
        .iter()
        .filter(|c| only_topic.is_none_or(|t| t == c.topic))
    {
        by_topic
            .entry(c.topic.as_str())
            .or_default()
            .insert(c.partition, c.offset);
    }
    let mut out = Vec::new();
    for (topic, offsets) in by_topic {
        let ranges = match admin.partition_offsets(topic).await {
            Ok(ranges) => ranges,
            Err(TransportError::UnknownTopic { .. }) => continue,
            Err(error) => return Err(error.into()),
        };
        for range in ranges {
            let committed_offset = offsets.get(&range.partition).copied();
            let next_offset = next_offset(range.log_start, range.high_watermark, committed_offset);
            let lag_events = if next_offset == range.high_watermark {
                0
            } else {
                admin
                    .records_between(topic, range.partition, next_offset, range.high_watermark)
                    .await?
            };
            let lag_ms = if lag_events == 0 {
                0
            } else {
                oldest_timestamp_ms(admin, topic, range.partition, next_offset)
                    .await?
                    .map_or(0, |ts| age_ms(now_ms, ts))
            };
            out.push(PartitionLag {
                group: group.to_string(),
                topic: topic.to_string(),
                partition: range.partition,
                log_start_offset: range.log_start,
                high_watermark: range.high_watermark,
                committed_offset,
                lag_events,
                lag_ms,
            });
        }
    }
    Ok(out)
}

/// The moves a reset of `group` in `topic` (one partition, or all) to `target` would make.
/// Nothing is written; pass the result to [`apply_reset`]. A group without committed offsets
/// is refused: a mistyped name would otherwise create a group that shows lag forever.
pub async fn plan_reset(
    admin: &dyn AdminTransport,
    group: &str,
    topic: &str,
    partition: Option<u32>,
    target: ResetTarget,
) -> Result<Vec<OffsetReset>, GroupsError> {
    let ranges = match admin.partition_offsets(topic).await {
        Ok(ranges) => ranges,
        Err(TransportError::UnknownTopic { .. }) => {
            return Err(GroupsError::TopicNotFound(topic.to_string()));
        }
        Err(error) => return Err(error.into()),
    };
    if let Some(index) = partition
        && !ranges.iter().any(|r| r.partition == index)
    {
        return Err(GroupsError::PartitionNotFound {
            topic: topic.to_string(),
            partition: index,
        });
    }
    let committed = admin.committed(group).await?;
    if committed.is_empty() {
        return Err(GroupsError::GroupNotFound(group.to_string()));
    }
    let mut plan = Vec::new();
    for range in ranges
        .into_iter()
        .filter(|r| partition.is_none_or(|p| p == r.partition))
    {
        let (start, end) = (range.log_start, range.high_watermark);
        let offset_after = match target {
            ResetTarget::Earliest => start,
            ResetTarget::Latest => end,
            ResetTarget::Offset(offset) => offset.clamp(start, end),
            ResetTarget::Time(time_ms) => admin
                .offset_for_time(topic, range.partition, time_ms)
                .await?
                .unwrap_or(end),
        };
        plan.push(OffsetReset {
            topic: topic.to_string(),
            partition: range.partition,
            offset_before: committed_offset(&committed, topic, range.partition),
            offset_after,
        });
    }
    Ok(plan)
}

/// Commits a planned reset, all or none.
///
/// Only while no member of `group` runs: where the engine can tell (Kafka, `keel serve`)
/// a running group is refused with [`TransportError::GroupActive`]; on the embedded log in
/// this process it is the caller's duty (a running member's next commit would overwrite
/// the reset).
pub async fn apply_reset(
    admin: &dyn AdminTransport,
    group: &str,
    plan: &[OffsetReset],
) -> Result<(), GroupsError> {
    if plan.is_empty() {
        return Ok(());
    }
    let offsets: Vec<GroupOffset> = plan
        .iter()
        .map(|r| GroupOffset {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset_after,
        })
        .collect();
    admin.commit(group, &offsets).await?;
    Ok(())
}

/// A group's deletion: its audit entry's id and the committed offsets it had, where it
/// would have resumed (commit them again to undo the deletion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupDeletion {
    /// The audit entry's id.
    pub id: String,
    /// The group.
    pub group: String,
    /// Its committed offsets, by topic and partition.
    pub offsets: Vec<DeletedOffset>,
}

/// One committed offset a deleted group had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletedOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The committed offset.
    pub offset: u64,
}

/// Deletes `group` — its committed offsets and whatever else the transport keeps for it
/// (`AdminTransport::delete_group`) — and records the deletion with those offsets in the
/// audit log ([`AuditAction::DeleteGroup`], `command` saying who asked), so what was lost
/// can be seen and committed again.
///
/// A group without committed offsets is [`GroupsError::GroupNotFound`]. Refused with
/// [`TransportError::GroupActive`] where the engine can tell that members run; on the
/// embedded log, stopping the group's routes of this process is the caller's duty. The
/// audit topic is made before anything is deleted, so a transport that refuses the audit
/// log refuses the deletion whole.
///
/// Not cancel safe: when dropped, the group may be deleted without its audit record.
pub async fn delete_group(
    admin: &dyn AdminTransport,
    publish: &dyn PublishTransport,
    group: &str,
    command: impl Into<String>,
    now_ms: i64,
) -> Result<GroupDeletion, GroupsError> {
    let committed = admin.committed(group).await?;
    if committed.is_empty() {
        return Err(GroupsError::GroupNotFound(group.to_string()));
    }
    audit::ensure_topic(admin).await?;
    admin.delete_group(group).await?;
    let id = audit::new_id(AuditAction::DeleteGroup, now_ms);
    let items = committed
        .iter()
        .map(|o| AuditItem {
            topic: Some(o.topic.clone()),
            partition: o.partition,
            offset: o.offset,
            event_id: None,
            group: None,
            target: None,
        })
        .collect();
    let entry = AuditEntry {
        id: id.clone(),
        time_ms: now_ms,
        action: AuditAction::DeleteGroup,
        dead_letter_topic: String::new(),
        group: Some(group.to_string()),
        items,
        command: command.into(),
    };
    audit::record(admin, publish, &entry).await?;
    Ok(GroupDeletion {
        id,
        group: group.to_string(),
        offsets: committed
            .into_iter()
            .map(|o| DeletedOffset {
                topic: o.topic,
                partition: o.partition,
                offset: o.offset,
            })
            .collect(),
    })
}

/// The next offset a consumer whose committed offset is `committed` reads (`None`: nothing
/// committed, from the log start), clamped to the stored range: events retention removed
/// cannot be consumed any more, so they are not lag. The one formula the lag reports and
/// the embedded log's lag gauges share.
pub fn next_offset(log_start: u64, high_watermark: u64, committed: Option<u64>) -> u64 {
    committed
        .unwrap_or(log_start)
        .clamp(log_start, high_watermark)
}

/// Milliseconds from `timestamp_ms` to `now_ms`, never negative (a timestamp from a clock
/// ahead of ours is age 0).
pub fn age_ms(now_ms: i64, timestamp_ms: i64) -> u64 {
    now_ms.saturating_sub(timestamp_ms).max(0) as u64
}

fn committed_offset(committed: &[GroupOffset], topic: &str, partition: u32) -> Option<u64> {
    committed
        .iter()
        .find(|c| c.topic == topic && c.partition == partition)
        .map(|c| c.offset)
}

/// The timestamp of the record at `offset`, or of the first one after it that the read
/// returns; `None` when there is none (compaction removed it).
pub(crate) async fn oldest_timestamp_ms(
    admin: &dyn AdminTransport,
    topic: &str,
    partition: u32,
    offset: u64,
) -> Result<Option<i64>, TransportError> {
    // The smallest read: one record (or one batch) is enough for its timestamp.
    let records = admin.read(topic, partition, offset, 1).await?;
    Ok(records
        .iter()
        .find(|r| r.offset >= offset)
        .map(|r| r.timestamp_ms))
}
