//! [`PublishPort`] for [`Publisher`], so the outbox relay (and any other forwarder) can
//! publish into the embedded log or through any other transport the publisher is on.
//!
//! Not here: the publish itself (`bus.rs`) or the dead-letter format (`dead_letter.rs`);
//! this file only maps them onto the port and sorts errors into transient and rejected.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use keel_core::{Event, PortError, PortErrorKind, PortFuture, PublishPort, TraceParent};
use keel_log::{AppendError, NewRecord, Topic};

use crate::bus::{EmbeddedBus, Publisher, Target, event_record};
use crate::dead_letter::{DLQ_GROUP_HEADER, ensure_topic, unpublished_dead_letter_record};
use crate::error::PublishError;

impl PublishPort for Publisher {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        event: Event,
    ) -> PortFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            Publisher::publish(self, topic, event)
                .await
                .map(|_| ())
                .map_err(port_error)
        })
    }

    /// On the embedded bus: one append per partition (in chunks of
    /// [`BATCH_APPEND_RECORDS_MAX`]), the partitions' appends running at once. A chunk the
    /// log rejects (too large as a whole, or holding one bad record) is retried one record
    /// at a time, so only the bad events fail; after any failure the partition's later
    /// events of that key are not attempted, and a transient failure stops the partition
    /// (the port's contract). On another transport: one event at a time.
    fn publish_batch<'a>(
        &'a self,
        topic: &'a str,
        events: Vec<Event>,
    ) -> PortFuture<'a, Vec<Result<(), PortError>>> {
        let bus = match self.target() {
            Target::Embedded(bus) => bus.clone(),
            Target::Transport(_) => return keel_core::publish_each(self, topic, events),
        };
        Box::pin(async move {
            let count = events.len();
            let Some(log_topic) = bus.log().topic(topic) else {
                let error = port_error(PublishError::UnknownTopic(topic.to_string()));
                return vec![Err(error); count];
            };
            let mut results: Vec<Option<Result<(), PortError>>> = vec![None; count];
            let mut invalid_keys: HashSet<String> = HashSet::new();
            let mut partitions: BTreeMap<u32, Vec<Item>> = BTreeMap::new();
            for (index, mut event) in events.into_iter().enumerate() {
                let key = event.partitionkey.clone();
                if key.as_ref().is_some_and(|k| invalid_keys.contains(k)) {
                    results[index] = Some(Err(PortError::not_attempted()));
                    continue;
                }
                if event.traceparent.is_none() {
                    event.traceparent = Some(TraceParent::new_root());
                }
                if let Err(error) = event.validate() {
                    results[index] = Some(Err(port_error(error.into())));
                    invalid_keys.extend(key);
                    continue;
                }
                let record = event_record(&event);
                let partition = log_topic.partition_for(record.key.as_deref());
                partitions
                    .entry(partition)
                    .or_default()
                    .push(Item { index, key, record });
            }
            let mut appends = tokio::task::JoinSet::new();
            for (partition, items) in partitions {
                appends.spawn(append_partition(
                    bus.clone(),
                    log_topic.clone(),
                    partition,
                    items,
                ));
            }
            while let Some(done) = appends.join_next().await {
                let Ok(done) = done else { continue };
                for (index, result) in done {
                    results[index] = Some(result);
                }
            }
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(port_error(PublishError::Cancelled))))
                .collect()
        })
    }

    /// Appends the event's record plus `headers` to `<topic>.dlq` (created like the router
    /// creates it: the source topic's partition count and fsync policy), where `keel dlq`
    /// and the dead-letter gauges find it, and counts it in
    /// `keel_events_dead_lettered_total` under the group its `keel_dlq_group` header names.
    fn publish_dead_letter<'a>(
        &'a self,
        topic: &'a str,
        event: Event,
        headers: Vec<(String, Vec<u8>)>,
    ) -> PortFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let group = headers
                .iter()
                .find(|(name, _)| name == DLQ_GROUP_HEADER)
                .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
                .unwrap_or_default();
            let record = unpublished_dead_letter_record(event, headers);
            let bus = match self.target() {
                Target::Embedded(bus) => bus,
                Target::Transport(transport) => {
                    return transport
                        .send_dead_letter(topic, record)
                        .await
                        .map(|_| ())
                        .map_err(port_error);
                }
            };
            let source = bus
                .log()
                .topic(topic)
                .ok_or_else(|| port_error(PublishError::UnknownTopic(topic.to_string())))?;
            let dead_letters = ensure_topic(bus.log(), &source).map_err(|e| {
                PortError::transient(format!("dead-letter topic of '{topic}': {e}"))
            })?;
            let partition = dead_letters.partition_for(record.key.as_deref());
            bus.append(dead_letters, partition, vec![record])
                .await
                .map_err(port_error)?;
            bus.metrics().route(topic, &group).dead_lettered();
            Ok(())
        })
    }
}

/// Most records one append of [`PublishPort::publish_batch`] carries.
const BATCH_APPEND_RECORDS_MAX: usize = 512;

/// One event of a batch, ready to append.
struct Item {
    index: usize,
    key: Option<String>,
    record: NewRecord,
}

/// Appends one partition's share of a batch; returns a result per item.
async fn append_partition(
    bus: EmbeddedBus,
    topic: Arc<Topic>,
    partition: u32,
    items: Vec<Item>,
) -> Vec<(usize, Result<(), PortError>)> {
    let name = topic.name().to_string();
    let mut out = Vec::with_capacity(items.len());
    let mut failed_keys: HashSet<String> = HashSet::new();
    let mut stopped: Option<PortError> = None;
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
        let records: Vec<NewRecord> = chunk.iter().map(|item| item.record.clone()).collect();
        match bus.append(topic.clone(), partition, records).await {
            Ok(_) => {
                for item in chunk {
                    bus.metrics().published(&name);
                    out.push((item.index, Ok(())));
                }
            }
            Err(error) => {
                let error = port_error(error);
                if error.kind() != PortErrorKind::Rejected {
                    out.extend(
                        chunk
                            .into_iter()
                            .map(|item| (item.index, Err(error.clone()))),
                    );
                    stopped = Some(error);
                    continue;
                }
                // One bad record (or a chunk too large as a whole): one record at a time.
                for item in chunk {
                    if item.key.as_ref().is_some_and(|k| failed_keys.contains(k)) {
                        out.push((item.index, Err(PortError::not_attempted())));
                        continue;
                    }
                    let result = bus
                        .append(topic.clone(), partition, vec![item.record])
                        .await
                        .map(|_| bus.metrics().published(&name))
                        .map_err(port_error);
                    if result.is_err() {
                        failed_keys.extend(item.key);
                    }
                    out.push((item.index, result));
                }
            }
        }
    }
    out
}

/// Rejected: what the same bytes will always fail with. Transient: everything that depends
/// on the log's state (a missing topic may be created, a poisoned partition reopened).
fn port_error(error: PublishError) -> PortError {
    let rejected = match &error {
        PublishError::InvalidEvent(_) | PublishError::Rejected { .. } => true,
        PublishError::Append { source, .. } => matches!(
            source,
            AppendError::RecordTooLarge { .. }
                | AppendError::InvalidBatch(_)
                | AppendError::KeyRequired
                | AppendError::Empty
        ),
        _ => false,
    };
    if rejected {
        PortError::rejected(error)
    } else {
        PortError::transient(error)
    }
}
