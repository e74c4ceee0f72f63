//! [`PublishPort`] for [`Publisher`], so the outbox relay (and any other forwarder) can
//! publish into the embedded log or through any other transport the publisher is on.
//!
//! Not here: the publish itself (`bus.rs`) or the dead-letter format (`dead_letter.rs`);
//! this file only maps them onto the port and sorts errors into transient and rejected.

use keel_core::{Event, PortError, PortFuture, PublishPort};
use keel_log::AppendError;

use crate::bus::{Publisher, Target};
use crate::dead_letter::{DLQ_GROUP_HEADER, ensure_topic, unpublished_dead_letter_record};
use crate::error::PublishError;

impl PublishPort for Publisher {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        event: Event,
    ) -> PortFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            Publisher::publish(self, topic, event)
                .await
                .map(|_| ())
                .map_err(port_error)
        })
    }

    /// Appends the event's record plus `headers` to `<topic>.dlq` (created like the router
    /// creates it: the source topic's partition count and fsync policy), where `keel dlq`
    /// and the dead-letter gauges find it, and counts it in
    /// `keel_events_dead_lettered_total` under the group its `keel_dlq_group` header names.
    fn publish_dead_letter<'a>(
        &'a self,
        topic: &'a str,
        event: Event,
        headers: Vec<(String, Vec<u8>)>,
    ) -> PortFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let group = headers
                .iter()
                .find(|(name, _)| name == DLQ_GROUP_HEADER)
                .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
                .unwrap_or_default();
            let record = unpublished_dead_letter_record(event, headers);
            let bus = match self.target() {
                Target::Embedded(bus) => bus,
                Target::Transport(transport) => {
                    return transport
                        .send_dead_letter(topic, record)
                        .await
                        .map(|_| ())
                        .map_err(port_error);
                }
            };
            let source = bus
                .log()
                .topic(topic)
                .ok_or_else(|| port_error(PublishError::UnknownTopic(topic.to_string())))?;
            let dead_letters = ensure_topic(bus.log(), &source).map_err(|e| {
                PortError::transient(format!("dead-letter topic of '{topic}': {e}"))
            })?;
            let partition = dead_letters.partition_for(record.key.as_deref());
            bus.append(dead_letters, partition, vec![record])
                .await
                .map_err(port_error)?;
            bus.metrics().route(topic, &group).dead_lettered();
            Ok(())
        })
    }
}

/// Rejected: what the same bytes will always fail with. Transient: everything that depends
/// on the log's state (a missing topic may be created, a poisoned partition reopened).
fn port_error(error: PublishError) -> PortError {
    let rejected = match &error {
        PublishError::InvalidEvent(_) | PublishError::Rejected { .. } => true,
        PublishError::Append { source, .. } => matches!(
            source,
            AppendError::RecordTooLarge { .. }
                | AppendError::InvalidBatch(_)
                | AppendError::KeyRequired
                | AppendError::Empty
        ),
        _ => false,
    };
    if rejected {
        PortError::rejected(error)
    } else {
        PortError::transient(error)
    }
}
