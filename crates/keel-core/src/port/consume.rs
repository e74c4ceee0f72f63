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
use super::publish::PublishTransport;
use super::record::Record;

/// A broker the router consumes from. Object safe: the router holds an
/// `Arc<dyn ConsumeTransport>`.
pub trait ConsumeTransport: Send + Sync + std::fmt::Debug + 'static {
    /// The engine as users name it ("Kafka", "NATS JetStream"), for errors that say what
    /// the engine cannot do.
    fn engine(&self) -> &'static str;

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

    /// Joins `group` on `topic` for transactional processing: every lease of the membership
    /// has a [`LeaseTransaction`], which commits a handler's publishes and the consumed
    /// offset atomically. The default refuses — an engine without transactions that span
    /// its topics and its group offsets cannot do it, and the route needs an inbox for
    /// exactly-once effects instead.
    ///
    /// Cancel safety: as [`ConsumeTransport::join`].
    fn join_transactional<'a>(
        &'a self,
        group: &'a str,
        topic: &'a str,
        policy: &'a GroupPolicy,
        start_from: StartFrom,
    ) -> BoxFuture<'a, Result<Box<dyn Membership>, TransportError>> {
        let _ = (group, topic, policy, start_from);
        Box::pin(std::future::ready(Err(self
            .check_transactions()
            .err()
            .unwrap_or(TransportError::Refused {
                reason: "transactional processing is not implemented".to_string(),
            }))))
    }

    /// Whether [`ConsumeTransport::join_transactional`] can work, checked when a router
    /// starts: `Ok` on an engine with transactions (Kafka), the reason otherwise.
    fn check_transactions(&self) -> Result<(), TransportError> {
        Err(TransportError::Unsupported {
            engine: self.engine(),
            operation: "commit a handler's publishes and its consumed offset in one transaction",
            reason: "it has no transaction spanning topics and group offsets; give the route an \
                inbox (Route::with_inbox) for exactly-once effects",
        })
    }
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

    /// The lease's transactions, when it was handed out by
    /// [`ConsumeTransport::join_transactional`]; `None` otherwise.
    fn transaction(&self) -> Option<&dyn LeaseTransaction> {
        None
    }
}

/// Transactions of one partition lease (the EOS-v2 model: one transactional producer per
/// group member, shared by its partitions). Between [`begin`](LeaseTransaction::begin) and
/// [`commit`](LeaseTransaction::commit) or [`abort`](LeaseTransaction::abort) the lease
/// holds the member's transaction; its partitions take turns, so what one commits is only
/// its own publishes and offset.
pub trait LeaseTransaction: Send + Sync {
    /// The publishing half whose sends join the open transaction: invisible to
    /// `read_committed` readers until it commits, gone if it aborts.
    fn publisher(&self) -> Arc<dyn PublishTransport>;

    /// Opens a transaction, waiting until no other partition of the member holds one.
    ///
    /// Cancel safety: not cancel safe; a dropped begin may leave the transaction open (the
    /// next begin of the lease fails until it is aborted).
    fn begin(&self) -> BoxFuture<'_, Result<(), CommitError>>;

    /// Commits the open transaction together with `offset` (the next record to handle) as
    /// the group's committed offset of the partition. [`CommitError::Fenced`] when the
    /// member or its producer was fenced (another member owns the partition, or another
    /// producer took the transactional id): stop, nothing of the transaction is visible.
    /// After any error the transaction was aborted.
    ///
    /// Cancel safety: not cancel safe; a dropped commit may be stored.
    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>>;

    /// Aborts the open transaction (its publishes are never visible) and makes the next
    /// fetch start again at `rewind_to`.
    ///
    /// Cancel safety: not cancel safe.
    fn abort(&self, rewind_to: u64) -> BoxFuture<'_, Result<(), CommitError>>;
}
