//! Where a projector reads events: the [`Source`] port, and its implementation for every
//! [`EventStore`] (one partition: the store's global order).
//!
//! Not here: the topic source (`topic.rs`) and the feeding loop (`projector.rs`).
//!
//! A source is a fixed number of *partitions*, each an ordered sequence of events with
//! positions that only grow; a projection keeps one checkpoint per partition. An event
//! store has one partition whose positions are its global positions; a `keel-log` topic
//! has its partitions, whose positions are offsets. Nothing orders events of different
//! partitions, so a model fed from a topic may only rely on order within a partition (per
//! key, as every consumer of that topic).

use std::future::Future;
use std::time::Duration;

use keel_store::{AllFilter, EventStore, ReadError, RecordedEvent};

/// Ordered events in one or more partitions, read from a position, with a way to wait for
/// more.
pub trait Source: Send + Sync + 'static {
    /// What selects the events a projection sees ([`AllFilter`] for an event store; `()`
    /// for a topic, whose projection sees every record).
    type Filter: Send + Sync + std::fmt::Debug + 'static;

    /// How many partitions the source has; fixed for its life.
    fn partitions(&self) -> u32;

    /// One past the last readable position of `partition`.
    fn partition_head(&self, partition: u32)
    -> impl Future<Output = Result<u64, ReadError>> + Send;

    /// Up to `max_count` events of `partition` at positions `from` and later that pass
    /// `filter`, in position order.
    fn read_partition(
        &self,
        partition: u32,
        from: u64,
        max_count: usize,
        filter: &Self::Filter,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, ReadError>> + Send;

    /// Waits until some partition `p` holds an event at `positions[p]` (one per partition)
    /// or `timeout` passes. Returning early is allowed; the caller reads and waits again.
    fn wait_for_any(
        &self,
        positions: &[u64],
        timeout: Duration,
    ) -> impl Future<Output = Result<(), ReadError>> + Send;
}

/// An event store is a source of one partition: its global order.
impl<S: EventStore> Source for S {
    type Filter = AllFilter;

    fn partitions(&self) -> u32 {
        1
    }

    async fn partition_head(&self, _partition: u32) -> Result<u64, ReadError> {
        self.head().await
    }

    async fn read_partition(
        &self,
        _partition: u32,
        from: u64,
        max_count: usize,
        filter: &AllFilter,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.read_all(from, max_count, filter).await
    }

    async fn wait_for_any(&self, positions: &[u64], timeout: Duration) -> Result<(), ReadError> {
        self.wait_for(positions[0], timeout).await.map(|_| ())
    }
}
