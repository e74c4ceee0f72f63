//! [`RedisTransport`]: Redis Streams as the runtime's transport — the consuming half of the
//! port (`ConsumeTransport`: a member per route, `member.rs`), the publishing half
//! ([`RedisPublisher`]) and the administrative half (`admin.rs`) on one connection, so a
//! `keel_runtime::Router` runs the same routes on Redis as on the embedded log:
//!
//! ```no_run
//! # use keel_redis::{RedisConfig, RedisTransport};
//! # use keel_runtime::{Handler, Route, Router};
//! # async fn routes(handler: Handler) -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisTransport::connect(&RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let router = Router::new(&redis) // as Router::new(&bus)
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

use crate::config::RedisConfig;
use crate::connection::Connection;
use crate::member::{self, Join};
use crate::publisher::RedisPublisher;

/// A Redis server as the runtime's transport. Cheap to clone; clones share the connection
/// and the metrics.
#[derive(Debug, Clone)]
pub struct RedisTransport {
    publisher: RedisPublisher,
    metrics: Metrics,
}

impl RedisTransport {
    /// Connects to the server `config` names.
    pub async fn connect(config: &RedisConfig) -> Result<RedisTransport, TransportError> {
        let publisher = RedisPublisher::connect(config).await?;
        // The gauges ask a copy without gauges of its own, so no Arc cycle keeps it alive.
        let admin = RedisTransport {
            publisher: publisher.clone(),
            metrics: Metrics::new(),
        };
        Ok(RedisTransport {
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

    /// This server as the runtime's transport: what `Router::new(&redis)` consumes through.
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

impl From<&RedisTransport> for Transport {
    fn from(redis: &RedisTransport) -> Transport {
        redis.transport()
    }
}

impl ConsumeTransport for RedisTransport {
    fn engine(&self) -> &'static str {
        "Redis Streams"
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
        Box::pin(member::join(Join {
            connection: self.connection().clone(),
            group,
            topic,
            policy,
            start_from,
        }))
    }
}
