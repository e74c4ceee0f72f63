//! [`KafkaPublisher`]: publishes events to a Kafka cluster (or `keel serve`) in CloudEvents
//! binary mode, with the same record mapping as the embedded bus.
//!
//! Not here: consuming, or building the record (that is `keel_runtime::event_record`, the
//! one mapping every Keel writer uses, so a record written here and one written by the
//! embedded [`keel_runtime::Publisher`] carry the same key, value and headers).
//!
//! Service code publishes through [`KafkaPublisher::publisher`], a `keel_runtime::Publisher`
//! on this transport ([`PublishTransport`]), exactly as it does on the embedded bus.
//!
//! The producer is idempotent with `acks=all` and partitions keys with murmur2, as the Java
//! client and `keel-log` do (see [`KafkaConfig`]). `publish` returns once the broker
//! acknowledged the record; librdkafka batches concurrent publishes into one produce
//! request, so throughput comes from publishing concurrently, not from a batch API.

use std::sync::Arc;
use std::time::Duration;

use keel_log::NewRecord;
use keel_runtime::dead_letter::dead_letter_topic;
use keel_runtime::{PublishError, PublishTransport, Published, Publisher};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::limits::DELIVERY_TIMEOUT;
use crate::topics::Topics;
use keel_runtime::dedupe::BoxFuture;

/// Publishes events to Kafka topics. Cheap to clone; clones share one producer (one set of
/// broker connections, one idempotent producer id).
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: Arc<FutureProducer>,
    topics: Arc<Topics>,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher").finish_non_exhaustive()
    }
}

/// Why the Kafka producer could not be created (a bad property, most often).
#[derive(Debug, thiserror::Error)]
#[error("cannot create the Kafka producer: {0}")]
pub struct ProducerError(#[from] KafkaError);

impl KafkaPublisher {
    /// A publisher on the cluster `config` names. Connects lazily: a wrong address shows as
    /// publish errors after the delivery timeout, not here.
    pub fn new(config: &KafkaConfig) -> Result<KafkaPublisher, ProducerError> {
        let mut client = config.producer();
        client.set(
            "delivery.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        );
        let producer: FutureProducer = client.create()?;
        Ok(KafkaPublisher {
            producer: Arc::new(producer),
            topics: Arc::new(Topics::new(config)?),
        })
    }

    /// A [`keel_runtime::Publisher`] on this producer: the publisher service code holds,
    /// the same type and behaviour (validation, root trace, record mapping) as on the
    /// embedded bus. It also serves as the outbox relay's `PublishPort`.
    pub fn publisher(&self) -> Publisher {
        Publisher::on_transport(Arc::new(self.clone()))
    }

    /// Sends one record to `topic`: to `partition`, or where its key maps when `None`.
    ///
    /// Cancel safety: as [`KafkaPublisher::publish`].
    pub async fn send(
        &self,
        topic: &str,
        record: &NewRecord,
        partition: Option<u32>,
    ) -> Result<Published, PublishError> {
        let headers = record.headers.iter().fold(
            OwnedHeaders::new_with_capacity(record.headers.len()),
            |headers, header| {
                headers.insert(Header {
                    key: header.key.as_str(),
                    value: header.value.as_deref(),
                })
            },
        );
        let mut kafka_record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).headers(headers);
        if let Some(key) = record.key.as_deref() {
            kafka_record = kafka_record.key(key);
        }
        if let Some(value) = record.value.as_deref() {
            kafka_record = kafka_record.payload(value);
        }
        if let Some(timestamp) = record.timestamp_ms {
            kafka_record = kafka_record.timestamp(timestamp);
        }
        if let Some(partition) = partition {
            kafka_record = kafka_record.partition(partition as i32);
        }
        // The queue timeout bounds only the wait for room in librdkafka's local queue; the
        // delivery timeout set at creation bounds the whole publish.
        match self
            .producer
            .send(kafka_record, Duration::from_secs(5))
            .await
        {
            Ok(delivery) => Ok(Published {
                topic: topic.to_string(),
                partition: delivery.partition as u32,
                offset: delivery.offset as u64,
            }),
            Err((error, _)) => Err(publish_error(topic, error)),
        }
    }

    /// The name of `source`'s dead-letter topic (`<source>.dlq`), created with `source`'s
    /// partition count when the cluster does not have it yet.
    pub async fn dead_letter_topic(&self, source: &str) -> Result<String, String> {
        self.topics.ensure_dead_letter_topic(source).await
    }

    /// The partition count of `name`, a companion topic of `source` (`.dlq`, `.retry`),
    /// created with `source`'s partition count when missing.
    pub(crate) async fn ensure_companion(&self, source: &str, name: &str) -> Result<u32, String> {
        self.topics.ensure_companion(source, name).await
    }

    /// The partition count of `topic`, created with `partitions` when the cluster does not
    /// have it (Keel's clients turn off creating topics by naming them, so a service creates
    /// the topics it owns on purpose, with the partition count it chose).
    pub async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<u32, String> {
        self.topics.ensure_topic(topic, partitions).await
    }

    /// The partition count of `topic`; `None` when the cluster does not have it.
    pub async fn partitions(&self, topic: &str) -> Result<Option<u32>, String> {
        self.topics.partitions(topic).await
    }

    /// Waits up to `timeout` for every queued record to be acknowledged; call before
    /// dropping the last clone so nothing handed to librdkafka is left unsent.
    pub fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        self.producer
            .flush(timeout)
            .map_err(|error| publish_error("*", error))
    }
}

impl PublishTransport for KafkaPublisher {
    fn send<'a>(
        &'a self,
        topic: &'a str,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, PublishError>> {
        Box::pin(async move { KafkaPublisher::send(self, topic, &record, None).await })
    }

    fn send_dead_letter<'a>(
        &'a self,
        source: &'a str,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, PublishError>> {
        Box::pin(async move {
            let topic =
                self.dead_letter_topic(source)
                    .await
                    .map_err(|reason| PublishError::Transport {
                        topic: dead_letter_topic(source),
                        reason,
                    })?;
            KafkaPublisher::send(self, &topic, &record, None).await
        })
    }
}

/// The runtime's error for a failed Kafka publish, naming the topic and librdkafka's reason;
/// [`PublishError::Rejected`] for what the same bytes will always fail with.
fn publish_error(topic: &str, error: KafkaError) -> PublishError {
    let topic = topic.to_string();
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            PublishError::UnknownTopic(topic)
        }
        Some(
            code @ (RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidMessage),
        ) => PublishError::Rejected {
            topic,
            reason: code.to_string(),
        },
        _ => PublishError::Transport {
            topic,
            reason: error.to_string(),
        },
    }
}
