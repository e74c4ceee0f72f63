//! The consumer of one assigned partition for one route: fetches records, schedules them by
//! key (`schedule.rs`), runs each through the middleware chain (`pipeline.rs`), and commits
//! the lowest unfinished offset.
//!
//! Not here: which partitions a member holds (the transport's `Membership`, `router.rs`), how
//! records are read and offsets committed (the transport's `PartitionLease`).
//!
//! # One task per partition, not one per event
//!
//! The chains of a partition's running events are futures polled by the worker's own task
//! (a `FuturesUnordered`), not tasks of their own: different keys still run concurrently (up
//! to `concurrency`), and the worker collects every chain that finished at one wake-up in one
//! pass. A tokio task per event cost an allocation, two locked lists (the runtime's owned
//! tasks and the `JoinSet`) and a cross-thread wake-up per event — about a third of the
//! runtime's CPU with a no-op handler. The price: one partition's handlers share one
//! executor thread at a time, so CPU-heavy handler code should use `spawn_blocking`;
//! parallelism across cores comes from partitions. The worker keeps polling running chains
//! while it waits for a log read or a commit, so handlers never stall behind its I/O.
//!
//! A redelivery read before its due time is held aside (`redelivery::NotDue`) and started
//! when due, so its wait takes no `concurrency` slot.
//!
//! On a transactional route the worker runs its partition in batches, each in one
//! transaction of the transport (`transaction.rs`) instead of committing every
//! `commit_interval`.
//!
//! The worker is told what to do through a [`Command`]: `Run`; `Drain` (stop fetching and
//! starting events, let running handler attempts finish, end retry waits, commit, stop);
//! `Abandon` (abort everything, commit nothing — the member was fenced).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use keel_core::{CommitError, FetchError, PartitionLease, Record};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::pipeline::{Outcome, RouteShared, Run, process};
use crate::publisher::Publisher;
use crate::redelivery::NotDue;
use crate::schedule::Schedule;
use crate::transaction::Batches;

/// What the member wants of a partition worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Run,
    Drain,
    Abandon,
}

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Drained (or abandoned) as asked.
    AsAsked,
    /// A commit was refused: the member is no longer the partition's holder.
    Fenced,
    /// Something inside the runtime failed (a bug); the partition should be restarted.
    Failed,
}

/// Consumes the partition of `lease` until told to drain or abandon.
pub(crate) async fn run(
    route: Arc<RouteShared>,
    lease: Arc<dyn PartitionLease>,
    mut control: watch::Receiver<Command>,
) -> Ended {
    let start = match lease.start().await {
        Ok(start) => start,
        Err(error) => {
            tracing::error!(
                topic = %route.topic,
                partition = lease.partition(),
                group = %route.group,
                %error,
                "cannot find where to start the partition"
            );
            return Ended::Failed;
        }
    };
    // A partition never committed commits its start at once (so a group starting at the
    // latest event keeps that place), except in a redelivery topic, which starts at the
    // earliest anyway: its offsets appear (with lag) only once something was redelivered,
    // not as an empty row per route and partition.
    let committed = start.committed.unwrap_or(if route.redelivery {
        start.offset
    } else {
        u64::MAX
    });
    tracing::info!(
        topic = %route.topic,
        partition = lease.partition(),
        group = %route.group,
        start = start.offset,
        "partition assigned; consuming"
    );
    let batches = if route.transactional {
        let Some(transaction) = lease.transaction() else {
            tracing::error!(topic = %route.topic, partition = lease.partition(), "the transport gave a transactional route a lease without transactions");
            return Ended::Failed;
        };
        let metrics = route.publisher.metrics().clone();
        let publisher = Publisher::new(transaction.publisher(), metrics);
        Some(Batches::new(publisher, start.offset))
    } else {
        None
    };
    let mut worker = Worker {
        publisher: route.publisher.clone(),
        batches,
        route,
        partition: lease.partition(),
        lease,
        schedule: Schedule::new(start.offset),
        read_ahead: VecDeque::new(),
        jobs: FuturesUnordered::new(),
        not_due: NotDue::default(),
        draining: watch::Sender::new(false),
        committed,
        last_commit: Instant::now(),
        failed: false,
    };
    worker.run(&mut control).await
}

/// The chain of one running event: its offset and what became of it, or the panic message
/// if the chain itself panicked (handler panics are caught inside the chain).
type Job = Pin<Box<dyn Future<Output = (u64, Result<Outcome, String>)> + Send>>;

struct Worker {
    route: Arc<RouteShared>,
    /// The publisher of events run outside a transaction.
    publisher: Publisher,
    /// The batches of a transactional route; `None` on a plain one.
    batches: Option<Batches>,
    partition: u32,
    /// The partition's reads and commits, through the transport.
    lease: Arc<dyn PartitionLease>,
    schedule: Schedule<Record>,
    /// Records read from the log but not yet scheduled (no room in the in-flight window),
    /// in offset order; at most one fetch (`fetch_bytes_max`) of records.
    read_ahead: VecDeque<Record>,
    /// The chains of the running events, polled by this worker's task.
    jobs: FuturesUnordered<Job>,
    /// Redeliveries started by the schedule but not due yet: no chain runs for them.
    not_due: NotDue,
    draining: watch::Sender<bool>,
    committed: u64,
    last_commit: Instant,
    failed: bool,
}

impl Worker {
    async fn run(&mut self, control: &mut watch::Receiver<Command>) -> Ended {
        let consumer = self.route.consumer.clone();
        loop {
            // A transport that buffers ahead (Kafka's prefetch queue, a NATS or Redis batch)
            // answers every fetch at once while a backlog lasts, and a no-op chain finishes at
            // its first poll, so nothing in this loop would ever wait: the worker would keep
            // its executor thread for the whole backlog, and every other task there (the
            // service's own HTTP server on a current-thread runtime, timers, heartbeats)
            // would wait with it. Spending tokio's cooperative budget yields every 128 turns.
            tokio::task::consume_budget().await;
            let command = *control.borrow_and_update();
            if command == Command::Abandon {
                self.jobs.clear();
                self.abandon_batch().await;
                return Ended::AsAsked;
            }
            let draining = command == Command::Drain || self.failed;
            if draining && !*self.draining.borrow() {
                self.draining.send_replace(true);
                // Held redeliveries are given up uncommitted, as chains waiting to retry are.
                for offset in self.not_due.release_all() {
                    self.schedule.abandon(offset);
                }
            }
            if draining && self.jobs.is_empty() {
                let committed = if self.batches.is_some() {
                    self.end_batch(control).await
                } else {
                    self.commit().await
                };
                if !committed {
                    return Ended::Fenced;
                }
                return if self.failed {
                    Ended::Failed
                } else {
                    Ended::AsAsked
                };
            }
            if let Some(batches) = &self.batches
                && batches.open
                && self.jobs.is_empty()
                && (batches.aborting || self.schedule.unfinished() == 0)
            {
                if !self.end_batch(control).await {
                    return Ended::Fenced;
                }
                continue;
            }
            let (batch_open, batch_aborting) = self
                .batches
                .as_ref()
                .map_or((true, false), |b| (b.open, b.aborting));
            if !draining && batch_open && !batch_aborting {
                self.start_ready(consumer.concurrency);
            }
            let room = consumer
                .in_flight_max
                .saturating_sub(self.schedule.unfinished());
            // A transactional batch is one fetch: more records wait for the next batch.
            let want_data = !draining && room > 0 && (self.batches.is_none() || !batch_open);
            if want_data && self.has_data() {
                if !self.begin_batch().await {
                    continue;
                }
                self.fetch(room).await;
                continue;
            }
            let dirty = self.batches.is_none() && self.schedule.commit_point() != self.committed;
            let commit_at = self.last_commit + consumer.commit_interval;
            if dirty && Instant::now() >= commit_at {
                if !self.commit().await {
                    return Ended::Fenced;
                }
                continue;
            }
            // Only an idle partition gets here with `want_data`, so the busy path never
            // touches the transport's wake-up; the lease registers for it before it looks
            // again, so a record arriving in between is not missed.
            let next_due = self.not_due.next_due().filter(|_| !draining);
            let lease = self.lease.clone();
            let data = want_data.then(|| lease.wait_for_data(self.schedule.next_offset()));
            tokio::select! {
                Some(done) = self.jobs.next(), if !self.jobs.is_empty() => {
                    self.finished(done);
                    self.collect_finished();
                }
                _ = control.changed() => {}
                () = wait_opt(data) => {}
                () = tokio::time::sleep(consumer.poll_interval), if want_data => {}
                () = tokio::time::sleep_until(commit_at), if dirty => {}
                () = tokio::time::sleep_until(next_due.unwrap_or(commit_at)), if next_due.is_some() => {}
            }
        }
    }

    /// Starts chains while fewer than `concurrency` run: held redeliveries that came due
    /// first (they were read earlier), then the schedule's ready events. A redelivery that
    /// is not due is held instead; held ones count as running in the schedule, not here.
    fn start_ready(&mut self, concurrency: usize) {
        while self.jobs.len() < concurrency
            && let Some((offset, record)) = self.not_due.take_due()
        {
            self.start(offset, record);
        }
        let now_ms = self.route.redelivery.then(|| self.route.consume.now_ms());
        while let Some((offset, record)) =
            self.schedule.start_next(concurrency + self.not_due.len())
        {
            let record = match now_ms {
                Some(now_ms) => {
                    match self.not_due.hold(&self.route.group, offset, record, now_ms) {
                        Some(record) => record,
                        None => continue,
                    }
                }
                None => record,
            };
            self.start(offset, record);
        }
    }

    /// Starts the middleware chain of one event.
    fn start(&mut self, offset: u64, record: Record) {
        let run = Run {
            publisher: match &self.batches {
                Some(batches) => batches.publisher.clone(),
                None => self.publisher.clone(),
            },
            failed: self
                .batches
                .as_mut()
                .and_then(|batches| batches.failures.remove(&offset)),
        };
        let chain = process(
            self.route.clone(),
            self.partition,
            record,
            self.draining.subscribe(),
            run,
        );
        // A panic of the chain itself (not of the handler: that is caught per attempt)
        // stops only this partition, which the member restarts from the committed offset.
        let job = AssertUnwindSafe(chain).catch_unwind().map(move |result| {
            let result = result.map_err(|panic| crate::unwind::panic_message(panic.as_ref()));
            (offset, result)
        });
        self.jobs.push(Box::pin(job));
    }

    /// Takes in every other chain that has already finished, without waiting, so one
    /// wake-up of the worker handles a batch of finished events.
    fn collect_finished(&mut self) {
        while let Some(Some(done)) = self.jobs.next().now_or_never() {
            self.finished(done);
        }
    }

    fn finished(&mut self, (offset, outcome): (u64, Result<Outcome, String>)) {
        match outcome {
            Ok(
                Outcome::Handled
                | Outcome::Duplicate
                | Outcome::DeadLettered
                | Outcome::Redelivered
                | Outcome::NotAddressed,
            ) => {
                self.schedule.finish(offset);
            }
            Ok(Outcome::Abandoned) => self.schedule.abandon(offset),
            Ok(Outcome::Failed(failure)) => {
                // Only transactional routes fail an event back to the worker: the batch
                // aborts and the event runs again with its failure behind it.
                self.schedule.abandon(offset);
                match &mut self.batches {
                    Some(batches) => batches.failed(offset, failure),
                    None => self.failed = true,
                }
            }
            Err(panic) => {
                // The chain itself failed (handler panics are caught inside it), so the
                // event's fate is unknown: keep it unfinished, stop the partition, and let
                // the member restart it from the committed offset.
                tracing::error!(
                    topic = %self.route.topic,
                    partition = self.partition,
                    offset,
                    %panic,
                    "event processing failed inside the runtime; restarting the partition"
                );
                self.schedule.abandon(offset);
                self.failed = true;
            }
        }
    }

    /// Awaits a read or commit of the lease while the running chains go on and finish.
    async fn beside_jobs<T>(&mut self, operation: impl Future<Output = T>) -> T {
        tokio::pin!(operation);
        loop {
            tokio::select! {
                biased;
                result = &mut operation => return result,
                Some(done) = self.jobs.next(), if !self.jobs.is_empty() => {
                    self.finished(done);
                    self.collect_finished();
                }
            }
        }
    }

    /// Whether records wait to be scheduled: in the read-ahead, or at the lease. The
    /// read-ahead comes first because a transport that hands out what it buffered (Kafka)
    /// has nothing left to announce while the records sit here.
    fn has_data(&self) -> bool {
        !self.read_ahead.is_empty() || self.lease.has_data(self.schedule.next_offset())
    }

    /// Schedules up to `room` more records: from the read-ahead of the last log read, and
    /// reading the log only when that is empty. Without the read-ahead, a full window that
    /// frees one slot per finished event would read `fetch_bytes_max` per event and keep one
    /// record of it.
    async fn fetch(&mut self, room: usize) {
        if self.read_ahead.is_empty() {
            self.read_more().await;
        }
        let take = room.min(self.read_ahead.len());
        for record in self.read_ahead.drain(..take) {
            let key = record.key.clone();
            self.schedule.push(record.offset, key, record);
        }
    }

    /// Reads one `fetch_bytes_max` of records at the schedule's next offset into the
    /// read-ahead.
    async fn read_more(&mut self) {
        let lease = self.lease.clone();
        let offset = self.schedule.next_offset();
        let read = lease.fetch(offset, self.route.consumer.fetch_bytes_max);
        match self.beside_jobs(read).await {
            Ok(records) => {
                self.read_ahead
                    .extend(records.into_iter().filter(|r| r.offset >= offset));
            }
            Err(FetchError::OutOfRange { log_start }) => {
                // Retention removed events this group had not reached yet. They are gone;
                // say so loudly and go on from the first stored event.
                tracing::error!(
                    topic = %self.route.topic,
                    partition = self.partition,
                    from = offset,
                    to = log_start,
                    "events were deleted by retention before this group handled them"
                );
                if self.schedule.unfinished() == 0 {
                    self.schedule = Schedule::new(log_start);
                }
            }
            Err(error) => {
                tracing::error!(
                    topic = %self.route.topic,
                    partition = self.partition,
                    offset,
                    %error,
                    "reading the partition failed; trying again"
                );
                tokio::time::sleep(self.route.consumer.poll_interval).await;
            }
        }
    }

    /// Commits the commit point if it moved; false when the commit was refused (fenced).
    async fn commit(&mut self) -> bool {
        let offset = self.schedule.commit_point();
        self.last_commit = Instant::now();
        if offset == self.committed {
            return true;
        }
        let lease = self.lease.clone();
        match self.beside_jobs(lease.commit(offset)).await {
            Ok(()) => {
                self.committed = offset;
                true
            }
            Err(CommitError::Fenced) => {
                tracing::warn!(
                    topic = %self.route.topic,
                    partition = self.partition,
                    offset,
                    "commit refused: this member no longer holds the partition"
                );
                false
            }
            Err(error) => {
                tracing::error!(%error, "committing offsets failed; will try again");
                true
            }
        }
    }
}

/// The batches of a transactional route (`transaction.rs`).
impl Worker {
    /// Opens the transaction of the next batch (on a plain route: nothing to do). False
    /// when it could not be opened; the worker tries again after its poll interval.
    async fn begin_batch(&mut self) -> bool {
        if self.batches.is_none() {
            return true;
        }
        let lease = self.lease.clone();
        let Some(transaction) = lease.transaction() else {
            return true;
        };
        match self.beside_jobs(transaction.begin()).await {
            Ok(()) => {
                if let Some(batches) = &mut self.batches {
                    batches.open = true;
                }
                true
            }
            Err(error) => {
                tracing::error!(topic = %self.route.topic, partition = self.partition, %error, "cannot open a transaction; trying again");
                tokio::time::sleep(self.route.consumer.poll_interval).await;
                false
            }
        }
    }

    /// Ends the open batch: commits it with the commit point, or aborts it after a failed
    /// attempt and rewinds to its start (then waits the backoff, unless told to stop).
    /// False when the transport fenced the member.
    async fn end_batch(&mut self, control: &watch::Receiver<Command>) -> bool {
        let lease = self.lease.clone();
        let (Some(batches), Some(transaction)) = (&self.batches, lease.transaction()) else {
            return true;
        };
        if !batches.open {
            return true;
        }
        let (aborting, start) = (batches.aborting, batches.start);
        let result = if aborting {
            transaction.abort(start).await
        } else {
            transaction.commit(self.schedule.commit_point()).await
        };
        match result {
            Ok(()) if !aborting => {
                let offset = self.schedule.commit_point();
                self.committed = offset;
                if let Some(batches) = &mut self.batches {
                    batches.committed(offset);
                }
                return true;
            }
            Ok(()) => {}
            Err(CommitError::Fenced) => {
                tracing::warn!(topic = %self.route.topic, partition = self.partition, "transaction refused: this member no longer holds the partition");
                return false;
            }
            Err(error) if aborting => {
                tracing::error!(topic = %self.route.topic, partition = self.partition, %error, "aborting the transaction failed; trying again");
                tokio::time::sleep(self.route.consumer.poll_interval).await;
                return true;
            }
            Err(error) => {
                // A failed commit aborted the transaction: the batch runs again.
                tracing::error!(topic = %self.route.topic, partition = self.partition, %error, "committing the transaction failed; running the batch again");
            }
        }
        let delay = match self.batches.as_mut() {
            Some(batches) => {
                batches.open = false;
                batches.aborting = false;
                self.route.retry_delay(batches.attempts_failed_max())
            }
            None => return true,
        };
        self.schedule = Schedule::new(start);
        self.read_ahead.clear();
        self.not_due = NotDue::default();
        if *control.borrow() == Command::Run {
            tracing::info!(topic = %self.route.topic, partition = self.partition, offset = start, delay_ms = delay.as_millis() as u64, "transaction aborted; running the batch again after the backoff");
            let mut control = control.clone();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = control.changed() => {}
            }
        }
        true
    }

    /// Aborts the open batch of a worker told to abandon its partition (best effort: a
    /// transaction left open ends at the transport's transaction timeout).
    async fn abandon_batch(&mut self) {
        if let (Some(batches), Some(transaction)) = (&self.batches, self.lease.transaction())
            && batches.open
            && let Err(error) = transaction.abort(batches.start).await
        {
            tracing::warn!(topic = %self.route.topic, partition = self.partition, %error, "aborting the abandoned partition's transaction failed");
        }
    }
}

/// Waits for `wait`, or forever when there is nothing to wait for.
async fn wait_opt(wait: Option<keel_core::BoxFuture<'_, ()>>) {
    match wait {
        Some(wait) => wait.await,
        None => std::future::pending().await,
    }
}
