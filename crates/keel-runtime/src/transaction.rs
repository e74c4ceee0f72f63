//! Transactional processing ([`Route::with_transactions`](crate::Route::with_transactions)):
//! a partition worker's state when the handler's publishes and the consumed offset commit in
//! one transaction of the transport (Kafka's, through `keel_core::LeaseTransaction`).
//!
//! The worker runs its partition in batches. A batch opens the transaction (waiting its
//! turn: the member's partitions share one transactional producer), schedules one fetch of
//! records, runs them as usual (keys in order, different keys at once) and, once every one
//! finished, commits the transaction with the batch's commit point as the group's offset —
//! so an output is visible exactly when the input that caused it is consumed, and a crash
//! anywhere leaves neither. A failed attempt aborts the batch: its publishes, and those of
//! the batch's other events, are never visible; the worker waits the retry backoff, rewinds
//! the partition to the batch's start and runs it again, where the failed event continues
//! as the plain path would (another attempt, its redelivery topic, or its dead letter —
//! written inside the transaction). Events that had succeeded run again: their handlers'
//! effects outside the transaction happen twice, as after any crash.
//!
//! Not here: the per-event chain (`pipeline.rs`), the worker loop (`partition_worker.rs`).

use std::collections::HashMap;

use crate::pipeline::Failure;
use crate::publisher::Publisher;

/// The transactional state of one partition worker.
pub(crate) struct Batches {
    /// The publisher whose sends join the open transaction.
    pub(crate) publisher: Publisher,
    /// Whether a transaction is open (a batch is running).
    pub(crate) open: bool,
    /// Whether an attempt failed in the open batch, which must then abort.
    pub(crate) aborting: bool,
    /// Where the batch started: the offset committed with the last transaction, where an
    /// aborted batch runs again.
    pub(crate) start: u64,
    /// The failures of events of the aborted batch, by offset, handed to their next run.
    pub(crate) failures: HashMap<u64, Failure>,
}

impl Batches {
    /// A worker starting at `start` with no batch open.
    pub(crate) fn new(publisher: Publisher, start: u64) -> Batches {
        Batches {
            publisher,
            open: false,
            aborting: false,
            start,
            failures: HashMap::new(),
        }
    }

    /// Notes a failed attempt of the event at `offset`: the batch aborts.
    pub(crate) fn failed(&mut self, offset: u64, failure: Failure) {
        self.aborting = true;
        self.failures.insert(offset, failure);
    }

    /// The most attempts any failed event of the aborted batch made: the backoff before
    /// the batch runs again is that failure's.
    pub(crate) fn attempts_failed_max(&self) -> u32 {
        self.failures
            .values()
            .map(|f| f.attempts)
            .max()
            .unwrap_or(1)
    }

    /// The batch committed at `offset`: failures of events below it are settled.
    pub(crate) fn committed(&mut self, offset: u64) {
        self.open = false;
        self.start = offset;
        self.failures.retain(|failed_at, _| *failed_at >= offset);
    }
}
