//! The administrative half of the port on SQS/SNS: topics are listed and created; nothing
//! else is there to ask. SQS keeps no offsets — a group's queue forgets a message once a
//! member deletes it and SNS stores nothing — so stored ranges, reads, offsets by time and
//! committed offsets are refused with [`TransportError::Unsupported`] instead of being
//! faked (docs/engines.md lists what that leaves out: `keel groups lag|reset`, `keel dlq`
//! listings, replay).

use keel_core::{
    AdminTransport, BoxFuture, GroupOffset, PartitionOffsets, Record, TopicInfo, TransportError,
};

use crate::transport::SqsTransport;

const ENGINE: &str = "Amazon SQS";
const NO_OFFSETS: &str = "SQS keeps no offsets: a message is gone once a member deletes it";

fn unsupported<T>(operation: &'static str) -> Result<T, TransportError> {
    Err(TransportError::Unsupported {
        engine: ENGINE,
        operation,
        reason: NO_OFFSETS,
    })
}

impl AdminTransport for SqsTransport {
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
}
