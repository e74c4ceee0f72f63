//! [`RabbitPublisher`]: the publishing half of the port (`keel_core::PublishTransport`) on
//! RabbitMQ. A record goes to the stream of the partition its key maps to (murmur2, as on
//! every transport), through the default exchange, as a persistent mandatory message whose
//! publisher confirm is awaited: `Ok` means RabbitMQ stored it.
//!
//! RabbitMQ's confirm does not carry the offset the stream gave the message, so
//! [`Published::offset`] is 0 on this transport.
//!
//! Not here: reading (`lease.rs`, `reader.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use keel_core::{
    BoxFuture, NewRecord, PublishTransport, Published, SendError, TransportError, partition_for_key,
};

use crate::broker::Broker;
use crate::client::ClientError;
use crate::codec::encode;

/// A RabbitMQ as a place to publish to. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct RabbitPublisher {
    pub(crate) broker: Arc<Broker>,
    /// Where a record without a key goes next (round robin).
    next_keyless: Arc<AtomicU32>,
}

impl RabbitPublisher {
    pub(crate) fn new(broker: Arc<Broker>) -> RabbitPublisher {
        RabbitPublisher {
            broker,
            next_keyless: Arc::default(),
        }
    }

    /// The partition count of `topic`, created with `partitions` streams when missing.
    pub async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<u32, TransportError> {
        if partitions == 0 {
            return Err(TransportError::Refused {
                reason: format!("topic '{topic}' needs at least one partition"),
            });
        }
        self.broker
            .create_topic(topic, partitions)
            .await
            .map_err(transport_error)
    }

    async fn store(
        &self,
        topic: &str,
        partition: u32,
        record: NewRecord,
    ) -> Result<Published, SendError> {
        let stream = self.broker.names.partition(topic, partition);
        let (body, properties) = encode(&record, self.broker.now_ms());
        match self.broker.client.publish(&stream, &body, properties).await {
            Ok(()) => Ok(Published {
                topic: topic.to_string(),
                partition,
                offset: 0,
            }),
            Err(ClientError::Unroutable(_) | ClientError::NotFound(_)) => {
                self.broker.forget(topic);
                Err(self.missing(topic, &stream).await)
            }
            Err(ClientError::Refused(reason)) => Err(SendError::Rejected {
                topic: topic.to_string(),
                reason,
            }),
            Err(ClientError::Unavailable(reason)) => Err(SendError::Unavailable {
                topic: topic.to_string(),
                reason,
            }),
        }
    }

    /// The error for a publish to `topic` whose partition stream `stream` RabbitMQ does not
    /// have: the topic is unknown unless Keel registered it, and then the stream is lost or
    /// not served (a node that lost its stream coordinator's registration in a crash,
    /// docs/engines.md), which a later attempt may find mended — so a publisher keeps the
    /// event and tries again instead of giving it up as sent to no topic.
    async fn missing(&self, topic: &str, stream: &str) -> SendError {
        match self.broker.registered(topic).await {
            Ok(false) => SendError::UnknownTopic {
                topic: topic.to_string(),
            },
            Ok(true) => SendError::Unavailable {
                topic: topic.to_string(),
                reason: format!(
                    "topic '{topic}' is registered but RabbitMQ has no stream '{stream}'"
                ),
            },
            Err(error) => SendError::Unavailable {
                topic: topic.to_string(),
                reason: error.to_string(),
            },
        }
    }

    async fn partitions(&self, topic: &str) -> Result<u32, SendError> {
        match self.broker.partitions(topic).await {
            Ok(0) => Err(self
                .missing(topic, &self.broker.names.partition(topic, 0))
                .await),
            Ok(count) => Ok(count),
            Err(error) => Err(SendError::Unavailable {
                topic: topic.to_string(),
                reason: error.to_string(),
            }),
        }
    }
}

impl PublishTransport for RabbitPublisher {
    fn send<'a>(
        &'a self,
        topic: &'a str,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>> {
        Box::pin(async move {
            let partitions = self.partitions(topic).await?;
            let partition = match &record.key {
                Some(key) => partition_for_key(key, partitions),
                None => self.next_keyless.fetch_add(1, Ordering::Relaxed) % partitions,
            };
            self.store(topic, partition, record).await
        })
    }

    fn send_to<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>> {
        Box::pin(self.store(topic, partition, record))
    }

    fn ensure_companion<'a>(
        &'a self,
        source: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        Box::pin(async move {
            let partitions = self
                .broker
                .partitions(source)
                .await
                .map_err(transport_error)?;
            if partitions == 0 {
                return Err(TransportError::UnknownTopic {
                    topic: source.to_string(),
                });
            }
            self.ensure_topic(name, partitions).await
        })
    }
}

/// The port's error for a failed topic or group request.
pub(crate) fn transport_error(error: ClientError) -> TransportError {
    match error {
        ClientError::Refused(reason) => TransportError::Refused { reason },
        other => TransportError::Unavailable {
            reason: other.to_string(),
        },
    }
}
