//! The conformance suite's harness on a Kafka-protocol broker (`keel serve` in-process or
//! a real cluster): a transport per router, one producer, the admin clients and the group
//! timing the broker accepts, plus the checks' name prefix where they share the broker.

use std::sync::Arc;

use keel_core::{AdminTransport, GroupPolicy};
use keel_kafka_client::{KafkaAdmin, KafkaConfig, KafkaPublisher, KafkaTransport};
use keel_runtime::conformance::Harness;
use keel_runtime::{Publisher, Transport};

/// A conformance harness on the cluster a [`KafkaConfig`] names.
pub(crate) struct KafkaHarness<B> {
    /// Whatever must live as long as the harness (an in-process broker).
    pub(crate) _broker: B,
    pub(crate) config: KafkaConfig,
    pub(crate) publisher: KafkaPublisher,
    pub(crate) admin: Arc<KafkaAdmin>,
    pub(crate) group_policy: GroupPolicy,
    pub(crate) namespace: String,
    /// What a member in a child process needs to reach the broker (`broker_for_child`).
    pub(crate) for_child: String,
}

impl<B> KafkaHarness<B> {
    /// A harness on `config`'s cluster, `broker` kept alive with it.
    pub(crate) fn new(
        broker: B,
        config: KafkaConfig,
        group_policy: GroupPolicy,
        namespace: String,
        for_child: String,
    ) -> KafkaHarness<B> {
        KafkaHarness {
            _broker: broker,
            publisher: KafkaPublisher::new(&config).expect("producer"),
            admin: Arc::new(KafkaAdmin::connect(&config).expect("admin clients")),
            config,
            group_policy,
            namespace,
            for_child,
        }
    }
}

impl<B: Send + Sync + 'static> Harness for KafkaHarness<B> {
    fn transport(&self) -> Transport {
        // Lag in events comes from librdkafka's statistics: every 5 s by default, too slow
        // for a check waiting on it.
        let config = self.config.clone().set("statistics.interval.ms", "200");
        KafkaTransport::connect(&config)
            .expect("Kafka transport")
            .transport()
    }

    fn admin(&self) -> Arc<dyn AdminTransport> {
        self.admin.clone()
    }

    fn publisher(&self) -> Publisher {
        self.publisher.publisher()
    }

    fn group_policy(&self) -> GroupPolicy {
        self.group_policy.clone()
    }

    fn namespace(&self) -> String {
        self.namespace.clone()
    }

    fn broker_for_child(&self) -> Option<String> {
        Some(self.for_child.clone())
    }
}
