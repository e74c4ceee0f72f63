//! Group membership for engines without a group coordinator (NATS JetStream, Redis
//! Streams): members and partition ownership held as leases in the engine's own
//! compare-and-set store ([`LeaseStore`]), run by [`lease_group`] as a [`Membership`].
//!
//! Every heartbeat a member
//!
//! 1. keeps a *member slot* (one of as many slots as partitions: more members would have
//!    nothing to do) — renewed when it has one, taken when it has none;
//! 2. renews each partition lease it holds; a renewal refused means another member may hold
//!    the partition now: the lease is fenced (its commits must be refused) and revoked;
//! 3. reads the slots: with `n` live members, the member at rank `r` (by slot number) is
//!    due the partitions `p` with `p mod n = r`;
//! 4. revokes the partitions it holds and is not due (the router drains and commits them,
//!    then the lease is released), and takes the lease of each partition it is due that
//!    nobody holds.
//!
//! Leases expire after the group's session timeout unless renewed, so a member killed
//! outright loses its slot and partitions after that long and the others take them over;
//! a member cut off from the store longer finds its renewals refused and gives its
//! partitions up. A partition moves between live members only after its old holder drained
//! and committed it. Only the store is engine-specific; the algorithm is here once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_core::{
    BoxFuture, Membership, MembershipEvent, PartitionLease, Revocation, TransportError,
};
use tokio::sync::{mpsc, watch};

/// Leases with a time to live in an engine's store, each held by at most one owner: the
/// owner is the store handle (one per member). Keys are the ones [`LeaseKeys`] names.
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes `key` when nobody holds it; `Ok(false)` when someone does.
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, TransportError>>;

    /// Extends this owner's hold of `key` by the time to live; `Ok(false)` when this owner
    /// no longer holds it (it expired, or another owner took it).
    fn renew<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, TransportError>>;

    /// Gives `key` up if this owner still holds it.
    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;

    /// Whether anyone holds `key`.
    fn is_held<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, TransportError>>;
}

/// The store keys of one group on one topic.
pub trait LeaseKeys: Send + Sync + 'static {
    /// The key of member slot `slot`.
    fn slot(&self, slot: u32) -> String;
    /// The key of the lease of `partition`.
    fn partition(&self, partition: u32) -> String;
}

/// Makes the lease the router consumes `partition` through, fenced (commits refused) once
/// `fenced` is set.
pub type NewLease = Box<dyn Fn(u32, Arc<AtomicBool>) -> Arc<dyn PartitionLease> + Send + Sync>;

/// One member of a group on a topic of `partitions` partitions, heartbeating every
/// `heartbeat` on its own task until it left or the membership was dropped.
pub fn lease_group(
    store: Arc<dyn LeaseStore>,
    keys: Arc<dyn LeaseKeys>,
    partitions: u32,
    heartbeat: Duration,
    new_lease: NewLease,
) -> Box<dyn Membership> {
    let (events, receiver) = mpsc::unbounded_channel();
    let (leave, left) = watch::channel(false);
    let (released, released_rx) = mpsc::unbounded_channel();
    let member = Member {
        store,
        keys,
        partitions,
        new_lease,
        slot: None,
        held: BTreeMap::new(),
        events,
        released,
    };
    tokio::spawn(member.run(heartbeat, left, released_rx));
    Box::new(LeaseMembership {
        events: receiver,
        leave,
    })
}

/// A member id unique across processes and members: the process id, the time and a
/// counter — what a [`LeaseStore`] writes into the keys it holds.
pub fn member_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

struct LeaseMembership {
    events: mpsc::UnboundedReceiver<MembershipEvent>,
    leave: watch::Sender<bool>,
}

impl Membership for LeaseMembership {
    fn next(&mut self) -> BoxFuture<'_, Option<MembershipEvent>> {
        Box::pin(self.events.recv())
    }

    fn leave(&mut self) {
        let _ = self.leave.send(true);
    }
}

struct Member {
    store: Arc<dyn LeaseStore>,
    keys: Arc<dyn LeaseKeys>,
    partitions: u32,
    new_lease: NewLease,
    slot: Option<u32>,
    held: BTreeMap<u32, Held>,
    events: mpsc::UnboundedSender<MembershipEvent>,
    /// Partitions whose revocation is done (drained and committed).
    released: mpsc::UnboundedSender<u32>,
}

/// A partition this member holds.
struct Held {
    fenced: Arc<AtomicBool>,
    revoking: bool,
}

impl Member {
    async fn run(
        mut self,
        heartbeat: Duration,
        mut left: watch::Receiver<bool>,
        mut released: mpsc::UnboundedReceiver<u32>,
    ) {
        let mut tick = tokio::time::interval(heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leaving = false;
        loop {
            tokio::select! {
                _ = tick.tick() => self.beat(leaving).await,
                Some(partition) = released.recv() => self.release(partition).await,
                _ = left.changed(), if !leaving => {
                    leaving = true;
                    self.revoke_all();
                }
                () = self.events.closed() => break,
            }
            if leaving && self.held.is_empty() {
                break;
            }
        }
        // Gone: the slot and any lease still held go now (or age out).
        if let Some(slot) = self.slot.take() {
            self.store.release(&self.keys.slot(slot)).await;
        }
        for partition in std::mem::take(&mut self.held).into_keys() {
            self.store.release(&self.keys.partition(partition)).await;
        }
    }

    async fn beat(&mut self, leaving: bool) {
        self.keep_slot().await;
        self.renew_leases().await;
        if leaving {
            return;
        }
        let Some(due) = self.due().await else {
            return;
        };
        let surplus: Vec<u32> = self
            .held
            .iter()
            .filter(|(p, held)| !held.revoking && !due.contains(p))
            .map(|(p, _)| *p)
            .collect();
        for partition in surplus {
            self.revoke(partition);
        }
        for partition in due {
            if !self.held.contains_key(&partition) {
                self.acquire(partition).await;
            }
        }
    }

    async fn keep_slot(&mut self) {
        if let Some(slot) = self.slot {
            if matches!(self.store.renew(&self.keys.slot(slot)).await, Ok(true)) {
                return;
            }
            self.slot = None;
        }
        for slot in 0..self.partitions {
            if matches!(self.store.acquire(&self.keys.slot(slot)).await, Ok(true)) {
                self.slot = Some(slot);
                return;
            }
        }
    }

    async fn renew_leases(&mut self) {
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        for partition in partitions {
            match self.store.renew(&self.keys.partition(partition)).await {
                Ok(true) => {}
                // The store did not answer: the lease may still be ours; the next beat asks
                // again, and the store's expiry decides.
                Err(error) => tracing::debug!(%error, partition, "lease renewal failed"),
                Ok(false) => {
                    tracing::warn!(partition, "partition lease lost");
                    if let Some(held) = self.held.get(&partition) {
                        held.fenced.store(true, Ordering::SeqCst);
                    }
                    self.revoke(partition);
                }
            }
        }
    }

    /// The partitions due to this member; `None` while it has no slot or the slots could
    /// not be read (it keeps what it holds meanwhile).
    async fn due(&self) -> Option<Vec<u32>> {
        let mine = self.slot?;
        let mut live = Vec::new();
        for slot in 0..self.partitions {
            if self.store.is_held(&self.keys.slot(slot)).await.ok()? {
                live.push(slot);
            }
        }
        let rank = live.iter().position(|s| *s == mine)? as u32;
        let members = live.len() as u32;
        Some(
            (0..self.partitions)
                .filter(|p| p % members == rank)
                .collect(),
        )
    }

    fn revoke(&mut self, partition: u32) {
        let Some(held) = self.held.get_mut(&partition) else {
            return;
        };
        if held.revoking {
            return;
        }
        held.revoking = true;
        let released = self.released.clone();
        let _ = self.events.send(MembershipEvent::Revoked(Revocation::new(
            partition,
            move || {
                let _ = released.send(partition);
            },
        )));
    }

    fn revoke_all(&mut self) {
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        for partition in partitions {
            self.revoke(partition);
        }
    }

    async fn release(&mut self, partition: u32) {
        if let Some(held) = self.held.remove(&partition)
            && !held.fenced.load(Ordering::SeqCst)
        {
            self.store.release(&self.keys.partition(partition)).await;
        }
    }

    async fn acquire(&mut self, partition: u32) {
        if !matches!(
            self.store.acquire(&self.keys.partition(partition)).await,
            Ok(true)
        ) {
            return;
        }
        let fenced = Arc::new(AtomicBool::new(false));
        self.held.insert(
            partition,
            Held {
                fenced: fenced.clone(),
                revoking: false,
            },
        );
        let lease = (self.new_lease)(partition, fenced);
        let _ = self.events.send(MembershipEvent::Assigned(lease));
    }
}
