//! The administrative half of the port on the embedded log: `AdminTransport for
//! EmbeddedBus` — topics, stored ranges, reads, the offset at a time and committed offsets,
//! straight from the log (each call on a blocking thread, since it may read the disk or wait
//! for an `fdatasync`).
//!
//! Not here: the operator tools built on such primitives (the rest of `admin/`).

use std::sync::Arc;

use keel_core::{
    AdminTransport, BoxFuture, GroupOffset, PartitionOffsets, Record, TopicInfo, TransportError,
};
use keel_log::{Log, OffsetCommit, Partition, Topic, TopicConfig, TopicError};

use crate::bus::EmbeddedBus;
use crate::publish::transport_error;

impl AdminTransport for EmbeddedBus {
    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, TransportError>> {
        self.blocking(|log| {
            Ok(log
                .topics()
                .iter()
                .map(|topic| TopicInfo {
                    name: topic.name().to_string(),
                    partitions: topic.config().partitions,
                })
                .collect())
        })
    }

    fn create_topic<'a>(
        &'a self,
        name: &'a str,
        partitions: u32,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        let name = name.to_string();
        self.blocking(move |log| {
            let topic = match log.create_topic(&name, TopicConfig::new(partitions)) {
                Ok(topic) => topic,
                Err(TopicError::AlreadyExists(_)) => find_topic(log, &name)?,
                Err(error) => return Err(transport_error(error)),
            };
            Ok(topic.config().partitions)
        })
    }

    fn partition_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionOffsets>, TransportError>> {
        let name = topic.to_string();
        self.blocking(move |log| {
            Ok(find_topic(log, &name)?
                .partitions()
                .iter()
                .zip(0..)
                .map(|(partition, index)| PartitionOffsets {
                    partition: index,
                    log_start: partition.log_start_offset(),
                    high_watermark: partition.high_watermark(),
                })
                .collect())
        })
    }

    fn offset_for_time<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        time_ms: i64,
    ) -> BoxFuture<'a, Result<Option<u64>, TransportError>> {
        let name = topic.to_string();
        self.blocking(move |log| {
            partition_of(log, &name, partition)?
                .offset_for_timestamp(time_ms)
                .map_err(unavailable)
        })
    }

    fn read<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, TransportError>> {
        let name = topic.to_string();
        self.blocking(move |log| {
            let partition = partition_of(log, &name, partition)?;
            let offset = offset.max(partition.log_start_offset());
            if offset >= partition.high_watermark() {
                return Ok(Vec::new());
            }
            partition
                .read_records(offset, bytes_max)
                .map_err(unavailable)
        })
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        self.blocking(|log| Ok(log.group_offsets().groups()))
    }

    fn committed<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupOffset>, TransportError>> {
        let group = group.to_string();
        self.blocking(move |log| {
            Ok(log
                .group_offsets()
                .group(&group)
                .into_iter()
                .map(|(topic, partition, committed)| GroupOffset {
                    topic,
                    partition,
                    offset: committed.offset,
                })
                .collect())
        })
    }

    fn commit<'a>(
        &'a self,
        group: &'a str,
        offsets: &'a [GroupOffset],
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        let group = group.to_string();
        let commits: Vec<OffsetCommit> = offsets
            .iter()
            .map(|o| OffsetCommit {
                topic: o.topic.clone(),
                partition: o.partition,
                offset: o.offset,
                metadata: "reset".to_string(),
            })
            .collect();
        let now_ms = self.now_ms();
        self.blocking(move |log| {
            log.group_offsets()
                .commit(&group, &commits, now_ms)
                .map_err(unavailable)
        })
    }
}

impl EmbeddedBus {
    /// Runs `f` on the log on a blocking thread.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Log) -> Result<T, TransportError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, TransportError>> {
        let log = self.log().clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&log))
                .await
                .map_err(unavailable)?
        })
    }
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
