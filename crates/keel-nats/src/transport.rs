//! [`NatsTransport`]: NATS JetStream as the runtime's transport — the consuming half of the
//! port (`ConsumeTransport`: a member per route, `member.rs`), the publishing half
//! ([`NatsPublisher`]) and the administrative half (`admin.rs`) on one connection, so a
//! `keel_runtime::Router` runs the same routes on NATS as on the embedded log:
//!
//! ```no_run
//! # use keel_nats::{NatsConfig, NatsTransport};
//! # use keel_runtime::{Handler, Route, Router};
//! # async fn routes(handler: Handler) -> Result<(), Box<dyn std::error::Error>> {
//! let nats = NatsTransport::connect(&NatsConfig::new("nats://127.0.0.1:4222")).await?;
//! let router = Router::new(&nats) // as Router::new(&bus)
//!     .route(Route::new("orders", "billing", handler))
//!     .start()?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use keel_core::{
    BoxFuture, Clock, ConsumeTransport, GroupPolicy, Membership, StartFrom, SystemClock,
    TransportError,
};
use keel_runtime::admin::gauges::AdminGauges;
use keel_runtime::{Metrics, Publisher, Transport};

use crate::config::NatsConfig;
use crate::connection::Connection;
use crate::member::{self, Join};
use crate::publisher::NatsPublisher;

/// A NATS server as the runtime's transport. Cheap to clone; clones share the connection
/// and the metrics.
#[derive(Debug, Clone)]
pub struct NatsTransport {
    publisher: NatsPublisher,
    metrics: Metrics,
}

impl NatsTransport {
    /// Connects to the server `config` names.
    pub async fn connect(config: &NatsConfig) -> Result<NatsTransport, TransportError> {
        let publisher = NatsPublisher::connect(config).await?;
        // The gauges ask a copy without gauges of its own, so no Arc cycle keeps it alive.
        let admin = NatsTransport {
            publisher: publisher.clone(),
            metrics: Metrics::new(),
        };
        Ok(NatsTransport {
            publisher,
            metrics: Metrics::with_gauges(Arc::new(AdminGauges::new(Arc::new(admin)))),
        })
    }

    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.publisher.connection
    }

    /// The publisher service code holds, counting into this transport's metrics.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(Arc::new(self.publisher.clone()), self.metrics.clone())
    }

    /// This server as the runtime's transport: what `Router::new(&nats)` consumes through.
    pub fn transport(&self) -> Transport {
        Transport::new(Arc::new(self.clone()), self.publisher())
    }

    /// The partition count of `topic`, created with `partitions` when missing.
    pub async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<u32, TransportError> {
        self.publisher.ensure_topic(topic, partitions).await
    }

    /// The routes' metrics, with the lag and dead-letter gauges of every group on the
    /// server (asked of the admin port at each scrape: encode them off the executor).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl From<&NatsTransport> for Transport {
    fn from(nats: &NatsTransport) -> Transport {
        nats.transport()
    }
}

impl ConsumeTransport for NatsTransport {
    fn engine(&self) -> &'static str {
        "NATS JetStream"
    }

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    fn check_route(&self, _: &str, _: &str, _: &GroupPolicy) -> Result<(), TransportError> {
        // The server is asked when the member joins (`join`), off the caller's thread.
        Ok(())
    }

    fn join<'a>(
        &'a self,
        group: &'a str,
        topic: &'a str,
        policy: &'a GroupPolicy,
        start_from: StartFrom,
    ) -> BoxFuture<'a, Result<Box<dyn Membership>, TransportError>> {
        Box::pin(async move {
            member::join(Join {
                connection: self.connection().clone(),
                group,
                topic,
                policy,
                start_from,
            })
            .await
        })
    }
}
