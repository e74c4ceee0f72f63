//! [`Projector`]: feeds a [`ProjectionStore`] from an [`EventStore`] in batches, follows
//! live appends, rebuilds from zero with progress, and answers [`Projector::wait_for`].
//!
//! Not here: any storage (the model commits its own batches and checkpoint).
//!
//! One projector per model: it serialises its own steps (catch-up, live, rebuild) with a
//! lock, so a rebuild never interleaves with a live batch.

use std::time::Duration;

use keel_store::limits::SUBSCRIPTION_POLL;
use keel_store::{AllFilter, EventStore};
use tokio::sync::{Mutex, watch};

use crate::model::{ProjectionError, ProjectionStore};
use crate::{BATCH_EVENTS_DEFAULT, BATCH_EVENTS_MAX};

/// Drives one read model from one event store.
#[derive(Debug)]
pub struct Projector<S, P> {
    store: S,
    model: P,
    filter: AllFilter,
    batch_events: usize,
    /// Held by every step, so steps never interleave.
    step: Mutex<()>,
    /// Every position below this has been applied (or checked and skipped by the filter).
    scanned: watch::Sender<u64>,
}

/// How far a catch-up or rebuild is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Events applied so far by this call.
    pub applied: u64,
    /// The position reached.
    pub position: u64,
    /// The store's head when the call started (the position it runs to).
    pub head: u64,
}

/// Why [`Projector::wait_for`] returned without the position being projected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "projection '{projection}' did not reach position {position} within {timeout_ms} ms (at {reached})"
)]
pub struct WaitError {
    /// The projection.
    pub projection: String,
    /// The position waited for.
    pub position: u64,
    /// The position reached.
    pub reached: u64,
    /// The wait.
    pub timeout_ms: u64,
}

impl<S: EventStore, P: ProjectionStore> Projector<S, P> {
    /// A projector of `model` over the events of `store` that pass `filter`, resuming from
    /// the model's checkpoint.
    pub async fn new(store: S, model: P, filter: AllFilter) -> Result<Self, ProjectionError> {
        let checkpoint = model.checkpoint().await?;
        Ok(Projector {
            store,
            model,
            filter,
            batch_events: BATCH_EVENTS_DEFAULT,
            step: Mutex::new(()),
            scanned: watch::Sender::new(checkpoint),
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

    /// Every position below this has been projected.
    pub fn position(&self) -> u64 {
        *self.scanned.borrow()
    }

    /// Applies everything up to the store's head at the call, reporting progress after each
    /// batch; returns the number of events applied.
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
        self.scanned.send_replace(0);
        self.catch_up_locked(&mut progress).await
    }

    /// Follows the store forever: catch up, then apply each new batch as it is appended.
    /// Returns only on an error (the failing batch is not kept; calling `run` again retries
    /// it). Cancel safe: dropping it between or during steps loses nothing committed.
    pub async fn run(&self) -> Result<(), ProjectionError> {
        loop {
            let applied = {
                let _step = self.step.lock().await;
                self.step_locked().await?
            };
            if applied == 0 {
                self.store
                    .wait_for(self.position(), SUBSCRIPTION_POLL)
                    .await?;
            }
        }
    }

    /// Waits until the event at `position` has been projected (read-your-writes: pass the
    /// `last_position` an append returned), or `timeout` passes.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), WaitError> {
        let mut scanned = self.scanned.subscribe();
        let reached = tokio::time::timeout(timeout, scanned.wait_for(|p| *p > position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(WaitError {
                projection: self.model.name().to_owned(),
                position,
                reached: self.position(),
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    async fn catch_up_locked(
        &self,
        progress: &mut impl FnMut(Progress),
    ) -> Result<u64, ProjectionError> {
        let head = self.store.head().await?;
        let mut applied = 0;
        while self.position() < head {
            let step = self.step_locked().await?;
            applied += step as u64;
            progress(Progress {
                applied,
                position: self.position(),
                head,
            });
            if step == 0 && self.position() < head {
                break;
            }
        }
        Ok(applied)
    }

    /// One batch: read from the position, apply (model + checkpoint in one transaction).
    /// With nothing to apply, moves the in-memory position over events the filter skipped.
    async fn step_locked(&self) -> Result<usize, ProjectionError> {
        let from = self.position();
        let head = self.store.head().await?;
        let events = self
            .store
            .read_all(from, self.batch_events, &self.filter)
            .await?;
        if events.is_empty() {
            // Every position below `head` was readable before the read, and none passed.
            if head > from {
                self.scanned.send_replace(head);
            }
            return Ok(0);
        }
        let count = events.len();
        let checkpoint = self.model.apply(events).await?;
        self.scanned.send_replace(checkpoint);
        Ok(count)
    }
}
