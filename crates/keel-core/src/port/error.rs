//! The errors that cross the transport seam, one per kind of operation, each saying whether
//! trying again can help ([`is_retriable`](SendError::is_retriable)): a send
//! ([`SendError`]), a read ([`FetchError`]), a commit ([`CommitError`]) and setting up topics
//! and group membership ([`TransportError`]).
//!
//! Reasons a transport's own client gives (librdkafka's, an I/O error) travel as one line
//! of text inside a variant that names what failed; the variant, not the text, decides what
//! the caller does.

/// Why a record was not sent (published, redelivered, dead-lettered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No topic by that name. Retriable: the topic may be created.
    #[error("topic '{topic}' does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The transport refused the record for what it is (too large, an invalid record, a key
    /// the topic requires) and will refuse it again the same way. Nothing was stored.
    #[error("topic '{topic}' refused the record: {reason}")]
    Rejected {
        /// The topic.
        topic: String,
        /// The transport's reason, one line.
        reason: String,
    },
    /// The transport could not store it now (unreachable, timed out, a partition refusing
    /// writes after a failed sync). Whether it was stored is unknown when the send timed
    /// out: send again with the same event id and let consumers dedupe.
    #[error("sending to topic '{topic}' failed: {reason}")]
    Unavailable {
        /// The topic.
        topic: String,
        /// The transport's reason, one line.
        reason: String,
    },
    /// A batch did not try this record because an earlier record of its key failed
    /// ([`PublishTransport::send_batch`](crate::PublishTransport::send_batch)). Nothing was
    /// stored.
    #[error("not attempted: an earlier record of its partition key failed")]
    NotAttempted,
    /// The send was cut off (the runtime is shutting down) before the transport answered;
    /// it may or may not be stored.
    #[error("the send was cancelled before the transport answered; it may or may not be stored")]
    Cancelled,
}

impl SendError {
    /// Whether the same record may be stored if sent again: false only for
    /// [`SendError::Rejected`].
    pub fn is_retriable(&self) -> bool {
        !matches!(self, SendError::Rejected { .. })
    }
}

/// Why a lease could not read (its start, or records).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The offset is below the first stored one (retention removed those events). Not
    /// retriable at that offset: go on from `log_start`.
    #[error("offset out of range; the partition starts at {log_start}")]
    OutOfRange {
        /// The first stored offset.
        log_start: u64,
    },
    /// The read failed and may succeed later; the worker tries again after its poll
    /// interval.
    #[error("reading failed: {reason}")]
    Unavailable {
        /// The transport's reason, one line.
        reason: String,
    },
}

impl FetchError {
    /// Whether reading the same offset again may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, FetchError::Unavailable { .. })
    }
}

/// Why a commit was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// This member no longer holds the partition: stop consuming it. Never retriable.
    #[error("commit refused: this member no longer holds the partition")]
    Fenced,
    /// A failure that may pass; the worker commits again later.
    #[error("commit failed: {reason}")]
    Unavailable {
        /// The transport's reason, one line.
        reason: String,
    },
}

impl CommitError {
    /// Whether committing again may succeed: false when fenced.
    pub fn is_retriable(&self) -> bool {
        matches!(self, CommitError::Unavailable { .. })
    }
}

/// Why a topic or a group membership could not be set up (checking a route, creating a
/// companion topic, joining a group), or an administrative call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No topic by that name.
    #[error("topic '{topic}' does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The topic exists but has no such partition.
    #[error("topic '{topic}' has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
    },
    /// The group already has the most members the transport allows.
    #[error("group '{group}' on topic '{topic}' already has the maximum number of members")]
    GroupFull {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
    },
    /// The group has running members, and the operation needs it stopped (an offset reset:
    /// a running member's next commit would overwrite it).
    #[error("group '{group}' has running members; stop them first")]
    GroupActive {
        /// The group.
        group: String,
    },
    /// The transport refused the request for what it asks (an invalid name, a partition
    /// count it does not allow, no permission) and will refuse it again.
    #[error("refused: {reason}")]
    Refused {
        /// The transport's reason, one line.
        reason: String,
    },
    /// The transport could not answer now (unreachable, timed out, an I/O error).
    #[error("unavailable: {reason}")]
    Unavailable {
        /// The transport's reason, one line.
        reason: String,
    },
    /// The engine has nothing to carry the operation, and faking it would lie (SQS keeps no
    /// offsets: no stored range, no replay, no offset reset). Never retriable.
    #[error("{engine} cannot {operation}: {reason}")]
    Unsupported {
        /// The engine, as users name it ("Amazon SQS").
        engine: &'static str,
        /// What was asked, as a verb phrase ("read a topic's stored records").
        operation: &'static str,
        /// Why the engine cannot, one line.
        reason: &'static str,
    },
}

impl TransportError {
    /// Whether asking again may succeed: true only for [`TransportError::Unavailable`] and
    /// [`TransportError::GroupActive`] (the members may stop).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            TransportError::Unavailable { .. } | TransportError::GroupActive { .. }
        )
    }
}
