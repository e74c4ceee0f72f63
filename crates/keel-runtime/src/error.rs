//! Error types of the runtime, per operation and in domain words: what a handler returns
//! ([`HandlerError`]), why a publish failed ([`PublishError`]), why a router would not start
//! ([`StartError`]).
//!
//! Not here: policy validation errors (`policy.rs`) and inbox errors (`dedupe.rs`).

use std::fmt;

use crate::policy::PolicyError;

/// How the router treats a failed handler attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Might succeed later (a timeout, a busy database, a panic): retried with backoff, then
    /// dead-lettered when the attempts run out.
    Transient,
    /// Will fail the same way every time (invalid data, a broken business rule): dead-lettered
    /// at once, without retry.
    Permanent,
}

impl ErrorKind {
    /// The lowercase name used in the `keel_dlq_error_kind` header.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed handler attempt: its kind decides retry or dead letter, its message travels in
/// the dead letter's `keel_dlq_error` header.
///
/// `?` on any `std::error::Error` gives a *transient* error (the safe default: a retry costs
/// time, a wrongly permanent error costs a dead letter); say [`HandlerError::permanent`] for
/// failures that a retry cannot fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    kind: ErrorKind,
    message: String,
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn transient(message: impl fmt::Display) -> HandlerError {
        HandlerError {
            kind: ErrorKind::Transient,
            message: message.to_string(),
        }
    }

    /// A failure a retry cannot fix: the event goes to the dead letters at once.
    pub fn permanent(message: impl fmt::Display) -> HandlerError {
        HandlerError {
            kind: ErrorKind::Permanent,
            message: message.to_string(),
        }
    }

    /// Transient or permanent.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong, one line.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind, self.message)
    }
}

impl<E: std::error::Error> From<E> for HandlerError {
    fn from(error: E) -> HandlerError {
        HandlerError::transient(error)
    }
}

/// Why a publish failed. Nothing was stored when this is returned, except for
/// [`PublishError::Cancelled`], where the outcome is unknown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The event breaks a CloudEvents rule.
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] keel_core::EnvelopeError),
    /// No topic by that name.
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    /// The log refused the append.
    #[error("append to {topic}/{partition} failed: {source}")]
    Append {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The log's reason.
        source: keel_log::AppendError,
    },
    /// A networked transport (Kafka) refused or failed the publish: the broker's error, or
    /// no acknowledgement within the transport's delivery timeout. Whether the event was
    /// stored is unknown when the delivery timed out; publish again with the same event id.
    #[error("publish to topic '{topic}' failed: {reason}")]
    Transport {
        /// The topic.
        topic: String,
        /// The transport's reason, one line.
        reason: String,
    },
    /// A networked transport refused the event for what it is (too large, an invalid
    /// record) and will refuse it again the same way. Nothing was stored.
    #[error("topic '{topic}' refused the event: {reason}")]
    Rejected {
        /// The topic.
        topic: String,
        /// The transport's reason, one line.
        reason: String,
    },
    /// The blocking append task did not finish (the runtime is shutting down).
    #[error("publish was cancelled before the log answered; the event may or may not be stored")]
    Cancelled,
}

/// Why a router would not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A policy is out of range.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A route names a topic that does not exist.
    #[error("route '{group}' subscribes to topic '{topic}', which does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// The group of the route.
        group: String,
    },
    /// Two routes of one router use the same topic and group.
    #[error("two routes subscribe group '{group}' to topic '{topic}'")]
    DuplicateRoute {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
    },
    /// The router has no routes.
    #[error("the router has no routes")]
    NoRoutes,
    /// The group already has its maximum number of members.
    #[error("group '{group}' on topic '{topic}' already has the maximum number of members")]
    GroupFull {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
    },
    /// The redelivery topic `<topic>.retry` of a route could not be created.
    #[error("cannot create the redelivery topic '{topic}': {source}")]
    RedeliveryTopic {
        /// The redelivery topic.
        topic: String,
        /// Why.
        source: keel_log::TopicError,
    },
}
