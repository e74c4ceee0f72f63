//! [`SqsTransport`]: SQS and SNS as the runtime's transport — the consuming half of the
//! port (`ConsumeTransport`: a member per route, `member.rs`), the publishing half
//! ([`SqsPublisher`]) and the administrative half (`admin.rs`) on one pair of clients, so a
//! `keel_runtime::Router` runs the same routes on SQS as on the embedded log:
//!
//! ```no_run
//! # use keel_sqs::{SqsConfig, SqsTransport};
//! # use keel_runtime::{Handler, Route, Router};
//! # async fn routes(handler: Handler) -> Result<(), Box<dyn std::error::Error>> {
//! let sqs = SqsTransport::connect(&SqsConfig::local("http://127.0.0.1:4566")).await?;
//! let router = Router::new(&sqs) // as Router::new(&bus)
//!     .route(Route::new("orders", "billing", handler))
//!     .start()?;
//! # Ok(()) }
//! ```
//!
//! A group gets only what is published once its queue is subscribed (SNS keeps nothing), so
//! on a multi-threaded runtime [`Router::start`](keel_runtime::Router::start) creates and
//! subscribes the route's queues before it returns (`check_route`): an event published
//! after `start` returned reaches the group. On a current-thread runtime that cannot block,
//! the queues are made when the member joins, a moment later.

use std::sync::Arc;

use keel_core::{
    BoxFuture, Clock, ConsumeTransport, GroupPolicy, Membership, PublishTransport, StartFrom,
    SystemClock, TransportError,
};
use keel_runtime::limits::RETRY_SUFFIX;
use keel_runtime::redelivery::retry_topic;
use keel_runtime::{Metrics, Publisher, Transport};
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::config::SqsConfig;
use crate::connection::Connection;
use crate::gauges::SqsGauges;
use crate::member::{self, Join};
use crate::publisher::SqsPublisher;

/// An SQS/SNS account as the runtime's transport. Cheap to clone; clones share the clients
/// and the metrics.
#[derive(Debug, Clone)]
pub struct SqsTransport {
    publisher: SqsPublisher,
    metrics: Metrics,
}

impl SqsTransport {
    /// Clients for the account `config` names, checked with one call. Call it inside a
    /// tokio runtime: the gauges ask SQS on it.
    pub async fn connect(config: &SqsConfig) -> Result<SqsTransport, TransportError> {
        let publisher = SqsPublisher::connect(config).await?;
        let gauges = SqsGauges::new(publisher.connection.clone());
        Ok(SqsTransport {
            publisher,
            metrics: Metrics::with_gauges(Arc::new(gauges)),
        })
    }

    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.publisher.connection
    }

    /// The publisher service code holds, counting into this transport's metrics.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(Arc::new(self.publisher.clone()), self.metrics.clone())
    }

    /// This account as the runtime's transport: what `Router::new(&sqs)` consumes through.
    pub fn transport(&self) -> Transport {
        Transport::new(Arc::new(self.clone()), self.publisher())
    }

    /// The partition count of `topic`, created with `partitions` when missing.
    pub async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<u32, TransportError> {
        self.publisher.ensure_topic(topic, partitions).await
    }

    /// Creates and subscribes `group`'s queues on `topic` and its `.retry` topic, so the
    /// group gets every event published from now on, whether or not a member runs.
    pub async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), TransportError> {
        self.connection().group_queue(topic, group).await?;
        if !topic.ends_with(RETRY_SUFFIX) {
            let retry = retry_topic(topic);
            self.publisher.ensure_companion(topic, &retry).await?;
            self.connection().group_queue(&retry, group).await?;
        }
        Ok(())
    }

    /// The URL of `group`'s queue on `topic`, created and subscribed when missing: for
    /// tools (and tests) that read a queue with the SDK itself, such as the dead letters
    /// kept for [`DEAD_LETTER_KEEPER`](crate::DEAD_LETTER_KEEPER).
    pub async fn queue_url(&self, topic: &str, group: &str) -> Result<String, TransportError> {
        self.connection().group_queue(topic, group).await
    }

    /// The SQS client this transport uses (endpoint, region and credentials set).
    pub fn sqs_client(&self) -> &aws_sdk_sqs::Client {
        &self.connection().sqs
    }

    /// The SNS client this transport uses, for tools (and tests) that look at topics and
    /// subscriptions with the SDK itself.
    pub fn sns_client(&self) -> &aws_sdk_sns::Client {
        &self.connection().sns
    }

    /// The routes' metrics, with the lag and dead-letter gauges of every group queue of
    /// the namespace (`gauges.rs`; asked of SQS at each scrape: encode them off the
    /// executor).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl From<&SqsTransport> for Transport {
    fn from(sqs: &SqsTransport) -> Transport {
        sqs.transport()
    }
}

impl ConsumeTransport for SqsTransport {
    fn engine(&self) -> &'static str {
        "Amazon SQS"
    }

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    fn check_route(&self, topic: &str, group: &str, _: &GroupPolicy) -> Result<(), TransportError> {
        match Handle::try_current() {
            Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| runtime.block_on(self.ensure_group(topic, group)))
            }
            // Made when the member joins (`join`).
            _ => Ok(()),
        }
    }

    fn join<'a>(
        &'a self,
        group: &'a str,
        topic: &'a str,
        policy: &'a GroupPolicy,
        // A group's queue holds what was published since it was subscribed, whatever the
        // start: SQS cannot go back (earliest) and a new queue has nothing older (latest).
        _: StartFrom,
    ) -> BoxFuture<'a, Result<Box<dyn Membership>, TransportError>> {
        Box::pin(member::join(Join {
            connection: self.connection(),
            group,
            topic,
            policy,
        }))
    }
}
