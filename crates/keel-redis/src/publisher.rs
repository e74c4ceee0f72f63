//! [`RedisPublisher`]: the publishing half of the port on Redis Streams. A record is added
//! (`XADD <stream> 0-* …`) to the stream of its partition — murmur2 of its key, as on every
//! transport — and `Ok` comes with the entry's id, so the server has it. Whether it
//! survives a crash of the server is Redis's persistence setting: with `appendonly yes` and
//! `appendfsync everysec` up to a second of acknowledged entries can be lost, with
//! `appendfsync always` none, without AOF everything since the last snapshot
//! (docs/engines.md).
//!
//! Redis has no deduplication of its own: an event published twice is stored twice, and the
//! consumer's inbox drops the second.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use keel_core::{
    BoxFuture, Clock, NewRecord, PublishTransport, Published, SendError, SystemClock,
    TransportError, choose_partition, topic_for_send,
};
use keel_runtime::{Metrics, Publisher};

use crate::config::RedisConfig;
use crate::connection::Connection;
use crate::record;

/// Publishes records to Redis streams. Cheap to clone; clones share one connection.
#[derive(Debug, Clone)]
pub struct RedisPublisher {
    pub(crate) connection: Arc<Connection>,
    /// Spreads records without a key over the partitions.
    round_robin: Arc<AtomicU32>,
}

impl RedisPublisher {
    /// A publisher on the server `config` names.
    pub async fn connect(config: &RedisConfig) -> Result<RedisPublisher, TransportError> {
        Ok(RedisPublisher {
            connection: Arc::new(Connection::connect(config).await?),
            round_robin: Arc::new(AtomicU32::new(0)),
        })
    }

    /// A [`keel_runtime::Publisher`] on this connection, counting into metrics of its own;
    /// it also serves as the outbox relay's `PublishPort`.
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
        let mut add = redis::cmd("XADD");
        add.arg(self.connection.keys.stream(topic, partition))
            .arg(record::NEXT_ID);
        for (field, value) in record::encode(&record, SystemClock.now_ms()) {
            add.arg(field).arg(value.as_ref());
        }
        let id: String = add
            .query_async(&mut self.connection.redis())
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let offset = record::offset_of(&id)
            .ok_or_else(|| unavailable(format!("unexpected entry id '{id}'")))?;
        Ok(Published {
            topic: topic.to_string(),
            partition,
            offset,
        })
    }
}

impl PublishTransport for RedisPublisher {
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
