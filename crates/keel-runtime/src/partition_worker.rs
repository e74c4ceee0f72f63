//! The consumer of one claimed partition for one route: fetches records, schedules them by
//! key (`schedule.rs`), runs each through the middleware chain (`pipeline.rs`) as its own
//! task, and commits the lowest unfinished offset.
//!
//! Not here: which partitions a member holds (`group.rs`, `router.rs`).
//!
//! The worker is told what to do through a [`Command`]: `Run`; `Drain` (stop fetching and
//! starting events, let running handler attempts finish, end retry waits, commit, stop);
//! `Abandon` (abort everything, commit nothing — the member was fenced).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use keel_log::{OffsetCommit, Partition, ReadError, Record};
use tokio::sync::watch;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use crate::group::{Claim, Group};
use crate::pipeline::{Outcome, RouteShared, process};
use crate::policy::StartFrom;
use crate::schedule::Schedule;

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

/// Gives the claim back when the worker ends, whether it returns or its task is aborted.
struct ClaimGuard {
    group: Arc<Group>,
    partition: u32,
    claim: Claim,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        self.group.lock().release(self.partition, self.claim);
        self.group.notify();
    }
}

/// Consumes `partition` while holding `claim`, until told to drain or abandon.
pub(crate) async fn run(
    route: Arc<RouteShared>,
    group: Arc<Group>,
    partition: u32,
    claim: Claim,
    mut control: watch::Receiver<Command>,
) -> Ended {
    let _guard = ClaimGuard {
        group: group.clone(),
        partition,
        claim,
    };
    let mut worker = Worker::new(route, group, partition, claim);
    worker.run(&mut control).await
}

struct Worker {
    route: Arc<RouteShared>,
    group: Arc<Group>,
    partition: u32,
    claim: Claim,
    schedule: Schedule,
    /// Fetched records not yet started, by offset.
    waiting: HashMap<u64, Record>,
    /// Records read from the log but not yet scheduled (no room in the in-flight window),
    /// in offset order; at most one fetch (`fetch_bytes_max`) of records.
    read_ahead: VecDeque<Record>,
    jobs: JoinSet<Outcome>,
    job_offsets: HashMap<Id, u64>,
    draining: watch::Sender<bool>,
    committed: u64,
    last_commit: Instant,
    failed: bool,
}

impl Worker {
    fn new(route: Arc<RouteShared>, group: Arc<Group>, partition: u32, claim: Claim) -> Worker {
        let log_partition = route
            .topic
            .partition(partition)
            .expect("claimed partition exists");
        let log_start = log_partition.log_start_offset();
        let high_watermark = log_partition.high_watermark();
        let committed = route
            .bus
            .log()
            .group_offsets()
            .fetch(&route.group, route.topic.name(), partition)
            .map(|c| c.offset);
        let start = match (committed, route.consumer.start_from) {
            (Some(offset), _) => offset.clamp(log_start, high_watermark),
            (None, StartFrom::Earliest) => log_start,
            (None, StartFrom::Latest) => high_watermark,
        };
        tracing::info!(
            topic = route.topic.name(),
            partition,
            group = %route.group,
            start,
            epoch = claim.epoch,
            "partition assigned; consuming"
        );
        Worker {
            route,
            group,
            partition,
            claim,
            schedule: Schedule::new(start),
            waiting: HashMap::new(),
            read_ahead: VecDeque::new(),
            jobs: JoinSet::new(),
            job_offsets: HashMap::new(),
            draining: watch::Sender::new(false),
            committed: committed.unwrap_or(u64::MAX),
            last_commit: Instant::now(),
            failed: false,
        }
    }

    async fn run(&mut self, control: &mut watch::Receiver<Command>) -> Ended {
        let waker = self.route.bus.waker(self.route.topic.name());
        let consumer = self.route.consumer.clone();
        loop {
            let command = *control.borrow_and_update();
            if command == Command::Abandon {
                self.jobs.abort_all();
                while self.jobs.join_next().await.is_some() {}
                return Ended::AsAsked;
            }
            let draining = command == Command::Drain || self.failed;
            if draining && !*self.draining.borrow() {
                self.draining.send_replace(true);
            }
            if draining && self.jobs.is_empty() {
                if !self.commit().await {
                    return Ended::Fenced;
                }
                return if self.failed {
                    Ended::Failed
                } else {
                    Ended::AsAsked
                };
            }
            if !draining {
                self.start_ready(consumer.concurrency);
            }
            // Register for the wake-up before looking at the high watermark, so an append
            // between the look and the wait is not missed.
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let room = consumer
                .in_flight_max
                .saturating_sub(self.schedule.unfinished());
            let high_watermark = self.log_partition().high_watermark();
            if !draining && room > 0 && high_watermark > self.schedule.next_offset() {
                self.fetch(room).await;
                continue;
            }
            let dirty = self.schedule.commit_point() != self.committed;
            let commit_at = self.last_commit + consumer.commit_interval;
            if dirty && Instant::now() >= commit_at {
                if !self.commit().await {
                    self.jobs.abort_all();
                    return Ended::Fenced;
                }
                continue;
            }
            let want_data = !draining && room > 0;
            tokio::select! {
                joined = self.jobs.join_next_with_id(), if !self.jobs.is_empty() => {
                    self.finished(joined);
                }
                _ = control.changed() => {}
                () = &mut notified, if want_data => {}
                () = tokio::time::sleep(consumer.poll_interval), if want_data => {}
                () = tokio::time::sleep_until(commit_at), if dirty => {}
            }
        }
    }

    /// The log partition this worker consumes, as a handle that can move to a blocking
    /// thread.
    fn log_partition(&self) -> Arc<Partition> {
        self.route
            .topic
            .partition(self.partition)
            .expect("claimed partition exists")
            .clone()
    }

    fn start_ready(&mut self, concurrency: usize) {
        while let Some((offset, _key)) = self.schedule.start_next(concurrency) {
            let record = self
                .waiting
                .remove(&offset)
                .expect("a scheduled record is waiting");
            let job = process(
                self.route.clone(),
                self.partition,
                record,
                self.draining.subscribe(),
            );
            let handle = self.jobs.spawn(job);
            self.job_offsets.insert(handle.id(), offset);
        }
    }

    fn finished(&mut self, joined: Option<Result<(Id, Outcome), tokio::task::JoinError>>) {
        let Some(joined) = joined else { return };
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, Some(outcome)),
            Err(error) => (error.id(), None),
        };
        let offset = self.job_offsets.remove(&id).expect("a job has an offset");
        match outcome {
            Some(Outcome::Handled | Outcome::Duplicate | Outcome::DeadLettered) => {
                self.schedule.finish(offset);
            }
            Some(Outcome::Abandoned) => self.schedule.abandon(offset),
            None => {
                // The chain itself failed (handler panics are caught inside it), so the
                // event's fate is unknown: keep it unfinished, stop the partition, and let
                // the member restart it from the committed offset.
                tracing::error!(
                    topic = self.route.topic.name(),
                    partition = self.partition,
                    offset,
                    "event processing failed inside the runtime; restarting the partition"
                );
                self.schedule.abandon(offset);
                self.failed = true;
            }
        }
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
            self.schedule.push(record.offset, record.key.clone());
            self.waiting.insert(record.offset, record);
        }
    }

    /// Reads one `fetch_bytes_max` of records at the schedule's next offset into the
    /// read-ahead.
    async fn read_more(&mut self) {
        let log_partition = self.log_partition();
        let offset = self.schedule.next_offset();
        let max_bytes = self.route.consumer.fetch_bytes_max;
        let read =
            tokio::task::spawn_blocking(move || log_partition.read_records(offset, max_bytes))
                .await;
        match read {
            Ok(Ok(records)) => {
                self.read_ahead
                    .extend(records.into_iter().filter(|r| r.offset >= offset));
            }
            Ok(Err(ReadError::OffsetOutOfRange { log_start, .. })) if offset < log_start => {
                // Retention removed events this group had not reached yet. They are gone;
                // say so loudly and go on from the first stored event.
                tracing::error!(
                    topic = self.route.topic.name(),
                    partition = self.partition,
                    from = offset,
                    to = log_start,
                    "events were deleted by retention before this group handled them"
                );
                if self.schedule.unfinished() == 0 {
                    self.schedule = Schedule::new(log_start);
                }
            }
            Ok(Err(error)) => {
                tracing::error!(
                    topic = self.route.topic.name(),
                    partition = self.partition,
                    offset,
                    %error,
                    "reading the partition failed; trying again"
                );
                tokio::time::sleep(self.route.consumer.poll_interval).await;
            }
            Err(_) => tokio::time::sleep(self.route.consumer.poll_interval).await,
        }
    }

    /// Commits the commit point if it moved; false when the commit was refused (fenced).
    async fn commit(&mut self) -> bool {
        let offset = self.schedule.commit_point();
        self.last_commit = Instant::now();
        if offset == self.committed {
            return true;
        }
        let group = self.group.clone();
        let log = self.route.bus.log().clone();
        let (claim, partition) = (self.claim, self.partition);
        let commit = OffsetCommit {
            topic: self.route.topic.name().to_string(),
            partition,
            offset,
            metadata: String::new(),
        };
        let group_name = self.route.group.clone();
        let now_ms = self.route.bus.now_ms();
        // The holder check and the durable write happen under the group's lock, so a
        // partition cannot change hands between them.
        let result = tokio::task::spawn_blocking(move || {
            let state = group.lock();
            if state.may_commit(partition, claim).is_err() {
                return Ok(false);
            }
            log.group_offsets()
                .commit(&group_name, &[commit], now_ms)
                .map(|()| true)
        })
        .await;
        match result {
            Ok(Ok(true)) => {
                self.committed = offset;
                true
            }
            Ok(Ok(false)) => {
                tracing::warn!(
                    topic = self.route.topic.name(),
                    partition = self.partition,
                    offset,
                    "commit refused: this member no longer holds the partition"
                );
                false
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "committing offsets failed; will try again");
                true
            }
            Err(_) => true,
        }
    }
}
