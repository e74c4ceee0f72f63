//! The Kafka transport's limits, in one place.

use std::time::Duration;

/// How long a publish may wait for the broker's acknowledgement, retries included, before
/// it fails (librdkafka's `delivery.timeout.ms`).
pub(crate) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a metadata request or a topic creation may take.
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
