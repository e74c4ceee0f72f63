//! [`Projector`]: feeds a [`ProjectionStore`] from a [`Source`] (an event store, or a topic)
//! in batches, follows live appends, rebuilds from zero with progress, and answers
//! [`Projector::wait_for`].
//!
//! Not here: any storage (the model commits its own batches and checkpoints) and reading
//! (the source).
//!
//! One projector per model: it serialises its own steps (catch-up, live, rebuild) with a
//! lock, so a rebuild never interleaves with a live batch. Every batch comes from one
//! partition and carries that partition's checkpoint; partitions take turns, one batch
//! each, so a busy partition does not starve the others.

use std::time::Duration;

use keel_store::limits::SUBSCRIPTION_POLL;
use tokio::sync::{Mutex, watch};

use crate::model::{ProjectionError, ProjectionStore};
use crate::source::Source;
use crate::{BATCH_EVENTS_DEFAULT, BATCH_EVENTS_MAX};

/// Drives one read model from one source.
#[derive(Debug)]
pub struct Projector<S: Source, P> {
    source: S,
    model: P,
    filter: S::Filter,
    batch_events: usize,
    /// Held by every step, so steps never interleave.
    step: Mutex<()>,
    /// Per partition: every position below this has been applied (or checked and skipped
    /// by the filter).
    scanned: watch::Sender<Vec<u64>>,
}

/// How far a catch-up or rebuild is. For a source of several partitions, positions and
/// heads are summed over the partitions (for a topic: records done of records to do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Events applied so far by this call.
    pub applied: u64,
    /// The position reached.
    pub position: u64,
    /// The source's head when the call started (the position it runs to).
    pub head: u64,
}

/// Why [`Projector::wait_for`] returned without the position being projected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "projection '{projection}' did not reach position {position} of partition {partition} within {timeout_ms} ms (at {reached})"
)]
pub struct WaitError {
    /// The projection.
    pub projection: String,
    /// The partition (0 for an event store).
    pub partition: u32,
    /// The position waited for.
    pub position: u64,
    /// The position reached.
    pub reached: u64,
    /// The wait.
    pub timeout_ms: u64,
}

impl<S: Source, P: ProjectionStore> Projector<S, P> {
    /// A projector of `model` over the events of `source` that pass `filter` (an
    /// [`AllFilter`](keel_store::AllFilter) for an event store, `()` for a topic), resuming
    /// from the model's checkpoints.
    pub async fn new(source: S, model: P, filter: S::Filter) -> Result<Self, ProjectionError> {
        let partitions = source.partitions();
        let mut checkpoints = model.checkpoints().await?;
        if let Some(partition) = checkpoints
            .iter()
            .rposition(|&checkpoint| checkpoint > 0)
            .filter(|&partition| partition >= partitions as usize)
        {
            return Err(ProjectionError::Partitions {
                projection: model.name().to_owned(),
                partition: partition as u32,
                partitions,
            });
        }
        checkpoints.resize(partitions as usize, 0);
        Ok(Projector {
            source,
            model,
            filter,
            batch_events: BATCH_EVENTS_DEFAULT,
            step: Mutex::new(()),
            scanned: watch::Sender::new(checkpoints),
        })
    }

    /// Sets the events per transaction (1..=[`BATCH_EVENTS_MAX`]).
    #[must_use]
    pub fn with_batch_events(mut self, events: usize) -> Self {
        self.batch_events = events.clamp(1, BATCH_EVENTS_MAX);
        self
    }

    /// The model.
    pub fn model(&self) -> &P {
        &self.model
    }

    /// Every position of partition 0 below this has been projected (for an event store:
    /// every position below this).
    pub fn position(&self) -> u64 {
        self.scanned.borrow()[0]
    }

    /// Per partition, every position below the entry has been projected.
    pub fn positions(&self) -> Vec<u64> {
        self.scanned.borrow().clone()
    }

    /// Applies everything up to the source's heads at the call, reporting progress after
    /// each batch; returns the number of events applied.
    pub async fn catch_up(
        &self,
        mut progress: impl FnMut(Progress),
    ) -> Result<u64, ProjectionError> {
        let _step = self.step.lock().await;
        self.catch_up_locked(&mut progress).await
    }

    /// Empties the model and projects every event again from position 0. Returns the
    /// number of events applied. Concurrent readers see the model empty, then growing:
    /// rebuild into a second model and swap names when readers must not notice.
    pub async fn rebuild(
        &self,
        mut progress: impl FnMut(Progress),
    ) -> Result<u64, ProjectionError> {
        let _step = self.step.lock().await;
        self.model.reset().await?;
        self.scanned
            .send_replace(vec![0; self.source.partitions() as usize]);
        self.catch_up_locked(&mut progress).await
    }

    /// Follows the source forever: catch up, then apply each new batch as it is appended.
    /// Returns only on an error (the failing batch is not kept; calling `run` again retries
    /// it). Cancel safe: dropping it between or during steps loses nothing committed.
    pub async fn run(&self) -> Result<(), ProjectionError> {
        loop {
            let applied = {
                let _step = self.step.lock().await;
                let mut applied = 0;
                for partition in 0..self.source.partitions() {
                    applied += self.step_locked(partition).await?;
                }
                applied
            };
            if applied == 0 {
                self.source
                    .wait_for_any(&self.positions(), SUBSCRIPTION_POLL)
                    .await?;
            }
        }
    }

    /// Waits until the event at `position` has been projected (read-your-writes: pass the
    /// `last_position` an append returned), or `timeout` passes. For an event store; see
    /// [`Projector::wait_for_partition`] for a topic.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), WaitError> {
        self.wait_for_partition(0, position, timeout).await
    }

    /// Waits until the event at `position` of `partition` has been projected (for a topic:
    /// the partition and offset a publish returned), or `timeout` passes.
    pub async fn wait_for_partition(
        &self,
        partition: u32,
        position: u64,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let index = partition as usize;
        let mut scanned = self.scanned.subscribe();
        let passed = |positions: &Vec<u64>| positions.get(index).is_some_and(|p| *p > position);
        let reached = tokio::time::timeout(timeout, scanned.wait_for(passed)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(WaitError {
                projection: self.model.name().to_owned(),
                partition,
                position,
                reached: self.positions().get(index).copied().unwrap_or(0),
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    fn position_of(&self, partition: u32) -> u64 {
        self.scanned.borrow()[partition as usize]
    }

    async fn catch_up_locked(
        &self,
        progress: &mut impl FnMut(Progress),
    ) -> Result<u64, ProjectionError> {
        let mut heads = Vec::new();
        for partition in 0..self.source.partitions() {
            heads.push(self.source.partition_head(partition).await?);
        }
        let head = heads.iter().sum();
        let mut applied = 0;
        loop {
            let mut moved = false;
            for (partition, &partition_head) in (0..).zip(&heads) {
                let before = self.position_of(partition);
                if before >= partition_head {
                    continue;
                }
                applied += self.step_locked(partition).await? as u64;
                moved |= self.position_of(partition) > before;
                progress(Progress {
                    applied,
                    position: self.positions().iter().sum(),
                    head,
                });
            }
            if !moved {
                return Ok(applied);
            }
        }
    }

    /// One batch of `partition`: read from its position, apply (model + checkpoint in one
    /// transaction). With nothing to apply, moves the in-memory position over events the
    /// filter skipped.
    async fn step_locked(&self, partition: u32) -> Result<usize, ProjectionError> {
        let from = self.position_of(partition);
        let head = self.source.partition_head(partition).await?;
        let events = self
            .source
            .read_partition(partition, from, self.batch_events, &self.filter)
            .await?;
        if events.is_empty() {
            // Every position below `head` was readable before the read, and none passed.
            if head > from {
                self.advance(partition, head);
            }
            return Ok(0);
        }
        let count = events.len();
        let checkpoint = self.model.apply(partition, events).await?;
        self.advance(partition, checkpoint);
        Ok(count)
    }

    fn advance(&self, partition: u32, position: u64) {
        self.scanned
            .send_modify(|positions| positions[partition as usize] = position);
    }
}
