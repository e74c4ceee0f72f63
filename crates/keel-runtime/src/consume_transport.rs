//! The transport port, consuming half: what the router needs of a broker to run a route —
//! group membership ([`Membership`]: partitions assigned and revoked), per-partition reads
//! and commits ([`PartitionLease`]), the `.retry`/`.dlq` companion topics and sends to them
//! ([`ConsumeTransport`]). The router's logic (key scheduling, read-ahead, the commit point,
//! drain and abandon, retries, dead letters, the inbox) is written once against this port, so
//! a route behaves the same on every transport.
//!
//! Implementations: the embedded log (`embedded_transport.rs`, what [`Router::new`] uses) and
//! Kafka (`keel_kafka_client::KafkaTransport`, through [`Router::on_transport`]).
//!
//! Not here: publishing from service code (`transport.rs`, [`PublishTransport`]).
//!
//! [`Router::new`]: crate::Router::new
//! [`Router::on_transport`]: crate::Router::on_transport
//! [`PublishTransport`]: crate::PublishTransport

use std::sync::Arc;

use keel_log::{NewRecord, Record};
use tokio::sync::Notify;

use crate::bus::Publisher;
use crate::dedupe::BoxFuture;
use crate::error::{PublishError, StartError};
use crate::metrics::Metrics;
use crate::policy::{GroupPolicy, StartFrom};

/// A broker the router consumes from. Object safe: the router holds an
/// `Arc<dyn ConsumeTransport>`.
pub trait ConsumeTransport: Send + Sync + std::fmt::Debug + 'static {
    /// The publisher every handler's [`Context`](crate::Context) hands out.
    fn publisher(&self) -> Publisher;

    /// Where the routes' counters and latency histograms are kept.
    fn metrics(&self) -> &Metrics;

    /// Wall-clock milliseconds since the Unix epoch: failure times, retry due times.
    fn now_ms(&self) -> i64;

    /// What can be checked at [`Router::start`](crate::Router::start) without waiting on the
    /// network: the embedded log checks that `topic` exists, creates `<topic>.retry` and
    /// refuses a full group; a networked transport checks when the member joins.
    fn check_route(&self, topic: &str, group: &str, policy: &GroupPolicy)
    -> Result<(), StartError>;

    /// The partition count of `name`, a companion of `source` (its `.retry` or `.dlq`),
    /// created with `source`'s partition count when missing.
    ///
    /// Cancel safety: cancel safe; a dropped call may still create the topic.
    fn ensure_companion<'a>(
        &'a self,
        source: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<u32, String>>;

    /// Sends `record` to `partition` of `topic`; the offset once the broker stored it.
    ///
    /// Cancel safety: not cancel safe; a dropped send may or may not be stored.
    fn send_to<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<u64, PublishError>>;

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
    ) -> BoxFuture<'a, Result<Box<dyn Membership>, String>>;
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

/// Why a fetch returned no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The offset is below the first stored one (retention removed those events).
    #[error("offset out of range; the log starts at {log_start}")]
    OutOfRange {
        /// The first stored offset.
        log_start: u64,
    },
    /// Anything else; the worker logs it and tries again after the poll interval.
    #[error("{0}")]
    Failed(String),
}

/// Why a commit was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// This member no longer holds the partition: stop consuming it.
    #[error("commit refused: this member no longer holds the partition")]
    Fenced,
    /// A failure that may pass; the worker commits again later.
    #[error("commit failed: {0}")]
    Failed(String),
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
    fn start(&self) -> BoxFuture<'_, Result<LeaseStart, String>>;

    /// Whether records at or after `next_offset` can be fetched now, without waiting. Called
    /// on every pass of the worker's loop, so it must be cheap.
    fn has_data(&self, next_offset: u64) -> bool;

    /// Notified when records may have arrived. The worker registers before asking
    /// [`PartitionLease::has_data`] again, so a signal between the two is not missed; it
    /// also looks every `poll_interval`.
    fn data_signal(&self) -> Arc<Notify>;

    /// Records from `offset` on, up to about `bytes_max` (at least one when there is one).
    ///
    /// Cancel safety: cancel safe.
    fn fetch(
        &self,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'_, Result<Vec<Record>, FetchError>>;

    /// Commits `offset` (the next event to handle) for the group.
    ///
    /// Cancel safety: not cancel safe; a dropped commit may be stored.
    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>>;
}
