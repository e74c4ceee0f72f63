//! [`SqsPublisher`]: the publishing half of the port on SNS. A record is published to its
//! topic's SNS FIFO topic, which fans it out to every group's SQS FIFO queue; `Ok` comes
//! with SNS's answer, so the record is in every queue subscribed at that moment (a group
//! subscribed later does not get it: SNS keeps nothing).
//!
//! - **Order**: `MessageGroupId` is the record's key, so SQS hands a key's messages out one
//!   group at a time, in order, whichever member receives them. A keyless record goes to
//!   the group of the partition it is spread to (`p<n>`).
//! - **Deduplication**: a record published by service code carries its event id (`ce_id`)
//!   as `MessageDeduplicationId`, so an event published twice within SQS's five-minute
//!   window is delivered once. Redeliveries and dead letters (records with `keel_*`
//!   headers) get a fresh id: the same event goes to `<topic>.retry` once per attempt, on
//!   purpose.
//! - **Offsets**: SNS answers with no position, so `Published::offset` is 0.
//!
//! Not here: the body's form (`envelope.rs`), topics and queues (`connection.rs`).

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use keel_core::{
    BoxFuture, Clock, NewRecord, PublishTransport, Published, SendError, SystemClock,
    TransportError, choose_partition, header_text, murmur2, topic_for_send,
};
use keel_runtime::{Metrics, Publisher};

use crate::config::SqsConfig;
use crate::connection::{Connection, unavailable};
use crate::envelope;
use crate::limits::{MESSAGE_BYTES_MAX, MESSAGE_ID_BYTES_MAX};

/// Publishes records to SNS topics. Cheap to clone; clones share the clients.
#[derive(Debug, Clone)]
pub struct SqsPublisher {
    pub(crate) connection: Arc<Connection>,
    /// Spreads records without a key over the partitions.
    round_robin: Arc<AtomicU32>,
}

impl SqsPublisher {
    /// A publisher on the account `config` names.
    pub async fn connect(config: &SqsConfig) -> Result<SqsPublisher, TransportError> {
        Ok(SqsPublisher {
            connection: Arc::new(Connection::connect(config).await?),
            round_robin: Arc::new(AtomicU32::new(0)),
        })
    }

    /// A [`keel_runtime::Publisher`] on these clients, counting into metrics of its own; it
    /// also serves as the outbox relay's `PublishPort`.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(Arc::new(self.clone()), Metrics::new())
    }

    /// The partition count of `topic`, created with `partitions` when missing.
    pub async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<u32, TransportError> {
        self.connection.create_topic(topic, partitions).await
    }

    async fn publish(
        &self,
        topic: &str,
        partition: Option<u32>,
        record: NewRecord,
    ) -> Result<Published, SendError> {
        let unavailable_send = |reason: String| SendError::Unavailable {
            topic: topic.to_string(),
            reason,
        };
        let entry = topic_for_send(topic, self.connection.topic(topic).await)?;
        let partition = choose_partition(
            topic,
            partition,
            record.key.as_deref(),
            entry.partitions,
            &self.round_robin,
        )?;
        let body = envelope::encode(&record, SystemClock.now_ms());
        if body.len() > MESSAGE_BYTES_MAX {
            return Err(SendError::Rejected {
                topic: topic.to_string(),
                reason: format!(
                    "the record is {} bytes as an SNS message, above SNS's {MESSAGE_BYTES_MAX}",
                    body.len()
                ),
            });
        }
        self.connection
            .sns
            .publish()
            .topic_arn(&entry.arn)
            .message(body)
            .message_group_id(message_group(record.key.as_deref(), partition))
            .message_deduplication_id(dedupe_id(&record))
            .send()
            .await
            .map_err(|e| unavailable_send(unavailable(e).to_string()))?;
        Ok(Published {
            topic: topic.to_string(),
            partition,
            offset: 0,
        })
    }
}

/// The SQS message group of a record: its key where AWS allows it as a group id (1 to 128
/// printable ASCII characters), else a hash of it (two keys sharing a hash share an order,
/// which is stricter, never looser); a keyless record's partition.
fn message_group(key: Option<&[u8]>, partition: u32) -> String {
    match key {
        Some(key)
            if !key.is_empty()
                && key.len() <= MESSAGE_ID_BYTES_MAX
                && key.iter().all(|b| b.is_ascii_graphic()) =>
        {
            String::from_utf8_lossy(key).into_owned()
        }
        Some(key) => format!("keel-murmur2-{:08x}", murmur2(key)),
        None => format!("p{partition}"),
    }
}

/// The deduplication id of a record: its event id when service code published it (and it
/// fits), else a fresh one.
fn dedupe_id(record: &NewRecord) -> String {
    let event_id = (!record.headers.iter().any(|h| h.key.starts_with("keel_")))
        .then(|| header_text(&record.headers, "ce_id"))
        .flatten()
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MESSAGE_ID_BYTES_MAX
                && id.bytes().all(|b| b.is_ascii_graphic())
        });
    match event_id {
        Some(id) => id.to_string(),
        None => uuid::Uuid::now_v7().simple().to_string(),
    }
}

impl PublishTransport for SqsPublisher {
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
            let entry = self.connection.topic(source).await?.ok_or_else(|| {
                TransportError::UnknownTopic {
                    topic: source.to_string(),
                }
            })?;
            self.connection.create_topic(name, entry.partitions).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_its_message_group_where_aws_allows_it() {
        assert_eq!(message_group(Some(b"order-7"), 1), "order-7");
        assert_eq!(message_group(None, 3), "p3");
        let hashed = message_group(Some("größe".as_bytes()), 0);
        assert!(hashed.starts_with("keel-murmur2-"), "{hashed}");
        assert_eq!(hashed, message_group(Some("größe".as_bytes()), 5), "stable");
        assert!(message_group(Some(&[b'k'; 129]), 0).starts_with("keel-murmur2-"));
    }
}
