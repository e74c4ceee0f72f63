//! The read-model port: [`ProjectionStore`], a model that applies events and stores its
//! checkpoints (one per source partition) atomically, and [`ProjectionError`].

use std::future::Future;

use keel_store::RecordedEvent;

/// A read model with its checkpoints: per partition of its source, the position after the
/// last event it applied (an event store has one partition, a topic several).
///
/// Implementations must commit the model's writes for a batch and the new checkpoint of
/// the batch's partition in one transaction, and [`ProjectionStore::reset`] must clear the
/// model and every checkpoint in one transaction, so the model always reflects exactly the
/// events before its checkpoints.
pub trait ProjectionStore: Send + Sync + 'static {
    /// The projection's name, unique per database (it keys the checkpoints).
    fn name(&self) -> &str;

    /// The checkpoint of each partition, indexed by partition; partitions never applied
    /// may be missing from the end (they are at 0).
    fn checkpoints(&self) -> impl Future<Output = Result<Vec<u64>, ProjectionError>> + Send;

    /// The checkpoint of partition 0: for a model fed from an event store, the position
    /// after the last event applied (0: nothing applied yet).
    fn checkpoint(&self) -> impl Future<Output = Result<u64, ProjectionError>> + Send {
        async {
            let checkpoints = self.checkpoints().await?;
            Ok(checkpoints.first().copied().unwrap_or(0))
        }
    }

    /// Applies `events` (all of `partition`, in position order, non-empty) to the model and
    /// sets that partition's checkpoint to the position after the last one, all in one
    /// transaction; returns the checkpoint. If any event fails, nothing of the batch is
    /// kept. A batch starting below the stored checkpoint (another projector of the same
    /// model got there first) is refused with [`ProjectionError::Conflict`], unapplied.
    fn apply(
        &self,
        partition: u32,
        events: Vec<RecordedEvent>,
    ) -> impl Future<Output = Result<u64, ProjectionError>> + Send;

    /// Empties the model and sets every checkpoint to 0, in one transaction.
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
    /// Another projector of this model applied past the batch's start (two processes
    /// running one projection); nothing of the batch was applied. Stop one of them.
    #[error(
        "projection '{projection}' partition {partition} is already at {stored}, past the batch starting at {position}: another projector runs this model"
    )]
    Conflict {
        /// The projection.
        projection: String,
        /// The partition.
        partition: u32,
        /// The checkpoint found.
        stored: u64,
        /// The batch's first position.
        position: u64,
    },
    /// The model holds checkpoints for more partitions than its source has: it was fed
    /// from another source.
    #[error(
        "projection '{projection}' has a checkpoint for partition {partition}, but its source has {partitions} partitions"
    )]
    Partitions {
        /// The projection.
        projection: String,
        /// The highest partition with a checkpoint.
        partition: u32,
        /// The source's partitions.
        partitions: u32,
    },
    /// Reading the source failed.
    #[error("projection source: {0}")]
    Source(#[from] keel_store::ReadError),
}
