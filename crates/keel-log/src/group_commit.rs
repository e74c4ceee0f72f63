//! Group commit for async callers: how a task waits for its records to be durable under
//! `fsync = always` without holding a thread while it waits, and without keel-log knowing any
//! async runtime (only `std::task`).
//!
//! [`Partition::durable_step`] answers one of three things. `Done`: durable already (or the
//! partition failed). `Wait`: another caller's sync is running; the [`DurableWait`] future
//! resolves once a sync covered the records or the syncing stopped. `Sync`: nobody is syncing,
//! and the caller now holds the partition's one [`SyncClaim`]; it runs [`SyncClaim::run`] on a
//! thread that may block, which syncs round after round — whatever was written while a round
//! ran goes in the next one — until nothing written is left unsynced. Under load that outlasts
//! the caller's own records, so the caller runs it detached and waits for its round like any
//! other waiter. So under load one thread does back-to-back `fdatasync`s for every writer of
//! the partition, each waiter is woken by the round that covered it (not by every round), and
//! no waiter costs a thread.
//!
//! Not here: the synchronous `Partition::wait_durable`, whose waiters block on the partition's
//! condition variable and share the same claim (`Durability::syncing`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::config::FsyncPolicy;
use crate::error::AppendError;
use crate::partition::Partition;

/// What an async caller does next to see every offset below some end durable.
#[derive(Debug)]
pub enum DurableStep {
    /// Durable, or never will be: the partition failed (`AppendError::Poisoned`).
    Done(Result<(), AppendError>),
    /// Nobody is syncing: run the claim on a thread that may block (detached: it syncs for
    /// every writer until none is left waiting), then ask again.
    Sync(SyncClaim),
    /// Another caller's sync is running: await this, then ask again.
    Wait(DurableWait),
}

/// The right, and the duty, to sync a partition for everyone waiting: held by at most one
/// caller at a time. Dropped without [`SyncClaim::run`] (a cancelled caller) it hands the duty
/// back, and the waiters are woken to claim it again.
#[derive(Debug)]
#[must_use = "a claim not run makes its waiters claim again"]
pub struct SyncClaim {
    partition: Option<Arc<Partition>>,
}

impl SyncClaim {
    pub(crate) fn new(partition: Arc<Partition>) -> SyncClaim {
        SyncClaim {
            partition: Some(partition),
        }
    }

    /// Syncs until everything written is durable (or the partition fails), waking each waiter
    /// once a round covered it; then gives the claim back. Blocks on `fdatasync`.
    pub fn run(mut self) {
        self.partition
            .as_ref()
            .expect("a claim runs once")
            .sync_rounds(u64::MAX);
        // Given back by the last round; a panic above leaves it to `drop` instead.
        self.partition = None;
    }
}

impl Drop for SyncClaim {
    fn drop(&mut self) {
        if let Some(partition) = self.partition.take() {
            partition.release_sync_claim();
        }
    }
}

impl Partition {
    /// What an async caller does next to see every offset below `end` durable under the
    /// topic's policy (see [`DurableStep`]): the async form of [`Partition::wait_durable`].
    pub fn durable_step(self: &Arc<Self>, end: u64) -> DurableStep {
        let always = self.config().fsync == FsyncPolicy::Always;
        let mut durability = self.durability();
        if let Some(failure) = &durability.failure {
            return DurableStep::Done(Err(AppendError::Poisoned(failure.clone())));
        }
        if !always || durability.durable_offset >= end {
            return DurableStep::Done(Ok(()));
        }
        if durability.syncing {
            return DurableStep::Wait(DurableWait::new(self.clone(), end));
        }
        durability.syncing = true;
        DurableStep::Sync(SyncClaim::new(self.clone()))
    }

    /// Group commit for threads: the first waiter claims the sync and syncs until its own
    /// records are durable; the others wait on the condition variable for that.
    pub(crate) fn group_commit(&self, target: u64) -> Result<(), AppendError> {
        let mut durability = self.durability();
        loop {
            if let Some(failure) = &durability.failure {
                return Err(AppendError::Poisoned(failure.clone()));
            }
            if durability.durable_offset >= target {
                return Ok(());
            }
            if durability.syncing {
                durability = self
                    .durability_changed
                    .wait(durability)
                    .expect("durability lock");
                continue;
            }
            durability.syncing = true;
            drop(durability);
            // A thread stops once its own records are durable, so an appender is never kept
            // syncing for others indefinitely; whoever still waits claims the next round.
            self.sync_rounds(target);
            durability = self.durability();
        }
    }

    /// Syncs, by the holder of the sync claim, round after round until everything written up
    /// to `until` is durable or the partition failed; wakes each waiter once a round covered
    /// it, and everyone when it gives the claim back.
    pub(crate) fn sync_rounds(&self, until: u64) {
        loop {
            let result = self.sync_written();
            let written = self.writer().next_offset;
            let mut durability = self.durability();
            if let Err(error) = result {
                durability.failure.get_or_insert_with(|| error.to_string());
            }
            let done =
                durability.failure.is_some() || durability.durable_offset >= written.min(until);
            durability.syncing &= !done;
            let offset = durability.durable_offset;
            let woken = durability.waiters.take_settled(offset, done);
            drop(durability);
            self.durability_changed.notify_all();
            woken.into_iter().for_each(Waker::wake);
            if done {
                return;
            }
        }
    }

    /// Gives back a sync claim that was never run, so the waiters claim it again.
    fn release_sync_claim(&self) {
        let mut durability = self.durability();
        durability.syncing = false;
        let woken = durability.waiters.take_settled(0, true);
        drop(durability);
        self.durability_changed.notify_all();
        woken.into_iter().for_each(Waker::wake);
    }

    /// [`DurableWait`]'s poll, under the durability lock so that a round's wake cannot slip
    /// between the check and the registration.
    fn poll_durable(&self, end: u64, id: &mut Option<u64>, waker: &Waker) -> Poll<()> {
        let mut durability = self.durability();
        if durability.failure.is_some() || !durability.syncing || durability.durable_offset >= end {
            if let Some(id) = id.take() {
                durability.waiters.forget(id);
            }
            return Poll::Ready(());
        }
        durability.waiters.register(id, end, waker);
        Poll::Pending
    }

    fn forget_durable_waiter(&self, id: u64) {
        self.durability().waiters.forget(id);
    }
}

/// The async waiters of one partition's durability, kept under its durability lock: one entry
/// per live [`DurableWait`] that was polled and not yet woken (a future removes its entry when
/// dropped), so the list never holds more than the waiters alive.
#[derive(Debug, Default)]
pub(crate) struct DurableWaiters {
    next_id: u64,
    /// (id, end the waiter needs durable, its waker).
    wakers: Vec<(u64, u64, Waker)>,
}

impl DurableWaiters {
    /// Registers (or refreshes) the waker of waiter `id`, allotting the id on first use.
    pub(crate) fn register(&mut self, id: &mut Option<u64>, end: u64, waker: &Waker) {
        let id = *id.get_or_insert_with(|| {
            self.next_id += 1;
            self.next_id
        });
        match self.wakers.iter_mut().find(|(i, ..)| *i == id) {
            Some((_, _, known)) => known.clone_from(waker),
            None => self.wakers.push((id, end, waker.clone())),
        }
    }

    pub(crate) fn forget(&mut self, id: u64) {
        self.wakers.retain(|(i, ..)| *i != id);
    }

    /// Takes the wakers of the waiters whose end is durable, or of all of them (`all`: the
    /// syncing stopped or failed), for the caller to wake once it has let go of the lock.
    pub(crate) fn take_settled(&mut self, durable_offset: u64, all: bool) -> Vec<Waker> {
        let mut settled = Vec::new();
        self.wakers.retain_mut(|(_, end, waker)| {
            let done = all || *end <= durable_offset;
            if done {
                settled.push(waker.clone());
            }
            !done
        });
        settled
    }
}

/// Resolves once a sync covered every offset below `end`, the partition failed, or the syncing
/// stopped (the caller then asks [`Partition::durable_step`] again). Made by `durable_step`.
///
/// Cancel safety: cancel safe; dropping it removes its waker.
#[derive(Debug)]
pub struct DurableWait {
    partition: Arc<Partition>,
    end: u64,
    /// This future's entry in the partition's waiters, once polled.
    id: Option<u64>,
}

impl DurableWait {
    pub(crate) fn new(partition: Arc<Partition>, end: u64) -> DurableWait {
        DurableWait {
            partition,
            end,
            id: None,
        }
    }
}

impl Future for DurableWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.partition
            .poll_durable(this.end, &mut this.id, cx.waker())
    }
}

impl Drop for DurableWait {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.partition.forget_durable_waiter(id);
        }
    }
}
