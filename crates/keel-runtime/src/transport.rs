//! The transport port, publishing half: [`PublishTransport`], what [`Publisher`] needs of a
//! broker other than the embedded log (Kafka, through `keel-kafka-client`), so service code
//! that publishes holds one type, [`Publisher`], whichever transport is configured.
//!
//! Not here: the embedded transport (`bus.rs`, which [`Publisher`] reaches directly, keeping
//! its wake-ups and metrics), and consuming (`consume_transport.rs`, the port's other half) —
//! see ARCHITECTURE.md, "the transport seam".

use std::sync::Arc;

use keel_log::NewRecord;

use crate::bus::{Published, Publisher};
use crate::dedupe::BoxFuture;
use crate::error::PublishError;

/// A networked transport's publishing side. Implementations send the record as it is (it is
/// `event_record`'s CloudEvents binary mapping, validated and traced by [`Publisher`]) and
/// pick the partition from its key the way `keel-log` does (murmur2), so an event lands
/// where the embedded bus would put it.
pub trait PublishTransport: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `record` to `topic`; `Ok` once the broker acknowledged it.
    ///
    /// Cancel safety: not cancel safe; a dropped send may or may not be stored.
    fn send<'a>(
        &'a self,
        topic: &'a str,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, PublishError>>;

    /// Sends `record` to `source`'s dead-letter topic (`<source>.dlq`), creating it with
    /// `source`'s partition count when missing.
    ///
    /// Cancel safety: as [`PublishTransport::send`].
    fn send_dead_letter<'a>(
        &'a self,
        source: &'a str,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, PublishError>>;
}

impl Publisher {
    /// A publisher on `transport` instead of an embedded bus: the same validation, trace and
    /// record mapping, and the same type for service code.
    pub fn on_transport(transport: Arc<dyn PublishTransport>) -> Publisher {
        Publisher::from_target(crate::bus::Target::Transport(transport))
    }
}
