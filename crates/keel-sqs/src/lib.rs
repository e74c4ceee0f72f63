//! Keel's Amazon SQS/SNS transport: the ports of `keel-core` on SQS and SNS (or an
//! API-compatible server such as moto), so a `keel_runtime::Router` runs the same routes —
//! handlers, inbox, retries, retry topics, dead letters — on SQS as on the embedded log,
//! Kafka, NATS, Redis or RabbitMQ.
//!
//! The mapping (ARCHITECTURE.md and docs/engines.md say why):
//!
//! | Keel | SQS/SNS |
//! |---|---|
//! | topic | an SNS FIFO topic `<namespace>-<topic>.fifo`, its partition count in a tag |
//! | group | an SQS FIFO queue `<namespace>-<topic>-<group>.fifo` subscribed to the topic |
//! | per-key order | `MessageGroupId` = the key: one receiver per key at a time |
//! | group member | a receiver of the group's queue, with one lease (`member.rs`) |
//! | offset | the lease's count of the messages it received (`lease.rs`): not stored |
//! | commit | deleting the messages below it |
//! | takeover | the visibility timeout (the session timeout), renewed while a member lives |
//! | dedupe | `MessageDeduplicationId` = the event id (five minutes), then the inbox |
//! | dead letters | Keel's `<topic>.dlq` topic, kept by its queue for the group [`DEAD_LETTER_KEEPER`] |
//!
//! What SQS cannot carry is refused, not faked: no stored offsets, so no replay, no offset
//! reset and no reading a topic back (`admin.rs`). Lag and dead-letter depth come from the
//! queues' own counts (`gauges.rs`), under the embedded log's metric names.
//!
//! Not here: anything of the embedded log (`keel-log`); the router's logic (`keel-runtime`).

mod admin;
mod config;
mod connection;
mod envelope;
mod gauges;
mod lease;
mod limits;
mod member;
mod names;
mod publisher;
mod transport;

pub use config::{NAMESPACE_DEFAULT, NamespaceError, REGION_DEFAULT, SqsConfig};
pub use connection::DEAD_LETTER_KEEPER;
pub use publisher::SqsPublisher;
pub use transport::SqsTransport;
