//! The embedded event store: [`EmbeddedStore`], streams kept in one single-partition
//! `keel-log` topic with an in-memory index per stream and per category.
//!
//! Not here: the record layout (`codec.rs`) and the index (`index.rs`).
//!
//! # How it keeps its promises
//!
//! - **Position = offset.** All events live in one partition, so the log's offsets are the
//!   global order, dense from 0, and a multi-event append is one RecordBatch: stored whole or
//!   cut whole by recovery, never half. Record timestamps are the log's clock at the group's
//!   commit (the batches are encoded here, not by the log).
//! - **Conflict detection.** Appends are serialised per store by one mutex held across
//!   "read version from the index → append to the log → add to the index", so the check and
//!   the write are one step. (One `EmbeddedStore` per topic per process: clone it to share.
//!   The log's own directory lock already keeps other processes out.)
//! - **Group commit.** An append queues itself, then takes that mutex; whoever holds it
//!   commits every append queued (up to [`APPEND_GROUP_MAX`]): each version check against
//!   the index and the appends before it in the group, one RecordBatch per admitted append,
//!   all batches in one log write and so one fsync. Appends that waited for the mutex find
//!   their outcome already there. A conflicting append is answered alone; a failed write
//!   fails every append of its group (none was acknowledged).
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
use keel_log::{CleanupPolicy, FsyncPolicy, Log, Partition, TopicConfig, TopicError, encode_batch};
use tokio::sync::watch;

use crate::error::{AppendError, ConcurrencyConflict, OpenError, ReadError, one_line};
use crate::limits::APPEND_GROUP_MAX;
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

/// One append waiting in the queue; the committing thread fills `outcome`.
#[derive(Debug)]
struct Request {
    stream: String,
    expected: ExpectedVersion,
    events: Vec<Event>,
    outcome: Mutex<Option<Result<Appended, AppendError>>>,
}

impl Request {
    fn answer(&self, outcome: Result<Appended, AppendError>) {
        *self.outcome.lock().expect("outcome lock") = Some(outcome);
    }
}

#[derive(Debug)]
struct Inner {
    events: Arc<Partition>,
    snapshots: Arc<Partition>,
    /// Serialises appends and index catch-up: the version check and the write are one step.
    /// Its holder commits every queued append (group commit).
    append: Mutex<()>,
    /// Appends waiting for the next group commit.
    queue: Mutex<Vec<Arc<Request>>>,
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
                queue: Mutex::new(Vec::new()),
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

    /// Queues the append and waits for a group commit that holds it, committing the queue
    /// itself when it gets the append lock first.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> Result<Appended, AppendError> {
        let request = Arc::new(Request {
            stream: stream.to_owned(),
            expected,
            events,
            outcome: Mutex::new(None),
        });
        self.queue.lock().expect("queue lock").push(request.clone());
        let _append = self.append.lock().expect("append lock");
        // A commit that took this request answered it before releasing the lock.
        if let Some(outcome) = request.outcome.lock().expect("outcome lock").take() {
            return outcome;
        }
        let group: Vec<Arc<Request>> = {
            let mut queue = self.queue.lock().expect("queue lock");
            let take = queue.len().min(APPEND_GROUP_MAX);
            queue.drain(..take).collect()
        };
        self.commit(&group);
        let outcome = request.outcome.lock().expect("outcome lock").take();
        // The queue is first in, first out and this request was queued before the lock was
        // taken, so the group (or an earlier one) held it.
        outcome.expect("a queued append is answered by the commit that took it")
    }

    /// Commits `group` under the append lock: version checks, one log write, index update.
    fn commit(&self, group: &[Arc<Request>]) {
        let storage =
            |operation: &'static str, reason: String| AppendError::Storage { operation, reason };
        let mut index = self.index.write().expect("index lock");
        if let Err(e) = index.catch_up(&self.events) {
            let reason = one_line(e);
            for request in group {
                request.answer(Err(storage("index catch-up", reason.clone())));
            }
            return;
        }
        let now_ms = self.events.now_ms();
        let max_batch_bytes = self.events.config().max_batch_bytes as usize;
        let mut bytes = Vec::new();
        // Admitted requests with the version their stream had before them.
        let mut admitted: Vec<(&Request, u64)> = Vec::new();
        let mut planned: HashMap<&str, u64> = HashMap::new();
        for request in group {
            let stream = request.stream.as_str();
            let actual = planned
                .get(stream)
                .copied()
                .unwrap_or_else(|| index.version(stream));
            if !request.expected.admits(actual) {
                request.answer(Err(ConcurrencyConflict {
                    stream: stream.to_owned(),
                    expected: request.expected,
                    actual,
                }
                .into()));
                continue;
            }
            let records: Vec<_> = (actual + 1..)
                .zip(&request.events)
                .map(|(version, event)| codec::event_record(stream, version, event))
                .collect();
            match encode_batch(&records, now_ms) {
                Ok(batch) if batch.len() <= max_batch_bytes => bytes.extend_from_slice(&batch),
                Ok(batch) => {
                    let error = keel_log::AppendError::RecordTooLarge {
                        size: batch.len(),
                        max: max_batch_bytes as u32,
                    };
                    request.answer(Err(storage("log append", one_line(error))));
                    continue;
                }
                Err(e) => {
                    request.answer(Err(storage("log append", one_line(e))));
                    continue;
                }
            }
            planned.insert(stream, actual + request.events.len() as u64);
            admitted.push((request, actual));
        }
        if admitted.is_empty() {
            return;
        }
        let info = match self.events.append_batches(bytes) {
            Ok(info) => info,
            Err(e) => {
                let reason = one_line(e);
                for (request, _) in admitted {
                    request.answer(Err(storage("log append", reason.clone())));
                }
                return;
            }
        };
        // The records are exactly the ones just encoded; index them without reading them
        // back, unless something else wrote to the topic in between.
        let indexed_here = info.base_offset == index.next_position;
        let mut first = info.base_offset;
        for (request, actual) in admitted {
            let count = request.events.len() as u64;
            if indexed_here {
                index.add_appended(&request.stream, first, first + count - 1);
            }
            request.answer(Ok(Appended {
                version: actual + count,
                first_position: first,
                last_position: first + count - 1,
            }));
            first += count;
        }
        debug_assert_eq!(first, info.last_offset + 1, "one offset per event");
        if !indexed_here && let Err(e) = index.catch_up(&self.events) {
            // The write is durable and answered; the next append or read catches up again.
            tracing::warn!(error = %one_line(e), "event store index catch-up after an append failed");
        }
        drop(index);
        self.head.send_replace(info.last_offset + 1);
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
        blocking(move || inner.append(&stream, expected, events)).await
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends queued while the append lock is held are committed by one log write (one
    /// fsync), in queue order: versions follow each other within the group, a conflicting
    /// append is answered alone, and the others still commit.
    #[test]
    fn queued_appends_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let store = EmbeddedStore::open(&log).unwrap();
        let inner = store.inner.clone();
        let event = |n: u64| {
            Event::new("/test", "test.happened").with_data("text/plain", n.to_string().into_bytes())
        };
        let syncs_before = inner.events.sync_stats().syncs;
        let held = inner.append.lock().unwrap();
        let appends = [
            ("order-1", ExpectedVersion::NoStream),
            ("order-2", ExpectedVersion::NoStream),
            ("order-1", ExpectedVersion::Exact(1)),
            ("order-2", ExpectedVersion::NoStream),
            ("order-3", ExpectedVersion::Any),
        ];
        let threads: Vec<_> = appends
            .iter()
            .enumerate()
            .map(|(n, &(stream, expected))| {
                let thread = std::thread::spawn({
                    let inner = inner.clone();
                    move || inner.append(stream, expected, vec![event(n as u64)])
                });
                // Queue in this order: wait until this append is queued before the next.
                while inner.queue.lock().unwrap().len() <= n {
                    std::thread::yield_now();
                }
                thread
            })
            .collect();
        drop(held);
        let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            inner.events.sync_stats().syncs,
            syncs_before + 1,
            "one fsync for the group"
        );
        let placed: Vec<Option<(u64, u64)>> = outcomes
            .iter()
            .map(|o| o.as_ref().ok().map(|a| (a.version, a.first_position)))
            .collect();
        assert_eq!(
            placed,
            [Some((1, 0)), Some((1, 1)), Some((2, 2)), None, Some((1, 3))]
        );
        assert!(
            matches!(&outcomes[3], Err(AppendError::Conflict(c)) if c.actual == 1),
            "{:?}",
            outcomes[3]
        );
        let stored = inner
            .read_stream("order-1", 1, Direction::Forward, 10)
            .unwrap();
        assert_eq!(
            stored.iter().map(|e| e.position).collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(inner.events.high_watermark(), 4);
    }
}
