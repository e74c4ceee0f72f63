//! [`NatsPublisher`]: the publishing half of the port on JetStream. A record goes to the
//! subject of its partition (murmur2 of its key, as on every transport) in its topic's
//! stream; `Ok` comes with the stream's acknowledgement, so the record is stored.
//!
//! Deduplication: a record published by service code carries its event id (`ce_id`) as
//! `Nats-Msg-Id`, so an event published twice within the stream's duplicate window (two
//! minutes) is stored once — the outbox relay's resend after a lost acknowledgement costs
//! nothing. Redeliveries and dead letters (records with `keel_*` headers) carry no id: the
//! same event goes to `<topic>.retry` once per attempt, on purpose.
//!
//! Not here: the record's NATS form (`record.rs`), streams (`connection.rs`).

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use async_nats::jetstream::context::PublishErrorKind;
use keel_core::{
    BoxFuture, Clock, NewRecord, PublishTransport, Published, SendError, SystemClock,
    TransportError, choose_partition, header_text, topic_for_send,
};
use keel_runtime::{Metrics, Publisher};

use crate::config::NatsConfig;
use crate::connection::Connection;
use crate::record;

/// Publishes records to JetStream streams. Cheap to clone; clones share one connection.
#[derive(Debug, Clone)]
pub struct NatsPublisher {
    pub(crate) connection: Arc<Connection>,
    /// Spreads records without a key over the partitions.
    round_robin: Arc<AtomicU32>,
}

impl NatsPublisher {
    /// A publisher on the server `config` names.
    pub async fn connect(config: &NatsConfig) -> Result<NatsPublisher, TransportError> {
        Ok(NatsPublisher::on(Arc::new(
            Connection::connect(config).await?,
        )))
    }

    pub(crate) fn on(connection: Arc<Connection>) -> NatsPublisher {
        NatsPublisher {
            connection,
            round_robin: Arc::new(AtomicU32::new(0)),
        }
    }

    /// A [`keel_runtime::Publisher`] on this connection, counting into metrics of its own;
    /// it also serves as the outbox relay's `PublishPort`.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(Arc::new(self.clone()), Metrics::new())
    }

    /// The partition count of `topic`, whose stream is created with `partitions` when
    /// missing.
    pub async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<u32, TransportError> {
        self.connection.create_topic(topic, partitions).await
    }

    async fn publish(
        &self,
        topic: &str,
        partition: Option<u32>,
        record: NewRecord,
    ) -> Result<Published, SendError> {
        let unavailable = |reason: String| SendError::Unavailable {
            topic: topic.to_string(),
            reason,
        };
        let partitions = topic_for_send(topic, self.connection.partitions(topic).await)?;
        let partition = choose_partition(
            topic,
            partition,
            record.key.as_deref(),
            partitions,
            &self.round_robin,
        )?;
        let (mut headers, payload) =
            record::encode(&record, SystemClock.now_ms()).map_err(|e| SendError::Rejected {
                topic: topic.to_string(),
                reason: e.to_string(),
            })?;
        if let Some(id) = dedupe_id(&record) {
            headers.insert("Nats-Msg-Id", id);
        }
        let subject = self.connection.names.subject(topic, partition);
        let ack = self
            .connection
            .jetstream
            .publish_with_headers(subject, headers, payload)
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .await
            .map_err(|e| match e.kind() {
                PublishErrorKind::StreamNotFound => SendError::UnknownTopic {
                    topic: topic.to_string(),
                },
                PublishErrorKind::MaxPayloadExceeded => SendError::Rejected {
                    topic: topic.to_string(),
                    reason: e.to_string(),
                },
                _ => unavailable(e.to_string()),
            })?;
        Ok(Published {
            topic: topic.to_string(),
            partition,
            offset: ack.sequence.saturating_sub(1),
        })
    }
}

/// The `Nats-Msg-Id` of a record: its event id, unless the record is a redelivery or a
/// dead letter (any `keel_*` header), which must be stored once per attempt.
fn dedupe_id(record: &NewRecord) -> Option<&str> {
    if record.headers.iter().any(|h| h.key.starts_with("keel_")) {
        return None;
    }
    header_text(&record.headers, "ce_id")
}

impl PublishTransport for NatsPublisher {
    fn send<'a>(
        &'a self,
        topic: &'a str,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>> {
        Box::pin(self.publish(topic, None, record))
    }

    fn send_to<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>> {
        Box::pin(self.publish(topic, Some(partition), record))
    }

    fn ensure_companion<'a>(
        &'a self,
        source: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        Box::pin(async move {
            let partitions = self.connection.partitions(source).await?.ok_or_else(|| {
                TransportError::UnknownTopic {
                    topic: source.to_string(),
                }
            })?;
            self.connection.create_topic(name, partitions).await
        })
    }
}
