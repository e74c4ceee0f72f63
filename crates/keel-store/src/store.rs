//! The event store port: [`EventStore`], the one API every backend implements (embedded over
//! `keel-log` here, SQLite and PostgreSQL in `keel-sql`), and the conventions all of them keep.
//!
//! Not here: subscriptions (`subscription.rs`, built on this trait alone), aggregates
//! (`aggregate.rs`) and any backend.
//!
//! # What every backend promises (checked by the `conformance` suite)
//!
//! - An append is atomic and ordered: all its events or none, consecutive versions, and
//!   positions increasing in the order appends were acknowledged.
//! - The expected-version check and the append are one step: of two appends expecting the
//!   same version, exactly one succeeds and the other gets [`ConcurrencyConflict`].
//! - Positions become readable in order: once [`EventStore::read_all`] returned position
//!   `p`, no event with a smaller position appears later. Subscriptions rely on it.
//! - An acknowledged append is durable under the backend's setting (fsync always, SQLite
//!   `synchronous = FULL`) and readable by the next call.
//!
//! [`ConcurrencyConflict`]: crate::ConcurrencyConflict

use std::future::Future;
use std::time::Duration;

use keel_core::Event;

use crate::error::{AppendError, ReadError};
use crate::stream::{Appended, Direction, ExpectedVersion, RecordedEvent, Snapshot};

/// Which events [`EventStore::read_all`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllFilter {
    /// Every event.
    #[default]
    All,
    /// Events of streams in one category (see [`category`](crate::category)).
    Category(String),
}

impl AllFilter {
    /// Whether an event of `stream` passes.
    pub fn admits(&self, stream: &str) -> bool {
        match self {
            AllFilter::All => true,
            AllFilter::Category(category) => crate::category(stream) == category,
        }
    }
}

/// An event store: streams of events appended with an expected version, read by stream or
/// globally, plus the latest snapshot per stream.
///
/// Every method is cancel safe in the sense that dropping its future never leaves a half
/// write: an append either completes in the background or never started, and the store's
/// state is only what the backend committed. (A dropped append may still have committed;
/// its events are then visible, exactly as if the caller had lost the answer.)
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if the stream is at `expected`; returns where they went.
    /// Events get the stream's next versions and the store's next positions; each event is
    /// validated ([`Event::validate`]) first, and nothing is stored if any is invalid.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send;

    /// Up to `max_count` events of `stream`, starting at version `from` (inclusive) and going
    /// in `direction`. Reading forward from 1 reads the whole stream; reading backward from
    /// `u64::MAX` starts at the newest event. An absent stream reads as empty.
    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max_count: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, ReadError>> + Send;

    /// Up to `max_count` events with position ≥ `from` that pass `filter`, in position order.
    fn read_all(
        &self,
        from: u64,
        max_count: usize,
        filter: &AllFilter,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, ReadError>> + Send;

    /// The stream's version: its number of events, 0 when absent.
    fn stream_version(&self, stream: &str) -> impl Future<Output = Result<u64, ReadError>> + Send;

    /// One past the highest position readable now (0 for an empty store).
    fn head(&self) -> impl Future<Output = Result<u64, ReadError>> + Send;

    /// Waits until the head is past `position` (an event at `position` or later is readable)
    /// or `timeout` elapses; returns the head. Appends of this process wake it at once;
    /// appends of other processes are seen by polling within `timeout`.
    fn wait_for(
        &self,
        position: u64,
        timeout: Duration,
    ) -> impl Future<Output = Result<u64, ReadError>> + Send;

    /// Stores `snapshot` as the stream's latest, unless one at a higher version is stored.
    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), AppendError>> + Send;

    /// The stream's latest snapshot, if any.
    fn load_snapshot(
        &self,
        stream: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, ReadError>> + Send;
}

/// Checks an append's shape before any backend touches storage: the stream id, the number of
/// events and each event's validity. Backends call it first so they refuse bad input alike.
pub fn check_append(stream: &str, events: &[Event]) -> Result<(), AppendError> {
    crate::stream::validate_stream_id(stream)?;
    let max = crate::limits::APPEND_EVENTS_MAX;
    if events.is_empty() || events.len() > max {
        return Err(AppendError::EventCount {
            stream: stream.to_owned(),
            count: events.len(),
            max,
        });
    }
    for (index, event) in events.iter().enumerate() {
        event.validate().map_err(|e| AppendError::InvalidEvent {
            stream: stream.to_owned(),
            index,
            reason: crate::error::one_line(e),
        })?;
    }
    Ok(())
}

/// `wait_for` for a backend that other processes may append to: returns as soon as `head()`
/// is past `position` or `timeout` passes. This process's appends wake it at once through
/// `local` (the head after each local append); others are seen by polling `head()` every
/// [`SUBSCRIPTION_POLL`](crate::limits::SUBSCRIPTION_POLL).
pub async fn wait_for_head<F, Fut>(
    local: &tokio::sync::watch::Sender<u64>,
    position: u64,
    timeout: Duration,
    head: F,
) -> Result<u64, ReadError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<u64, ReadError>>,
{
    let deadline = std::time::Instant::now() + timeout;
    let mut watch = local.subscribe();
    loop {
        let head = head().await?;
        let now = std::time::Instant::now();
        if head > position || now >= deadline {
            return Ok(head);
        }
        let wait = (deadline - now).min(crate::limits::SUBSCRIPTION_POLL);
        // Woken by each local append, not by the local head alone: a backend's readable head
        // may stay behind it (PostgreSQL's readers wait for older transactions in flight),
        // and waiting for the local head would then ask `head()` in a busy loop.
        let _ = tokio::time::timeout(wait, watch.changed()).await;
    }
}

/// Version bounds of a stream read: the versions `[low, high]` (inclusive) that a read from
/// `from` in `direction` of at most `max_count` events covers in a stream at `version`, or
/// `None` when it covers nothing. One definition, so backends page alike.
pub fn version_range(
    version: u64,
    from: u64,
    direction: Direction,
    max_count: usize,
) -> Option<(u64, u64)> {
    let count = max_count.min(crate::limits::READ_EVENTS_MAX) as u64;
    if count == 0 || version == 0 {
        return None;
    }
    match direction {
        Direction::Forward => {
            let low = from.max(1);
            (low <= version).then(|| (low, version.min(low.saturating_add(count - 1))))
        }
        Direction::Backward => {
            let high = from.min(version);
            (high >= 1).then(|| (high.saturating_sub(count - 1).max(1), high))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ranges() {
        let check = |version, from, direction, max, expected| {
            assert_eq!(
                version_range(version, from, direction, max),
                expected,
                "{version} {from} {direction:?} {max}"
            )
        };
        use Direction::{Backward, Forward};
        check(0, 1, Forward, 10, None);
        check(5, 1, Forward, 10, Some((1, 5)));
        check(5, 0, Forward, 2, Some((1, 2)));
        check(5, 4, Forward, 10, Some((4, 5)));
        check(5, 6, Forward, 10, None);
        check(5, u64::MAX, Backward, 10, Some((1, 5)));
        check(5, u64::MAX, Backward, 2, Some((4, 5)));
        check(5, 3, Backward, 10, Some((1, 3)));
        check(5, 0, Backward, 10, None);
        check(5, 1, Forward, 0, None);
    }
}
