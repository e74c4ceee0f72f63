//! Errors of the event store, per operation and in domain words: [`AppendError`] (with the
//! [`ConcurrencyConflict`] every optimistic writer must handle) and [`ReadError`].
//!
//! Every message is one line naming the stream, position or setting it is about.

use crate::stream::ExpectedVersion;

/// A stream id that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream id '{stream}': {reason}")]
pub struct InvalidStream {
    /// The id (its first 80 characters).
    pub stream: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The stream was not at the version the appender expected: someone else appended first.
/// Nothing of the refused append was stored; reload, decide again, append again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "concurrency conflict on stream '{stream}': expected {expected}, but the stream is at version {actual}"
)]
pub struct ConcurrencyConflict {
    /// The stream.
    pub stream: String,
    /// What the appender expected.
    pub expected: ExpectedVersion,
    /// The stream's version when the append was refused.
    pub actual: u64,
}

/// Why an append stored nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The expected version did not match.
    #[error(transparent)]
    Conflict(#[from] ConcurrencyConflict),
    /// The stream id is invalid.
    #[error(transparent)]
    InvalidStream(#[from] InvalidStream),
    /// An event of the append is invalid (it would be refused by any consumer too).
    #[error("invalid event {index} of the append to '{stream}': {reason}")]
    InvalidEvent {
        /// The stream.
        stream: String,
        /// Index of the event in the append, from 0.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The append holds no events or more than [`APPEND_EVENTS_MAX`](crate::limits::APPEND_EVENTS_MAX).
    #[error("append to '{stream}' holds {count} events; 1..={max} are allowed")]
    EventCount {
        /// The stream.
        stream: String,
        /// Events in the append.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The backend failed (I/O, database); nothing was stored.
    #[error("event store {operation} failed: {reason}")]
    Storage {
        /// What the store was doing.
        operation: &'static str,
        /// The backend's reason, one line.
        reason: String,
    },
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The stream id is invalid.
    #[error(transparent)]
    InvalidStream(#[from] InvalidStream),
    /// A stored event could not be decoded; the store refuses to guess at it.
    #[error("event store holds an unreadable event at position {position}: {reason}")]
    Corrupt {
        /// Its global position.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The backend failed (I/O, database).
    #[error("event store {operation} failed: {reason}")]
    Storage {
        /// What the store was doing.
        operation: &'static str,
        /// The backend's reason, one line.
        reason: String,
    },
}

/// Why an event store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The log topic exists with a shape the store cannot use.
    #[error("event store topic '{topic}': {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// What is wrong.
        reason: String,
    },
    /// Rebuilding the index from the log failed.
    #[error("event store index rebuild failed: {0}")]
    Rebuild(#[from] ReadError),
}

/// The backend's error as one line, for the `reason` fields above.
pub fn one_line(error: impl std::fmt::Display) -> String {
    error.to_string().replace('\n', " ")
}
