//! [`PublishPort`] for [`KafkaPublisher`], so the outbox relay (and any other forwarder)
//! can publish to Kafka exactly as it publishes to the embedded log.
//!
//! Not here: the publish itself (`publisher.rs`) or the dead-letter topic (`topics.rs`).

use keel_core::{Event, PortError, PortFuture, PublishPort};
use keel_runtime::PublishError;
use keel_runtime::dead_letter::unpublished_dead_letter_record;

use crate::publisher::KafkaPublisher;

impl PublishPort for KafkaPublisher {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        event: Event,
    ) -> PortFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            KafkaPublisher::publish(self, topic, event)
                .await
                .map(|_| ())
                .map_err(port_error)
        })
    }

    /// Sends the event's record plus `headers` to `<topic>.dlq` (created with the source
    /// topic's partition count if missing), keyed like the event, where `keel dlq` and the
    /// consumers' dead letters are.
    fn publish_dead_letter<'a>(
        &'a self,
        topic: &'a str,
        event: Event,
        headers: Vec<(String, Vec<u8>)>,
    ) -> PortFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let dead_letters = self
                .dead_letter_topic(topic)
                .await
                .map_err(PortError::transient)?;
            let record = unpublished_dead_letter_record(event, headers);
            self.send(&dead_letters, &record, None)
                .await
                .map(|_| ())
                .map_err(port_error)
        })
    }
}

/// Rejected: an invalid envelope, or what the broker refuses for these bytes (too large,
/// an invalid record). Transient: everything else (unreachable, timeouts, a missing topic
/// that may be created).
fn port_error(error: PublishError) -> PortError {
    if matches!(
        error,
        PublishError::InvalidEvent(_) | PublishError::Rejected { .. }
    ) {
        PortError::rejected(error)
    } else {
        PortError::transient(error)
    }
}
