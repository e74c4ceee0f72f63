//! `keel-kafka`: the Kafka wire protocol over `keel-log`, so unmodified Kafka clients can use
//! a Keel data directory as their broker (`keel serve`).
//!
//! Layers, top-down:
//!
//! - [`KafkaListener`] (`server.rs`) accepts TCP connections; each connection (`connection.rs`)
//!   reads length-prefixed frames, answers them strictly in order, and closes with a logged
//!   reason on a malformed or oversized frame without touching any other connection.
//! - [`codec`] turns a frame into a typed request and a response into a frame. It does no I/O,
//!   so the fuzz target in `fuzz/` drives exactly the bytes-to-request path the server runs.
//! - [`Broker`] (`broker.rs`) dispatches a decoded request to one handler file per API key in
//!   `api/`. The consumer-group APIs are routed to a [`GroupHook`] (`group_hook.rs`), the seam
//!   where the group coordinator ([`group::GroupCoordinator`], `group/`) plugs in.
//! - [`BrokerMetrics`] (`metrics.rs`) counts requests, bytes per topic, partition errors and
//!   open connections for `/metrics`.
//! - `producers.rs` keeps idempotent-producer state (producer id, epoch, last sequences per
//!   partition) so a retried batch is never written twice, and each partition's open and
//!   aborted transactions.
//! - `txn/` is the transaction coordinator (transactional ids, markers, the last stable
//!   offset), its state in the internal topic `__keel_transactions`.
//!
//! The crate touches storage only through `keel-log`'s public API and opens no HTTP port (that
//! is `keel-server`'s job). Supported API keys and versions are listed in
//! `docs/kafka-compatibility.md`.

pub mod acl;
mod api;
mod broker;
pub mod codec;
mod config;
mod connection;
mod fetch_session;
pub mod group;
mod group_hook;
mod internal_topic;
pub mod limits;
mod memory;
mod metrics;
mod producers;
mod request_shape;
pub mod sasl;
mod server;
mod topic_config;
mod topic_id;
mod txn;

pub use broker::Broker;
pub use config::{BrokerConfig, BrokerConfigError, NodeAddress};
pub use group_hook::{GROUP_API_KEYS, GroupHook, GroupHookError, GroupRequest, GroupResponse};
pub use metrics::BrokerMetrics;
pub use server::KafkaListener;
pub use topic_config::{
    NamedConfigError, TopicConfigError, apply_kafka_config, apply_named_config, kafka_configs,
};
pub use txn::{PendingOffsets, TRANSACTIONS_TOPIC};
