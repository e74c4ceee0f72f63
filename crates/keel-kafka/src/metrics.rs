//! [`BrokerMetrics`]: what the Kafka listener did since it started, as Prometheus families
//! (`prometheus-client`), registered by `keel-server` next to the runtime's into the one
//! registry `/metrics` serves.
//!
//! Everything here is counted per request or per partition of a request, never per record,
//! so the produce path pays a few atomic adds and one short label lookup per batch. Consumer
//! lag is not here: Kafka groups commit into `keel-log`'s `__consumer_offsets`, and the
//! runtime's `keel_consumer_lag_events` gauge is computed from exactly those commits at scrape
//! time, for Kafka-protocol groups and Keel's own alike.
//!
//! | family | type | labels | what |
//! |---|---|---|---|
//! | `keel_kafka_requests_total` | counter | `api` | requests answered (or, for Produce with `acks=0`, handled), by API key |
//! | `keel_kafka_request_duration_seconds` | histogram | `api` | from decoded request to encoded response (a long-polling Fetch counts its wait) |
//! | `keel_kafka_bytes_in_total` | counter | `topic` | record-batch bytes stored by Produce |
//! | `keel_kafka_bytes_out_total` | counter | `topic` | record-batch bytes sent by Fetch |
//! | `keel_kafka_partition_errors_total` | counter | `api`, `error` | Produce and Fetch partitions answered with an error code (`error` is Kafka's name, such as `CorruptMessage`) |
//! | `keel_kafka_connections` | gauge | — | client connections open now |

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Upper bound of the first request-duration bucket, in seconds (100 µs).
const DURATION_BUCKET_FIRST_SECONDS: f64 = 0.000_1;
/// Request-duration buckets, each twice the one before: 100 µs up to about 3.3 s (a Fetch's
/// long poll is capped at 30 s and lands in `+Inf` only when it waited that long).
const DURATION_BUCKETS: u16 = 16;

/// The Kafka listener's metrics. Cheap to clone; clones share their values.
#[derive(Debug, Clone)]
pub struct BrokerMetrics {
    requests: Family<ApiLabels, Counter>,
    request_duration: Family<ApiLabels, Histogram>,
    bytes_in: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    partition_errors: Family<ErrorLabels, Counter>,
    connections: Gauge,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ApiLabels {
    api: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    api: String,
    error: String,
}

/// Counts one open connection until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection {
    connections: Gauge,
}

impl Default for BrokerMetrics {
    fn default() -> BrokerMetrics {
        BrokerMetrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            partition_errors: Family::default(),
            connections: Gauge::default(),
        }
    }
}

impl BrokerMetrics {
    /// Registers every family (sharing these values) into `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "keel_kafka_requests",
            "Kafka requests handled, by API key",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "keel_kafka_request_duration",
            "Time from a decoded Kafka request to its encoded response, by API key",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        registry.register(
            "keel_kafka_bytes_in",
            "Record-batch bytes stored by Produce, by topic",
            self.bytes_in.clone(),
        );
        registry.register(
            "keel_kafka_bytes_out",
            "Record-batch bytes sent by Fetch, by topic",
            self.bytes_out.clone(),
        );
        registry.register(
            "keel_kafka_partition_errors",
            "Produce and Fetch partitions answered with a Kafka error code",
            self.partition_errors.clone(),
        );
        registry.register(
            "keel_kafka_connections",
            "Kafka client connections open now",
            self.connections.clone(),
        );
    }

    /// Counts one handled request of `api` that took `elapsed`.
    pub(crate) fn request(&self, api: ApiKey, elapsed: Duration) {
        let labels = ApiLabels {
            api: format!("{api:?}"),
        };
        self.requests.get_or_create(&labels).inc();
        self.request_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts `bytes` of record batches stored in `topic`.
    pub(crate) fn bytes_in(&self, topic: &str, bytes: usize) {
        count_bytes(&self.bytes_in, topic, bytes);
    }

    /// Counts `bytes` of record batches sent from `topic`.
    pub(crate) fn bytes_out(&self, topic: &str, bytes: usize) {
        count_bytes(&self.bytes_out, topic, bytes);
    }

    /// Counts one partition of an `api` request answered with error `code` (0 is no error and
    /// is not counted).
    pub(crate) fn partition_error(&self, api: ApiKey, code: i16) {
        let Some(error) = ResponseError::try_from_code(code) else {
            return;
        };
        let labels = ErrorLabels {
            api: format!("{api:?}"),
            error: error.to_string(),
        };
        self.partition_errors.get_or_create(&labels).inc();
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub(crate) fn open_connection(&self) -> OpenConnection {
        self.connections.inc();
        OpenConnection {
            connections: self.connections.clone(),
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.connections.dec();
    }
}

fn count_bytes(family: &Family<TopicLabels, Counter>, topic: &str, bytes: usize) {
    if bytes == 0 {
        return;
    }
    let labels = TopicLabels {
        topic: topic.to_owned(),
    };
    family.get_or_create(&labels).inc_by(bytes as u64);
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(
        DURATION_BUCKET_FIRST_SECONDS,
        2.0,
        DURATION_BUCKETS,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(metrics: &BrokerMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn counts_appear_under_their_labels() {
        let metrics = BrokerMetrics::default();
        metrics.request(ApiKey::Produce, Duration::from_micros(150));
        metrics.bytes_in("orders", 1000);
        metrics.bytes_out("orders", 0);
        metrics.partition_error(ApiKey::Produce, ResponseError::CorruptMessage.code());
        metrics.partition_error(ApiKey::Fetch, 0);
        let open = metrics.open_connection();
        let text = text(&metrics);
        for line in [
            r#"keel_kafka_requests_total{api="Produce"} 1"#,
            r#"keel_kafka_request_duration_seconds_bucket{le="0.0002",api="Produce"} 1"#,
            r#"keel_kafka_bytes_in_total{topic="orders"} 1000"#,
            r#"keel_kafka_partition_errors_total{api="Produce",error="CorruptMessage"} 1"#,
            "keel_kafka_connections 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("bytes_out_total{"), "{text}");
        assert!(!text.contains(r#"api="Fetch""#), "{text}");
        drop(open);
        assert!(text_contains(&metrics, "keel_kafka_connections 0"));
    }

    fn text_contains(metrics: &BrokerMetrics, line: &str) -> bool {
        text(metrics).contains(line)
    }
}
