//! `keel-server`: the composition behind `keel serve` — one process that owns a Keel data
//! directory and serves it to other processes.
//!
//! [`Server::open`] takes the data directory's lock and recovers the log; [`Server::run`]
//! binds every configured listener, serves until the shutdown future completes, then stops
//! accepting, lets in-flight requests finish (bounded by
//! [`ServerConfig::shutdown_grace_ms`]), syncs every partition and returns.
//!
//! Listeners:
//! - HTTP ([`ServerConfig::http_addr`]): `GET /health` and `GET /metrics` (Prometheus /
//!   OpenMetrics text: the runtime's counters and the lag and dead-letter gauges computed
//!   from the log at each scrape), and the operator API under `/api` (topics, group lag,
//!   dead letters with replay and purge, the audit log, topics and events) for a data
//!   directory the server owns — see `admin_api.rs` and `topics_api.rs` for the routes and
//!   `GET /api/openapi.json` for their description — and the web console at `/`
//!   (`console/`), server-rendered pages over the same functions.
//! - Kafka ([`ServerConfig::kafka_addr`]): the Kafka wire protocol (`keel-kafka`) over the
//!   same log, for unmodified Kafka clients.
//! - Schema registry ([`ServerConfig::registry_addr`]): Confluent Schema Registry's REST API
//!   over `keel_schema::Registry`, stored in the log's `_keel_schemas` topic.
//!
//! [`MetricsListener`] is the same HTTP listener cut down to `/metrics` and `/health`, for a
//! Keel process that serves no data directory (`keel relay`).
//!
//! [`ClusterServer`] serves the same console and API for a Kafka-protocol cluster instead
//! of a data directory (`keel serve --brokers`): the HTTP listener only, its pages run on
//! the cluster's transport ports ([`Cluster`]) by the same code.
//!
//! The crate holds composition only: no business logic, no protocol codecs (those live in
//! `keel-kafka` and `keel-schema`), and it reads no environment variables or files — the
//! `keel` binary turns flags, environment and the config file into a [`ServerConfig`].

mod access;
mod admin_api;
mod allowed_hosts;
mod app;
mod authentication;
mod cluster_server;
mod config;
mod console;
mod events;
mod history;
mod http;
mod http_listener;
mod log_metrics;
mod metrics_listener;
mod schema_registry;
mod schemas_api;
mod server;
mod source;
mod topic_list;
mod topic_settings;
mod topics_api;

pub use authentication::HttpToken;
pub use cluster_server::ClusterServer;
pub use config::{
    CONSOLE_DATABASES_MAX, ConfigError, ConsoleConfig, HTTP_ADDR_DEFAULT, KAFKA_ADDR_DEFAULT,
    LAG_ALERT_MS_DEFAULT, REGISTRY_ADDR_DEFAULT, ServerConfig, TRACE_ID_PLACEHOLDER,
};
pub use history::HistoryConfig;
pub use http_listener::{
    HTTP_CONNECTIONS_MAX_DEFAULT, HTTP_HEADER_READ_TIMEOUT_MS_DEFAULT, HTTP_IDLE_MS_DEFAULT,
    HttpLimits,
};
pub use keel_listener::tls::TlsIdentity;
pub use metrics_listener::{HealthCheck, MetricsListener, MetricsListenerConfig};
pub use server::{BoundAddrs, ServeError, Server};
pub use source::Cluster;
