//! The publishing half of the port on the embedded log: `PublishTransport for EmbeddedBus`
//! — a send is an append (on a blocking thread, coalesced with the sends waiting for the
//! same partition: `coalesce.rs`) followed by the topic's wake-up; a batch is
//! one append per partition, the partitions' appends running at once; companion topics are
//! created beside their source with its partition count and fsync policy.
//!
//! Not here: events (the runtime's `Publisher` maps them to records) or consuming
//! (`consume.rs`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use keel_core::{BoxFuture, NewRecord, PublishTransport, Published, SendError, TransportError};
use keel_log::{Log, Topic, TopicConfig, TopicError};

use crate::bus::{EmbeddedBus, Refused};
use crate::limits::BATCH_APPEND_RECORDS_MAX;

impl PublishTransport for EmbeddedBus {
    fn send<'a>(
        &'a self,
        topic: &'a str,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>> {
        Box::pin(async move {
            let log_topic = self.topic(topic)?;
            let partition = log_topic.partition_for(record.key.as_deref());
            self.send_to_topic(log_topic, partition, record).await
        })
    }

    fn send_to<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>> {
        Box::pin(async move {
            let log_topic = self.topic(topic)?;
            self.send_to_topic(log_topic, partition, record).await
        })
    }

    /// One append per partition (in chunks of [`BATCH_APPEND_RECORDS_MAX`]), the
    /// partitions' appends running at once. A chunk the log rejects (too large as a whole,
    /// or holding one bad record) is retried one record at a time, so only the bad records
    /// fail; after any failure the partition's later records of that key are not attempted,
    /// and a retriable failure stops the partition.
    fn send_batch<'a>(
        &'a self,
        topic: &'a str,
        records: Vec<NewRecord>,
    ) -> BoxFuture<'a, Vec<Result<Published, SendError>>> {
        Box::pin(async move {
            let count = records.len();
            let log_topic = match self.topic(topic) {
                Ok(log_topic) => log_topic,
                Err(error) => return vec![Err(error); count],
            };
            let mut partitions: BTreeMap<u32, Vec<Item>> = BTreeMap::new();
            for (index, record) in records.into_iter().enumerate() {
                let partition = log_topic.partition_for(record.key.as_deref());
                partitions.entry(partition).or_default().push(Item {
                    index,
                    key: record.key.clone(),
                    record,
                });
            }
            let mut appends = tokio::task::JoinSet::new();
            for (partition, items) in partitions {
                appends.spawn(append_partition(
                    self.clone(),
                    log_topic.clone(),
                    partition,
                    items,
                ));
            }
            let mut results: Vec<Option<Result<Published, SendError>>> = vec![None; count];
            while let Some(done) = appends.join_next().await {
                let Ok(done) = done else { continue };
                for (index, result) in done {
                    results[index] = Some(result);
                }
            }
            results
                .into_iter()
                .map(|r| r.unwrap_or(Err(SendError::Cancelled)))
                .collect()
        })
    }

    fn ensure_companion<'a>(
        &'a self,
        source: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<u32, TransportError>> {
        Box::pin(async move {
            let source = self
                .log()
                .topic(source)
                .ok_or_else(|| TransportError::UnknownTopic {
                    topic: source.to_string(),
                })?;
            let log = self.log().clone();
            let name = name.to_string();
            let topic =
                tokio::task::spawn_blocking(move || ensure_companion_topic(&log, &source, &name))
                    .await
                    .map_err(|e| TransportError::Unavailable {
                        reason: e.to_string(),
                    })?
                    .map_err(transport_error)?;
            Ok(topic.config().partitions)
        })
    }
}

impl EmbeddedBus {
    /// `send_to` once the topic is found: `send` calls it directly, so a send is one boxed
    /// future and one topic lookup, not two.
    async fn send_to_topic(
        &self,
        topic: Arc<Topic>,
        partition: u32,
        record: NewRecord,
    ) -> Result<Published, SendError> {
        let offset = self
            .append_coalesced(topic.clone(), partition, record)
            .await?;
        Ok(Published {
            topic: topic.name().to_string(),
            partition,
            offset,
        })
    }
}

/// One record of a batch, ready to append.
struct Item {
    index: usize,
    key: Option<Bytes>,
    record: NewRecord,
}

/// Appends one partition's share of a batch; returns a result per item.
async fn append_partition(
    bus: EmbeddedBus,
    topic: Arc<Topic>,
    partition: u32,
    items: Vec<Item>,
) -> Vec<(usize, Result<Published, SendError>)> {
    let published = |offset| Published {
        topic: topic.name().to_string(),
        partition,
        offset,
    };
    let mut out = Vec::with_capacity(items.len());
    let mut failed_keys: HashSet<Bytes> = HashSet::new();
    let mut stopped: Option<SendError> = None;
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let chunk: Vec<Item> = items.by_ref().take(BATCH_APPEND_RECORDS_MAX).collect();
        if let Some(error) = &stopped {
            out.extend(
                chunk
                    .into_iter()
                    .map(|item| (item.index, Err(error.clone()))),
            );
            continue;
        }
        let (chunk, records): (Vec<(usize, Option<Bytes>)>, Vec<NewRecord>) = chunk
            .into_iter()
            .map(|item| ((item.index, item.key), item.record))
            .unzip();
        match bus.append(topic.clone(), partition, records).await {
            Ok(base) => {
                out.extend(
                    chunk
                        .into_iter()
                        .zip(base..)
                        .map(|((index, _), offset)| (index, Ok(published(offset)))),
                );
            }
            Err(Refused { error, .. }) if error.is_retriable() => {
                out.extend(
                    chunk
                        .into_iter()
                        .map(|(index, _)| (index, Err(error.clone()))),
                );
                stopped = Some(error);
            }
            Err(Refused { records, .. }) => {
                // One bad record (or a chunk too large as a whole): one record at a time.
                for ((index, key), record) in chunk.into_iter().zip(records) {
                    if key.as_ref().is_some_and(|k| failed_keys.contains(k)) {
                        out.push((index, Err(SendError::NotAttempted)));
                        continue;
                    }
                    let result = bus
                        .append(topic.clone(), partition, vec![record])
                        .await
                        .map(published)
                        .map_err(|refused| refused.error);
                    if result.is_err() {
                        failed_keys.extend(key);
                    }
                    out.push((index, result));
                }
            }
        }
    }
    out
}

/// The topic `name` beside `source` (its `.dlq` or `.retry` topic), created with the
/// source's partition count and fsync policy if it does not exist yet.
pub(crate) fn ensure_companion_topic(
    log: &Log,
    source: &Topic,
    name: &str,
) -> Result<Arc<Topic>, TopicError> {
    if let Some(topic) = log.topic(name) {
        return Ok(topic);
    }
    let config = TopicConfig::new(source.config().partitions).with_fsync(source.config().fsync);
    match log.create_topic(name, config) {
        Ok(topic) => Ok(topic),
        // Another worker (or router) created it first.
        Err(TopicError::AlreadyExists(_)) => log
            .topic(name)
            .ok_or_else(|| TopicError::NotFound(name.to_string())),
        Err(error) => Err(error),
    }
}

/// The port's error for a topic the log could not create or find.
pub(crate) fn transport_error(error: TopicError) -> TransportError {
    match error {
        TopicError::NotFound(topic) => TransportError::UnknownTopic { topic },
        TopicError::Io(error) => TransportError::Unavailable {
            reason: error.to_string(),
        },
        other => TransportError::Refused {
            reason: other.to_string(),
        },
    }
}
