//! [`Connection`]: one multiplexed Redis connection shared by the publisher, the consumers
//! and the admin port of a [`RedisTransport`](crate::RedisTransport), with the topic
//! registry (a hash, topic → partition count) and a cache of partition counts, which never
//! change once a topic exists.
//!
//! The connection is the `redis` crate's `ConnectionManager`: a request that finds the
//! connection broken (the server restarted) fails, and the manager connects again in the
//! background with exponential backoff, so the next request goes to the new server. Nothing
//! is resent on its own: a failed `XADD` is reported to the publisher (which may publish the
//! event again; the inbox drops a copy), a failed read or commit to the router's worker,
//! which tries again.
//!
//! Partition reads go over up to [`READ_CONNECTIONS_MAX`] more connections of their own,
//! opened on first use: the `redis` crate parses a connection's replies on that
//! connection's one task, and that parse is most of the 69,000 instructions per entry the
//! crate's own `XREADGROUP` loop costs (BENCHMARKS.md, "Per-event instructions on Redis and
//! Kafka"): with every lease on one connection, all their replies were parsed on one core.

use std::collections::HashMap;
use std::sync::Mutex;

use keel_core::TransportError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::config::RedisConfig;
use crate::keys::Keys;
use crate::limits::{
    PARTITIONS_MAX, READ_CONNECTIONS_MAX, RECONNECT_ATTEMPTS, RECONNECT_DELAY_MAX,
    RECONNECT_DELAY_MIN,
};

/// A connection to one Redis server under one namespace.
pub(crate) struct Connection {
    pub(crate) redis: ConnectionManager,
    pub(crate) keys: Keys,
    partitions: Mutex<HashMap<String, u32>>,
    client: redis::Client,
    /// The partition reads' connections, each opened by its first read.
    readers: [OnceCell<ConnectionManager>; READ_CONNECTIONS_MAX],
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to the server `config` names.
    pub(crate) async fn connect(config: &RedisConfig) -> Result<Connection, TransportError> {
        let client = redis::Client::open(config.url())
            .map_err(|e| unavailable(format!("Redis URL '{}': {e}", config.url())))?;
        let redis = client
            .get_connection_manager_with_config(reconnect_config())
            .await
            .map_err(|e| unavailable(format!("cannot connect to {}: {e}", config.url())))?;
        Ok(Connection {
            redis,
            keys: Keys::new(config.namespace()),
            partitions: Mutex::new(HashMap::new()),
            client,
            readers: Default::default(),
        })
    }

    /// The connection to read `partition` over: one of [`READ_CONNECTIONS_MAX`], by
    /// partition, opened on first use (clones share it).
    pub(crate) async fn reader(&self, partition: u32) -> redis::RedisResult<ConnectionManager> {
        let slot = &self.readers[partition as usize % READ_CONNECTIONS_MAX];
        let reader = slot
            .get_or_try_init(|| {
                self.client
                    .get_connection_manager_with_config(reconnect_config())
            })
            .await?;
        Ok(reader.clone())
    }

    /// A handle for one request or one lease (clones share the connection).
    pub(crate) fn redis(&self) -> ConnectionManager {
        self.redis.clone()
    }

    /// The partition count of `topic` (cached); `None` when the topic does not exist.
    pub(crate) async fn partitions(&self, topic: &str) -> Result<Option<u32>, TransportError> {
        if let Some(partitions) = self.cache().get(topic) {
            return Ok(Some(*partitions));
        }
        let partitions: Option<u32> = redis::cmd("HGET")
            .arg(self.keys.topics())
            .arg(topic)
            .query_async(&mut self.redis())
            .await
            .map_err(|e| unavailable(format!("topic '{topic}': {e}")))?;
        if let Some(partitions) = partitions {
            self.cache().insert(topic.to_string(), partitions);
        }
        Ok(partitions)
    }

    /// Every topic, by name, with its partition count.
    pub(crate) async fn topics(&self) -> Result<Vec<(String, u32)>, TransportError> {
        let mut topics: Vec<(String, u32)> = redis::cmd("HGETALL")
            .arg(self.keys.topics())
            .query_async(&mut self.redis())
            .await
            .map_err(|e| unavailable(format!("topics: {e}")))?;
        topics.sort();
        Ok(topics)
    }

    /// The partition count of `topic`, registered with `partitions` when missing (its
    /// streams appear with their first entry or group).
    pub(crate) async fn create_topic(
        &self,
        topic: &str,
        partitions: u32,
    ) -> Result<u32, TransportError> {
        if partitions == 0 || partitions > PARTITIONS_MAX {
            return Err(TransportError::Refused {
                reason: format!(
                    "topic '{topic}': {partitions} partitions is not in 1..={PARTITIONS_MAX}"
                ),
            });
        }
        let _: bool = redis::cmd("HSETNX")
            .arg(self.keys.topics())
            .arg(topic)
            .arg(partitions)
            .query_async(&mut self.redis())
            .await
            .map_err(|e| unavailable(format!("creating topic '{topic}': {e}")))?;
        self.partitions(topic)
            .await?
            .ok_or_else(|| unavailable(format!("topic '{topic}' vanished after its creation")))
    }

    /// The stream of `partition` of `topic`, checked against its partition count.
    pub(crate) async fn stream(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<String, TransportError> {
        match self.partitions(topic).await? {
            None => Err(TransportError::UnknownTopic {
                topic: topic.to_string(),
            }),
            Some(partitions) if partition >= partitions => Err(TransportError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            }),
            Some(_) => Ok(self.keys.stream(topic, partition)),
        }
    }

    /// Deletes `topic`: its partitions' streams (their entries and groups), then its
    /// registration — in that order, so a delete cut short leaves the topic registered and
    /// empty, never a topic created again later that finds old entries.
    pub(crate) async fn delete_topic(&self, topic: &str) -> Result<(), TransportError> {
        let partitions =
            self.partitions(topic)
                .await?
                .ok_or_else(|| TransportError::UnknownTopic {
                    topic: topic.to_string(),
                })?;
        let streams: Vec<String> = (0..partitions)
            .map(|partition| self.keys.stream(topic, partition))
            .collect();
        let _: u64 = redis::cmd("DEL")
            .arg(&streams)
            .query_async(&mut self.redis())
            .await
            .map_err(|e| unavailable(format!("deleting the streams of topic '{topic}': {e}")))?;
        let _: u64 = redis::cmd("HDEL")
            .arg(self.keys.topics())
            .arg(topic)
            .query_async(&mut self.redis())
            .await
            .map_err(|e| unavailable(format!("deleting topic '{topic}': {e}")))?;
        self.cache().remove(topic);
        Ok(())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A [`TransportError::Unavailable`] with `reason`.
pub(crate) fn unavailable(reason: impl Into<String>) -> TransportError {
    TransportError::Unavailable {
        reason: reason.into(),
    }
}

/// How every connection of a transport reconnects to a server that went away.
fn reconnect_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_min_delay(RECONNECT_DELAY_MIN)
        .set_max_delay(RECONNECT_DELAY_MAX)
        .set_number_of_retries(RECONNECT_ATTEMPTS)
}
