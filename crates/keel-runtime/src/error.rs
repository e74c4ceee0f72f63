//! Error types of the runtime, per operation and in domain words: what a handler returns
//! ([`HandlerError`]), why a publish failed ([`PublishError`]), why a router would not start
//! ([`StartError`]). The transport's own errors are the ports' (`keel_core::SendError`, ...).
//!
//! Not here: policy validation errors (`keel_core::PolicyError`) and inbox errors
//! (`dedupe.rs`).

use std::fmt;

use keel_core::{PolicyError, SendError, TransportError};

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

/// Why a publish failed. Nothing was stored, except where the transport's
/// [`SendError`] says the outcome is unknown (a timeout, a cancelled send).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The event breaks a CloudEvents rule. Never retriable.
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] keel_core::EnvelopeError),
    /// The transport did not store the record.
    #[error(transparent)]
    Send(#[from] SendError),
}

impl PublishError {
    /// Whether publishing the same event again may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            PublishError::InvalidEvent(_) => false,
            PublishError::Send(error) => error.is_retriable(),
        }
    }
}

/// Why a router would not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A policy is out of range.
    #[error(transparent)]
    Policy(#[from] PolicyError),
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
    /// The transport refused a route (an unknown topic, a full group, a redelivery topic it
    /// could not create).
    #[error("route '{group}' on topic '{topic}': {source}")]
    Route {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
        /// The transport's reason.
        source: TransportError,
    },
}
