//! [`KafkaPublisher`]: publishes events to a Kafka cluster (or `keel serve`) in CloudEvents
//! binary mode, with the same record mapping as the embedded bus.
//!
//! Not here: consuming, or building the record (that is `keel_runtime::event_record`, the
//! one mapping every Keel writer uses, so a record written here and one written by the
//! embedded bus carry the same key, value and headers).
//!
//! Service code publishes through [`KafkaPublisher::publisher`], a `keel_runtime::Publisher`
//! on this transport (the port's [`PublishTransport`]), exactly as it does on the embedded
//! bus.
//!
//! The producer is idempotent with `acks=all` and partitions keys with murmur2, as the Java
//! client and `keel-log` do (see [`KafkaConfig`]). `publish` returns once the broker
//! acknowledged the record; librdkafka batches concurrent publishes into one produce
//! request, so throughput comes from publishing concurrently, not from a batch API.

use std::sync::Arc;
use std::time::Duration;

use keel_core::{BoxFuture, NewRecord, PublishTransport, Published, SendError, TransportError};
use keel_runtime::{Metrics, Publisher};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::limits::{DELIVERY_TIMEOUT, TRANSACTION_TIMEOUT};
use crate::topics::Topics;

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

    /// A publisher on a transactional producer with `transactional_id` (not yet
    /// initialised: `transaction.rs` does that), its sends' delivery timeout within
    /// [`TRANSACTION_TIMEOUT`] as librdkafka requires.
    pub(crate) fn transactional(
        config: &KafkaConfig,
        transactional_id: &str,
    ) -> Result<KafkaPublisher, ProducerError> {
        let mut client = config.transactional_producer(transactional_id);
        client.set(
            "delivery.timeout.ms",
            TRANSACTION_TIMEOUT.as_millis().to_string(),
        );
        let producer: FutureProducer = client.create()?;
        Ok(KafkaPublisher {
            producer: Arc::new(producer),
            topics: Arc::new(Topics::new(config)?),
        })
    }

    /// The producer itself, for the transaction calls of `transaction.rs`.
    pub(crate) fn producer(&self) -> &Arc<FutureProducer> {
        &self.producer
    }

    /// A [`keel_runtime::Publisher`] on this producer: the publisher service code holds,
    /// the same type and behaviour (validation, root trace, record mapping) as on the
    /// embedded bus. It counts into metrics of its own ([`Publisher::metrics`]); a
    /// [`KafkaTransport`](crate::KafkaTransport)'s publisher counts into the transport's.
    /// It also serves as the outbox relay's `PublishPort`.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(Arc::new(self.clone()), Metrics::new())
    }

    /// Sends one record to `topic`: to `partition`, or where its key maps when `None`.
    ///
    /// Cancel safety: as [`KafkaPublisher::publish`].
    pub async fn send(
        &self,
        topic: &str,
        record: &NewRecord,
        partition: Option<u32>,
    ) -> Result<Published, SendError> {
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
            Err((error, _)) => Err(send_error(topic, error)),
        }
    }

    /// The partition count of `topic`, created with `partitions` when the cluster does not
    /// have it (Keel's clients turn off creating topics by naming them, so a service creates
    /// the topics it owns on purpose, with the partition count it chose).
    pub async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<u32, TransportError> {
        self.topics.ensure_topic(topic, partitions).await
    }

    /// The partition count of `topic`; `None` when the cluster does not have it.
    pub async fn partitions(&self, topic: &str) -> Result<Option<u32>, TransportError> {
        self.topics.partitions(topic).await
    }

    /// Waits up to `timeout` for every queued record to be acknowledged; call before
    /// dropping the last clone so nothing handed to librdkafka is left unsent.
    pub fn flush(&self, timeout: Duration) -> Result<(), SendError> {
        self.producer
            .flush(timeout)
            .map_err(|error| send_error("*", error))
    }
}

impl PublishTransport for KafkaPublisher {
    fn send<'a>(
        &'a self,
        topic: &'a str,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>> {
        Box::pin(async move { KafkaPublisher::send(self, topic, &record, None).await })
    }

    fn send_to<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>> {
        Box::pin(async move { KafkaPublisher::send(self, topic, &record, Some(partition)).await })
    }

    fn ensure_companion<'a>(
        &'a self,
        source: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        Box::pin(self.topics.ensure_companion(source, name))
    }
}

/// The port's error for a failed Kafka send, naming the topic and librdkafka's reason;
/// [`SendError::Rejected`] for what the same bytes will always fail with.
fn send_error(topic: &str, error: KafkaError) -> SendError {
    let topic = topic.to_string();
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            SendError::UnknownTopic { topic }
        }
        Some(
            code @ (RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidMessage),
        ) => SendError::Rejected {
            topic,
            reason: code.to_string(),
        },
        _ => SendError::Unavailable {
            topic,
            reason: error.to_string(),
        },
    }
}
