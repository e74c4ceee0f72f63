//! [`TopicSource`]: a `keel-log` topic as a projection [`Source`], every partition read in
//! offset order.
//!
//! Not here: the checkpoints (the model's, one per partition) and the feeding loop.
//!
//! A topic's records are CloudEvents (binary or structured mode, as every Keel publisher
//! writes them). Topics have no streams, so the [`RecordedEvent`] a model receives carries:
//! `stream` = the event's partition key (else the record key, else empty), `version` = 0,
//! `position` = the record's offset in its partition, `recorded_at_ms` = the record's
//! timestamp. A record that is not a CloudEvent stops the projection at it
//! ([`ReadError::Corrupt`]) rather than being skipped.
//!
//! A rebuild replays what the topic still holds: retention that deleted old records makes
//! a rebuilt model differ from the live one, so project from topics without retention (or
//! compacted ones, whose latest record per key is the state) when rebuilds must agree.
//!
//! Waiting for new records polls the partitions' high watermarks every
//! [`TOPIC_POLL`]: the log offers only a blocking per-partition wait, which would tie up a
//! thread per partition for a projection that waits on all of them.

use std::sync::Arc;
use std::time::Duration;

use keel_core::Event;
use keel_log::{Log, Partition, Record, Topic};
use keel_store::{ReadError, RecordedEvent, one_line};

use crate::source::Source;

/// How often a waiting topic projection looks at the high watermarks.
pub const TOPIC_POLL: Duration = Duration::from_millis(10);
/// Bytes one read of a partition asks the log for.
const TOPIC_READ_BYTES: usize = 1 << 20;

/// A topic of a `keel-log` [`Log`] as a projection source. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TopicSource {
    topic: Arc<Topic>,
}

/// Why a [`TopicSource`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("projection source: topic '{0}' does not exist")]
pub struct NoSuchTopic(pub String);

impl TopicSource {
    /// The topic `name` of `log`.
    pub fn new(log: &Log, name: &str) -> Result<TopicSource, NoSuchTopic> {
        log.topic(name)
            .map(|topic| TopicSource { topic })
            .ok_or_else(|| NoSuchTopic(name.to_owned()))
    }

    fn partition(&self, partition: u32) -> &Arc<Partition> {
        self.topic
            .partition(partition)
            .expect("the projector asks only for partitions below partitions()")
    }
}

impl Source for TopicSource {
    type Filter = ();

    fn partitions(&self) -> u32 {
        self.topic.partitions().len() as u32
    }

    async fn partition_head(&self, partition: u32) -> Result<u64, ReadError> {
        Ok(self.partition(partition).high_watermark())
    }

    async fn read_partition(
        &self,
        partition: u32,
        from: u64,
        max_count: usize,
        _filter: &(),
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let partition = self.partition(partition).clone();
        let read = move || {
            let from = from.max(partition.log_start_offset());
            let records = partition
                .read_records(from, TOPIC_READ_BYTES)
                .map_err(|e| ReadError::Storage {
                    operation: "topic read",
                    reason: one_line(e),
                })?;
            records
                .iter()
                .filter(|record| record.offset >= from)
                .take(max_count)
                .map(recorded_event)
                .collect()
        };
        match tokio::task::spawn_blocking(read).await {
            Ok(events) => events,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    async fn wait_for_any(&self, positions: &[u64], timeout: Duration) -> Result<(), ReadError> {
        let arrived = || {
            self.topic
                .partitions()
                .iter()
                .zip(positions)
                .any(|(partition, &position)| partition.high_watermark() > position)
        };
        let deadline = tokio::time::Instant::now() + timeout;
        while !arrived() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(TOPIC_POLL).await;
        }
        Ok(())
    }
}

/// A topic record as the event a model applies (see the module docs for the fields).
fn recorded_event(record: &Record) -> Result<RecordedEvent, ReadError> {
    let headers = record
        .headers
        .iter()
        .map(|header| (header.key.as_str(), header.value.as_deref()));
    let event = Event::from_record(record.key.as_deref(), headers, record.value.as_deref())
        .map_err(|e| ReadError::Corrupt {
            position: record.offset,
            reason: one_line(e),
        })?;
    let stream = match (&event.partitionkey, &record.key) {
        (Some(key), _) => key.clone(),
        (None, Some(key)) => String::from_utf8_lossy(key).into_owned(),
        (None, None) => String::new(),
    };
    Ok(RecordedEvent {
        stream,
        version: 0,
        position: record.offset,
        recorded_at_ms: record.timestamp_ms,
        event,
    })
}
