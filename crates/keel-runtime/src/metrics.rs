//! The runtime's Prometheus metrics: [`Metrics`], one per transport (its publisher and every
//! router on it count into the same one), owning a `prometheus-client` [`Registry`] and
//! encoding it in the OpenMetrics text format (which Prometheus scrapes; serve it with
//! [`METRICS_CONTENT_TYPE`]).
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
//! *Lag and dead-letter gauges* are asked of the transport's [`GaugeSource`] at scrape
//! time, not kept up to date by workers. The broker already holds the truth (high
//! watermarks, committed offsets, record timestamps, the `<topic>.dlq` topics), so a scrape
//! cannot disagree with `keel groups lag`, a stopped group still shows its growing backlog
//! (a worker that is not running could not report it), and nothing is paid per event. At
//! most [`LAG_PARTITIONS_MAX`] lagging partitions are reported per scrape. A source may
//! read the disk or ask the broker: call [`Metrics::encode`] off the async executor
//! (`spawn_blocking`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

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
use crate::limits::LAG_PARTITIONS_MAX;

/// The HTTP `Content-Type` of [`Metrics::encode`]'s output.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The runtime's metrics. Get them from a transport ([`Transport::metrics`](crate::Transport::metrics),
/// [`Publisher::metrics`](crate::Publisher::metrics)). Cheap to clone; clones share every
/// value.
///
/// | family | type | labels | what |
/// |---|---|---|---|
/// | `keel_events_published_total` | counter | `topic` | events stored by a [`Publisher`](crate::Publisher) of this transport (handlers' follow-ups included, dead letters not) |
/// | `keel_events_handled_total` | counter | `topic`, `group` | events whose handler succeeded |
/// | `keel_events_failed_total` | counter | `topic`, `group`, `kind` | failed handler attempts, `kind` = `transient` (timeouts and panics included) or `permanent`; `decode` counts events that never reached the handler |
/// | `keel_events_dead_lettered_total` | counter | `topic`, `group` | dead letters stored |
/// | `keel_handler_duration_seconds` | histogram | `topic`, `group` | time of every handler attempt, failed ones included |
/// | `keel_consumer_lag_events` | gauge | `topic`, `group`, `partition` | high watermark − committed offset |
/// | `keel_consumer_lag_seconds` | gauge | `topic`, `group`, `partition` | age of the record at the committed offset (the oldest unhandled event); 0 when caught up |
/// | `keel_dead_letters` | gauge | `topic` | records in `<topic>.dlq` |
/// | `keel_dead_letter_oldest_age_seconds` | gauge | `topic` | age of the oldest record in `<topic>.dlq` |
///
/// The gauges are what the transport's [`GaugeSource`] reports ([`Metrics::with_gauges`]);
/// without one ([`Metrics::new`]) only the counters and the histogram are kept. Ages come
/// from record timestamps: the event's `time` when the publisher set one, otherwise the
/// broker's append time.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<MetricsInner>,
}

#[derive(Debug)]
struct MetricsInner {
    registry: Registry,
    families: Families,
    collector: Arc<GaugeCollector>,
    /// `published`'s series by topic name, so counting a publish looks a `&str` up instead
    /// of building the label set (a copy of the name) for the family's own lookup.
    published_by_topic: RwLock<HashMap<String, Counter>>,
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

/// Where a transport's lag and dead-letter gauges come from, for
/// [`Metrics::with_gauges`]: asked at every scrape, off the async executor.
pub trait GaugeSource: Send + Sync + fmt::Debug + 'static {
    /// The lag of every (group, partition) the transport reports, at most
    /// [`LAG_PARTITIONS_MAX`] of them (more are cut).
    fn lags(&self) -> Vec<ConsumerLag>;

    /// The dead letters stored per source topic; none by default.
    fn dead_letters(&self) -> Vec<DeadLetterDepth> {
        Vec::new()
    }
}

/// One partition's lag: high watermark − the group's committed offset, and the age of the
/// oldest unconsumed event.
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
    /// Age of the record at the committed offset in ms, 0 when caught up; `None` when it
    /// could not be read (the gauge is left out of the scrape rather than reported wrong).
    pub age_ms: Option<u64>,
}

/// The dead letters of one topic (the records of `<topic>.dlq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterDepth {
    /// The source topic (not its `.dlq`).
    pub topic: String,
    /// Records stored in `<topic>.dlq`.
    pub depth: u64,
    /// Age of the oldest of them in ms; `None` when there is none or it could not be read.
    pub oldest_age_ms: Option<u64>,
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

/// Encodes the gauges its source reports at each scrape.
#[derive(Debug)]
struct GaugeCollector {
    source: Option<Arc<dyn GaugeSource>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// The counters and the histogram, without lag or dead-letter gauges (a publisher with
    /// no transport to ask).
    pub fn new() -> Metrics {
        Metrics::with_collector(GaugeCollector { source: None })
    }

    /// The counters and the histogram, plus the lag and dead-letter gauges `source` reports
    /// at each scrape.
    pub fn with_gauges(source: Arc<dyn GaugeSource>) -> Metrics {
        Metrics::with_collector(GaugeCollector {
            source: Some(source),
        })
    }

    fn with_collector(collector: GaugeCollector) -> Metrics {
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
            inner: Arc::new(MetricsInner {
                registry,
                families,
                collector,
                published_by_topic: RwLock::default(),
            }),
        }
    }

    /// The registry holding every family.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Registers the same families (same values) and the lag collector into `registry`, for
    /// an application that serves one registry of its own; use a sub-registry there if the
    /// `keel_` names need a further prefix.
    pub fn register(&self, registry: &mut Registry) {
        self.inner
            .families
            .register(registry, &self.inner.collector);
    }

    /// Every family in the OpenMetrics text format, ending in `# EOF`; serve it with
    /// [`METRICS_CONTENT_TYPE`]. Asks the gauge source (see the module docs): call it off
    /// the async executor.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Counts one event stored in `topic` by a publisher.
    pub(crate) fn published(&self, topic: &str) {
        let by_topic = &self.inner.published_by_topic;
        if let Some(counter) = by_topic
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            counter.inc();
            return;
        }
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        let counter = self.inner.families.published.get_or_create_owned(&labels);
        counter.inc();
        by_topic
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(labels.topic, counter);
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
            self.inner.families.failed.get_or_create_owned(&labels)
        };
        let families = &self.inner.families;
        RouteMetrics {
            handled: families.handled.get_or_create_owned(&route),
            failed_transient: failed(ErrorKind::Transient.as_str()),
            failed_permanent: failed(ErrorKind::Permanent.as_str()),
            failed_decode: failed(DeadLetterKind::Decode.as_str()),
            dead_lettered: families.dead_lettered.get_or_create_owned(&route),
            handler_duration: families.handler_duration.get_or_create_owned(&route),
        }
    }
}

impl Families {
    fn register(&self, registry: &mut Registry, collector: &Arc<GaugeCollector>) {
        registry.register(
            "keel_events_published",
            "Events stored by publishers of this transport",
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

impl Collector for GaugeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        let mut reported = source.lags();
        if reported.len() > LAG_PARTITIONS_MAX {
            tracing::warn!(
                limit = LAG_PARTITIONS_MAX,
                "more lagging partitions than one scrape reports; the rest are left out"
            );
            reported.truncate(LAG_PARTITIONS_MAX);
        }
        let lags: Vec<PartitionGauges> = reported
            .into_iter()
            .map(|lag| PartitionGauges {
                labels: PartitionLabels {
                    topic: lag.topic,
                    group: lag.group,
                    partition: lag.partition,
                },
                events: lag.events,
                seconds: lag.age_ms.map(ms_to_seconds),
            })
            .collect();
        let dead_letters: Vec<DeadLetters> = source
            .dead_letters()
            .into_iter()
            .map(|topic| DeadLetters {
                labels: TopicLabels { topic: topic.topic },
                depth: topic.depth,
                oldest_age_seconds: topic.oldest_age_ms.map(ms_to_seconds),
            })
            .collect();
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

fn ms_to_seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
