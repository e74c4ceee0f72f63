//! [`Connection`]: one NATS connection and its JetStream context, shared by the publisher,
//! the consumers and the admin port of a [`NatsTransport`](crate::NatsTransport) — with the
//! topic ↔ stream mapping (a topic is a stream whose subjects are its partitions) and a
//! cache of partition counts, which never change once a topic exists.
//!
//! Not here: what is done with a stream (`publisher.rs`, `lease.rs`, `admin.rs`).

use std::collections::HashMap;
use std::sync::Mutex;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{Config as StreamConfig, Stream};
use async_nats::jetstream::{self, Context};
use keel_core::TransportError;

use crate::config::NatsConfig;
use crate::limits::{DUPLICATE_WINDOW, PARTITIONS_MAX};
use crate::names::Names;

/// A connection to one NATS server (or cluster) under one namespace.
pub(crate) struct Connection {
    pub(crate) jetstream: Context,
    pub(crate) names: Names,
    /// Partition counts of topics seen, by topic.
    partitions: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to the server `config` names.
    pub(crate) async fn connect(config: &NatsConfig) -> Result<Connection, TransportError> {
        let client = async_nats::connect(config.url())
            .await
            .map_err(|e| unavailable(format!("cannot connect to {}: {e}", config.url())))?;
        Ok(Connection {
            jetstream: jetstream::new(client),
            names: Names::new(config.namespace()),
            partitions: Mutex::new(HashMap::new()),
        })
    }

    /// The stream of `topic`; `None` when the topic does not exist.
    pub(crate) async fn stream(&self, topic: &str) -> Result<Option<Stream>, TransportError> {
        match self.jetstream.get_stream(self.names.stream(topic)).await {
            Ok(stream) => {
                let partitions = stream.cached_info().config.subjects.len() as u32;
                self.cache().insert(topic.to_string(), partitions);
                Ok(Some(stream))
            }
            Err(error) => match error.kind() {
                GetStreamErrorKind::JetStream(e)
                    if e.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(unavailable(format!("stream of topic '{topic}': {error}"))),
            },
        }
    }

    /// The partition count of `topic` (cached); `None` when the topic does not exist.
    pub(crate) async fn partitions(&self, topic: &str) -> Result<Option<u32>, TransportError> {
        if let Some(partitions) = self.cache().get(topic) {
            return Ok(Some(*partitions));
        }
        Ok(self
            .stream(topic)
            .await?
            .map(|stream| stream.cached_info().config.subjects.len() as u32))
    }

    /// The partition count of `topic`, whose stream is created with `partitions` subjects
    /// when missing.
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
        if let Some(existing) = self.partitions(topic).await? {
            return Ok(existing);
        }
        let config = StreamConfig {
            name: self.names.stream(topic),
            description: Some(format!("keel topic {topic}")),
            subjects: self.names.subjects(topic, partitions),
            duplicate_window: DUPLICATE_WINDOW,
            allow_direct: true,
            ..StreamConfig::default()
        };
        match self.jetstream.create_stream(config).await {
            Ok(_) => {}
            // Another process created it in between: its partition count is the answer.
            Err(e) if matches!(e.kind(), CreateStreamErrorKind::JetStream(ref j) if j.error_code() == ErrorCode::STREAM_NAME_EXIST) =>
                {}
            Err(e) => {
                return Err(unavailable(format!("creating topic '{topic}': {e}")));
            }
        }
        self.partitions(topic)
            .await?
            .ok_or_else(|| unavailable(format!("topic '{topic}' vanished after its creation")))
    }

    /// Deletes the stream of `topic`: its messages and its groups' consumers go with it.
    pub(crate) async fn delete_topic(&self, topic: &str) -> Result<(), TransportError> {
        if self.stream(topic).await?.is_none() {
            return Err(TransportError::UnknownTopic {
                topic: topic.to_string(),
            });
        }
        self.jetstream
            .delete_stream(self.names.stream(topic))
            .await
            .map_err(|e| unavailable(format!("deleting the stream of topic '{topic}': {e}")))?;
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

/// Milliseconds since the epoch of a JetStream time.
pub(crate) fn millis(time: async_nats::datetime::DateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000_000) as i64
}
