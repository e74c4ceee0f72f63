//! Committed consumer-group offsets, stored in the compacted internal topic
//! `__consumer_offsets` (one partition, `fsync = always`).
//!
//! Each commit is one record per (group, topic, partition) — all records of one call in one
//! batch, so a multi-partition commit is atomic. On open the topic is replayed into memory;
//! compaction keeps it from growing. A group, or every group's offsets in a deleted topic,
//! is forgotten with tombstones.
//!
//! Record layout (big-endian): key `1u8, group: str16, topic: str16, partition: u32`;
//! value `1u8, offset: u64, commit_time_ms: i64, metadata: str16`, where `str16` is a `u16`
//! length and UTF-8 bytes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::config::{CleanupPolicy, FsyncPolicy, TopicConfig};
use crate::error::{AppendError, ReadError};
use crate::partition::Partition;
use keel_core::NewRecord;

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

const FORMAT_VERSION: u8 = 1;
const READ_CHUNK_BYTES: usize = 1024 * 1024;

/// One committed position of a group in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will read.
    pub offset: u64,
    /// Free-form client metadata (Kafka's commit metadata).
    pub metadata: String,
    /// When it was committed, ms since the epoch.
    pub commit_time_ms: i64,
}

/// One commit request entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
    /// The next offset to read.
    pub offset: u64,
    /// Client metadata (at most 65535 bytes).
    pub metadata: String,
}

type Key = (String, String, u32);

/// The committed offsets of all groups.
#[derive(Debug)]
pub struct GroupOffsets {
    partition: Arc<Partition>,
    committed: Mutex<BTreeMap<Key, CommittedOffset>>,
}

impl GroupOffsets {
    pub(crate) fn topic_config() -> TopicConfig {
        TopicConfig::new(1)
            .with_fsync(FsyncPolicy::Always)
            .with_cleanup(CleanupPolicy::Compact)
            .with_segment_bytes(16 * 1024 * 1024)
    }

    /// Replays the offsets topic.
    pub(crate) fn load(partition: Arc<Partition>) -> Result<GroupOffsets, ReadError> {
        let mut committed = BTreeMap::new();
        let mut offset = partition.log_start_offset();
        while offset < partition.high_watermark() {
            let records = partition.read_records(offset, READ_CHUNK_BYTES)?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            for record in records {
                let Some(key) = record.key.and_then(decode_key) else {
                    continue;
                };
                match record.value.and_then(decode_value) {
                    Some(value) => committed.insert(key, value),
                    None => committed.remove(&key),
                };
            }
        }
        Ok(GroupOffsets {
            partition,
            committed: Mutex::new(committed),
        })
    }

    /// Commits offsets for `group` atomically (one batch), durably before returning.
    pub fn commit(
        &self,
        group: &str,
        commits: &[OffsetCommit],
        now_ms: i64,
    ) -> Result<(), AppendError> {
        let records: Vec<NewRecord> = commits
            .iter()
            .map(|c| NewRecord {
                key: Some(encode_key(group, &c.topic, c.partition)),
                value: Some(encode_value(c.offset, now_ms, &c.metadata)),
                headers: Vec::new(),
                timestamp_ms: Some(now_ms),
            })
            .collect();
        let mut committed = self.committed();
        self.partition.append(&records)?;
        for c in commits {
            let value = CommittedOffset {
                offset: c.offset,
                metadata: c.metadata.clone(),
                commit_time_ms: now_ms,
            };
            committed.insert((group.into(), c.topic.clone(), c.partition), value);
        }
        Ok(())
    }

    /// The committed offset of `group` in a partition.
    pub fn fetch(&self, group: &str, topic: &str, partition: u32) -> Option<CommittedOffset> {
        self.committed()
            .get(&(group.to_string(), topic.to_string(), partition))
            .cloned()
    }

    /// Every committed offset of `group`, as (topic, partition, offset).
    pub fn group(&self, group: &str) -> Vec<(String, u32, CommittedOffset)> {
        self.committed()
            .iter()
            .filter(|((g, _, _), _)| g == group)
            .map(|((_, t, p), c)| (t.clone(), *p, c.clone()))
            .collect()
    }

    /// Names of all groups with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let mut names: Vec<String> = self.committed().keys().map(|(g, _, _)| g.clone()).collect();
        names.dedup();
        names
    }

    /// Forgets a group (tombstones for each of its offsets).
    pub fn delete_group(&self, group: &str) -> Result<(), AppendError> {
        self.forget(|(g, _, _)| g == group)
    }

    /// Forgets every group's offsets in `topic` (tombstones), as Kafka does when a topic is
    /// deleted: a topic created again under the name starts empty, and a group that kept its
    /// old offsets would skip the new topic's first events.
    pub(crate) fn delete_topic(&self, topic: &str) -> Result<(), AppendError> {
        self.forget(|(_, t, _)| t == topic)
    }

    /// Forgets `group`'s offsets in `partitions` (topic, partition) with tombstones, in one
    /// batch; partitions without a committed offset are skipped.
    pub fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(String, u32)],
    ) -> Result<(), AppendError> {
        self.forget(|(g, t, p)| {
            g == group
                && partitions
                    .iter()
                    .any(|(topic, index)| topic == t && index == p)
        })
    }

    /// Tombstones every committed offset whose key `doomed` picks, in one batch.
    fn forget(&self, doomed: impl Fn(&Key) -> bool) -> Result<(), AppendError> {
        let mut committed = self.committed();
        let keys: Vec<Key> = committed.keys().filter(|k| doomed(k)).cloned().collect();
        if keys.is_empty() {
            return Ok(());
        }
        let tombstones: Vec<NewRecord> = keys
            .iter()
            .map(|(g, t, p)| NewRecord {
                key: Some(encode_key(g, t, *p)),
                ..NewRecord::default()
            })
            .collect();
        self.partition.append(&tombstones)?;
        for key in keys {
            committed.remove(&key);
        }
        Ok(())
    }

    fn committed(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, CommittedOffset>> {
        self.committed.lock().expect("offsets lock")
    }
}

fn put_str16(buf: &mut BytesMut, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
    buf.put_u16(bytes.len() as u16);
    buf.put_slice(bytes);
}

fn get_str16(buf: &mut Bytes) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_u16() as usize;
    if buf.remaining() < len {
        return None;
    }
    String::from_utf8(buf.split_to(len).to_vec()).ok()
}

fn encode_key(group: &str, topic: &str, partition: u32) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u8(FORMAT_VERSION);
    put_str16(&mut buf, group);
    put_str16(&mut buf, topic);
    buf.put_u32(partition);
    buf.freeze()
}

fn decode_key(mut buf: Bytes) -> Option<Key> {
    (buf.try_get_u8().ok()? == FORMAT_VERSION).then_some(())?;
    let group = get_str16(&mut buf)?;
    let topic = get_str16(&mut buf)?;
    let partition = buf.try_get_u32().ok()?;
    Some((group, topic, partition))
}

fn encode_value(offset: u64, commit_time_ms: i64, metadata: &str) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u8(FORMAT_VERSION);
    buf.put_u64(offset);
    buf.put_i64(commit_time_ms);
    put_str16(&mut buf, metadata);
    buf.freeze()
}

fn decode_value(mut buf: Bytes) -> Option<CommittedOffset> {
    (buf.try_get_u8().ok()? == FORMAT_VERSION).then_some(())?;
    let offset = buf.try_get_u64().ok()?;
    let commit_time_ms = buf.try_get_i64().ok()?;
    let metadata = get_str16(&mut buf)?;
    Some(CommittedOffset {
        offset,
        metadata,
        commit_time_ms,
    })
}
