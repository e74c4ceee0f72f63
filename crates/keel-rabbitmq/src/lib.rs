//! `keel-rabbitmq`: Keel's RabbitMQ transport on lapin (AMQP 0-9-1), for RabbitMQ 3.10 and
//! later with streams enabled.
//!
//! A topic is one RabbitMQ **stream** per partition (`<topic>.<partition>`), a key goes to
//! the partition murmur2 maps it to (as on every transport), and a group's members share
//! the partitions through classic queues (`member.rs`): one reader per partition, so per-key
//! order holds with competing consumers, and a new group reads the history. Streams, not
//! quorum queues behind a consistent-hash exchange, because a queue forgets what it
//! delivered: a group joining later would miss every earlier event, and replay, `keel dlq`
//! and lag by offset need a log. ARCHITECTURE.md has the whole reasoning.
//!
//! - [`RabbitPublisher`]: the publishing half of the port, with publisher confirms.
//! - [`RabbitTransport`]: the consuming half and the runtime's `Transport`;
//!   `keel_runtime::Router::new(&rabbit)` runs the same routes as on the embedded log.
//! - [`RabbitAdmin`]: the administrative port (topics, ranges, reads, committed offsets).
//!
//! Dead letters go to Keel's `<topic>.dlq` topic like on every transport, not to
//! RabbitMQ's dead-letter exchanges. What RabbitMQ 3.10 cannot give through AMQP, and how
//! the transport makes up for it: a stream's last offset (reads end after a quiet
//! [`READ_IDLE`](limits) moment), the offset a publish was stored at
//! (`Published::offset` is 0), a list of queues (registry streams `keel.topics` and
//! `keel.groups`).
//!
//! Built without TLS (lapin's default rustls provider builds aws-lc's C); the crate is
//! outside the workspace's default members. Measured: the crate and lapin's tree build in
//! about 40 s of CPU over a warm workspace build.

mod admin;
mod broker;
mod client;
mod codec;
mod config;
mod lease;
mod limits;
mod member;
mod names;
mod offsets;
mod publisher;
mod reader;
mod transport;

pub use admin::RabbitAdmin;
pub use config::RabbitConfig;
pub use publisher::RabbitPublisher;
pub use transport::RabbitTransport;
