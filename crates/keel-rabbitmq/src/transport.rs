//! [`RabbitTransport`]: the consuming half of the port (`keel_core::ConsumeTransport`) on
//! RabbitMQ, and the runtime's `Transport` on it, so a `keel_runtime::Router` runs the same
//! routes on RabbitMQ as on the embedded log or Kafka. Each route's member has its own
//! connection (`member.rs`), so a member's death frees exactly its partitions.
//!
//! Not here: the group protocol (`member.rs`), reading (`lease.rs`).

use std::sync::Arc;

use keel_core::{BoxFuture, ConsumeTransport, GroupPolicy, Membership, StartFrom, TransportError};
use keel_runtime::admin::gauges::AdminGauges;
use keel_runtime::{Metrics, Publisher, Transport};

use crate::admin::RabbitAdmin;
use crate::broker::Broker;
use crate::client::Client;
use crate::config::RabbitConfig;
use crate::limits::{JOIN_ATTEMPTS_MAX, JOIN_RETRY_DELAY};
use crate::member::{JoinSpec, Member};
use crate::names::Names;
use crate::publisher::{RabbitPublisher, transport_error};

/// A RabbitMQ as the runtime's transport. Cheap to clone; clones share the publishing
/// connection and the metrics.
#[derive(Debug, Clone)]
pub struct RabbitTransport {
    config: RabbitConfig,
    publisher: RabbitPublisher,
    metrics: Metrics,
}

impl RabbitTransport {
    /// A transport on the RabbitMQ `config` names. Connects on first use. Call it inside a
    /// tokio runtime: the lag gauges ask the admin port on it.
    pub fn connect(config: &RabbitConfig) -> Result<RabbitTransport, TransportError> {
        let client = Client::new(&config.url, "keel", None).map_err(transport_error)?;
        let broker = Arc::new(Broker::new(client, Names::new(&config.prefix)));
        let gauges = AdminGauges::new(Arc::new(RabbitAdmin::new(broker.clone())));
        Ok(RabbitTransport {
            config: config.clone(),
            publisher: RabbitPublisher::new(broker),
            metrics: Metrics::with_gauges(Arc::new(gauges)),
        })
    }

    /// The publisher service code holds, counting into this transport's metrics.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(Arc::new(self.publisher.clone()), self.metrics.clone())
    }

    /// The publishing half of the port itself.
    pub fn publish_transport(&self) -> &RabbitPublisher {
        &self.publisher
    }

    /// The administrative port on the same RabbitMQ.
    pub fn admin(&self) -> RabbitAdmin {
        RabbitAdmin::new(self.publisher.broker.clone())
    }

    /// This RabbitMQ as the runtime's transport: what `Router::new(&rabbit)` consumes
    /// through.
    pub fn transport(&self) -> Transport {
        Transport::new(Arc::new(self.clone()), self.publisher())
    }

    /// The routes' metrics, with the lag and dead-letter gauges of every group on the
    /// server (asked of the admin port at each scrape: encode them off the executor).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// One try of [`ConsumeTransport::join`].
    async fn join_once(
        &self,
        group: &str,
        topic: &str,
        policy: &GroupPolicy,
        start_from: StartFrom,
    ) -> Result<Box<dyn Membership>, TransportError> {
        let broker = &self.publisher.broker;
        if broker.partitions(topic).await.map_err(transport_error)? == 0 {
            return Err(TransportError::UnknownTopic {
                topic: topic.to_string(),
            });
        }
        broker
            .register_group(group, topic)
            .await
            .map_err(transport_error)?;
        // AMQP heartbeats at half the session timeout: a hung member is dropped by
        // RabbitMQ (and its partitions freed) within about the session timeout.
        let heartbeat = policy.session_timeout / 2;
        let name = format!("keel member {group}/{topic}");
        let client =
            Client::new(&self.config.url, &name, Some(heartbeat)).map_err(transport_error)?;
        let spec = JoinSpec {
            group: group.to_string(),
            topic: topic.to_string(),
            policy: policy.clone(),
            start_from,
            client: Arc::new(client),
        };
        Ok(Box::new(Member::join(broker.clone(), spec)) as Box<dyn Membership>)
    }
}

impl From<&RabbitTransport> for Transport {
    fn from(rabbit: &RabbitTransport) -> Transport {
        rabbit.transport()
    }
}

impl ConsumeTransport for RabbitTransport {
    fn engine(&self) -> &'static str {
        "RabbitMQ"
    }

    fn now_ms(&self) -> i64 {
        self.publisher.broker.now_ms()
    }

    fn check_route(&self, _: &str, _: &str, _: &GroupPolicy) -> Result<(), TransportError> {
        // RabbitMQ is asked when the member joins (`join`), off the caller's thread.
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
            // The router does not join again after a failure, and RabbitMQ 3.10 closes a
            // connection whose stream declaration raced another one (`Client::declare_stream`),
            // failing whatever else was in flight on it: a failure that may pass is tried
            // again a few times before the route gives up.
            let mut attempt = 1;
            loop {
                match self.join_once(group, topic, policy, start_from).await {
                    Err(error) if error.is_retriable() && attempt < JOIN_ATTEMPTS_MAX => {
                        attempt += 1;
                        tokio::time::sleep(JOIN_RETRY_DELAY).await;
                    }
                    result => return result,
                }
            }
        })
    }
}
