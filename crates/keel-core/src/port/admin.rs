//! The transport port, administrative half: [`AdminTransport`], the few primitive requests
//! the operator tools (`keel groups`, `keel dlq`), the lag and dead-letter gauges and the
//! conformance suite need of a broker — topics and their partitions, each partition's
//! stored range, the offset at a time, reading records, and a group's committed offsets
//! (read and, for a stopped group, set or delete with the group), a topic's settings
//! (read and altered), and deleting a topic.
//!
//! The tools' logic (lag in events and seconds, offset resets: `keel_runtime::admin`) is
//! written once over these primitives, so it behaves the same on every transport. Appends
//! (a replay, an audit record) go through the publishing half
//! ([`PublishTransport`](crate::PublishTransport)).
//!
//! Not here: group membership (`consume.rs`), anything a running consumer does.

use std::collections::BTreeMap;

use super::BoxFuture;
use super::error::TransportError;
use super::record::Record;

/// A topic and its partition count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic.
    pub name: String,
    /// Its partition count.
    pub partitions: u32,
}

/// The stored range of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The partition.
    pub partition: u32,
    /// The first offset still stored.
    pub log_start: u64,
    /// One past the last readable offset.
    pub high_watermark: u64,
}

/// One setting of a topic, under the engine's name for it (Kafka's: `retention.ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSetting {
    /// The setting's name.
    pub name: String,
    /// Its value in force (Kafka's form: -1 for no limit).
    pub value: String,
    /// Whether the value is the engine's default rather than set on this topic.
    pub is_default: bool,
}

/// A group's committed offset in one partition: the next record it handles there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The committed offset.
    pub offset: u64,
}

/// A broker's administrative side. Object safe: tools hold an `Arc<dyn AdminTransport>`,
/// or borrow one (`&dyn AdminTransport`) for the length of an operation.
///
/// Every method is cancel safe except [`AdminTransport::create_topic`],
/// [`AdminTransport::delete_topic`], [`AdminTransport::commit`],
/// [`AdminTransport::delete_group`] and [`AdminTransport::alter_topic_config`], whose
/// effect may or may not happen when dropped.
pub trait AdminTransport: Send + Sync + std::fmt::Debug {
    /// The engine as users name it ("Kafka", "NATS JetStream"), for errors that say what
    /// the engine cannot do (as [`crate::ConsumeTransport::engine`]).
    fn engine(&self) -> &'static str;

    /// Every topic the caller may see (the engine's internal ones left out), by name.
    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, TransportError>>;

    /// The partition count of `name`, created with `partitions` when missing.
    fn create_topic<'a>(
        &'a self,
        name: &'a str,
        partitions: u32,
    ) -> BoxFuture<'a, Result<u32, TransportError>>;

    /// Deletes `topic` and every record of its partitions, so it no longer shows in
    /// [`AdminTransport::topics`] once this answers. A topic the engine does not have is
    /// [`TransportError::UnknownTopic`]; one the engine keeps for itself, or a deletion its
    /// settings forbid, is [`TransportError::Refused`]. An engine with no topic deletion
    /// says so with [`TransportError::Unsupported`] (the default).
    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        let _ = topic;
        Box::pin(std::future::ready(Err(TransportError::Unsupported {
            engine: AdminTransport::engine(self),
            operation: "delete a topic",
            reason: "its admin port has no topic deletion",
        })))
    }

    /// The stored range of every partition of `topic`, by partition.
    fn partition_offsets<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PartitionOffsets>, TransportError>>;

    /// How many records of `partition` are stored from `offset` up to `high_watermark`
    /// (both from [`AdminTransport::partition_offsets`]). Where offsets are dense, as on
    /// Kafka and the embedded log, that is the difference (the default); an engine whose
    /// offsets skip numbers (NATS: stream sequences shared by a topic's partitions)
    /// counts them, so lag is exact there too.
    fn records_between<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        offset: u64,
        high_watermark: u64,
    ) -> BoxFuture<'a, Result<u64, TransportError>> {
        let _ = (topic, partition);
        Box::pin(std::future::ready(
            Ok(high_watermark.saturating_sub(offset)),
        ))
    }

    /// The first offset of `partition` whose record timestamp is at or after `time_ms`;
    /// `None` when every stored record is older.
    fn offset_for_time<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        time_ms: i64,
    ) -> BoxFuture<'a, Result<Option<u64>, TransportError>>;

    /// Records of `partition` from `offset` on (clamped to the stored range), up to about
    /// `bytes_max`, in offset order; empty at the high watermark. Records below `offset`
    /// may come too.
    fn read<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, TransportError>>;

    /// Every consumer group with committed offsets, by name.
    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>, TransportError>>;

    /// The committed offsets of `group`, by topic and partition; empty for an unknown group.
    fn committed<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupOffset>, TransportError>>;

    /// Sets committed offsets of `group`, all or none. Refused with
    /// [`TransportError::GroupActive`] where the engine can tell that members run (their
    /// next commit would overwrite the change); on the embedded log, stopping the group's
    /// routes of this process is the caller's duty.
    fn commit<'a>(
        &'a self,
        group: &'a str,
        offsets: &'a [GroupOffset],
    ) -> BoxFuture<'a, Result<(), TransportError>>;

    /// Deletes `group`: its committed offsets and whatever else the engine keeps for it
    /// (Kafka's group, a durable consumer, a commit queue), so it neither shows in
    /// [`AdminTransport::groups`] nor resumes where it was. Deleting a group that does not
    /// exist succeeds (it is absent afterwards either way). Refused with
    /// [`TransportError::GroupActive`] where the engine can tell that members run (Kafka's
    /// NON_EMPTY_GROUP); on the embedded log, stopping the group's routes of this process
    /// is the caller's duty. An engine with nothing to delete says so with
    /// [`TransportError::Unsupported`] (the default).
    fn delete_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        let _ = group;
        Box::pin(std::future::ready(Err(TransportError::Unsupported {
            engine: AdminTransport::engine(self),
            operation: "delete a consumer group",
            reason: "its admin port has no group deletion",
        })))
    }

    /// Every setting of `topic` with its value in force, by name. An engine whose topics
    /// have no settings to read says so with [`TransportError::Unsupported`] (the default).
    fn topic_config<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<TopicSetting>, TransportError>> {
        let _ = topic;
        Box::pin(std::future::ready(Err(unsupported_settings(
            AdminTransport::engine(self),
        ))))
    }

    /// Sets the settings of `topic` named in `changes` (by the names
    /// [`AdminTransport::topic_config`] gives), all or none, keeping the others; with
    /// `validate_only`, the engine checks the change and makes none (a preview). A bad
    /// name or value is [`TransportError::Refused`]; an engine with no settings to alter
    /// says so with [`TransportError::Unsupported`] (the default).
    ///
    /// Not cancel safe: when dropped, the change may or may not be made.
    fn alter_topic_config<'a>(
        &'a self,
        topic: &'a str,
        changes: &'a BTreeMap<String, String>,
        validate_only: bool,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        let _ = (topic, changes, validate_only);
        Box::pin(std::future::ready(Err(unsupported_settings(
            AdminTransport::engine(self),
        ))))
    }
}

/// The default answer of the topic-settings methods on `engine`.
fn unsupported_settings(engine: &'static str) -> TransportError {
    TransportError::Unsupported {
        engine,
        operation: "read or alter a topic's settings",
        reason: "its admin port has no topic settings",
    }
}
