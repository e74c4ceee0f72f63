//! `keel-kafka-client`: Keel's Kafka transport on rdkafka (librdkafka). It talks to `keel
//! serve`'s Kafka listener and, unchanged, to any Kafka-protocol cluster (Kafka, Redpanda).
//!
//! - [`KafkaPublisher`] publishes events in CloudEvents binary mode with the same record
//!   mapping as the embedded bus (`keel_runtime::event_record`): an event published here
//!   and one published to the embedded log are the same bytes.
//! - It implements `keel_core::PublishPort`, so the outbox relay publishes to Kafka; dead
//!   letters go to `<topic>.dlq`, created with the source's partition count when missing.
//! - [`KafkaConfig`] holds the cluster address and the client settings Keel fixes
//!   (idempotence, `acks=all`, murmur2 keys, manual commits).
//!
//! Not here: the broker (`keel-kafka`), the wire protocol, or any storage.

mod config;
mod limits;
mod member;
mod port;
mod publisher;
mod topics;

pub use config::KafkaConfig;
pub use member::{
    CommitError, JoinError, KafkaMember, KafkaPartition, MemberEvent, MemberOptions, Revocation,
};
pub use publisher::{KafkaPublisher, ProducerError};
