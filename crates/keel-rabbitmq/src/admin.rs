//! [`RabbitAdmin`]: the administrative port (`keel_core::AdminTransport`) on RabbitMQ —
//! topics from the topic registry, a partition's stored range and records from bounded
//! stream reads, committed offsets from the groups' offset queues.
//!
//! Committed offsets are set, and a group deleted, only while no member of the group runs
//! ([`TransportError::GroupActive`] otherwise): a running member would overwrite them. A
//! group owns its queues — per topic it joined, the members queue, and per partition the
//! lease and offset queues — and nothing else: the streams are the topic's, read by every
//! group. Its line in the group registry (a stream, append-only) stays; a group is listed
//! only while an offset queue of it exists, so a deleted group is not, until it commits
//! again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use keel_core::{
    AdminTransport, BoxFuture, GroupOffset, PartitionOffsets, Record, TopicInfo, TopicSetting,
    TransportError,
};

use crate::broker::Broker;
use crate::client::ClientError;
use crate::offsets;
use crate::publisher::transport_error;
use crate::reader::{StreamStart, range, read};

/// The administrative side of a RabbitMQ. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RabbitAdmin {
    broker: Arc<Broker>,
}

impl RabbitAdmin {
    pub(crate) fn new(broker: Arc<Broker>) -> RabbitAdmin {
        RabbitAdmin { broker }
    }

    async fn existing(&self, topic: &str) -> Result<u32, TransportError> {
        match self
            .broker
            .partitions(topic)
            .await
            .map_err(transport_error)?
        {
            0 => Err(TransportError::UnknownTopic {
                topic: topic.to_string(),
            }),
            count => Ok(count),
        }
    }

    async fn checked(&self, topic: &str, partition: u32) -> Result<String, TransportError> {
        if partition >= self.existing(topic).await? {
            return Err(TransportError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        Ok(self.broker.names.partition(topic, partition))
    }

    async fn group_offsets(&self, group: &str) -> Result<Vec<GroupOffset>, ClientError> {
        let groups = self.broker.groups().await?;
        let mut offsets = Vec::new();
        for topic in groups.get(group).into_iter().flatten() {
            for partition in 0..self.broker.partitions(topic).await? {
                let queue = self.broker.names.offset(group, topic, partition);
                if let Some(offset) = offsets::committed(&self.broker.client, &queue).await? {
                    offsets.push(GroupOffset {
                        topic: topic.clone(),
                        partition,
                        offset,
                    });
                }
            }
        }
        Ok(offsets)
    }

    /// Whether a member of `group` is on `topic` now (its members queue has consumers).
    async fn has_members(&self, group: &str, topic: &str) -> Result<bool, TransportError> {
        let members = self.broker.names.members(group, topic);
        match self.broker.client.consumer_count(&members).await {
            Ok(count) => Ok(count > 0),
            Err(ClientError::NotFound(_)) => Ok(false),
            Err(other) => Err(transport_error(other)),
        }
    }

    /// Whether `group` has an offset queue on one of `topics`: it committed there.
    async fn has_offsets(
        &self,
        group: &str,
        topics: &BTreeSet<String>,
    ) -> Result<bool, ClientError> {
        for topic in topics {
            for partition in 0..self.broker.partitions(topic).await? {
                let queue = self.broker.names.offset(group, topic, partition);
                if self.broker.client.exists(&queue).await? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Deletes `group`'s queues on every topic it joined: refused as a whole while a member
    /// runs on one of them; the members and lease queues are deleted only when unused, so
    /// a member joining meanwhile keeps them and the deletion stops there, refused too.
    async fn remove_group(&self, group: &str) -> Result<(), TransportError> {
        let groups = self.broker.groups().await.map_err(transport_error)?;
        let topics = groups.get(group).cloned().unwrap_or_default();
        for topic in &topics {
            if self.has_members(group, topic).await? {
                return Err(active(group));
            }
        }
        let (client, names) = (&self.broker.client, &self.broker.names);
        let unused = |name: String| async move {
            match client.delete(&name, true).await {
                Err(ClientError::Refused(_)) => Err(active(group)),
                other => other.map_err(transport_error),
            }
        };
        for topic in &topics {
            unused(names.members(group, topic)).await?;
            for partition in 0..self
                .broker
                .partitions(topic)
                .await
                .map_err(transport_error)?
            {
                unused(names.lease(group, topic, partition)).await?;
                client
                    .delete(&names.offset(group, topic, partition), false)
                    .await
                    .map_err(transport_error)?;
            }
        }
        Ok(())
    }

    async fn set_offsets(
        &self,
        group: &str,
        offsets: &[GroupOffset],
    ) -> Result<(), TransportError> {
        let client = &self.broker.client;
        for offset in offsets {
            self.checked(&offset.topic, offset.partition).await?;
            if self.has_members(group, &offset.topic).await? {
                return Err(active(group));
            }
        }
        for offset in offsets {
            let queue = self
                .broker
                .names
                .offset(group, &offset.topic, offset.partition);
            self.broker
                .register_group(group, &offset.topic)
                .await
                .map_err(transport_error)?;
            offsets::declare(client, &queue)
                .await
                .map_err(transport_error)?;
            offsets::commit(client, &queue, offset.offset, self.broker.now_ms())
                .await
                .map_err(transport_error)?;
        }
        Ok(())
    }
}

impl AdminTransport for RabbitAdmin {
    fn engine(&self) -> &'static str {
        "RabbitMQ"
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, TransportError>> {
        Box::pin(async move { self.broker.topics().await.map_err(transport_error) })
    }

    fn create_topic<'a>(
        &'a self,
        name: &'a str,
        partitions: u32,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        Box::pin(async move {
            if partitions == 0 {
                return Err(TransportError::Refused {
                    reason: format!("topic '{name}' needs at least one partition"),
                });
            }
            self.broker
                .create_topic(name, partitions)
                .await
                .map_err(transport_error)
        })
    }

    fn partition_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionOffsets>, TransportError>> {
        Box::pin(async move {
            let mut ranges = Vec::new();
            for partition in 0..self.existing(topic).await? {
                let stream = self.broker.names.partition(topic, partition);
                let (log_start, high_watermark) = range(&self.broker.client, &stream)
                    .await
                    .map_err(transport_error)?;
                ranges.push(PartitionOffsets {
                    partition,
                    log_start,
                    high_watermark,
                });
            }
            Ok(ranges)
        })
    }

    fn offset_for_time<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        time_ms: i64,
    ) -> BoxFuture<'a, Result<Option<u64>, TransportError>> {
        Box::pin(async move {
            let stream = self.checked(topic, partition).await?;
            let records = read(
                &self.broker.client,
                &stream,
                StreamStart::Time(time_ms),
                usize::MAX,
                |r| r.timestamp_ms >= time_ms,
            )
            .await
            .map_err(transport_error)?;
            Ok(records
                .iter()
                .find(|r| r.timestamp_ms >= time_ms)
                .map(|r| r.offset))
        })
    }

    fn read<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, TransportError>> {
        Box::pin(async move {
            let stream = self.checked(topic, partition).await?;
            let records = read(
                &self.broker.client,
                &stream,
                StreamStart::Offset(offset),
                bytes_max,
                |_| false,
            )
            .await
            .map_err(transport_error)?;
            Ok(records)
        })
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        Box::pin(async move {
            let mut listed = Vec::new();
            for (group, topics) in self.broker.groups().await.map_err(transport_error)? {
                if self
                    .has_offsets(&group, &topics)
                    .await
                    .map_err(transport_error)?
                {
                    listed.push(group);
                }
            }
            Ok(listed)
        })
    }

    fn committed<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupOffset>, TransportError>> {
        Box::pin(async move { self.group_offsets(group).await.map_err(transport_error) })
    }

    fn commit<'a>(
        &'a self,
        group: &'a str,
        offsets: &'a [GroupOffset],
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(self.set_offsets(group, offsets))
    }

    fn delete_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(self.remove_group(group))
    }

    fn topic_config<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<TopicSetting>, TransportError>> {
        Box::pin(async { Err(no_settings()) })
    }

    fn alter_topic_config<'a>(
        &'a self,
        _: &'a str,
        _: &'a BTreeMap<String, String>,
        _: bool,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async { Err(no_settings()) })
    }
}

/// The refusal of the topic-settings requests.
fn no_settings() -> TransportError {
    TransportError::Unsupported {
        engine: "RabbitMQ",
        operation: "read or alter a topic's settings",
        reason: "a stream's arguments (x-max-length-bytes, x-max-age) are fixed when it is declared, and AMQP cannot read them back",
    }
}

/// The refusal of a change to `group` while its members run.
fn active(group: &str) -> TransportError {
    TransportError::GroupActive {
        group: group.to_string(),
    }
}
