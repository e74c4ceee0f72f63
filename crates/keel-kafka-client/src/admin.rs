//! [`KafkaAdmin`]: the administrative half of the port (`keel_core::AdminTransport`) on a
//! Kafka cluster or `keel serve` — what the operator tools, the conformance suite and the
//! lag and dead-letter reports ask of a broker, mapped onto Kafka requests:
//!
//! | port | Kafka |
//! |---|---|
//! | `topics`, `create_topic`, `delete_topic` | Metadata, CreateTopics, DeleteTopics (the admin client) |
//! | `partition_offsets` | ListOffsets earliest and latest (watermarks), all of the topic's partitions in one request per leader |
//! | `offset_for_time` | ListOffsets by timestamp |
//! | `read` | Fetch, through a consumer assigned the one partition (no group), one of a small pool (`readers.rs`) |
//! | `groups` | ListGroups |
//! | `committed` | OffsetFetch of every partition of every topic, as the group, in one request |
//! | `commit` | OffsetCommit as the group with no generation — the broker takes it only from an empty group, so a reset never races a running member |
//! | `delete_group` | DeleteGroups (the admin client); NON_EMPTY_GROUP is `GroupActive` |
//! | `topic_config`, `alter_topic_config` | DescribeConfigs, AlterConfigs with the topic's own settings kept (`topic_config.rs`) |
//!
//! Every call runs on a blocking thread (librdkafka's calls block) and waits at most
//! [`METADATA_TIMEOUT`] for the cluster.
//!
//! Not here: publishing (`publisher.rs`) or consuming as a group member (`member.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_core::{
    AdminTransport, BoxFuture, GroupOffset, PartitionOffsets, Record, TopicInfo, TopicSetting,
    TransportError,
};
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::group_clients::GroupClients;
use crate::limits::{LEADER_MOVING_RETRY, METADATA_TIMEOUT};
use crate::readers::{Reader, Readers};
use crate::record::record;
use crate::topic_config;
use crate::topics::{Topics, unavailable};

/// A Kafka cluster's administrative side. Cheap to clone; clones share one admin client,
/// the pool of reading consumers (`readers.rs`), and the consumers carrying a group's id
/// that read and set its committed offsets (`group_clients.rs`).
#[derive(Clone)]
pub struct KafkaAdmin {
    config: KafkaConfig,
    topics: Arc<Topics>,
    /// Read partitions, list offsets and groups; one call per reader at a time.
    readers: Arc<Readers>,
    groups: Arc<GroupClients>,
}

/// Why the admin clients could not be created (a bad property, most often).
#[derive(Debug, thiserror::Error)]
#[error("cannot create the Kafka admin client: {0}")]
pub struct AdminError(#[from] KafkaError);

impl std::fmt::Debug for KafkaAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAdmin")
            .field("bootstrap_servers", &self.config.bootstrap_servers())
            .finish_non_exhaustive()
    }
}

impl KafkaAdmin {
    /// The administrative side of the cluster `config` names. Connects lazily: a wrong
    /// address shows as [`TransportError::Unavailable`] on the first call.
    pub fn connect(config: &KafkaConfig) -> Result<KafkaAdmin, AdminError> {
        Ok(KafkaAdmin {
            config: config.clone(),
            topics: Arc::new(Topics::new(config)?),
            readers: Arc::new(Readers::new(config)),
            groups: Arc::default(),
        })
    }

    /// Runs `f` on a blocking thread.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&KafkaAdmin) -> Result<T, TransportError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, TransportError>> {
        let admin = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&admin))
                .await
                .map_err(unavailable)?
        })
    }

    /// A consumer acting as `group` for its committed offsets (never joining it).
    fn group_client(&self, group: &str) -> Result<Arc<BaseConsumer>, TransportError> {
        self.groups
            .get(&self.config, group)
            .map_err(|e| unavailable(format!("a client for group '{group}': {e}")))
    }

    /// Every partition of every topic the caller may see, as one list to ask about.
    fn every_partition(&self) -> Result<TopicPartitionList, TransportError> {
        let mut list = TopicPartitionList::new();
        for topic in self.topics.all()? {
            for partition in 0..topic.partitions {
                list.add_partition(&topic.name, partition as i32);
            }
        }
        Ok(list)
    }
}

impl AdminTransport for KafkaAdmin {
    fn engine(&self) -> &'static str {
        "Kafka"
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, TransportError>> {
        self.blocking(|admin| admin.topics.all())
    }

    fn create_topic<'a>(
        &'a self,
        name: &'a str,
        partitions: u32,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        Box::pin(self.topics.ensure_topic(name, partitions))
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(self.topics.delete(topic))
    }

    fn partition_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionOffsets>, TransportError>> {
        let topic = topic.to_string();
        self.blocking(move |admin| {
            let count = admin.topics.partitions_blocking(&topic)?.ok_or_else(|| {
                TransportError::UnknownTopic {
                    topic: topic.clone(),
                }
            })?;
            let lows = admin.list_offsets(&topic, 0..count, Offset::Beginning)?;
            let highs = admin.list_offsets(&topic, 0..count, Offset::End)?;
            (0..count)
                .zip(lows.into_iter().zip(highs))
                .map(|(partition, range)| match range {
                    (Some(log_start), Some(high_watermark)) => Ok(PartitionOffsets {
                        partition,
                        log_start,
                        high_watermark,
                    }),
                    _ => Err(unavailable(format!(
                        "no stored range of {topic}/{partition} in the answer"
                    ))),
                })
                .collect()
        })
    }

    fn offset_for_time<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        time_ms: i64,
    ) -> BoxFuture<'a, Result<Option<u64>, TransportError>> {
        let topic = topic.to_string();
        self.blocking(move |admin| {
            let offsets =
                admin.list_offsets(&topic, partition..partition + 1, Offset::Offset(time_ms))?;
            Ok(offsets.into_iter().next().flatten())
        })
    }

    fn read<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, TransportError>> {
        let topic = topic.to_string();
        self.blocking(move |admin| admin.read_blocking(&topic, partition, offset, bytes_max))
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        self.blocking(|admin| {
            let list = admin
                .reader()?
                .fetch_group_list(None, METADATA_TIMEOUT)
                .map_err(|e| unavailable(format!("listing groups: {e}")))?;
            let mut groups: Vec<String> = list
                .groups()
                .iter()
                // Connect-style and other non-consumer groups hold no offsets Keel reads.
                .filter(|g| matches!(g.protocol_type(), "consumer" | ""))
                .map(|g| g.name().to_string())
                .collect();
            groups.sort_unstable();
            groups.dedup();
            Ok(groups)
        })
    }

    fn committed<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupOffset>, TransportError>> {
        let group = group.to_string();
        self.blocking(move |admin| {
            let asked = admin.every_partition()?;
            if asked.count() == 0 {
                return Ok(Vec::new());
            }
            let answer = admin
                .group_client(&group)?
                .committed_offsets(asked, METADATA_TIMEOUT)
                .map_err(|e| unavailable(format!("committed offsets of group '{group}': {e}")))?;
            let mut offsets: Vec<GroupOffset> = answer
                .elements()
                .iter()
                .filter_map(|element| match element.offset() {
                    Offset::Offset(offset) if offset >= 0 => Some(GroupOffset {
                        topic: element.topic().to_string(),
                        partition: element.partition() as u32,
                        offset: offset as u64,
                    }),
                    _ => None,
                })
                .collect();
            offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            Ok(offsets)
        })
    }

    fn commit<'a>(
        &'a self,
        group: &'a str,
        offsets: &'a [GroupOffset],
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        let group = group.to_string();
        let offsets = offsets.to_vec();
        self.blocking(move |admin| {
            if offsets.is_empty() {
                return Ok(());
            }
            let mut list = TopicPartitionList::new();
            for o in &offsets {
                list.add_partition_offset(
                    &o.topic,
                    o.partition as i32,
                    Offset::Offset(o.offset as i64),
                )
                .map_err(unavailable)?;
            }
            // No generation and no member id: Kafka (and keel serve) store this only while
            // the group is empty, and answer "unknown member" while members run.
            admin
                .group_client(&group)?
                .commit(&list, CommitMode::Sync)
                .map_err(|error| match error.rdkafka_error_code() {
                    Some(
                        RDKafkaErrorCode::UnknownMemberId
                        | RDKafkaErrorCode::IllegalGeneration
                        | RDKafkaErrorCode::RebalanceInProgress,
                    ) => TransportError::GroupActive {
                        group: group.clone(),
                    },
                    Some(RDKafkaErrorCode::UnknownTopicOrPartition) => TransportError::Refused {
                        reason: format!("committing offsets of group '{group}': {error}"),
                    },
                    _ => unavailable(format!("committing offsets of group '{group}': {error}")),
                })
        })
    }

    fn delete_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
            let results = self
                .topics
                .client()
                .delete_groups(&[group], &options)
                .await
                .map_err(|e| unavailable(format!("deleting group '{group}': {e}")))?;
            for result in results {
                match result {
                    // Absent afterwards either way.
                    Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                    Err((_, RDKafkaErrorCode::NonEmptyGroup)) => {
                        return Err(TransportError::GroupActive {
                            group: group.to_string(),
                        });
                    }
                    Err((_, code @ RDKafkaErrorCode::GroupAuthorizationFailed)) => {
                        return Err(TransportError::Refused {
                            reason: format!("deleting group '{group}': {code}"),
                        });
                    }
                    Err((_, code)) => {
                        return Err(unavailable(format!("deleting group '{group}': {code}")));
                    }
                }
            }
            Ok(())
        })
    }

    fn topic_config<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<TopicSetting>, TransportError>> {
        Box::pin(topic_config::describe(self.topics.client(), topic))
    }

    fn alter_topic_config<'a>(
        &'a self,
        topic: &'a str,
        changes: &'a BTreeMap<String, String>,
        validate_only: bool,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(topic_config::alter(
            self.topics.client(),
            topic,
            changes,
            validate_only,
        ))
    }
}

impl KafkaAdmin {
    /// A reading consumer of the pool, waiting for one while all are busy.
    fn reader(&self) -> Result<Reader<'_>, TransportError> {
        self.readers
            .get()
            .map_err(|e| unavailable(format!("a reading client: {e}")))
    }

    /// One ListOffsets of `partitions` of `topic` at `at` — a time in ms, or
    /// [`Offset::Beginning`] / [`Offset::End`] for the first stored offset and the high
    /// watermark — in one request per partition leader, not one per partition: the offset
    /// of each, in order, `None` where Kafka answers "the end" (every stored record is
    /// older than the time asked).
    fn list_offsets(
        &self,
        topic: &str,
        partitions: std::ops::Range<u32>,
        at: Offset,
    ) -> Result<Vec<Option<u64>>, TransportError> {
        let mut asked = TopicPartitionList::new();
        for partition in partitions.clone() {
            asked
                .add_partition_offset(topic, partition as i32, at)
                .map_err(unavailable)?;
        }
        // A partition whose leader is moving (or was just made) answers with a retriable
        // error for a moment: asked again until it settles, within the metadata timeout.
        let deadline = Instant::now() + METADATA_TIMEOUT;
        let answer = loop {
            match self
                .reader()?
                .offsets_for_times(asked.clone(), METADATA_TIMEOUT)
            {
                Err(error) if leader_moving(&error) && Instant::now() < deadline => {
                    std::thread::sleep(LEADER_MOVING_RETRY);
                }
                answer => break answer,
            }
        }
        .map_err(|e| unavailable(format!("ListOffsets of {topic}: {e}")))?;
        partitions
            .map(|partition| {
                let element = answer
                    .find_partition(topic, partition as i32)
                    .ok_or_else(|| unavailable(format!("no offset of {topic}/{partition}")))?;
                if let Some(error) = element.error().err() {
                    return Err(partition_error(topic, partition, "ListOffsets of", error));
                }
                Ok(match element.offset() {
                    Offset::Offset(offset) if offset >= 0 => Some(offset as u64),
                    _ => None,
                })
            })
            .collect()
    }

    /// [`AdminTransport::read`] on the calling thread: assigns the reader `partition` at
    /// `offset` (clamped to the stored range) and polls until `bytes_max`, the end of the
    /// partition or the timeout.
    fn read_blocking(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        bytes_max: usize,
    ) -> Result<Vec<Record>, TransportError> {
        let (low, high) = self.topics.watermarks(topic, partition)?;
        let offset = offset.max(low);
        if offset >= high {
            return Ok(Vec::new());
        }
        let reader = self.reader()?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition as i32, Offset::Offset(offset as i64))
            .map_err(unavailable)?;
        reader
            .assign(&assignment)
            .map_err(|e| partition_error(topic, partition, "assigning", e))?;
        let deadline = Instant::now() + METADATA_TIMEOUT;
        let mut records = Vec::new();
        let mut bytes = 0;
        let outcome = loop {
            let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
                break Err(unavailable(format!(
                    "reading {topic}/{partition} from {offset}: timed out"
                )));
            };
            match reader.poll(wait.min(Duration::from_millis(100))) {
                None => continue,
                // The end of what is stored (control records of transactions included,
                // which never come as messages).
                Some(Err(KafkaError::PartitionEOF(_))) => break Ok(()),
                Some(Err(error)) => break Err(partition_error(topic, partition, "reading", error)),
                Some(Ok(message)) => {
                    let record = record(&message);
                    let last = message.offset() as u64 + 1 >= high;
                    bytes += record.size_bytes();
                    records.push(record);
                    if last || bytes >= bytes_max {
                        break Ok(());
                    }
                }
            }
        };
        // Fetching stops with the assignment; the next read assigns what it needs.
        let _ = reader.unassign();
        outcome.map(|()| records)
    }
}

/// Whether `error` says a partition's leader is moving: asking again shortly succeeds.
fn leader_moving(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::NotLeaderForPartition | RDKafkaErrorCode::LeaderNotAvailable)
    )
}

/// The port's error for a partition request the cluster refused or could not answer.
fn partition_error(topic: &str, partition: u32, what: &str, error: KafkaError) -> TransportError {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            TransportError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            }
        }
        _ => unavailable(format!("{what} {topic}/{partition}: {error}")),
    }
}
