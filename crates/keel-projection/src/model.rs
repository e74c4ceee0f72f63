//! The read-model port: [`ProjectionStore`], a model that applies events and stores its
//! checkpoint atomically, and [`ProjectionError`].

use std::future::Future;

use keel_store::RecordedEvent;

/// A read model with its checkpoint: the position after the last event it applied.
///
/// Implementations must commit the model's writes for a batch and the new checkpoint in one
/// transaction, and [`ProjectionStore::reset`] must clear the model and the checkpoint in
/// one transaction, so the model always reflects exactly the events before its checkpoint.
pub trait ProjectionStore: Send + Sync + 'static {
    /// The projection's name, unique per database (it keys the checkpoint).
    fn name(&self) -> &str;

    /// The position after the last event applied (0: nothing applied yet).
    fn checkpoint(&self) -> impl Future<Output = Result<u64, ProjectionError>> + Send;

    /// Applies `events` (in position order, non-empty) to the model and sets the checkpoint
    /// to the position after the last one, all in one transaction; returns the checkpoint.
    /// If any event fails, nothing of the batch is kept.
    fn apply(
        &self,
        events: Vec<RecordedEvent>,
    ) -> impl Future<Output = Result<u64, ProjectionError>> + Send;

    /// Empties the model and sets the checkpoint to 0, in one transaction.
    fn reset(&self) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}

/// Why a projection step failed. Nothing of the failing batch was kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The model's code refused an event (a bug or an event it cannot read); the projection
    /// stops at it rather than skip it.
    #[error(
        "projection '{projection}' failed on the event at position {position} (stream '{stream}' version {version}): {reason}"
    )]
    Apply {
        /// The projection.
        projection: String,
        /// The event's position.
        position: u64,
        /// Its stream.
        stream: String,
        /// Its version.
        version: u64,
        /// The model's reason, one line.
        reason: String,
    },
    /// The model's database failed (busy, I/O).
    #[error("projection '{projection}' storage failed during {operation}: {reason}")]
    Storage {
        /// The projection.
        projection: String,
        /// What it was doing.
        operation: &'static str,
        /// Why, one line.
        reason: String,
    },
    /// Reading the event store failed.
    #[error("projection source: {0}")]
    Source(#[from] keel_store::ReadError),
}
