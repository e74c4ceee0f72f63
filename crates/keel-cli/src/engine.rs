//! The networked engines, named by URL: `kafka://HOST:PORT[,HOST:PORT…]` (a Kafka cluster
//! or `keel serve`'s Kafka listener, the `kafka` feature), `amqp://…` (RabbitMQ,
//! `rabbitmq`), `nats://…` (NATS JetStream, `nats`), `redis://…` (Redis Streams, `redis`),
//! `sqs://HOST:PORT` (an SNS/SQS-compatible server over HTTP, such as moto) or
//! `sqs://aws/REGION` (Amazon's endpoints, signed with `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY`; `sqs`). One parser and one connector for `keel relay --to` and
//! `keel demo --engine`, so both take the same URLs and name a missing feature in the same
//! words.
//!
//! Not here: the embedded log (its verbs open it), `--brokers` (`brokers.rs`, which names a
//! Kafka cluster the way the operator verbs expect), or anything done with the connection.

use std::sync::Arc;

use anyhow::Context;
use keel_core::AdminTransport;
use keel_runtime::Transport;

use crate::brokers::{Brokers, KafkaCluster};

/// An engine and the URL that reaches it. The URL is read only with the engine's feature;
/// without it, [`Engine::connect`] refuses in words.
#[derive(Debug, Clone)]
pub(crate) enum Engine {
    /// The cluster: bootstrap servers, comma-separated (the URL without its scheme), and
    /// the client properties `--kafka-property` gives.
    Kafka(#[cfg_attr(not(feature = "kafka"), allow(dead_code))] KafkaCluster),
    Rabbit(#[cfg_attr(not(feature = "rabbitmq"), allow(dead_code))] String),
    Nats(#[cfg_attr(not(feature = "nats"), allow(dead_code))] String),
    Redis(#[cfg_attr(not(feature = "redis"), allow(dead_code))] String),
    Sqs(#[cfg_attr(not(feature = "sqs"), allow(dead_code))] String),
}

/// An engine's transport and its admin port, on the same server.
pub(crate) struct Connected {
    pub(crate) transport: Transport,
    pub(crate) admin: Arc<dyn AdminTransport>,
}

impl Engine {
    /// The engine `text` names by its URL scheme.
    pub(crate) fn parse(text: &str) -> Result<Engine, String> {
        match text.split_once("://") {
            Some(("kafka", brokers)) if !brokers.is_empty() => Ok(Engine::Kafka(KafkaCluster {
                brokers: brokers.into(),
                properties: Vec::new(),
            })),
            _ => Engine::parse_url(text),
        }
    }

    /// The engines whose clients take the whole URL.
    fn parse_url(text: &str) -> Result<Engine, String> {
        let url = text.to_string();
        match text.split_once("://").map(|(scheme, _)| scheme) {
            Some("amqp") => Ok(Engine::Rabbit(url)),
            Some("nats") => Ok(Engine::Nats(url)),
            Some("redis") => Ok(Engine::Redis(url)),
            Some("sqs") => Ok(Engine::Sqs(url)),
            _ => Err(format!(
                "'{text}' is not a kafka://, amqp://, nats://, redis:// or sqs:// URL"
            )),
        }
    }

    /// A `kafka://` engine with the client properties `brokers` gives (`--kafka-property`,
    /// the config file's table); any other engine as it is (its URL carries its settings).
    pub(crate) fn with_properties_of(self, brokers: &Brokers) -> anyhow::Result<Engine> {
        Ok(match self {
            Engine::Kafka(cluster) => Engine::Kafka(brokers.at(cluster.brokers)?),
            other => other,
        })
    }

    /// What messages call it (never the URL, which may hold credentials).
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Engine::Kafka(_) => "Kafka",
            Engine::Rabbit(_) => "RabbitMQ",
            Engine::Nats(_) => "NATS JetStream",
            Engine::Redis(_) => "Redis",
            Engine::Sqs(_) => "SNS/SQS",
        }
    }

    /// The cargo feature that builds this engine's client into keel.
    fn feature(&self) -> &'static str {
        match self {
            Engine::Kafka(_) => "kafka",
            Engine::Rabbit(_) => "rabbitmq",
            Engine::Nats(_) => "nats",
            Engine::Redis(_) => "redis",
            Engine::Sqs(_) => "sqs",
        }
    }

    /// The engine's transport and admin port, or a one-line error naming the feature that
    /// builds its client in when this binary was built without it.
    pub(crate) async fn connect(&self) -> anyhow::Result<Connected> {
        let connected = self
            .connect_client()
            .await
            .with_context(|| format!("connect to {}", self.describe()))?;
        let feature = self.feature();
        connected.with_context(|| {
            format!(
                "{} needs a keel built with the `{feature}` feature (cargo build -p keel-cli --features {feature})",
                self.describe()
            )
        })
    }

    /// The connection, or `None` when this binary has no client for the engine.
    async fn connect_client(&self) -> anyhow::Result<Option<Connected>> {
        #[cfg(feature = "kafka")]
        if let Engine::Kafka(cluster) = self {
            let config = cluster.config("keel")?;
            let kafka = keel_kafka_client::KafkaTransport::connect(&config)?;
            return Ok(Some(Connected {
                transport: kafka.transport(),
                admin: Arc::new(keel_kafka_client::KafkaAdmin::connect(&config)?),
            }));
        }
        #[cfg(feature = "rabbitmq")]
        if let Engine::Rabbit(url) = self {
            let rabbit =
                keel_rabbitmq::RabbitTransport::connect(&keel_rabbitmq::RabbitConfig::new(url))?;
            return Ok(Some(Connected {
                transport: rabbit.transport(),
                admin: Arc::new(rabbit.admin()),
            }));
        }
        #[cfg(feature = "nats")]
        if let Engine::Nats(url) = self {
            let nats = keel_nats::NatsTransport::connect(&keel_nats::NatsConfig::new(url)).await?;
            return Ok(Some(Connected {
                transport: nats.transport(),
                admin: Arc::new(nats),
            }));
        }
        #[cfg(feature = "redis")]
        if let Engine::Redis(url) = self {
            let redis =
                keel_redis::RedisTransport::connect(&keel_redis::RedisConfig::new(url)).await?;
            return Ok(Some(Connected {
                transport: redis.transport(),
                admin: Arc::new(redis),
            }));
        }
        #[cfg(feature = "sqs")]
        if let Engine::Sqs(url) = self {
            let sqs = keel_sqs::SqsTransport::connect(&sqs_config(url)?).await?;
            return Ok(Some(Connected {
                transport: sqs.transport(),
                admin: Arc::new(sqs),
            }));
        }
        Ok(None)
    }
}

/// The account `url` names: `sqs://HOST:PORT` an API-compatible server over HTTP (no
/// credentials checked), `sqs://aws/REGION` Amazon's endpoints with the key in
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
#[cfg(feature = "sqs")]
fn sqs_config(url: &str) -> anyhow::Result<keel_sqs::SqsConfig> {
    let rest = url.strip_prefix("sqs://").unwrap_or(url);
    Ok(match rest.strip_prefix("aws/") {
        Some(region) => {
            let key =
                |name: &str| std::env::var(name).with_context(|| format!("{url} needs {name} set"));
            keel_sqs::SqsConfig::aws(
                region,
                key("AWS_ACCESS_KEY_ID")?,
                key("AWS_SECRET_ACCESS_KEY")?,
            )
        }
        None => keel_sqs::SqsConfig::local(format!("http://{rest}")),
    })
}
