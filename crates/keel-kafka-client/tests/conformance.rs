//! The Kafka transport against the transport conformance suite (`keel_runtime::conformance`),
//! on `keel serve`'s broker and group coordinator in-process: the same router checks the
//! embedded log passes — pub/sub, competing consumers, per-key order under retries, dead
//! letters, the inbox, the retry topic, resuming from committed offsets.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keel_core::{AdminTransport, GroupPolicy};
use keel_embedded::EmbeddedBus;
use keel_kafka_client::{KafkaConfig, KafkaPublisher, KafkaTransport};
use keel_runtime::conformance::Harness;
use keel_runtime::{Publisher, Transport};
use support::Serve;

/// A fresh broker and a producer on it.
struct Kafka {
    serve: Serve,
    config: KafkaConfig,
    publisher: KafkaPublisher,
}

impl Harness for Kafka {
    fn transport(&self) -> Transport {
        KafkaTransport::connect(&self.config)
            .expect("Kafka transport")
            .transport()
    }

    /// The broker's own log, administered in-process.
    fn admin(&self) -> Arc<dyn AdminTransport> {
        Arc::new(EmbeddedBus::new(self.serve.log.clone()))
    }

    fn publisher(&self) -> Publisher {
        self.publisher.publisher()
    }

    fn group_policy(&self) -> GroupPolicy {
        GroupPolicy {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(200),
            rebalance_timeout: Duration::from_secs(20),
        }
    }
}

async fn kafka() -> Kafka {
    let serve = Serve::start_fast_groups().await;
    let config = KafkaConfig::new(serve.bootstrap());
    Kafka {
        publisher: KafkaPublisher::new(&config).expect("producer"),
        config,
        serve,
    }
}

keel_runtime::conformance_tests!(kafka());
