//! The forwarding port ([`PublishPort`]): what a component that only *forwards* events — the
//! outbox relay, a forwarder — needs to publish them to any transport without knowing
//! which, with failures sorted into transient and rejected ([`PortError`]).
//!
//! Implemented once, by the runtime's `Publisher`, over every [`PublishTransport`]: a
//! transport crate implements the record-level ports, never this one.
//!
//! [`PublishTransport`]: crate::PublishTransport

use std::fmt;

use super::{BoxFuture, each_in_key_order};
use crate::Event;

/// A transport as seen by something that forwards events to it.
///
/// Implementations decide the partition from the event's `partitionkey` the way the
/// transport always does, so events forwarded through the port land where a direct publish
/// would put them, and two events of one key keep the order in which their publishes
/// *completed*: a caller that needs order awaits one publish before starting the next.
pub trait PublishPort: Send + Sync + 'static {
    /// Publishes `event` to `topic`; `Ok` once the transport acknowledged it as stored.
    ///
    /// Cancel safety: not cancel safe. A dropped publish may or may not be stored; callers
    /// publish again with the same event id and let consumers dedupe.
    fn publish<'a>(&'a self, topic: &'a str, event: Event) -> BoxFuture<'a, Result<(), PortError>>;

    /// Publishes `events` to `topic` in their order per partition key and returns one result
    /// per event, in the order given. Once an event fails, no later event of the same key
    /// in this call is stored (each gets an error), so a caller that stops a key at its first
    /// failure never finds a later event of the key stored ahead of an earlier one. Events
    /// without a key have no order.
    ///
    /// The default publishes one event at a time; transports override it to store many
    /// events per request (the embedded log: one append per partition).
    ///
    /// Cancel safety: as [`PublishPort::publish`], for each event.
    fn publish_batch<'a>(
        &'a self,
        topic: &'a str,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Vec<Result<(), PortError>>> {
        publish_each(self, topic, events)
    }

    /// Stores `event`, which could not be published to `topic`, in that topic's dead-letter
    /// destination (the same place and tooling as the consumers' dead letters; for Keel's
    /// transports `<topic>.dlq`), with the extra `headers` (the `keel_dlq_*` headers that
    /// say where it came from and why) added to the event's own.
    ///
    /// Cancel safety: as [`PublishPort::publish`].
    fn publish_dead_letter<'a>(
        &'a self,
        topic: &'a str,
        event: Event,
        headers: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'a, Result<(), PortError>>;
}

/// [`PublishPort::publish_batch`] one event at a time, in order, skipping the later events
/// of a key once one of its events failed: the default, and what a transport without a
/// batch request falls back to.
pub fn publish_each<'a, P: PublishPort + ?Sized>(
    port: &'a P,
    topic: &'a str,
    events: Vec<Event>,
) -> BoxFuture<'a, Vec<Result<(), PortError>>> {
    Box::pin(each_in_key_order(
        events,
        |event| event.partitionkey.clone(),
        move |event| port.publish(topic, event),
        PortError::not_attempted,
    ))
}

/// Why a publish through the port failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError {
    kind: PortErrorKind,
    message: String,
}

/// Whether a failed publish may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortErrorKind {
    /// The transport may accept it later (unreachable, busy, shutting down, a missing topic).
    /// The event may or may not have been stored.
    Transient,
    /// The transport refused this event and will refuse it again the same way (too large,
    /// an invalid envelope). Nothing was stored.
    Rejected,
}

impl PortError {
    /// A failure worth retrying.
    pub fn transient(message: impl fmt::Display) -> PortError {
        PortError {
            kind: PortErrorKind::Transient,
            message: message.to_string(),
        }
    }

    /// The error of an event a batch did not try because an earlier event of its key
    /// failed ([`PublishPort::publish_batch`]); transient, nothing stored.
    pub fn not_attempted() -> PortError {
        PortError::transient("not attempted: an earlier event of its partition key failed")
    }

    /// A refusal a retry cannot fix.
    pub fn rejected(message: impl fmt::Display) -> PortError {
        PortError {
            kind: PortErrorKind::Rejected,
            message: message.to_string(),
        }
    }

    /// Transient or rejected.
    pub fn kind(&self) -> PortErrorKind {
        self.kind
    }

    /// What went wrong, one line.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl PortErrorKind {
    /// `transient` or `rejected`, as metrics label it.
    pub fn as_str(&self) -> &'static str {
        match self {
            PortErrorKind::Transient => "transient",
            PortErrorKind::Rejected => "rejected",
        }
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "publish {}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for PortError {}
