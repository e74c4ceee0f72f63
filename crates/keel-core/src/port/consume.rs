//! The transport port, consuming half: what the router needs of a broker to run a route —
//! group membership ([`ConsumeTransport::join`] → a [`Membership`]: partitions assigned and
//! revoked) and per-partition reads and commits ([`PartitionLease`]). The router's logic
//! (key scheduling, read-ahead, the commit point, drain and abandon, retries, dead letters,
//! the inbox) is written once against this port, so a route behaves the same on every
//! transport.
//!
//! The model is Kafka's: a topic has numbered partitions, each an ordered sequence of
//! records at dense offsets; a group commits, per partition, the offset of the next record
//! to handle. An engine without offsets maps its own positions onto them (a stream
//! sequence, a delivery tag) inside its lease.
//!
//! Not here: publishing (`publish.rs`) and what a route does with records (the runtime).

use std::sync::Arc;

use super::BoxFuture;
use super::error::{CommitError, FetchError, TransportError};
use super::group::{GroupPolicy, StartFrom};
use super::record::Record;

/// A broker the router consumes from. Object safe: the router holds an
/// `Arc<dyn ConsumeTransport>`.
pub trait ConsumeTransport: Send + Sync + std::fmt::Debug + 'static {
    /// Wall-clock milliseconds since the Unix epoch, from the transport's clock: failure
    /// times, retry due times (tests of the embedded log share one manual clock).
    fn now_ms(&self) -> i64;

    /// What can be checked when a router starts, without waiting on the network: the
    /// embedded log checks that `topic` exists, creates `<topic>.retry` and refuses a full
    /// group; a networked transport checks when the member joins.
    fn check_route(
        &self,
        topic: &str,
        group: &str,
        policy: &GroupPolicy,
    ) -> Result<(), TransportError>;

    /// Joins `group` on `topic`. A partition without a committed offset starts at
    /// `start_from`.
    ///
    /// Cancel safety: cancel safe; a dropped join has not joined.
    fn join<'a>(
        &'a self,
        group: &'a str,
        topic: &'a str,
        policy: &'a GroupPolicy,
        start_from: StartFrom,
    ) -> BoxFuture<'a, Result<Box<dyn Membership>, TransportError>>;
}

/// One member of a group on one topic: the changes of its partitions.
pub trait Membership: Send {
    /// The next change; `None` once the member left. Heartbeats (where the transport needs
    /// them) happen while this is awaited, so the router always has a call pending.
    ///
    /// Cancel safety: must be cancel safe (the router polls it in a `select!`): a change not
    /// yet returned is returned by the next call.
    fn next(&mut self) -> BoxFuture<'_, Option<MembershipEvent>>;

    /// Leaves the group. [`Membership::next`] then returns the final revocations, if the
    /// transport has any, and `None`.
    fn leave(&mut self);
}

/// A change of a member's partitions.
pub enum MembershipEvent {
    /// A partition is this member's now: consume it through the lease. The lease gives the
    /// partition back when the last clone is dropped.
    Assigned(Arc<dyn PartitionLease>),
    /// A partition moves away: stop starting events, let running ones finish, commit, drop
    /// the lease, then [`Revocation::done`].
    Revoked(Revocation),
    /// The member was fenced out (its session expired): give up every partition at once,
    /// committing nothing; the membership rejoins on the next [`Membership::next`].
    Lost,
}

impl std::fmt::Debug for MembershipEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MembershipEvent::Assigned(lease) => write!(f, "Assigned({})", lease.partition()),
            MembershipEvent::Revoked(revocation) => {
                write!(f, "Revoked({})", revocation.partition())
            }
            MembershipEvent::Lost => f.write_str("Lost"),
        }
    }
}

/// The acknowledgement a revocation waits for (on Kafka the group's rebalance does).
pub struct Revocation {
    partition: u32,
    done: Box<dyn FnOnce() + Send>,
}

impl Revocation {
    /// A revocation of `partition`; `done` runs when the partition was drained and committed.
    pub fn new(partition: u32, done: impl FnOnce() + Send + 'static) -> Revocation {
        Revocation {
            partition,
            done: Box::new(done),
        }
    }

    /// The partition taken away.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Says the partition is drained and committed.
    pub fn done(self) {
        (self.done)();
    }
}

/// Where a lease starts consuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseStart {
    /// The first offset to consume.
    pub offset: u64,
    /// The group's committed offset, if it has one.
    pub committed: Option<u64>,
}

/// One assigned partition of one member: reads and commits. Held by the partition's worker
/// (and the member loop); dropping the last clone gives the partition back.
pub trait PartitionLease: Send + Sync + 'static {
    /// The partition number.
    fn partition(&self) -> u32;

    /// Where consumption starts: the committed offset (clamped to what is stored) or, for a
    /// partition never committed, the start the group was joined with. A second call (a
    /// worker restarted after a failure) goes back to the committed offset.
    ///
    /// Cancel safety: cancel safe.
    fn start(&self) -> BoxFuture<'_, Result<LeaseStart, FetchError>>;

    /// Whether records at or after `next_offset` can be fetched now, without waiting. Called
    /// on every pass of the worker's loop, so it must be cheap.
    fn has_data(&self, next_offset: u64) -> bool;

    /// Completes when records at or after `next_offset` may have arrived — at once when
    /// [`PartitionLease::has_data`] already says so. An implementation registers for its
    /// wake-up *before* it looks, so a record arriving in between is not missed. The worker
    /// also looks every `poll_interval`, so a wake-up may be late but must not be lost.
    ///
    /// Cancel safety: cancel safe (the worker drops it whenever something else happens).
    fn wait_for_data(&self, next_offset: u64) -> BoxFuture<'_, ()>;

    /// Records from `offset` on, up to about `bytes_max` (at least one when there is one),
    /// in offset order. Records below `offset` may come too; the worker skips them.
    ///
    /// Cancel safety: cancel safe.
    fn fetch(
        &self,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'_, Result<Vec<Record>, FetchError>>;

    /// Commits `offset` (the next record to handle) for the group.
    ///
    /// Cancel safety: not cancel safe; a dropped commit may be stored.
    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>>;
}
