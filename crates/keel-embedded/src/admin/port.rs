//! The administrative half of the port on the embedded log — topics, stored ranges, reads,
//! the offset at a time and committed offsets, straight from the log: [`LogAdmin`] answers
//! on the caller's thread (for the synchronous tools), `AdminTransport for EmbeddedBus` on
//! a blocking thread (it may read the disk or wait for an `fdatasync`). [`LogAdmin`] is the
//! publishing half too, for the appends the dead-letter tools make (a replay, an audit
//! record).
//!
//! Not here: the operator tools built on such primitives (the rest of `admin/`).

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use keel_core::{
    AdminTransport, BoxFuture, GroupOffset, NewRecord, PartitionOffsets, PublishTransport,
    Published, Record, SendError, TopicInfo, TransportError,
};
use keel_log::{Log, OffsetCommit, Partition, Topic, TopicConfig, TopicError};

use crate::bus::{EmbeddedBus, send_error};
use crate::publish::{ensure_companion_topic, transport_error};

/// The log itself as the administrative port, answering on the caller's thread: every
/// future it returns is ready at once, so the synchronous tools (`admin::groups`) run the
/// engine-neutral logic (`keel_runtime::admin`) on it with [`at_once`]. Async code uses
/// `EmbeddedBus`, which runs the same answers on a blocking thread.
#[derive(Debug, Clone, Copy)]
pub struct LogAdmin<'a> {
    log: &'a Log,
    now_ms: i64,
}

impl<'a> LogAdmin<'a> {
    /// The port on `log`; commits are stamped `now_ms`.
    pub fn new(log: &'a Log, now_ms: i64) -> LogAdmin<'a> {
        LogAdmin { log, now_ms }
    }

    fn topics_now(&self) -> Result<Vec<TopicInfo>, TransportError> {
        Ok(self
            .log
            .topics()
            .iter()
            .map(|topic| TopicInfo {
                name: topic.name().to_string(),
                partitions: topic.config().partitions,
            })
            .collect())
    }

    fn create_topic_now(&self, name: &str, partitions: u32) -> Result<u32, TransportError> {
        let topic = match self.log.create_topic(name, TopicConfig::new(partitions)) {
            Ok(topic) => topic,
            Err(TopicError::AlreadyExists(_)) => find_topic(self.log, name)?,
            Err(error) => return Err(transport_error(error)),
        };
        Ok(topic.config().partitions)
    }

    /// Deletes `name` through the log, which refuses Keel's own topics.
    fn delete_topic_now(&self, name: &str) -> Result<(), TransportError> {
        self.log.delete_topic(name).map_err(transport_error)
    }

    fn partition_offsets_now(&self, topic: &str) -> Result<Vec<PartitionOffsets>, TransportError> {
        Ok(find_topic(self.log, topic)?
            .partitions()
            .iter()
            .zip(0..)
            .map(|(partition, index)| PartitionOffsets {
                partition: index,
                log_start: partition.log_start_offset(),
                high_watermark: partition.high_watermark(),
            })
            .collect())
    }

    fn offset_for_time_now(
        &self,
        topic: &str,
        partition: u32,
        time_ms: i64,
    ) -> Result<Option<u64>, TransportError> {
        partition_of(self.log, topic, partition)?
            .offset_for_timestamp(time_ms)
            .map_err(unavailable)
    }

    fn read_now(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        bytes_max: usize,
    ) -> Result<Vec<Record>, TransportError> {
        let partition = partition_of(self.log, topic, partition)?;
        let offset = offset.max(partition.log_start_offset());
        if offset >= partition.high_watermark() {
            return Ok(Vec::new());
        }
        partition
            .read_records(offset, bytes_max)
            .map_err(unavailable)
    }

    fn committed_now(&self, group: &str) -> Vec<GroupOffset> {
        self.log
            .group_offsets()
            .group(group)
            .into_iter()
            .map(|(topic, partition, committed)| GroupOffset {
                topic,
                partition,
                offset: committed.offset,
            })
            .collect()
    }

    fn commit_now(&self, group: &str, offsets: &[GroupOffset]) -> Result<(), TransportError> {
        let commits: Vec<OffsetCommit> = offsets
            .iter()
            .map(|o| OffsetCommit {
                topic: o.topic.clone(),
                partition: o.partition,
                offset: o.offset,
                metadata: "reset".to_string(),
            })
            .collect();
        self.log
            .group_offsets()
            .commit(group, &commits, self.now_ms)
            .map_err(unavailable)
    }
}

impl LogAdmin<'_> {
    /// Tombstones every committed offset of `group`, in one batch (nothing for a group
    /// without any).
    fn delete_group_now(&self, group: &str) -> Result<(), TransportError> {
        let partitions: Vec<(String, u32)> = self
            .committed_now(group)
            .into_iter()
            .map(|o| (o.topic, o.partition))
            .collect();
        if partitions.is_empty() {
            return Ok(());
        }
        self.log
            .group_offsets()
            .delete_offsets(group, &partitions)
            .map_err(|error| TransportError::Unavailable {
                reason: format!("cannot delete the offsets of group '{group}': {error}"),
            })
    }
}

impl AdminTransport for LogAdmin<'_> {
    fn engine(&self) -> &'static str {
        "the embedded log"
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, TransportError>> {
        ready(self.topics_now())
    }

    fn create_topic<'a>(
        &'a self,
        name: &'a str,
        partitions: u32,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        ready(self.create_topic_now(name, partitions))
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        ready(self.delete_topic_now(topic))
    }

    fn partition_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionOffsets>, TransportError>> {
        ready(self.partition_offsets_now(topic))
    }

    fn offset_for_time<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        time_ms: i64,
    ) -> BoxFuture<'a, Result<Option<u64>, TransportError>> {
        ready(self.offset_for_time_now(topic, partition, time_ms))
    }

    fn read<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, TransportError>> {
        ready(self.read_now(topic, partition, offset, bytes_max))
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        ready(Ok(self.log.group_offsets().groups()))
    }

    fn committed<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupOffset>, TransportError>> {
        ready(Ok(self.committed_now(group)))
    }

    fn commit<'a>(
        &'a self,
        group: &'a str,
        offsets: &'a [GroupOffset],
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        ready(self.commit_now(group, offsets))
    }

    fn delete_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        ready(self.delete_group_now(group))
    }
}

/// Appends straight to the log on the caller's thread, like the administrative answers:
/// what the synchronous dead-letter tools (`admin::dead_letters`) append through. A running
/// router of this process finds the records at its next read, as it finds any append.
impl PublishTransport for LogAdmin<'_> {
    fn send<'a>(
        &'a self,
        topic: &'a str,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>> {
        let partition = self
            .log
            .topic(topic)
            .map(|t| t.partition_for(record.key.as_deref()));
        match partition {
            Some(partition) => self.send_to(topic, partition, record),
            None => ready(Err(SendError::UnknownTopic {
                topic: topic.to_string(),
            })),
        }
    }

    fn send_to<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>> {
        let appended = partition_of(self.log, topic, partition)
            .map_err(|error| match error {
                TransportError::UnknownTopic { topic } => SendError::UnknownTopic { topic },
                other => SendError::Rejected {
                    topic: topic.to_string(),
                    reason: other.to_string(),
                },
            })
            .and_then(|p| p.append(&[record]).map_err(|e| send_error(topic, e)))
            .map(|info| Published {
                topic: topic.to_string(),
                partition,
                offset: info.base_offset,
            });
        ready(appended)
    }

    fn ensure_companion<'a>(
        &'a self,
        source: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        let companion = find_topic(self.log, source).and_then(|source| {
            ensure_companion_topic(self.log, &source, name).map_err(transport_error)
        });
        ready(companion.map(|topic| topic.config().partitions))
    }
}

impl AdminTransport for EmbeddedBus {
    fn engine(&self) -> &'static str {
        "the embedded log"
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, TransportError>> {
        self.blocking(|admin| admin.topics_now())
    }

    fn create_topic<'a>(
        &'a self,
        name: &'a str,
        partitions: u32,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        let name = name.to_string();
        self.blocking(move |admin| admin.create_topic_now(&name, partitions))
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        let topic = topic.to_string();
        self.blocking(move |admin| admin.delete_topic_now(&topic))
    }

    fn partition_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionOffsets>, TransportError>> {
        let topic = topic.to_string();
        self.blocking(move |admin| admin.partition_offsets_now(&topic))
    }

    fn offset_for_time<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        time_ms: i64,
    ) -> BoxFuture<'a, Result<Option<u64>, TransportError>> {
        let topic = topic.to_string();
        self.blocking(move |admin| admin.offset_for_time_now(&topic, partition, time_ms))
    }

    fn read<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, TransportError>> {
        let topic = topic.to_string();
        self.blocking(move |admin| admin.read_now(&topic, partition, offset, bytes_max))
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        self.blocking(|admin| Ok(admin.log.group_offsets().groups()))
    }

    fn committed<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupOffset>, TransportError>> {
        let group = group.to_string();
        self.blocking(move |admin| Ok(admin.committed_now(&group)))
    }

    fn commit<'a>(
        &'a self,
        group: &'a str,
        offsets: &'a [GroupOffset],
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        let group = group.to_string();
        let offsets = offsets.to_vec();
        self.blocking(move |admin| admin.commit_now(&group, &offsets))
    }

    /// Refused while a member of this bus runs in the group (all its members live in this
    /// process); then its committed offsets are tombstoned.
    fn delete_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        if self.has_members(group) {
            return Box::pin(std::future::ready(Err(TransportError::GroupActive {
                group: group.to_string(),
            })));
        }
        let group = group.to_string();
        self.blocking(move |admin| admin.delete_group_now(&group))
    }
}

impl EmbeddedBus {
    /// Runs `f` on the log, as a [`LogAdmin`] stamped with the bus's clock, on a blocking
    /// thread.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LogAdmin<'_>) -> Result<T, TransportError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, TransportError>> {
        let log = self.log().clone();
        let now_ms = self.now_ms();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&LogAdmin::new(&log, now_ms)))
                .await
                .map_err(unavailable)?
        })
    }
}

/// The output of a future that is ready at once, as every [`LogAdmin`] future (and so the
/// engine-neutral logic run on one) is. Panics otherwise: that is a programmer error.
pub fn at_once<T>(future: impl Future<Output = T>) -> T {
    let mut context = Context::from_waker(Waker::noop());
    match std::pin::pin!(future).poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a LogAdmin operation waited; the log answers at once"),
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

fn find_topic(log: &Log, name: &str) -> Result<Arc<Topic>, TransportError> {
    log.topic(name).ok_or_else(|| TransportError::UnknownTopic {
        topic: name.to_string(),
    })
}

fn partition_of(log: &Log, name: &str, partition: u32) -> Result<Arc<Partition>, TransportError> {
    find_topic(log, name)?
        .partition(partition)
        .cloned()
        .ok_or_else(|| TransportError::UnknownPartition {
            topic: name.to_string(),
            partition,
        })
}

fn unavailable(error: impl std::fmt::Display) -> TransportError {
    TransportError::Unavailable {
        reason: error.to_string(),
    }
}
