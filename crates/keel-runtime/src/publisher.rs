//! [`Publisher`]: how service code publishes events, on every transport. An event is
//! validated, given a root `traceparent` if it has none, mapped to its record in
//! CloudEvents binary mode ([`event_record`], the one mapping every Keel writer uses) and
//! handed to the transport's publishing half (`keel_core::PublishTransport`); a stored
//! event counts in `keel_events_published_total`, whichever transport stored it.
//!
//! Not here: how a transport stores a record (the transport crates) or the outbox relay's
//! port over this publisher (`publish_port.rs`).

use std::sync::Arc;

use keel_core::{Event, NewRecord, PublishTransport, Published, TraceParent};
use tracing::Instrument;

use crate::error::PublishError;
use crate::metrics::Metrics;

/// Publishes events to topics of one transport. Cheap to clone.
///
/// Events are written in CloudEvents binary mode: attributes as `ce_*` headers, data as the
/// record value, `partitionkey` as the record key, which picks the partition (murmur2, as
/// the Java Kafka client); events without a key are spread by the transport and have no
/// order.
#[derive(Debug, Clone)]
pub struct Publisher {
    transport: Arc<dyn PublishTransport>,
    metrics: Metrics,
}

impl Publisher {
    /// A publisher on `transport`, counting what it stores into `metrics`.
    pub fn new(transport: Arc<dyn PublishTransport>, metrics: Metrics) -> Publisher {
        Publisher { transport, metrics }
    }

    /// The transport's publishing half.
    pub fn transport(&self) -> &Arc<dyn PublishTransport> {
        &self.transport
    }

    /// The metrics this publisher counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Publishes `event` to `topic` and returns where it was stored, once the transport
    /// acknowledged it (on the embedded log: under the topic's fsync policy).
    ///
    /// Cancel safety: not cancel safe. A dropped publish may or may not be stored (the
    /// embedded log's append completes on a blocking thread); publish again with the same
    /// event id and let consumers dedupe.
    pub async fn publish(&self, topic: &str, mut event: Event) -> Result<Published, PublishError> {
        let span = crate::otel::send_span(topic, &mut event);
        self.send(topic, event).instrument(span).await
    }

    /// [`Publisher::publish`] inside its `send` span (`otel.rs`).
    async fn send(&self, topic: &str, event: Event) -> Result<Published, PublishError> {
        let record = prepared_record(event)?;
        let published = self.transport.send(topic, record).await?;
        self.metrics.published(topic);
        Ok(published)
    }
}

/// The record of `event` as a publisher stores it: given a root trace if it has none,
/// validated, mapped by [`event_record`].
pub(crate) fn prepared_record(mut event: Event) -> Result<NewRecord, PublishError> {
    if event.traceparent.is_none() {
        event.traceparent = Some(TraceParent::new_root());
    }
    event.validate()?;
    Ok(event_record(&event))
}

/// The record of `event` in CloudEvents' Kafka binary mode: `ce_*` headers, the data as the
/// value, `partitionkey` as the key, and the event's `time` as the record timestamp (the
/// transport's clock when the event has none): [`Event::to_record`]. Every writer of events
/// uses this one mapping, so the CLI, the publisher and benchmarks store the same bytes on
/// every transport.
pub fn event_record(event: &Event) -> NewRecord {
    event.to_record()
}
