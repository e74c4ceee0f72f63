//! [`PublishPort`] for [`Publisher`], so the outbox relay (and any other forwarder) can
//! publish through any transport: batches go to the transport's
//! [`send_batch`](keel_core::PublishTransport::send_batch), dead letters to `<topic>.dlq`
//! (created like the router creates it), and every error is sorted into transient and
//! rejected by [`PublishError::is_retriable`].
//!
//! Not here: the publish itself (`publisher.rs`) or the dead-letter format (`dead_letter.rs`).

use std::collections::HashSet;

use keel_core::{BoxFuture, Event, PortError, PublishPort, SendError, TransportError};

use crate::dead_letter::{DLQ_GROUP_HEADER, dead_letter_topic, unpublished_dead_letter_record};
use crate::error::PublishError;
use crate::publisher::{Publisher, prepared_record};

impl PublishPort for Publisher {
    fn publish<'a>(&'a self, topic: &'a str, event: Event) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            Publisher::publish(self, topic, event)
                .await
                .map(|_| ())
                .map_err(port_error)
        })
    }

    /// Every event is validated and mapped first; an invalid one fails alone and stops its
    /// key. The rest go to the transport's `send_batch` in one call (on the embedded log:
    /// one append per partition, the partitions' appends running at once), which keeps the
    /// per-key stop rule.
    fn publish_batch<'a>(
        &'a self,
        topic: &'a str,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Vec<Result<(), PortError>>> {
        Box::pin(async move {
            let mut results: Vec<Option<Result<(), PortError>>> = vec![None; events.len()];
            let mut invalid_keys: HashSet<String> = HashSet::new();
            let (mut indexes, mut records) = (Vec::new(), Vec::new());
            for (index, event) in events.into_iter().enumerate() {
                let key = event.partitionkey.clone();
                if key.as_ref().is_some_and(|k| invalid_keys.contains(k)) {
                    results[index] = Some(Err(PortError::not_attempted()));
                    continue;
                }
                match prepared_record(event) {
                    Ok(record) => {
                        indexes.push(index);
                        records.push(record);
                    }
                    Err(error) => {
                        results[index] = Some(Err(port_error(error)));
                        invalid_keys.extend(key);
                    }
                }
            }
            let sent = self.transport().send_batch(topic, records).await;
            for (index, result) in indexes.into_iter().zip(sent) {
                if result.is_ok() {
                    self.metrics().published(topic);
                }
                results[index] = Some(result.map(|_| ()).map_err(|e| port_error(e.into())));
            }
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(port_error(SendError::Cancelled.into()))))
                .collect()
        })
    }

    /// Stores the event's record plus `headers` in `<topic>.dlq` (created with the topic's
    /// partition count when missing), where `keel dlq` and the dead-letter gauges find it,
    /// and counts it in `keel_events_dead_lettered_total` under the group its
    /// `keel_dlq_group` header names.
    fn publish_dead_letter<'a>(
        &'a self,
        topic: &'a str,
        event: Event,
        headers: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let group = headers
                .iter()
                .find(|(name, _)| name == DLQ_GROUP_HEADER)
                .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
                .unwrap_or_default();
            let record = unpublished_dead_letter_record(event, headers);
            let dead_letters = dead_letter_topic(topic);
            let transport = self.transport();
            transport
                .ensure_companion(topic, &dead_letters)
                .await
                .map_err(|error| {
                    let message = format!("dead-letter topic of '{topic}': {error}");
                    // A missing source topic may still be created: the relay keeps the row.
                    let unknown = matches!(error, TransportError::UnknownTopic { .. });
                    if unknown || error.is_retriable() {
                        PortError::transient(message)
                    } else {
                        PortError::rejected(message)
                    }
                })?;
            transport
                .send(&dead_letters, record)
                .await
                .map_err(|e| port_error(e.into()))?;
            self.metrics().route(topic, &group).dead_lettered();
            Ok(())
        })
    }
}

/// Rejected: what the same bytes will always fail with. Transient: everything that depends
/// on the transport's state (a missing topic may be created, a broker come back).
fn port_error(error: PublishError) -> PortError {
    if error.is_retriable() {
        PortError::transient(error)
    } else {
        PortError::rejected(error)
    }
}
