//! The administrative half of the port on JetStream: topics are the namespace's streams,
//! a partition's stored range comes from its subject's first and last messages, reads are
//! direct message gets by subject, and a group's committed offsets are its consumers'
//! acknowledgement floors (`consumers.rs`); deleting a group deletes its durable consumers,
//! deleting a topic its stream.
//!
//! Offsets are stream sequences minus one (`lease.rs`): a partition's range is
//! `[first − 1, last]` of its subject, and an empty partition reports the stream's last
//! sequence as both ends. Offsets skip the other partitions' sequences, so the records
//! between two of them are counted by JetStream (`records_between`), which keeps lag exact.

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use futures_util::{StreamExt, TryStreamExt};
use keel_core::{
    AdminTransport, BoxFuture, GroupOffset, PartitionOffsets, Record, TopicInfo, TransportError,
};

use crate::connection::{millis, unavailable};
use crate::consumers::{Place, generations, latest};
use crate::limits::{EPHEMERAL_INACTIVE, READ_RECORDS_MAX};
use crate::names::ConsumerName;
use crate::record;
use crate::transport::NatsTransport;

impl NatsTransport {
    async fn existing(&self, topic: &str) -> Result<Stream, TransportError> {
        self.connection()
            .stream(topic)
            .await?
            .ok_or_else(|| TransportError::UnknownTopic {
                topic: topic.to_string(),
            })
    }

    fn subject_checked(
        &self,
        stream: &Stream,
        topic: &str,
        partition: u32,
    ) -> Result<String, TransportError> {
        if partition as usize >= stream.cached_info().config.subjects.len() {
            return Err(TransportError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        Ok(self.connection().names.subject(topic, partition))
    }

    /// The next message of `subject` at or after sequence `sequence`; `None` past the end.
    async fn next_message(
        stream: &Stream,
        subject: &str,
        sequence: u64,
    ) -> Result<Option<Record>, TransportError> {
        match stream
            .raw_message_builder()
            .sequence(sequence)
            .next_by_subject(subject.to_string())
            .send()
            .await
        {
            Ok(message) => Ok(Some(record::decode(
                message.sequence - 1,
                Some(&message.headers),
                message.payload,
                millis(message.time),
            ))),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(e.to_string())),
        }
    }

    /// Every Keel stream of the namespace, by topic.
    async fn streams(&self) -> Result<Vec<(String, u32)>, TransportError> {
        let names = &self.connection().names;
        let infos: Vec<_> = self
            .connection()
            .jetstream
            .streams()
            .try_collect()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let mut topics: Vec<(String, u32)> = infos
            .iter()
            .filter_map(|info| {
                let topic = names.topic(&info.config.name)?;
                Some((topic, info.config.subjects.len() as u32))
            })
            .collect();
        topics.sort();
        Ok(topics)
    }
}

impl AdminTransport for NatsTransport {
    fn engine(&self) -> &'static str {
        "NATS JetStream"
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, TransportError>> {
        Box::pin(async move {
            Ok(self
                .streams()
                .await?
                .into_iter()
                .map(|(name, partitions)| TopicInfo { name, partitions })
                .collect())
        })
    }

    fn create_topic<'a>(
        &'a self,
        name: &'a str,
        partitions: u32,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        Box::pin(self.connection().create_topic(name, partitions))
    }

    fn partition_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionOffsets>, TransportError>> {
        Box::pin(async move {
            let stream = self.existing(topic).await?;
            let last = stream
                .get_info()
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .state
                .last_sequence;
            let partitions = stream.cached_info().config.subjects.len() as u32;
            let mut ranges = Vec::with_capacity(partitions as usize);
            for partition in 0..partitions {
                let subject = self.connection().names.subject(topic, partition);
                let first = Self::next_message(&stream, &subject, 1).await?;
                let range = match first {
                    None => (last, last),
                    Some(first) => {
                        let newest = stream
                            .get_last_raw_message_by_subject(&subject)
                            .await
                            .map_err(|e| unavailable(e.to_string()))?;
                        (first.offset, newest.sequence)
                    }
                };
                ranges.push(PartitionOffsets {
                    partition,
                    log_start: range.0,
                    high_watermark: range.1,
                });
            }
            Ok(ranges)
        })
    }

    /// A partition's offsets skip the other partitions' sequences, so its records are
    /// counted by JetStream: an ephemeral consumer filtered to the partition's subject,
    /// starting at `offset`, says how many it has pending. That count runs to the
    /// stream's end, so records stored since `high_watermark` was read count too.
    fn records_between<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        offset: u64,
        high_watermark: u64,
    ) -> BoxFuture<'a, Result<u64, TransportError>> {
        Box::pin(async move {
            if high_watermark <= offset {
                return Ok(0);
            }
            let stream = self.existing(topic).await?;
            let subject = self.subject_checked(&stream, topic, partition)?;
            let consumer = stream
                .create_consumer(PullConfig {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: offset + 1,
                    },
                    ack_policy: AckPolicy::None,
                    filter_subject: subject,
                    inactive_threshold: EPHEMERAL_INACTIVE,
                    ..PullConfig::default()
                })
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            let info = consumer.cached_info();
            let pending = info.num_pending;
            // Left behind, it goes by itself after `EPHEMERAL_INACTIVE`.
            let _ = stream.delete_consumer(&info.name).await;
            Ok(pending)
        })
    }

    fn offset_for_time<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        time_ms: i64,
    ) -> BoxFuture<'a, Result<Option<u64>, TransportError>> {
        Box::pin(async move {
            let stream = self.existing(topic).await?;
            let subject = self.subject_checked(&stream, topic, partition)?;
            let start_time = async_nats::datetime::from_nanos(i128::from(time_ms) * 1_000_000)
                .map_err(|e| TransportError::Refused {
                    reason: format!("time {time_ms}: {e}"),
                })?;
            // An ephemeral consumer starting at the time: JetStream finds the message.
            let consumer = stream
                .create_consumer(PullConfig {
                    deliver_policy: DeliverPolicy::ByStartTime { start_time },
                    filter_subject: subject,
                    inactive_threshold: EPHEMERAL_INACTIVE,
                    ..PullConfig::default()
                })
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            let mut consumer = consumer;
            let pending = consumer
                .info()
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .num_pending;
            let mut offset = None;
            if pending > 0 {
                let mut batch = consumer
                    .fetch()
                    .max_messages(1)
                    .messages()
                    .await
                    .map_err(|e| unavailable(e.to_string()))?;
                if let Some(Ok(message)) = batch.next().await {
                    offset = message.info().ok().map(|info| info.stream_sequence - 1);
                }
            }
            let name = consumer.cached_info().name.clone();
            let _ = stream.delete_consumer(&name).await;
            Ok(offset)
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
            let stream = self.existing(topic).await?;
            let subject = self.subject_checked(&stream, topic, partition)?;
            let mut records = Vec::new();
            let mut bytes = 0;
            let mut sequence = offset + 1;
            while bytes < bytes_max && records.len() < READ_RECORDS_MAX {
                let Some(record) = Self::next_message(&stream, &subject, sequence).await? else {
                    break;
                };
                sequence = record.offset + 2;
                bytes += record.size_bytes();
                records.push(record);
            }
            Ok(records)
        })
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        Box::pin(async move {
            let mut groups = Vec::new();
            for (topic, _) in self.streams().await? {
                let stream = self.existing(&topic).await?;
                let names = generations(&stream).await.map_err(unavailable)?;
                groups.extend(names.into_iter().map(|c| c.group));
            }
            groups.sort();
            groups.dedup();
            Ok(groups)
        })
    }

    fn committed<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupOffset>, TransportError>> {
        Box::pin(async move {
            let mut offsets = Vec::new();
            for (topic, _) in self.streams().await? {
                let stream = self.existing(&topic).await?;
                let names = generations(&stream).await.map_err(unavailable)?;
                for consumer in latest(&names).into_iter().filter(|c| c.group == group) {
                    let info = stream
                        .consumer_info(consumer.encode())
                        .await
                        .map_err(|e| unavailable(e.to_string()))?;
                    offsets.push(GroupOffset {
                        topic: topic.clone(),
                        partition: consumer.partition,
                        offset: info.ack_floor.stream_sequence,
                    });
                }
            }
            Ok(offsets)
        })
    }

    fn commit<'a>(
        &'a self,
        group: &'a str,
        offsets: &'a [GroupOffset],
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            // First check all: a member pulling (a waiting pull request) runs the group.
            let mut places = Vec::with_capacity(offsets.len());
            for offset in offsets {
                let stream = self.existing(&offset.topic).await?;
                self.subject_checked(&stream, &offset.topic, offset.partition)?;
                let names = generations(&stream).await.map_err(unavailable)?;
                refuse_pulling(&stream, &names, group, Some(offset.partition)).await?;
                places.push((stream, offset));
            }
            for (stream, offset) in &places {
                let place = Place {
                    stream,
                    names: &self.connection().names,
                    topic: &offset.topic,
                    group,
                    partition: offset.partition,
                };
                let older = place.generations().await.map_err(unavailable)?;
                place
                    .start_generation(offset.offset, &older)
                    .await
                    .map_err(unavailable)?;
            }
            Ok(())
        })
    }

    /// Every durable consumer of the group (all generations, every partition of every
    /// stream) deleted, refused while a member pulls through one.
    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(self.connection().delete_topic(topic))
    }

    fn delete_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let mut doomed = Vec::new();
            for (topic, _) in self.streams().await? {
                let stream = self.existing(&topic).await?;
                let mut names = generations(&stream).await.map_err(unavailable)?;
                refuse_pulling(&stream, &names, group, None).await?;
                names.retain(|c| c.group == group);
                doomed.push((stream, names));
            }
            for (stream, names) in doomed {
                for name in names {
                    stream
                        .delete_consumer(&name.encode())
                        .await
                        .map_err(|e| unavailable(format!("deleting {}: {e}", name.encode())))?;
                }
            }
            Ok(())
        })
    }
}

/// [`TransportError::GroupActive`] when a member of `group` pulls (a waiting pull request)
/// through the latest consumer of one of its partitions (`partition` only, when given).
async fn refuse_pulling(
    stream: &Stream,
    names: &[ConsumerName],
    group: &str,
    partition: Option<u32>,
) -> Result<(), TransportError> {
    for consumer in latest(names)
        .into_iter()
        .filter(|c| c.group == group && partition.is_none_or(|p| p == c.partition))
    {
        let info = stream
            .consumer_info(consumer.encode())
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if info.num_waiting > 0 {
            return Err(TransportError::GroupActive {
                group: group.to_string(),
            });
        }
    }
    Ok(())
}
