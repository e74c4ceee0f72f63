//! Where the order system's topics live: the embedded log (every service in one process), a
//! Kafka cluster such as `keel serve` (feature `kafka`), or any other engine's transport
//! with its admin port (NATS, Redis, RabbitMQ, SQS/SNS: [`Backbone::on`]); on a networked
//! engine the services may run in separate processes. Services only see the [`Publisher`]
//! and the [`Router`] it hands out, so their code is the same on every engine.
//!
//! Not here: any service, or the order saga's event store (a service's private storage).

use std::path::Path;
use std::sync::Arc;

use keel::core::AdminTransport;
use keel::embedded::EmbeddedBus;
use keel::log::{Log, TopicConfig};
use keel::runtime::dead_letter::dead_letter_topic;
use keel::runtime::{Publisher, Router, Transport};

use crate::error::DemoError;
use crate::events::TOPICS;

/// Partitions of each topic the demo creates (on the embedded log or a Kafka cluster).
const PARTITIONS: u32 = 3;

/// The transport the services publish and consume on. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Backbone {
    transport: Transport,
}

impl Backbone {
    /// The embedded log in `dir`, with every topic of the order system and its dead-letter
    /// topic created when missing.
    pub fn embedded(dir: &Path) -> Result<Backbone, DemoError> {
        let log = Arc::new(Log::open(dir)?);
        for topic in TOPICS {
            for name in [topic.to_owned(), dead_letter_topic(topic)] {
                if log.topic(&name).is_none() {
                    log.create_topic(&name, TopicConfig::new(PARTITIONS))?;
                }
            }
        }
        let bus = EmbeddedBus::new(log);
        Ok(Backbone {
            transport: bus.transport(),
        })
    }

    /// The Kafka cluster `config` reaches (`keel serve`'s Kafka listener or an Apache Kafka
    /// cluster, with its security properties), with every topic of the order system and its
    /// dead-letter topic created when missing.
    #[cfg(feature = "kafka")]
    pub async fn kafka(config: &keel::kafka::KafkaConfig) -> Result<Backbone, DemoError> {
        let kafka = keel::kafka::KafkaTransport::connect(config)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        let admin = keel::kafka::KafkaAdmin::connect(config)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        Backbone::on(kafka.transport(), &admin).await
    }

    /// The engine behind `transport` and `admin` (the same broker), with every topic of the
    /// order system created through `admin` and its dead-letter topic beside it, when missing.
    pub async fn on(
        transport: Transport,
        admin: &dyn AdminTransport,
    ) -> Result<Backbone, DemoError> {
        let setup = |e: keel::core::TransportError| DemoError::Setup(e.to_string());
        for topic in TOPICS {
            admin.create_topic(topic, PARTITIONS).await.map_err(setup)?;
            transport
                .publisher()
                .transport()
                .ensure_companion(topic, &dead_letter_topic(topic))
                .await
                .map_err(setup)?;
        }
        Ok(Backbone { transport })
    }

    /// The publisher services and the order saga publish with.
    pub(crate) fn publisher(&self) -> Publisher {
        self.transport.publisher().clone()
    }

    /// A router with no routes on this transport.
    pub(crate) fn router(&self) -> Router {
        Router::new(self.transport.clone())
    }
}
