//! Keel's NATS JetStream transport: the ports of `keel-core` on a NATS server, so a
//! `keel_runtime::Router` runs the same routes — handlers, inbox, retries, retry topics,
//! dead letters — on JetStream as on the embedded log or Kafka.
//!
//! The mapping (ARCHITECTURE.md and docs/engines.md say why):
//!
//! | Keel | JetStream |
//! |---|---|
//! | topic | a stream `<namespace>_<topic>` ([`NatsConfig`]) |
//! | partition | a subject `<namespace>.<topic>.<n>` of that stream; the key's murmur2 picks it |
//! | offset | the stream sequence − 1 (increasing per partition, not dense) |
//! | group member | slots and partition leases in a key-value bucket, renewed by compare-and-set (`member.rs`) |
//! | group's partition | a durable pull consumer with `AckAll`, in generations (`lease.rs`) |
//! | commit | an acknowledgement of the last handled message |
//! | dedupe | `Nats-Msg-Id` = the event id (`publisher.rs`) |
//!
//! Not here: anything of the embedded log (`keel-log`); the router's logic (`keel-runtime`).

mod admin;
mod config;
mod connection;
mod consumers;
mod lease;
mod limits;
mod member;
mod names;
mod publisher;
mod record;
mod transport;

pub use config::{NAMESPACE_DEFAULT, NamespaceError, NatsConfig};
pub use publisher::NatsPublisher;
pub use transport::NatsTransport;
