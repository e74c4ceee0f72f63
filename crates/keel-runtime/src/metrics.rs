//! The runtime's Prometheus metrics: [`Metrics`], one per [`EmbeddedBus`](crate::EmbeddedBus),
//! owning a `prometheus-client` [`Registry`] and encoding it in the OpenMetrics text format
//! (which Prometheus scrapes; serve it with [`METRICS_CONTENT_TYPE`]).
//!
//! Not here: serving them over HTTP (the `keel` binary's job), OTLP export.
//!
//! # Two kinds of families
//!
//! *Counters and the latency histogram* are updated where things happen: the publisher
//! counts each stored event, the middleware chain (`pipeline.rs`) counts handled events,
//! failed attempts and stored dead letters, and times every attempt. They count what *this
//! process* did since it started, per series, as Prometheus counters should.
//!
//! *Lag and dead-letter gauges* are computed at scrape time from the log by a collector,
//! not kept up to date by workers. The log already holds the truth (high
//! watermarks, committed offsets, record timestamps, the `<topic>.dlq` topics), so a scrape
//! cannot disagree with `keel groups lag`, a stopped group still shows its growing backlog
//! (a worker that is not running could not report it), and nothing is paid per event. The
//! cost is a few small reads per scrape: one record per lagging partition and one per
//! dead-letter partition, at most [`LAG_PARTITIONS_MAX`] lagging partitions per scrape.
//! Encoding may therefore touch the disk: call [`Metrics::encode`] off the async executor
//! (`spawn_blocking`).
//!
//! Ages are measured against the bus's clock
//! ([`EmbeddedBus::with_clock`](crate::EmbeddedBus::with_clock)); give it the log's clock so
//! both sides agree.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keel_log::{Clock, Log, ReadError};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::dead_letter::DeadLetterKind;
use crate::error::ErrorKind;
use crate::histogram::DurationHistogram;
use crate::lag::{Lag, age_ms, oldest_timestamp_ms};
use crate::limits::{DLQ_SUFFIX, LAG_PARTITIONS_MAX};

/// The HTTP `Content-Type` of [`Metrics::encode`]'s output.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The runtime's metrics. Get them from [`EmbeddedBus::metrics`](crate::EmbeddedBus::metrics)
/// (or a transport's: [`ConsumeTransport::metrics`](crate::ConsumeTransport::metrics)).
///
/// | family | type | labels | what |
/// |---|---|---|---|
/// | `keel_events_published_total` | counter | `topic` | events stored by a [`Publisher`](crate::Publisher) of this bus (handlers' follow-ups included, dead letters not) |
/// | `keel_events_handled_total` | counter | `topic`, `group` | events whose handler succeeded |
/// | `keel_events_failed_total` | counter | `topic`, `group`, `kind` | failed handler attempts, `kind` = `transient` (timeouts and panics included) or `permanent`; `decode` counts events that never reached the handler |
/// | `keel_events_dead_lettered_total` | counter | `topic`, `group` | dead letters stored |
/// | `keel_handler_duration_seconds` | histogram | `topic`, `group` | time of every handler attempt, failed ones included |
/// | `keel_consumer_lag_events` | gauge | `topic`, `group`, `partition` | high watermark − committed offset |
/// | `keel_consumer_lag_seconds` | gauge | `topic`, `group`, `partition` | age of the record at the committed offset (the oldest unhandled event); 0 when caught up |
/// | `keel_dead_letters` | gauge | `topic` | records in `<topic>.dlq` |
/// | `keel_dead_letter_oldest_age_seconds` | gauge | `topic` | age of the oldest record in `<topic>.dlq` |
///
/// On a transport without a local log ([`Metrics::with_lag_source`], Kafka) only
/// `keel_consumer_lag_events` of the gauges is reported, for the partitions the process
/// consumes, as the transport measures it.
///
/// Lag covers every group with committed offsets in the log, whichever process or tool
/// consumed; a route's partition appears once its first commit is written (a worker commits
/// its start offset one commit interval after it claims the partition). Ages come from record
/// timestamps: the event's `time` when the publisher set one, otherwise the log's append time.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Families,
    collector: Arc<LogCollector>,
}

/// The families updated in place; clones share their values.
#[derive(Debug, Clone)]
struct Families {
    published: Family<TopicLabels, Counter>,
    handled: Family<RouteLabels, Counter>,
    failed: Family<FailureLabels, Counter>,
    dead_lettered: Family<RouteLabels, Counter>,
    handler_duration: Family<RouteLabels, DurationHistogram>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    topic: String,
    group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    topic: String,
    group: String,
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    group: String,
    partition: u32,
}

/// Consumer lag a transport measures itself (Kafka's client statistics), for
/// [`Metrics::with_lag_source`]: asked at every scrape, so keep it cheap.
pub trait LagSource: Send + Sync + fmt::Debug + 'static {
    /// The lag of every partition this process consumes.
    fn lags(&self) -> Vec<ConsumerLag>;
}

/// One partition's lag: high watermark − the group's committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerLag {
    /// The topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
    /// The partition.
    pub partition: u32,
    /// Events between the committed offset and the high watermark.
    pub events: u64,
}

/// One route's series, resolved once when the router starts so the per-event cost is an
/// atomic add (a short lock for the histogram), not a label lookup.
#[derive(Debug, Clone)]
pub(crate) struct RouteMetrics {
    handled: Counter,
    failed_transient: Counter,
    failed_permanent: Counter,
    failed_decode: Counter,
    dead_lettered: Counter,
    handler_duration: DurationHistogram,
}

/// Computes the lag and dead-letter gauges from the log at each scrape.
#[derive(Debug)]
pub(crate) struct LogCollector {
    /// `None` for a transport whose offsets are not in a local log (Kafka).
    log: Option<Arc<Log>>,
    /// Where lag comes from when there is no log: the transport reports it.
    lag_source: Option<Arc<dyn LagSource>>,
    clock: Arc<dyn Clock>,
}

impl Metrics {
    /// Metrics over `log`, with ages measured against `clock`.
    pub(crate) fn new(log: Arc<Log>, clock: Arc<dyn Clock>) -> Metrics {
        Metrics::with_collector(LogCollector {
            log: Some(log),
            lag_source: None,
            clock,
        })
    }

    /// Metrics of a transport whose offsets and dead letters are not in a local log (Kafka):
    /// the counters and histograms, plus `keel_consumer_lag_events` as `lag` reports it at
    /// each scrape. Lag in seconds and the dead-letter gauges are not reported.
    pub fn with_lag_source(lag: Arc<dyn LagSource>) -> Metrics {
        Metrics::with_collector(LogCollector {
            log: None,
            lag_source: Some(lag),
            clock: Arc::new(keel_log::SystemClock),
        })
    }

    fn with_collector(collector: LogCollector) -> Metrics {
        let families = Families {
            published: Family::default(),
            handled: Family::default(),
            failed: Family::default(),
            dead_lettered: Family::default(),
            handler_duration: Family::default(),
        };
        let collector = Arc::new(collector);
        let mut registry = Registry::default();
        families.register(&mut registry, &collector);
        Metrics {
            registry,
            families,
            collector,
        }
    }

    /// The registry holding every family.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers the same families (same values) and the lag collector into `registry`, for
    /// an application that serves one registry of its own; use a sub-registry there if the
    /// `keel_` names need a further prefix.
    pub fn register(&self, registry: &mut Registry) {
        self.families.register(registry, &self.collector);
    }

    /// Every family in the OpenMetrics text format, ending in `# EOF`; serve it with
    /// [`METRICS_CONTENT_TYPE`]. Reads the log (see the module docs): call it off the async
    /// executor.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Counts one event stored in `topic` by a publisher.
    pub(crate) fn published(&self, topic: &str) {
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        self.families.published.get_or_create(&labels).inc();
    }

    /// The series of the route `group` on `topic`, created at zero.
    pub(crate) fn route(&self, topic: &str, group: &str) -> RouteMetrics {
        let route = RouteLabels {
            topic: topic.to_string(),
            group: group.to_string(),
        };
        let failed = |kind: &str| {
            let labels = FailureLabels {
                topic: topic.to_string(),
                group: group.to_string(),
                kind: kind.to_string(),
            };
            self.families.failed.get_or_create_owned(&labels)
        };
        RouteMetrics {
            handled: self.families.handled.get_or_create_owned(&route),
            failed_transient: failed(ErrorKind::Transient.as_str()),
            failed_permanent: failed(ErrorKind::Permanent.as_str()),
            failed_decode: failed(DeadLetterKind::Decode.as_str()),
            dead_lettered: self.families.dead_lettered.get_or_create_owned(&route),
            handler_duration: self.families.handler_duration.get_or_create_owned(&route),
        }
    }
}

impl Families {
    fn register(&self, registry: &mut Registry, collector: &Arc<LogCollector>) {
        registry.register(
            "keel_events_published",
            "Events stored by publishers of this bus",
            self.published.clone(),
        );
        registry.register(
            "keel_events_handled",
            "Events whose handler succeeded",
            self.handled.clone(),
        );
        registry.register(
            "keel_events_failed",
            "Failed handler attempts by error kind (decode: the event never reached the handler)",
            self.failed.clone(),
        );
        registry.register(
            "keel_events_dead_lettered",
            "Dead letters stored",
            self.dead_lettered.clone(),
        );
        registry.register_with_unit(
            "keel_handler_duration",
            "Duration of each handler attempt, failed ones included",
            Unit::Seconds,
            self.handler_duration.clone(),
        );
        registry.register_collector(Box::new(collector.clone()));
    }
}

impl RouteMetrics {
    /// Records one finished handler attempt: its duration and, if it failed, its kind.
    pub(crate) fn attempt(&self, elapsed: Duration, failure: Option<ErrorKind>) {
        self.handler_duration.observe(elapsed);
        match failure {
            None => {}
            Some(ErrorKind::Transient) => {
                self.failed_transient.inc();
            }
            Some(ErrorKind::Permanent) => {
                self.failed_permanent.inc();
            }
        }
    }

    /// Counts an event whose handler succeeded.
    pub(crate) fn handled(&self) {
        self.handled.inc();
    }

    /// Counts an event that could not be decoded for the handler.
    pub(crate) fn undecodable(&self) {
        self.failed_decode.inc();
    }

    /// Counts a stored dead letter.
    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.inc();
    }
}

/// One lagging or caught-up partition of a group, as a scrape sees it.
struct PartitionGauges {
    labels: PartitionLabels,
    events: u64,
    seconds: Option<f64>,
}

/// One dead-letter topic, as a scrape sees it.
struct DeadLetters {
    labels: TopicLabels,
    depth: u64,
    oldest_age_seconds: Option<f64>,
}

impl LogCollector {
    fn lags(&self, log: &Log, now_ms: i64) -> Vec<PartitionGauges> {
        let offsets = log.group_offsets();
        let mut lags = Vec::new();
        'groups: for group in offsets.groups() {
            for (topic, partition, committed) in offsets.group(&group) {
                if lags.len() == LAG_PARTITIONS_MAX {
                    tracing::warn!(
                        limit = LAG_PARTITIONS_MAX,
                        "more lagging partitions than one scrape reports; the rest are left out"
                    );
                    break 'groups;
                }
                let Some(log_partition) = log
                    .topic(&topic)
                    .and_then(|t| t.partition(partition).cloned())
                else {
                    continue;
                };
                // Only partitions with a commit are measured: see `lag.rs` for why this
                // differs from `keel groups lag`.
                let lag = Lag::of(&log_partition, Some(committed.offset));
                let seconds = unread_as_none(lag.age_ms(&log_partition, now_ms)).map(ms_to_seconds);
                let labels = PartitionLabels {
                    topic,
                    group: group.clone(),
                    partition,
                };
                lags.push(PartitionGauges {
                    labels,
                    events: lag.events(),
                    seconds,
                });
            }
        }
        lags
    }

    fn dead_letters(&self, log: &Log, now_ms: i64) -> Vec<DeadLetters> {
        let mut out = Vec::new();
        for topic in log.topics() {
            let Some(source) = topic.name().strip_suffix(DLQ_SUFFIX) else {
                continue;
            };
            let mut depth = 0;
            let mut oldest_ms: Option<i64> = None;
            for partition in topic.partitions() {
                let start = partition.log_start_offset();
                let stored = partition.high_watermark().saturating_sub(start);
                depth += stored;
                if stored > 0
                    && let Some(ts) = unread_as_none(oldest_timestamp_ms(partition, start))
                {
                    oldest_ms = Some(oldest_ms.map_or(ts, |o| o.min(ts)));
                }
            }
            out.push(DeadLetters {
                labels: TopicLabels {
                    topic: source.to_string(),
                },
                depth,
                oldest_age_seconds: oldest_ms.map(|ts| ms_to_seconds(age_ms(now_ms, ts))),
            });
        }
        out
    }
}

impl Collector for LogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let now_ms = self.clock.now_ms();
        let (lags, dead_letters) = match (&self.log, &self.lag_source) {
            (Some(log), _) => (self.lags(log, now_ms), self.dead_letters(log, now_ms)),
            (None, Some(source)) => (reported(source.as_ref()), Vec::new()),
            (None, None) => (Vec::new(), Vec::new()),
        };
        let events = Unit::Other("events".to_string());
        let seconds = Unit::Seconds;

        let mut family = encoder.encode_descriptor(
            "keel_consumer_lag",
            "Events between a group's committed offset and the high watermark.",
            Some(&events),
            MetricType::Gauge,
        )?;
        for lag in &lags {
            let value = i64::try_from(lag.events).unwrap_or(i64::MAX);
            ConstGauge::new(value).encode(family.encode_family(&lag.labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "keel_consumer_lag",
            "Age of a group's oldest unhandled event; 0 when caught up.",
            Some(&seconds),
            MetricType::Gauge,
        )?;
        for lag in &lags {
            if let Some(value) = lag.seconds {
                ConstGauge::new(value).encode(family.encode_family(&lag.labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "keel_dead_letters",
            "Dead letters stored for a topic (records in <topic>.dlq).",
            None,
            MetricType::Gauge,
        )?;
        for topic in &dead_letters {
            let value = i64::try_from(topic.depth).unwrap_or(i64::MAX);
            ConstGauge::new(value).encode(family.encode_family(&topic.labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "keel_dead_letter_oldest_age",
            "Age of the oldest dead letter stored for a topic.",
            Some(&seconds),
            MetricType::Gauge,
        )?;
        for topic in &dead_letters {
            if let Some(value) = topic.oldest_age_seconds {
                ConstGauge::new(value).encode(family.encode_family(&topic.labels)?)?;
            }
        }
        Ok(())
    }
}

/// The lag a transport reports, as gauges without an age.
fn reported(source: &dyn LagSource) -> Vec<PartitionGauges> {
    let mut lags = source.lags();
    lags.truncate(LAG_PARTITIONS_MAX);
    lags.into_iter()
        .map(|lag| PartitionGauges {
            labels: PartitionLabels {
                topic: lag.topic,
                group: lag.group,
                partition: lag.partition,
            },
            events: lag.events,
            seconds: None,
        })
        .collect()
}

/// A value read from the log, or `None` when the read failed: the gauge is then left out of
/// this scrape rather than reported wrong.
fn unread_as_none<T>(read: Result<Option<T>, ReadError>) -> Option<T> {
    read.unwrap_or_else(|error| {
        tracing::debug!(%error, "metrics could not read a record timestamp");
        None
    })
}

fn ms_to_seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
