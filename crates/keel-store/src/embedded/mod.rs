//! The embedded event store: [`EmbeddedStore`], streams kept in one single-partition
//! `keel-log` topic with an in-memory index per stream and per category.
//!
//! Not here: the record layout (`codec.rs`) and the index (`index.rs`).
//!
//! # How it keeps its promises
//!
//! - **Position = offset.** All events live in one partition, so the log's offsets are the
//!   global order, dense from 0, and a multi-event append is one RecordBatch: stored whole or
//!   cut whole by recovery, never half.
//! - **Conflict detection.** Appends are serialised per store by one mutex held across
//!   "read version from the index → append to the log → add to the index", so the check and
//!   the write are one step. (One `EmbeddedStore` per topic per process: clone it to share.
//!   The log's own directory lock already keeps other processes out.)
//! - **Crash safety of the index.** The index is never written to disk; [`EmbeddedStore::open`]
//!   rebuilds it by scanning the topic after the log's recovery, so it holds exactly the
//!   batches that survived. A read that finds the log ahead of the index (records appended
//!   to the topic by other code) indexes them first.
//! - **Durability** is the topic's fsync policy (default `always`: an acknowledged append
//!   survives a power cut).
//! - **Snapshots** live in a second, compacted topic keyed by stream id; an in-memory map from
//!   stream to the offset of its latest snapshot is rebuilt on open the same way.

mod codec;
mod index;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use keel_core::Event;
use keel_log::{CleanupPolicy, FsyncPolicy, Log, Partition, TopicConfig, TopicError};
use tokio::sync::watch;

use crate::error::{AppendError, ConcurrencyConflict, OpenError, ReadError, one_line};
use crate::store::{AllFilter, EventStore, check_append, version_range};
use crate::stream::{
    Appended, Direction, ExpectedVersion, RecordedEvent, Snapshot, validate_stream_id,
};
use index::{Index, read, read_positions};

/// Where an [`EmbeddedStore`] keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedStoreOptions {
    /// The events topic (one partition, no retention). Default `keel.events`.
    pub topic: String,
    /// The snapshots topic (one partition, compacted). Default `keel.snapshots`.
    pub snapshot_topic: String,
    /// Durability of both topics when the store creates them. Default `always`.
    pub fsync: FsyncPolicy,
}

impl Default for EmbeddedStoreOptions {
    fn default() -> EmbeddedStoreOptions {
        EmbeddedStoreOptions {
            topic: "keel.events".into(),
            snapshot_topic: "keel.snapshots".into(),
            fsync: FsyncPolicy::Always,
        }
    }
}

/// An event store in a `keel-log` [`Log`]: zero setup, one process. Cheap to clone; clones
/// share one index and one append lock.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    events: Arc<Partition>,
    snapshots: Arc<Partition>,
    /// Serialises appends and index catch-up: the version check and the write are one step.
    append: Mutex<()>,
    index: RwLock<Index>,
    /// Stream → offset of its latest snapshot record.
    snapshot_offsets: Mutex<HashMap<String, u64>>,
    /// The head after the latest append of this process, for `wait_for`.
    head: watch::Sender<u64>,
}

impl EmbeddedStore {
    /// Opens the store in `log` with default options (see [`EmbeddedStore::open_with`]).
    pub fn open(log: &Log) -> Result<EmbeddedStore, OpenError> {
        EmbeddedStore::open_with(log, &EmbeddedStoreOptions::default())
    }

    /// Opens the store: creates its topics if missing, checks their shape, and rebuilds the
    /// index by scanning them (time proportional to the number of events stored).
    pub fn open_with(
        log: &Log,
        options: &EmbeddedStoreOptions,
    ) -> Result<EmbeddedStore, OpenError> {
        let config = TopicConfig::new(1).with_fsync(options.fsync);
        let events = single_partition(log, &options.topic, config.clone(), CleanupPolicy::Delete)?;
        let snapshots = single_partition(
            log,
            &options.snapshot_topic,
            config.with_cleanup(CleanupPolicy::Compact),
            CleanupPolicy::Compact,
        )?;
        let mut index = Index::default();
        index.catch_up(&events)?;
        let mut snapshot_offsets = HashMap::new();
        let mut offset = snapshots.log_start_offset();
        while offset < snapshots.high_watermark() {
            let records = read(&snapshots, offset)?;
            for record in &records {
                let snapshot = codec::snapshot(record)?;
                snapshot_offsets.insert(snapshot.stream, record.offset);
            }
            match records.last() {
                Some(last) => offset = last.offset + 1,
                None => break,
            }
        }
        let head = watch::Sender::new(index.next_position);
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                events,
                snapshots,
                append: Mutex::new(()),
                index: RwLock::new(index),
                snapshot_offsets: Mutex::new(snapshot_offsets),
                head,
            }),
        })
    }
}

/// The topic's only partition, creating the topic when missing; refuses a topic whose
/// partitions, cleanup or retention would break the store's promises.
fn single_partition(
    log: &Log,
    name: &str,
    config: TopicConfig,
    cleanup: CleanupPolicy,
) -> Result<Arc<Partition>, OpenError> {
    let invalid = |reason: String| OpenError::Topic {
        topic: name.to_owned(),
        reason,
    };
    let topic = match log.topic(name) {
        Some(topic) => topic,
        None => match log.create_topic(name, config) {
            Ok(topic) => topic,
            Err(TopicError::AlreadyExists(_)) => log
                .topic(name)
                .ok_or_else(|| invalid("vanished while opening".into()))?,
            Err(e) => return Err(invalid(one_line(e))),
        },
    };
    let config = topic.config();
    if config.partitions != 1 {
        return Err(invalid(format!(
            "has {} partitions; the event store needs exactly 1 (one global order)",
            config.partitions
        )));
    }
    if config.cleanup != cleanup
        || config.retention_ms.is_some()
        || config.retention_bytes.is_some()
    {
        return Err(invalid(format!(
            "needs cleanup policy {cleanup:?} and no retention, so no event is ever dropped"
        )));
    }
    Ok(topic.partition(0).expect("one partition").clone())
}

impl Inner {
    /// Indexes records other code appended to the topic, if any (under the append lock, so
    /// it never races an append's own index update).
    fn refresh(&self) -> Result<(), ReadError> {
        let behind =
            self.index.read().expect("index lock").next_position < self.events.high_watermark();
        if behind {
            let _append = self.append.lock().expect("append lock");
            self.index
                .write()
                .expect("index lock")
                .catch_up(&self.events)?;
        }
        Ok(())
    }

    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[Event],
    ) -> Result<Appended, AppendError> {
        let storage = |e: ReadError| AppendError::Storage {
            operation: "index catch-up",
            reason: one_line(e),
        };
        let _append = self.append.lock().expect("append lock");
        let mut index = self.index.write().expect("index lock");
        index.catch_up(&self.events).map_err(storage)?;
        let actual = index.version(stream);
        if !expected.admits(actual) {
            return Err(ConcurrencyConflict {
                stream: stream.to_owned(),
                expected,
                actual,
            }
            .into());
        }
        let records: Vec<_> = (actual + 1..)
            .zip(events)
            .map(|(version, event)| codec::event_record(stream, version, event))
            .collect();
        let info = self
            .events
            .append(&records)
            .map_err(|e| AppendError::Storage {
                operation: "log append",
                reason: one_line(e),
            })?;
        // The records are exactly the ones just encoded; index them without reading them
        // back, unless something else wrote to the topic in between.
        if info.base_offset == index.next_position {
            index.add_appended(stream, info.base_offset, info.last_offset);
        } else {
            index.catch_up(&self.events).map_err(storage)?;
        }
        debug_assert_eq!(index.version(stream), actual + events.len() as u64);
        drop(index);
        self.head.send_replace(info.last_offset + 1);
        Ok(Appended {
            version: actual + events.len() as u64,
            first_position: info.base_offset,
            last_position: info.last_offset,
        })
    }

    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.refresh()?;
        let positions = {
            let index = self.index.read().expect("index lock");
            match version_range(index.version(stream), from, direction, max_count) {
                Some((low, high)) => index.stream_positions(stream, low, high),
                None => return Ok(Vec::new()),
            }
        };
        let mut events = decode(&read_positions(&self.events, &positions)?)?;
        if direction == Direction::Backward {
            events.reverse();
        }
        Ok(events)
    }

    fn read_all(
        &self,
        from: u64,
        max_count: usize,
        filter: &AllFilter,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let max_count = max_count.min(crate::limits::READ_EVENTS_MAX);
        match filter {
            AllFilter::Category(category) => {
                self.refresh()?;
                let positions = self
                    .index
                    .read()
                    .expect("index lock")
                    .category_positions(category, from, max_count);
                decode(&read_positions(&self.events, &positions)?)
            }
            AllFilter::All => {
                let mut events = Vec::new();
                let mut offset = from.max(self.events.log_start_offset());
                while events.len() < max_count && offset < self.events.high_watermark() {
                    let records = read(&self.events, offset)?;
                    let Some(last) = records.last() else { break };
                    offset = last.offset + 1;
                    for record in records.iter().filter(|r| codec::stream_of(r).is_some()) {
                        if events.len() < max_count {
                            events.push(codec::recorded_event(record)?);
                        }
                    }
                }
                Ok(events)
            }
        }
    }

    fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), AppendError> {
        let mut offsets = self.snapshot_offsets.lock().expect("snapshot lock");
        let stored = self
            .snapshot_at(offsets.get(&snapshot.stream).copied())
            .map_err(|e| AppendError::Storage {
                operation: "snapshot read",
                reason: one_line(e),
            })?;
        if stored.is_some_and(|stored| stored.version >= snapshot.version) {
            return Ok(());
        }
        let info = self
            .snapshots
            .append(&[codec::snapshot_record(snapshot)])
            .map_err(|e| AppendError::Storage {
                operation: "snapshot append",
                reason: one_line(e),
            })?;
        offsets.insert(snapshot.stream.clone(), info.base_offset);
        Ok(())
    }

    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, ReadError> {
        let offset = self
            .snapshot_offsets
            .lock()
            .expect("snapshot lock")
            .get(stream)
            .copied();
        self.snapshot_at(offset)
    }

    fn snapshot_at(&self, offset: Option<u64>) -> Result<Option<Snapshot>, ReadError> {
        let Some(offset) = offset else {
            return Ok(None);
        };
        let records = read_positions(&self.snapshots, &[offset])?;
        codec::snapshot(&records[0]).map(Some)
    }
}

fn decode(records: &[keel_log::Record]) -> Result<Vec<RecordedEvent>, ReadError> {
    records.iter().map(codec::recorded_event).collect()
}

/// Runs blocking log work off the executor. A panic there is a broken storage invariant
/// and is re-raised in the caller rather than turned into an error to carry on from.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

impl EventStore for EmbeddedStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> Result<Appended, AppendError> {
        check_append(stream, &events)?;
        let inner = self.inner.clone();
        let stream = stream.to_owned();
        blocking(move || inner.append(&stream, expected, &events)).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        validate_stream_id(stream)?;
        let inner = self.inner.clone();
        let stream = stream.to_owned();
        blocking(move || inner.read_stream(&stream, from, direction, max_count)).await
    }

    async fn read_all(
        &self,
        from: u64,
        max_count: usize,
        filter: &AllFilter,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let inner = self.inner.clone();
        let filter = filter.clone();
        blocking(move || inner.read_all(from, max_count, &filter)).await
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, ReadError> {
        validate_stream_id(stream)?;
        let inner = self.inner.clone();
        let stream = stream.to_owned();
        blocking(move || {
            inner.refresh()?;
            Ok(inner.index.read().expect("index lock").version(&stream))
        })
        .await
    }

    async fn head(&self) -> Result<u64, ReadError> {
        Ok(self.inner.events.high_watermark())
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> Result<u64, ReadError> {
        if self.inner.events.high_watermark() > position {
            return Ok(self.inner.events.high_watermark());
        }
        let mut head = self.inner.head.subscribe();
        // Appends of this store wake the watch; anything else writing the topic is seen
        // through the log's high watermark when the wait times out.
        let _ = tokio::time::timeout(timeout, head.wait_for(|head| *head > position)).await;
        Ok(self.inner.events.high_watermark())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), AppendError> {
        validate_stream_id(&snapshot.stream)?;
        let inner = self.inner.clone();
        blocking(move || inner.save_snapshot(&snapshot)).await
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, ReadError> {
        validate_stream_id(stream)?;
        let inner = self.inner.clone();
        let stream = stream.to_owned();
        blocking(move || inner.load_snapshot(&stream)).await
    }
}
