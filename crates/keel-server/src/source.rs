//! Where the console and the operator API find their data: the data directory this server
//! owns ([`Source::Log`]), or a Kafka-protocol cluster reached through the transport port
//! ([`Source::Cluster`]: `keel serve --brokers`, no log of its own).
//!
//! Topics, partitions, consumer groups and their lag, dead letters with replay and purge,
//! the audit log and the event browser are written once over the ports
//! (`keel_core::AdminTransport` to read and commit, `keel_core::PublishTransport` to append)
//! with `keel_runtime::admin`'s logic, and [`App::on_ports`](crate::app::App::on_ports)
//! runs them on either source: on the log through `keel_embedded::admin::LogAdmin` on a
//! blocking thread (its answers are ready at once, so a page of 6,000 partitions costs what
//! it cost before the port), on a cluster through its client. What only a data directory
//! has (byte sizes, topic settings, the schema registry, the application databases,
//! recovery) answers [`not_on_a_cluster`] there.
//!
//! Not here: the logic itself, any client of a cluster (the binary builds one and hands
//! over its ports, so this crate never links librdkafka).

use std::fmt;
use std::sync::Arc;

use axum::http::StatusCode;
use keel_core::{AdminTransport, PublishTransport};
use keel_embedded::EmbeddedBus;
use keel_runtime::{Metrics, Publisher};

use crate::app::ApiError;
use crate::events::ScanLimits;

/// A cluster the console reads through the transport port.
#[derive(Clone)]
pub struct Cluster {
    /// How the operator named it (`kafka://host:port,…`), for the pages' header.
    pub name: String,
    /// Its administrative side: topics, offsets, reads, groups, commits.
    pub admin: Arc<dyn AdminTransport>,
    /// Its publishing side: a replay's events and the audit log's records.
    pub publish: Arc<dyn PublishTransport>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster").field("name", &self.name).finish()
    }
}

/// The data the console and the API serve.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// The log of the data directory this server owns.
    Log(Arc<EmbeddedBus>),
    /// A cluster reached through the ports.
    Cluster(Arc<Cluster>),
}

impl Source {
    /// How far the event browser's scans read here (a cluster's reads are fetches).
    pub(crate) fn scan_limits(&self) -> ScanLimits {
        match self {
            Source::Log(_) => ScanLimits::LOG,
            Source::Cluster(_) => ScanLimits::CLUSTER,
        }
    }

    /// A publisher of events on this source: the bus's on the log, one over the cluster's
    /// publishing port (counting into metrics of its own) on a cluster.
    pub(crate) fn publisher(&self) -> Publisher {
        match self {
            Source::Log(bus) => bus.publisher(),
            Source::Cluster(cluster) => Publisher::new(cluster.publish.clone(), Metrics::new()),
        }
    }

    /// The bus over the owned log, or the answer that `what` needs one.
    pub(crate) fn bus(&self, what: &str) -> Result<&Arc<EmbeddedBus>, ApiError> {
        match self {
            Source::Log(bus) => Ok(bus),
            Source::Cluster(cluster) => Err(not_on_a_cluster(what, &cluster.name)),
        }
    }
}

/// The answer of a route that needs the data directory on a server that serves a cluster.
pub(crate) fn not_on_a_cluster(what: &str, cluster: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "{what} needs a data directory that keel serve owns; this console serves the Kafka cluster {cluster}, which has topics, consumer groups, dead letters and events here"
        ),
    )
}
