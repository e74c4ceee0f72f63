//! The administrative half of the port on SQS/SNS: topics are listed and created, and a
//! group deleted; nothing else is there to ask. SQS keeps no offsets — a group's queue
//! forgets a message once a member deletes it and SNS stores nothing — so stored ranges,
//! reads, offsets by time and committed offsets are refused with
//! [`TransportError::Unsupported`] instead of being faked (docs/engines.md lists what that
//! leaves out: `keel groups lag|reset`, `keel dlq` listings, replay).
//!
//! A group owns its queue on each topic it reads (`.retry` included) and that queue's
//! subscription; the SNS topics are shared with every other group and stay. SQS cannot
//! tell that a member runs, only that one is at work: a queue with messages received and
//! not deleted refuses the deletion ([`TransportError::GroupActive`]); an idle member's
//! next receive finds its queue gone, so stop the group's members first.

use std::collections::BTreeMap;

use keel_core::{
    AdminTransport, BoxFuture, GroupOffset, PartitionOffsets, Record, TopicInfo, TopicSetting,
    TransportError,
};

use keel_runtime::limits::DLQ_SUFFIX;

use crate::connection::DEAD_LETTER_KEEPER;
use crate::transport::SqsTransport;

const ENGINE: &str = "Amazon SQS";
const NO_OFFSETS: &str = "SQS keeps no offsets: a message is gone once a member deletes it";
const SETTINGS: &str = "read or alter a topic's settings";
const NO_SETTINGS: &str = "an SNS topic stores nothing, so it has no retention or other settings; each group's queue keeps messages 14 days";

fn unsupported<T>(operation: &'static str) -> Result<T, TransportError> {
    unsupported_for(operation, NO_OFFSETS)
}

fn unsupported_for<T>(operation: &'static str, reason: &'static str) -> Result<T, TransportError> {
    Err(TransportError::Unsupported {
        engine: ENGINE,
        operation,
        reason,
    })
}

impl AdminTransport for SqsTransport {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, TransportError>> {
        Box::pin(async move {
            let topics = self.connection().topics().await?;
            Ok(topics
                .into_iter()
                .map(|(name, entry)| TopicInfo {
                    name,
                    partitions: entry.partitions,
                })
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
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionOffsets>, TransportError>> {
        Box::pin(async { unsupported("tell a partition's stored range") })
    }

    fn offset_for_time<'a>(
        &'a self,
        _: &'a str,
        _: u32,
        _: i64,
    ) -> BoxFuture<'a, Result<Option<u64>, TransportError>> {
        Box::pin(async { unsupported("find an offset by time") })
    }

    fn read<'a>(
        &'a self,
        _: &'a str,
        _: u32,
        _: u64,
        _: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, TransportError>> {
        Box::pin(async { unsupported("read a topic's stored records") })
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        Box::pin(async { unsupported("list groups with committed offsets") })
    }

    fn committed<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupOffset>, TransportError>> {
        Box::pin(async { unsupported("tell a group's committed offsets") })
    }

    fn commit<'a>(
        &'a self,
        _: &'a str,
        _: &'a [GroupOffset],
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async { unsupported("set a group's offsets") })
    }

    fn delete_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let connection = self.connection();
            let queues: Vec<_> = connection
                .group_queues()
                .await?
                .into_iter()
                .filter(|q| q.group == group)
                .collect();
            if group == DEAD_LETTER_KEEPER && queues.iter().any(|q| q.topic.ends_with(DLQ_SUFFIX)) {
                return Err(TransportError::Refused {
                    reason: format!(
                        "group '{group}' keeps the dead letters of the .dlq topics: deleting it would lose them"
                    ),
                });
            }
            for queue in &queues {
                if connection.in_flight(&queue.url).await? > 0 {
                    return Err(TransportError::GroupActive {
                        group: group.to_string(),
                    });
                }
            }
            for queue in &queues {
                connection.delete_group_queue(queue).await?;
            }
            Ok(())
        })
    }
    fn topic_config<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<TopicSetting>, TransportError>> {
        Box::pin(async { unsupported_for(SETTINGS, NO_SETTINGS) })
    }

    fn alter_topic_config<'a>(
        &'a self,
        _: &'a str,
        _: &'a BTreeMap<String, String>,
        _: bool,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async { unsupported_for(SETTINGS, NO_SETTINGS) })
    }
}
