//! The administrative half of the port on Redis: topics from the registry hash, a
//! partition's range from its stream's first and last entries (offsets are dense: entry
//! `0-<n>` is offset `n − 1`), reads with `XRANGE`, and a group's committed offsets as
//! `groups.rs` derives them. A reset recreates the group at the offset (its pending list
//! emptied) and a delete destroys it on every stream, both refused while a member holds one
//! of its partitions' leases. Deleting a topic deletes its streams and its registration.

use keel_core::{
    AdminTransport, BoxFuture, GroupOffset, PartitionOffsets, Record, TopicInfo, TransportError,
};
use redis::Value;

use crate::connection::unavailable;
use crate::groups::{self, GroupStart, group_infos};
use crate::limits::{READ_COUNT_MAX, TIME_SCAN_MAX};
use crate::record::{decode_entries, id_of};
use crate::transport::RedisTransport;

impl RedisTransport {
    /// Up to `count` entries of `stream` from `offset` on.
    async fn range(
        &self,
        stream: &str,
        offset: u64,
        count: usize,
    ) -> Result<Vec<Record>, TransportError> {
        let reply: Value = redis::cmd("XRANGE")
            .arg(stream)
            .arg(id_of(offset))
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.connection().redis())
            .await
            .map_err(|e| unavailable(format!("reading {stream}: {e}")))?;
        Ok(decode_entries(reply))
    }

    /// The stream's last entry's offset.
    async fn last(&self, stream: &str) -> Result<Option<u64>, TransportError> {
        let reply: Value = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.connection().redis())
            .await
            .map_err(|e| unavailable(format!("reading {stream}: {e}")))?;
        Ok(decode_entries(reply).first().map(|r| r.offset))
    }

    /// The groups on `stream`, by name.
    async fn stream_groups(&self, stream: &str) -> Result<Vec<String>, TransportError> {
        let reply: redis::RedisResult<Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(&mut self.connection().redis())
            .await;
        match reply {
            Ok(reply) => Ok(group_infos(&reply)
                .into_iter()
                .map(|(name, _)| name)
                .collect()),
            Err(e) if e.to_string().contains("no such key") => Ok(Vec::new()),
            Err(e) => Err(unavailable(format!("groups of {stream}: {e}"))),
        }
    }

    /// [`TransportError::GroupActive`] when a member of `group` holds the lease of
    /// `topic`'s `partition`: it would read on (and commit) after a reset or a delete.
    async fn refuse_held_lease(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<(), TransportError> {
        let lease = self.connection().keys.lease(topic, group, partition);
        let held: bool = redis::cmd("EXISTS")
            .arg(&lease)
            .query_async(&mut self.connection().redis())
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if held {
            return Err(TransportError::GroupActive {
                group: group.to_string(),
            });
        }
        Ok(())
    }

    /// Destroys the consumer group `group` of `stream` (its position and pending list);
    /// nothing where it has none.
    async fn destroy_group(&self, stream: &str, group: &str) -> Result<(), TransportError> {
        let reply: redis::RedisResult<i64> = redis::cmd("XGROUP")
            .arg("DESTROY")
            .arg(stream)
            .arg(group)
            .query_async(&mut self.connection().redis())
            .await;
        match reply {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("requires the key to exist") => Ok(()),
            Err(e) => Err(unavailable(format!("group '{group}' on {stream}: {e}"))),
        }
    }
}

impl AdminTransport for RedisTransport {
    fn engine(&self) -> &'static str {
        "Redis Streams"
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, TransportError>> {
        Box::pin(async move {
            Ok(self
                .connection()
                .topics()
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

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(self.connection().delete_topic(topic))
    }

    fn partition_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionOffsets>, TransportError>> {
        Box::pin(async move {
            let partitions = self.connection().partitions(topic).await?.ok_or_else(|| {
                TransportError::UnknownTopic {
                    topic: topic.to_string(),
                }
            })?;
            let mut ranges = Vec::with_capacity(partitions as usize);
            for partition in 0..partitions {
                let stream = self.connection().keys.stream(topic, partition);
                let high_watermark = self.last(&stream).await?.map_or(0, |last| last + 1);
                let log_start = self
                    .range(&stream, 0, 1)
                    .await?
                    .first()
                    .map_or(high_watermark, |first| first.offset);
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
            let stream = self.connection().stream(topic, partition).await?;
            // Entry ids carry no time (they are dense offsets), so this scans, bounded.
            let mut offset = 0;
            let mut scanned = 0;
            while scanned < TIME_SCAN_MAX {
                let records = self.range(&stream, offset, READ_COUNT_MAX).await?;
                let Some(last) = records.last() else {
                    return Ok(None);
                };
                offset = last.offset + 1;
                scanned += records.len();
                if let Some(found) = records.iter().find(|r| r.timestamp_ms >= time_ms) {
                    return Ok(Some(found.offset));
                }
            }
            Err(TransportError::Refused {
                reason: format!(
                    "no record at or after {time_ms} in the first {TIME_SCAN_MAX} of {topic}/{partition}; Redis has no time index"
                ),
            })
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
            let stream = self.connection().stream(topic, partition).await?;
            let mut records = self.range(&stream, offset, READ_COUNT_MAX).await?;
            let mut bytes = 0;
            let keep = records
                .iter()
                .take_while(|r| {
                    let under = bytes < bytes_max;
                    bytes += r.size_bytes();
                    under
                })
                .count();
            records.truncate(keep.max(1));
            Ok(records)
        })
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        Box::pin(async move {
            let mut groups = Vec::new();
            for (topic, partitions) in self.connection().topics().await? {
                for partition in 0..partitions {
                    let stream = self.connection().keys.stream(&topic, partition);
                    groups.extend(self.stream_groups(&stream).await?);
                }
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
            let mut redis = self.connection().redis();
            for (topic, partitions) in self.connection().topics().await? {
                for partition in 0..partitions {
                    let stream = self.connection().keys.stream(&topic, partition);
                    let committed = groups::committed(&mut redis, &stream, group)
                        .await
                        .map_err(|e| unavailable(format!("group '{group}' on {stream}: {e}")))?;
                    if let Some(offset) = committed {
                        offsets.push(GroupOffset {
                            topic: topic.clone(),
                            partition,
                            offset,
                        });
                    }
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
            let mut redis = self.connection().redis();
            let keys = &self.connection().keys;
            for offset in offsets {
                self.connection()
                    .stream(&offset.topic, offset.partition)
                    .await?;
                self.refuse_held_lease(group, &offset.topic, offset.partition)
                    .await?;
            }
            for offset in offsets {
                let stream = keys.stream(&offset.topic, offset.partition);
                self.destroy_group(&stream, group).await?;
                groups::create(
                    &mut redis,
                    &stream,
                    group,
                    GroupStart::Offset(offset.offset),
                )
                .await
                .map_err(|e| unavailable(format!("group '{group}' on {stream}: {e}")))?;
            }
            Ok(())
        })
    }

    /// Every stream's consumer group of that name destroyed (position and pending list),
    /// refused while a member holds one of the group's leases.
    fn delete_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let mut held = Vec::new();
            for (topic, partitions) in self.connection().topics().await? {
                for partition in 0..partitions {
                    let stream = self.connection().keys.stream(&topic, partition);
                    if self
                        .stream_groups(&stream)
                        .await?
                        .iter()
                        .any(|g| g == group)
                    {
                        self.refuse_held_lease(group, &topic, partition).await?;
                        held.push(stream);
                    }
                }
            }
            for stream in held {
                self.destroy_group(&stream, group).await?;
            }
            Ok(())
        })
    }
}
