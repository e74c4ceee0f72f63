//! [`BrokerMetrics`]: what the Kafka listener did since it started, as Prometheus families
//! (`prometheus-client`), registered by `keel-server` next to the runtime's into the one
//! registry `/metrics` serves.
//!
//! Everything here is counted per request or per partition of a request, never per record,
//! so the produce path pays a few atomic adds and one short label lookup per batch. A
//! request's counter and histogram are looked up in their families once per API (on its
//! first request, so an API never asked for is absent from `/metrics`) and kept by API key:
//! formatting the API's name and hashing it into two families on every request was a cost
//! of the one-record produce path (issue 16). Consumer
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
//! | `keel_kafka_connections_closed_by_limit_total` | counter | `reason` | connections closed or refused by a limit: `connections_max_evicted`, `connections_max_refused`, `idle_timeout`, `request_timeout` |
//! | `keel_kafka_accept_errors_total` | counter | — | failed accepts (each followed by a backoff) |
//! | `keel_kafka_in_flight_bytes` | gauge | — | bytes of request frames and fetch responses held now (`in_flight_bytes_max`) |
//! | `keel_kafka_in_flight_waits_total` | counter | — | times a connection waited for the in-flight budget |
//! | `keel_kafka_limit_refusals_total` | counter | `limit` | requests refused by a server limit (`topics_max`, `partitions_max`) |
//! | `keel_kafka_requests_in_flight` | gauge | — | requests read and not yet answered, over all connections (at most `PIPELINED_REQUESTS_MAX` a connection) |
//! | `keel_kafka_transactions_ongoing` | gauge | — | transactional ids with a transaction begun and not yet complete (ongoing, or its commit or abort being written) |
//! | `keel_kafka_transactions_total` | counter | `outcome` | transactions ended: `committed` or `aborted` (by the producer, by a new producer of the same transactional id, or by timeout) |
//! | `keel_kafka_transactions_timed_out_total` | counter | — | transactions aborted because they ran past their timeout (also counted as `aborted`) |
//! | `keel_kafka_transactional_ids_expired_total` | counter | — | idle transactional ids forgotten after `transactional_id_expiration_ms` |
//! | `keel_kafka_pipelined_requests_total` | counter | — | Produce requests read while an earlier request of their connection was still unanswered (served concurrently with it) |

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use keel_listener::ListenerMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// API keys whose request counter and histogram are kept once looked up: every key Kafka
/// defines today is below this; a request of a key at or above it (none is served) is
/// counted through its families' lookup each time.
const API_KEY_SLOTS: usize = 128;

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
    /// By API key: the members of `requests` and `request_duration` for that API.
    api_handles: Arc<[OnceLock<ApiHandles>]>,
    bytes_in: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    partition_errors: Family<ErrorLabels, Counter>,
    listener: ListenerMetrics,
    in_flight_bytes: Gauge,
    in_flight_waits: Counter,
    limit_refusals: Family<LimitLabels, Counter>,
    requests_in_flight: Gauge,
    pipelined_requests: Counter,
    fetch_sessions: Gauge,
    fetch_session_evictions: Counter,
    transactions_ongoing: Gauge,
    transactions: Family<OutcomeLabels, Counter>,
    transactions_timed_out: Counter,
    transactional_ids_expired: Counter,
}

/// One API's request counter and duration histogram, sharing their values with the families'
/// members under its label.
#[derive(Debug, Clone)]
struct ApiHandles {
    requests: Counter,
    duration: Histogram,
}

/// One request read and not yet answered, counted in `keel_kafka_requests_in_flight` until
/// dropped.
#[derive(Debug)]
pub(crate) struct RequestInFlight {
    gauge: Gauge,
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
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

impl Default for BrokerMetrics {
    fn default() -> BrokerMetrics {
        BrokerMetrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            api_handles: (0..API_KEY_SLOTS).map(|_| OnceLock::new()).collect(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            partition_errors: Family::default(),
            listener: ListenerMetrics::default(),
            in_flight_bytes: Gauge::default(),
            in_flight_waits: Counter::default(),
            limit_refusals: Family::default(),
            requests_in_flight: Gauge::default(),
            pipelined_requests: Counter::default(),
            fetch_sessions: Gauge::default(),
            fetch_session_evictions: Counter::default(),
            transactions_ongoing: Gauge::default(),
            transactions: Family::default(),
            transactions_timed_out: Counter::default(),
            transactional_ids_expired: Counter::default(),
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
        self.listener
            .register(registry, "keel_kafka", "Kafka client");
        registry.register(
            "keel_kafka_in_flight_bytes",
            "Bytes of Kafka request frames and fetch responses held now",
            self.in_flight_bytes.clone(),
        );
        registry.register(
            "keel_kafka_in_flight_waits",
            "Times a Kafka connection waited for the in-flight byte budget",
            self.in_flight_waits.clone(),
        );
        registry.register(
            "keel_kafka_limit_refusals",
            "Kafka requests refused by a server limit, by limit",
            self.limit_refusals.clone(),
        );
        registry.register(
            "keel_kafka_requests_in_flight",
            "Kafka requests read and not yet answered",
            self.requests_in_flight.clone(),
        );
        registry.register(
            "keel_kafka_pipelined_requests",
            "Produce requests read while an earlier request of their connection was unanswered",
            self.pipelined_requests.clone(),
        );
        registry.register(
            "keel_kafka_fetch_sessions",
            "Fetch sessions (KIP-227) open now",
            self.fetch_sessions.clone(),
        );
        registry.register(
            "keel_kafka_fetch_session_evictions",
            "Fetch sessions closed to make room for a new one (at most 1,000 are kept)",
            self.fetch_session_evictions.clone(),
        );
        registry.register(
            "keel_kafka_transactions_ongoing",
            "Transactions begun and not yet complete",
            self.transactions_ongoing.clone(),
        );
        registry.register(
            "keel_kafka_transactions",
            "Transactions ended, by outcome (committed, aborted)",
            self.transactions.clone(),
        );
        registry.register(
            "keel_kafka_transactions_timed_out",
            "Transactions aborted for running past their timeout (also counted as aborted)",
            self.transactions_timed_out.clone(),
        );
        registry.register(
            "keel_kafka_transactional_ids_expired",
            "Idle transactional ids forgotten after transactional_id_expiration_ms",
            self.transactional_ids_expired.clone(),
        );
    }

    /// Sets how many transactions are begun and not yet complete.
    pub(crate) fn transactions_ongoing(&self, ongoing: usize) {
        self.transactions_ongoing
            .set(i64::try_from(ongoing).unwrap_or(i64::MAX));
    }

    /// Counts a transaction ended.
    pub(crate) fn transaction_ended(&self, commit: bool) {
        let outcome = if commit { "committed" } else { "aborted" };
        self.transactions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a transaction aborted for running past its timeout.
    pub(crate) fn transaction_timed_out(&self) {
        self.transactions_timed_out.inc();
    }

    /// Counts an idle transactional id forgotten.
    pub(crate) fn transactional_id_expired(&self) {
        self.transactional_ids_expired.inc();
    }

    /// Produce requests served concurrently with an earlier request of their connection
    /// since the listener started.
    pub fn pipelined_requests(&self) -> u64 {
        self.pipelined_requests.get()
    }

    /// Counts a request read, until the returned value is dropped (when it is answered);
    /// `pipelined` when an earlier request of its connection is still unanswered.
    pub(crate) fn request_read(&self, pipelined: bool) -> RequestInFlight {
        if pipelined {
            self.pipelined_requests.inc();
        }
        self.requests_in_flight.inc();
        RequestInFlight {
            gauge: self.requests_in_flight.clone(),
        }
    }

    /// The listener's connection metrics.
    pub fn listener(&self) -> &ListenerMetrics {
        &self.listener
    }

    /// The gauge of open fetch sessions and the counter of evicted ones.
    pub(crate) fn fetch_sessions(&self) -> (Gauge, Counter) {
        (
            self.fetch_sessions.clone(),
            self.fetch_session_evictions.clone(),
        )
    }

    /// The in-flight budget's gauge and wait counter.
    pub(crate) fn in_flight(&self) -> (Gauge, Counter) {
        (self.in_flight_bytes.clone(), self.in_flight_waits.clone())
    }

    /// Counts a request refused by the server limit `limit`.
    pub(crate) fn limit_refusal(&self, limit: &'static str) {
        self.limit_refusals
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// Counts one handled request of `api` that took `elapsed`.
    pub(crate) fn request(&self, api: ApiKey, elapsed: Duration) {
        let count = |handles: &ApiHandles| {
            handles.requests.inc();
            handles.duration.observe(elapsed.as_secs_f64());
        };
        match usize::try_from(api as i16)
            .ok()
            .and_then(|key| self.api_handles.get(key))
        {
            Some(slot) => count(slot.get_or_init(|| self.api_handles_of(api))),
            None => count(&self.api_handles_of(api)),
        }
    }

    /// Looks up (creating them on first use) the request counter and histogram of `api`.
    fn api_handles_of(&self, api: ApiKey) -> ApiHandles {
        let labels = ApiLabels {
            api: format!("{api:?}"),
        };
        ApiHandles {
            requests: self.requests.get_or_create(&labels).clone(),
            duration: self.request_duration.get_or_create(&labels).clone(),
        }
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
        metrics.request(ApiKey::Produce, Duration::from_micros(150));
        metrics.request(ApiKey::Metadata, Duration::from_millis(1));
        metrics.bytes_in("orders", 1000);
        metrics.bytes_out("orders", 0);
        metrics.partition_error(ApiKey::Produce, ResponseError::CorruptMessage.code());
        metrics.partition_error(ApiKey::Fetch, 0);
        metrics.limit_refusal("topics_max");
        let _answered = metrics.request_read(false);
        drop(metrics.request_read(true));
        let text = text(&metrics);
        for line in [
            r#"keel_kafka_requests_total{api="Produce"} 2"#,
            r#"keel_kafka_request_duration_seconds_bucket{le="0.0002",api="Produce"} 2"#,
            r#"keel_kafka_requests_total{api="Metadata"} 1"#,
            r#"keel_kafka_request_duration_seconds_count{api="Metadata"} 1"#,
            r#"keel_kafka_bytes_in_total{topic="orders"} 1000"#,
            r#"keel_kafka_partition_errors_total{api="Produce",error="CorruptMessage"} 1"#,
            "keel_kafka_connections 0",
            r#"keel_kafka_limit_refusals_total{limit="topics_max"} 1"#,
            "keel_kafka_requests_in_flight 1",
            "keel_kafka_pipelined_requests_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("bytes_out_total{"), "{text}");
        assert!(!text.contains(r#"api="Fetch""#), "{text}");
    }
}
