//! [`NatsLease`]: one partition of one group on JetStream — a durable pull consumer on the
//! partition's subject, acknowledged with `AckAll` at the group's commit.
//!
//! Offsets are stream sequences minus one (the first message of a stream is offset 0), so
//! within a partition they increase but are not dense: the other partitions' messages sit
//! in between. The group's committed offset is the consumer's acknowledgement floor.
//!
//! A lease that starts (a new owner, or a worker restarted after a failure) makes a new
//! *generation* of the consumer, `<group>_p<partition>_g<n+1>`, starting at the committed
//! offset, then deletes the older ones. JetStream redelivers a dead owner's unacknowledged
//! messages only after the acknowledgement wait, and a consumer cannot be moved back; a new
//! generation at the floor hands them to the new owner at once, in order — no redelivery
//! storm, no wait. A crash between creating and deleting leaves two generations; the
//! highest is the group's, and it starts where the older one's floor stood.
//!
//! A background task pulls into a bounded buffer ([`BUFFERED_MAX`]) that
//! [`PartitionLease::fetch`] drains; the stream's `max_ack_pending` bounds what is
//! delivered ahead of the commit. The task moves every message that has already arrived in
//! one step — one lock, one wake-up of the worker per batch, not per message — and the lease
//! keeps only each delivered message's reply subject for the commit's acknowledgement.
//!
//! Not here: who holds the partition (`member.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_nats::Subject;
use async_nats::jetstream::consumer::Consumer;
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::stream::Stream;
use futures_util::{FutureExt, StreamExt};
use keel_core::{
    BoxFuture, CommitError, FetchError, LeaseStart, PartitionLease, Record, StartFrom,
};
use keel_runtime::wait_for_signal;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::connection::{Connection, millis};
use crate::consumers::Place;
use crate::limits::{BUFFERED_MAX, PULL_EXPIRES, PULL_MESSAGES_MAX};
use crate::record;

/// One assigned partition of one member.
pub(crate) struct NatsLease {
    pub(crate) connection: Arc<Connection>,
    pub(crate) stream: Stream,
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) partition: u32,
    pub(crate) start_from: StartFrom,
    /// Set by the member once the partition's key-value lease is lost: commits are refused.
    pub(crate) fenced: Arc<AtomicBool>,
    pub(crate) pull: Mutex<Option<Pull>>,
}

/// The running pull of one consumer generation.
pub(crate) struct Pull {
    task: JoinHandle<()>,
    buffer: Arc<Buffer>,
    /// The reply subjects of the fetched messages not yet committed, in offset order: with
    /// `AckAll`, acknowledging the last one below a commit acknowledges them all.
    acks: VecDeque<(u64, Subject)>,
}

/// Records pulled and not fetched yet, each with the reply subject that acknowledges it.
struct Buffer {
    records: Mutex<VecDeque<(Record, Subject)>>,
    ready: Notify,
    /// Room left in `records`.
    room: Semaphore,
}

impl NatsLease {
    fn pull(&self) -> std::sync::MutexGuard<'_, Option<Pull>> {
        self.pull.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn buffer(&self) -> Option<Arc<Buffer>> {
        self.pull().as_ref().map(|pull| pull.buffer.clone())
    }

    async fn begin(&self) -> Result<LeaseStart, FetchError> {
        let place = Place {
            stream: &self.stream,
            names: &self.connection.names,
            topic: &self.topic,
            group: &self.group,
            partition: self.partition,
        };
        let generations = place.generations().await.map_err(unavailable)?;
        let mut committed = None;
        if let Some(latest) = generations.last() {
            let info = self
                .stream
                .consumer_info(latest.encode())
                .await
                .map_err(unavailable)?;
            committed = Some(info.ack_floor.stream_sequence);
        }
        let state = self.stream.get_info().await.map_err(unavailable)?.state;
        // Offsets are sequences minus one: the stored range is [first - 1, last].
        let log_start = state.first_sequence.saturating_sub(1);
        let high = state.last_sequence;
        let offset = match committed {
            Some(committed) => committed.clamp(log_start, high.max(log_start)),
            None if self.start_from == StartFrom::Earliest => log_start,
            None => high,
        };
        let consumer = place
            .start_generation(offset, &generations)
            .await
            .map_err(unavailable)?;
        let buffer = Arc::new(Buffer {
            records: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            room: Semaphore::new(BUFFERED_MAX),
        });
        let task = tokio::spawn(pull_into(consumer, buffer.clone()));
        if let Some(previous) = self.pull().replace(Pull {
            task,
            buffer,
            acks: VecDeque::new(),
        }) {
            previous.task.abort();
        }
        Ok(LeaseStart { offset, committed })
    }

    async fn ack(&self, offset: u64) -> Result<(), CommitError> {
        if self.fenced.load(Ordering::SeqCst) {
            return Err(CommitError::Fenced);
        }
        let reply = {
            let mut pull = self.pull();
            let Some(pull) = pull.as_mut() else {
                return Ok(());
            };
            let mut last = None;
            while let Some((_, reply)) = pull.acks.pop_front_if(|(at, _)| *at < offset) {
                last = Some(reply);
            }
            last
        };
        let Some(reply) = reply else {
            return Ok(());
        };
        let acker = Acker::new(self.connection.jetstream.clone(), Some(reply));
        acker.double_ack().await.map_err(|e| {
            if self.fenced.load(Ordering::SeqCst) {
                CommitError::Fenced
            } else {
                CommitError::Unavailable {
                    reason: e.to_string(),
                }
            }
        })
    }
}

impl Drop for NatsLease {
    fn drop(&mut self) {
        if let Some(pull) = self.pull().take() {
            pull.task.abort();
        }
    }
}

/// Pulls from `consumer` into `buffer` until aborted, waiting for room; a failed pull is
/// asked again after a pause.
async fn pull_into(consumer: Consumer<PullConfig>, buffer: Arc<Buffer>) {
    let mut batch = Vec::with_capacity(PULL_MESSAGES_MAX);
    loop {
        let messages = consumer
            .stream()
            .max_messages_per_batch(PULL_MESSAGES_MAX)
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                tracing::debug!(%error, "pull failed");
                tokio::time::sleep(PULL_EXPIRES / 10).await;
                continue;
            }
        };
        loop {
            let ended = next_batch(&mut messages, &mut batch).await;
            if !batch.is_empty() && !buffer.put(&mut batch).await {
                return;
            }
            if ended {
                break;
            }
        }
        tokio::time::sleep(PULL_EXPIRES / 10).await;
    }
}

/// Waits for the next message of `messages`, then takes every one that has arrived too (up
/// to [`PULL_MESSAGES_MAX`]) into `batch`, so the messages of one network read cost the
/// worker one wake-up. True when the pull ended or failed.
async fn next_batch(
    messages: &mut async_nats::jetstream::consumer::pull::Stream,
    batch: &mut Vec<(Record, Subject)>,
) -> bool {
    let mut next = messages.next().await;
    loop {
        match next {
            Some(Ok(message)) => batch.extend(delivered(message)),
            Some(Err(error)) => {
                tracing::debug!(%error, "pull interrupted");
                return true;
            }
            None => return true,
        }
        if batch.len() >= PULL_MESSAGES_MAX {
            return false;
        }
        // `next` of a stream may be dropped unfinished: nothing is taken until it is ready.
        match messages.next().now_or_never() {
            Some(message) => next = message,
            None => return false,
        }
    }
}

/// A delivered message as a record, with the reply subject that acknowledges it; `None` for
/// a message without JetStream's delivery metadata.
fn delivered(message: async_nats::jetstream::Message) -> Option<(Record, Subject)> {
    let info = message.info().ok()?;
    let (offset, published) = (info.stream_sequence - 1, millis(info.published));
    let message = message.message;
    let reply = message.reply?;
    let record = record::decode(offset, message.headers.as_ref(), message.payload, published);
    Some((record, reply))
}

impl Buffer {
    /// Moves all of `batch` in once there is room for it and wakes the worker; false when
    /// the buffer is closed.
    async fn put(&self, batch: &mut Vec<(Record, Subject)>) -> bool {
        let Ok(permits) = self.room.acquire_many(batch.len() as u32).await else {
            return false;
        };
        permits.forget();
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(batch.drain(..));
        self.ready.notify_waiters();
        true
    }
}

impl PartitionLease for NatsLease {
    fn partition(&self) -> u32 {
        self.partition
    }

    fn start(&self) -> BoxFuture<'_, Result<LeaseStart, FetchError>> {
        Box::pin(self.begin())
    }

    fn has_data(&self, _next_offset: u64) -> bool {
        self.buffer().is_some_and(|buffer| {
            !buffer
                .records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
        })
    }

    fn wait_for_data(&self, next_offset: u64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match self.buffer() {
                Some(buffer) => wait_for_signal(&buffer.ready, || self.has_data(next_offset)).await,
                None => std::future::pending().await,
            }
        })
    }

    fn fetch(
        &self,
        _offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'_, Result<Vec<Record>, FetchError>> {
        // The consumer keeps the position: records come in offset order from the commit
        // (the worker skips any below the offset it asked for).
        let mut records = Vec::new();
        let mut pull = self.pull();
        if let Some(pull) = pull.as_mut() {
            let mut bytes = 0;
            let mut buffered = pull
                .buffer
                .records
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // Room for all that is buffered (at most `BUFFERED_MAX`) at once: grown record
            // by record, the vector was reallocated, its records moved, eight times per
            // fetch of 500 (3% of the router's CPU samples in a profile).
            records.reserve_exact(buffered.len());
            while bytes < bytes_max {
                let Some((record, reply)) = buffered.pop_front() else {
                    break;
                };
                bytes += record.size_bytes();
                pull.acks.push_back((record.offset, reply));
                records.push(record);
            }
            pull.buffer.room.add_permits(records.len());
        }
        Box::pin(std::future::ready(Ok(records)))
    }

    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>> {
        Box::pin(self.ack(offset))
    }
}

fn unavailable(error: impl std::fmt::Display) -> FetchError {
    FetchError::Unavailable {
        reason: error.to_string(),
    }
}
