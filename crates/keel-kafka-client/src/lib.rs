//! `keel-kafka-client`: Keel's Kafka transport on rdkafka (librdkafka). It talks to `keel
//! serve`'s Kafka listener and, unchanged, to any Kafka-protocol cluster (Kafka, Redpanda).
//!
//! - [`KafkaPublisher`] is the publishing half of the port (`keel_core::PublishTransport`)
//!   on an idempotent producer, with the same record mapping as the embedded bus
//!   (`keel_runtime::event_record`): an event published here and one published to the
//!   embedded log are the same bytes. Dead letters go to `<topic>.dlq`, created with the
//!   source's partition count when missing.
//! - [`KafkaTransport`] is the consuming half of the port (`keel_core::ConsumeTransport`) and
//!   the runtime's `Transport` on the cluster: `keel_runtime::Router::new(&kafka)` runs the
//!   same routes as `Router::new(&bus)` — handlers, inbox, blocking and retry-topic retries,
//!   dead letters to `<topic>.dlq` — on Kafka, and [`KafkaTransport::publisher`] is the
//!   `keel_runtime::Publisher` service code and the outbox relay use. Its metrics count
//!   published, handled, failed and dead-lettered events and handler latency per topic and
//!   group, and report consumer lag for the partitions this process consumes: in events
//!   (librdkafka's statistics, every 5 s unless `statistics.interval.ms` is set) and in
//!   seconds (the age of the oldest record a member fetched and has not committed, at the
//!   scrape); dead-letter depth is not. The same checks run on both transports
//!   (`tests/conformance.rs`, `keel_runtime::conformance`).
//! - [`KafkaMember`] is one consumer-group member: assignments and revocations (acknowledged
//!   after the drain and commit), per-partition fetch and commit.
//! - [`KafkaAdmin`] is the administrative half of the port (`keel_core::AdminTransport`):
//!   topics, stored ranges, offsets by time, reading records, groups and their committed
//!   offsets (set only while the group is empty), for the operator tools and the
//!   conformance suite.
//! - [`KafkaConfig`] holds the cluster address and the client settings Keel fixes
//!   (idempotence, `acks=all`, murmur2 keys, manual commits).
//! - [`diagnose`] asks a cluster that cannot be reached why, in the broker's words (a
//!   refused login, a failed TLS handshake), which librdkafka's admin client does not pass on.
//!
//! Not here: the broker (`keel-kafka`), the wire protocol, or any storage.

mod admin;
mod batch_queue;
mod config;
mod diagnosis;
mod gauges;
mod group_clients;
mod limits;
mod member;
mod publisher;
mod readers;
mod record;
mod topic_config;
mod topics;
mod transaction;
mod transport;
mod uncommitted;

pub use admin::{AdminError, KafkaAdmin};
pub use config::{ADMIN_READERS_PROPERTY, KafkaConfig};
pub use diagnosis::diagnose;
pub use member::{
    CommitError, JoinError, KafkaMember, KafkaPartition, MemberEvent, MemberOptions, PartitionLags,
    PartitionOffsets, Revocation,
};
pub use publisher::{KafkaPublisher, ProducerError};
pub use transport::KafkaTransport;
