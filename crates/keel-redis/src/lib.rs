//! Keel's Redis Streams transport: the ports of `keel-core` on a Redis server (7.0 or
//! later), so a `keel_runtime::Router` runs the same routes — handlers, inbox, retries,
//! retry topics, dead letters — on Redis as on the embedded log, Kafka or NATS.
//!
//! The mapping (ARCHITECTURE.md and docs/engines.md say why):
//!
//! | Keel | Redis |
//! |---|---|
//! | topic | an entry in the hash `<namespace>:topics` (topic → partition count) |
//! | partition | a stream `<namespace>:stream:<topic>:<n>`; the key's murmur2 picks it |
//! | offset | the entry id `0-<offset + 1>` (`XADD … 0-*`): dense from 0 |
//! | group member | slots and partition leases: `SET NX PX`, renewed by a Lua check-and-set (`member.rs`) |
//! | group's partition | a consumer group on the stream, read with `XREADGROUP`, a takeover's `XAUTOCLAIM` (`lease.rs`) |
//! | commit | `XACK` of the entries below the offset, only while the lease is held |
//! | dedupe | none in Redis: the inbox |
//!
//! Not here: anything of the embedded log (`keel-log`); the router's logic (`keel-runtime`).

mod admin;
mod config;
mod connection;
mod groups;
mod keys;
mod lease;
mod limits;
mod member;
mod publisher;
mod record;
mod transport;

pub use config::{NAMESPACE_DEFAULT, NamespaceError, RedisConfig};
pub use publisher::RedisPublisher;
pub use transport::RedisTransport;
