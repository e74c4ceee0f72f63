//! `keel`: an event backbone for services — the crate applications depend on.
//!
//! This facade holds no code of its own; it re-exports Keel's layers so a service needs one
//! dependency: [`core`] (the CloudEvents envelope, typed events, trace context, and the
//! ports every transport implements), [`log`] (the embedded, durable, partitioned event
//! log), [`runtime`] (publisher, handlers, router with retries and dead letters — the same
//! on every transport), [`embedded`] (the transport over the embedded log: the bus, its
//! consumer groups, the operator tools' library), [`sql`] (the transactional
//! outbox, its relay and the inbox on SQLite — and on PostgreSQL with the `postgres`
//! feature —, the event store, projections and saga state on SQLite), [`store`] (event
//! store, subscriptions, snapshots, aggregates), [`projection`] (checkpointed read models),
//! [`saga`] (orchestrated sagas as durable state machines) and [`schema`] (the schema
//! registry: compatibility rules, publish-time validation, consumer contracts with
//! upcasters, the event catalog). With the `kafka` feature,
//! `kafka` is the Kafka transport (rdkafka), for `keel serve` or any Kafka cluster: the same
//! routes run on it with one line changed, `runtime::Router::new(&kafka)` (with `kafka` a
//! `kafka::KafkaTransport::connect(&config)?`) instead of `runtime::Router::new(&bus)`, and
//! `KafkaTransport::publisher` is the `Publisher`. With the
//! `otel` feature, `otel` exports Keel's spans over OTLP, one trace across the events a
//! request caused.

pub use keel_core as core;
pub use keel_embedded as embedded;
#[cfg(feature = "kafka")]
pub use keel_kafka_client as kafka;
pub use keel_log as log;
#[cfg(feature = "otel")]
pub use keel_otel as otel;
pub use keel_projection as projection;
pub use keel_runtime as runtime;
pub use keel_saga as saga;
pub use keel_schema as schema;
pub use keel_sql as sql;
pub use keel_store as store;
