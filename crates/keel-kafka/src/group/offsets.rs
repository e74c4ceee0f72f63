//! OffsetCommit and OffsetFetch over `keel-log`'s group offsets (`__consumer_offsets`), so
//! committed positions survive a restart of `keel serve`.
//!
//! A commit is checked against the group's membership first (the generation fences a member
//! that was rebalanced away), then each partition on its own: the topic and partition must
//! exist, the offset must not be negative (keel-log stores offsets unsigned) and the metadata
//! must fit the limit. The valid partitions are stored as one atomic, fsynced batch.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use keel_log::{Clock, CommittedOffset, Log, OffsetCommit, SystemClock};

use super::coordinator::Shared;
use crate::txn::PendingOffsets;

/// Handles an OffsetCommit.
pub(crate) async fn commit(
    shared: &Shared,
    _api_version: i16,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let generation = request.generation_id_or_member_epoch;
    let membership = if group_id.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else {
        check_membership(
            shared,
            &group_id,
            generation,
            &request.member_id,
            request.group_instance_id.as_deref(),
            false,
        )
    };

    let mut accepted: Vec<OffsetCommit> = Vec::new();
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let partition_count = shared.log.topic(&topic.name).map(|t| t.partitions().len());
        let mut topic_codes = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            let metadata = partition.committed_metadata.as_deref().unwrap_or("");
            let exists = u32::try_from(partition.partition_index)
                .ok()
                .filter(|p| partition_count.is_some_and(|count| (*p as usize) < count));
            let verdict = match (&membership, exists) {
                (Err(error), _) => Err(*error),
                (Ok(()), None) => Err(ResponseError::UnknownTopicOrPartition),
                (Ok(()), Some(_)) if metadata.len() > shared.config.offset_metadata_bytes_max => {
                    Err(ResponseError::OffsetMetadataTooLarge)
                }
                (Ok(()), Some(index)) => match u64::try_from(partition.committed_offset) {
                    Ok(offset) => {
                        accepted.push(OffsetCommit {
                            topic: topic.name.to_string(),
                            partition: index,
                            offset,
                            metadata: metadata.to_string(),
                        });
                        Ok(())
                    }
                    Err(_) => Err(ResponseError::InvalidCommitOffsetSize),
                },
            };
            topic_codes.push(verdict.err().map_or(0, |e| e.code()));
        }
        codes.push(topic_codes);
    }

    if !accepted.is_empty() {
        let log = shared.log.clone();
        let group = group_id.clone();
        let stored = tokio::task::spawn_blocking(move || {
            log.group_offsets()
                .commit(&group, &accepted, SystemClock.now_ms())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("commit task failed: {e}")));
        if let Err(error) = stored {
            tracing::error!(group = %group_id, %error, "storing committed offsets failed");
            let failed = ResponseError::CoordinatorNotAvailable.code();
            for code in codes.iter_mut().flatten().filter(|c| **c == 0) {
                *code = failed;
            }
        }
    }

    let topics = request
        .topics
        .iter()
        .zip(codes)
        .map(|(topic, codes)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(codes)
                .map(|(p, code)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Whether an offset commit (`transactional`: a TxnOffsetCommit) of `group_id` comes from a
/// member the group knows, at its current generation (or, in a consumer-protocol group, its
/// current member epoch, which the Java client sends as generation).
pub(crate) fn check_membership(
    shared: &Shared,
    group_id: &str,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
    transactional: bool,
) -> Result<(), ResponseError> {
    if let Some(checked) = shared
        .groups()
        .consumer
        .get(group_id)
        .map(|group| group.check_commit(member_id, generation, transactional))
    {
        return checked;
    }
    shared
        .with_group(group_id, false, |group, now_ms| {
            group.check_commit(generation, member_id, instance_id, transactional, now_ms)
        })
        // No group in memory: only a client that manages its own partitions (generation
        // -1) may store offsets; a generation from a group that no longer exists is stale.
        .unwrap_or(if generation < 0 {
            Ok(())
        } else {
            Err(ResponseError::IllegalGeneration)
        })
}

/// One partition's answer: its committed offset, or none.
struct Fetched {
    partition: i32,
    committed: Option<CommittedOffset>,
}

/// Builds the topics of an OffsetFetch answer. The v0–7 and v8+ answers have the same shape
/// in different kafka-protocol types (`Topic`/`Partition` and `Topics`/`Partitions`), so
/// one macro fills both from the request's topic list.
macro_rules! fetched_topics {
    ($log:expr, $group:expr, $requested:expr, $topic:ident, $partition:ident) => {{
        let wanted = $requested.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        fetch_group($log, $group, wanted)
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|f| {
                        let (offset, metadata) = offset_and_metadata(f.committed);
                        $partition::default()
                            .with_partition_index(f.partition)
                            .with_committed_offset(offset)
                            .with_metadata(Some(metadata))
                    })
                    .collect();
                $topic::default()
                    .with_name(StrBytes::from_string(name).into())
                    .with_partitions(partitions)
            })
            .collect()
    }};
}

/// Handles an OffsetFetch: v0–7 name one group in the request's top level, v8+ a list.
/// A null topic list means every topic the group committed. From v9 a member of a
/// consumer-protocol group sends its id and epoch, checked as Kafka does (`UNKNOWN_MEMBER_ID`,
/// `STALE_MEMBER_EPOCH` for the group).
pub(crate) fn fetch(
    shared: &Shared,
    api_version: i16,
    request: &OffsetFetchRequest,
) -> OffsetFetchResponse {
    let log = &shared.log;
    if api_version < 8 {
        let topics = fetched_topics!(
            log,
            &request.group_id,
            request.topics,
            OffsetFetchResponseTopic,
            OffsetFetchResponsePartition
        );
        return OffsetFetchResponse::default().with_topics(topics);
    }
    let groups = request
        .groups
        .iter()
        .map(|group| {
            let member_id = group.member_id.as_deref().unwrap_or("");
            let refused = shared
                .groups()
                .consumer
                .get(group.group_id.as_str())
                .and_then(|g| g.check_fetch(member_id, group.member_epoch).err());
            if let Some(error) = refused {
                return OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id.clone())
                    .with_error_code(error.code());
            }
            let topics = fetched_topics!(
                log,
                &group.group_id,
                group.topics,
                OffsetFetchResponseTopics,
                OffsetFetchResponsePartitions
            );
            OffsetFetchResponseGroup::default()
                .with_group_id(group.group_id.clone())
                .with_topics(topics)
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

/// Answers `UNSTABLE_OFFSET_COMMIT` (offset -1) for every partition of `response` whose
/// group has an offset waiting in an unfinished transaction: what Kafka answers an
/// OffsetFetch with `require_stable` (v7+; the Java client sets it under `read_committed`),
/// which the client retries. `group` is the v0–7 request's group; v8+ name theirs.
pub(crate) fn mark_unstable(
    response: &mut OffsetFetchResponse,
    group: &GroupId,
    pending: &PendingOffsets,
) {
    macro_rules! mark {
        ($group:expr, $topics:expr) => {
            for topic in &mut $topics {
                for partition in &mut topic.partitions {
                    if pending.pending($group, &topic.name, partition.partition_index) {
                        partition.error_code = ResponseError::UnstableOffsetCommit.code();
                        partition.committed_offset = -1;
                        partition.metadata = Some(StrBytes::default());
                    }
                }
            }
        };
    }
    mark!(group, response.topics);
    for answer in &mut response.groups {
        mark!(&answer.group_id, answer.topics);
    }
}

/// The committed offsets of `group` for the wanted (topic, partitions), or all of them.
/// A partition without a commit is answered with offset -1, as Kafka does.
fn fetch_group(
    log: &Log,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Vec<Fetched>)> {
    let offsets = log.group_offsets();
    match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let fetched = partitions
                    .into_iter()
                    .map(|partition| Fetched {
                        partition,
                        committed: u32::try_from(partition)
                            .ok()
                            .and_then(|p| offsets.fetch(group, &topic, p)),
                    })
                    .collect();
                (topic, fetched)
            })
            .collect(),
        None => {
            let mut topics: Vec<(String, Vec<Fetched>)> = Vec::new();
            for (topic, partition, committed) in offsets.group(group) {
                let fetched = Fetched {
                    partition: partition as i32,
                    committed: Some(committed),
                };
                match topics.last_mut() {
                    Some((name, partitions)) if *name == topic => partitions.push(fetched),
                    _ => topics.push((topic, vec![fetched])),
                }
            }
            topics
        }
    }
}

fn offset_and_metadata(committed: Option<CommittedOffset>) -> (i64, StrBytes) {
    match committed {
        Some(c) => (c.offset as i64, StrBytes::from_string(c.metadata)),
        None => (-1, StrBytes::default()),
    }
}
