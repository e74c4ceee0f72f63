//! Where the order system's topics live: the embedded log (every service in one process) or
//! a Kafka cluster such as `keel serve` (feature `kafka`; services in separate processes).
//! Services only see the [`Publisher`] and the [`Router`] it hands out, so their code is the
//! same on both.
//!
//! Not here: any service, or the order saga's event store (a service's private storage).

use std::path::Path;
use std::sync::Arc;

use keel::log::{Log, TopicConfig};
use keel::runtime::dead_letter::dead_letter_topic;
use keel::runtime::{EmbeddedBus, Publisher, Router};

use crate::error::DemoError;
use crate::events::TOPICS;

/// Partitions of each topic the demo creates (on the embedded log or a Kafka cluster).
const PARTITIONS: u32 = 3;

/// The transport the services publish and consume on. Cheap to clone.
#[derive(Clone)]
pub enum Backbone {
    /// The embedded log of one process.
    Embedded(EmbeddedBus),
    /// A Kafka cluster (or `keel serve`), shared by any number of processes.
    #[cfg(feature = "kafka")]
    Kafka(Arc<keel::kafka::KafkaTransport>),
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backbone::Embedded(_) => f.write_str("Backbone::Embedded"),
            #[cfg(feature = "kafka")]
            Backbone::Kafka(kafka) => f.debug_tuple("Backbone::Kafka").field(kafka).finish(),
        }
    }
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
        Ok(Backbone::Embedded(EmbeddedBus::new(log)))
    }

    /// The Kafka cluster at `brokers` (bootstrap servers, e.g. `keel serve`'s Kafka
    /// listener), with every topic of the order system and its dead-letter topic created
    /// when missing.
    #[cfg(feature = "kafka")]
    pub async fn kafka(brokers: &str) -> Result<Backbone, DemoError> {
        use keel::runtime::ConsumeTransport;
        let config = keel::kafka::KafkaConfig::new(brokers).with_client_id("keel-demo");
        let kafka = keel::kafka::KafkaTransport::connect(&config)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        for topic in TOPICS {
            kafka
                .ensure_topic(topic, PARTITIONS)
                .await
                .map_err(DemoError::Setup)?;
            kafka
                .ensure_companion(topic, &dead_letter_topic(topic))
                .await
                .map_err(DemoError::Setup)?;
        }
        Ok(Backbone::Kafka(kafka))
    }

    /// The publisher services and the order saga publish with.
    pub(crate) fn publisher(&self) -> Publisher {
        match self {
            Backbone::Embedded(bus) => bus.publisher(),
            #[cfg(feature = "kafka")]
            Backbone::Kafka(kafka) => kafka.publisher(),
        }
    }

    /// A router with no routes on this transport.
    pub(crate) fn router(&self) -> Router {
        match self {
            Backbone::Embedded(bus) => Router::new(bus),
            #[cfg(feature = "kafka")]
            Backbone::Kafka(kafka) => Router::on_transport(kafka.clone()),
        }
    }
}
