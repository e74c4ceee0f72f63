//! The in-process embedded transport: [`EmbeddedBus`] (a `keel-log` [`Log`] plus the signals
//! and group coordinator its consumers share) and [`Publisher`], which writes events to it
//! in CloudEvents binary mode.
//!
//! Not here: consuming (`router.rs`, `partition_worker.rs`) and group membership
//! (`group.rs`).
//!
//! # How consumers learn of new events
//!
//! A consumer never blocks an executor thread in [`keel_log::Partition::wait_for`]. A
//! [`Publisher`] of the same bus wakes the topic's consumers right after its append, and an
//! idle partition also checks the high watermark every `poll_interval` for events appended
//! by anything else (the CLI, a replay, code holding the `Log` directly). Both are plain
//! async waits, so tests on paused tokio time stay deterministic.
//!
//! The bus also owns the runtime's [`Metrics`] and the clock they measure ages with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use keel_core::{Event, TraceParent};
use keel_log::{Clock, Header, Log, NewRecord, SystemClock, Topic};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::consume_transport::ConsumeTransport;
use crate::embedded_transport::EmbeddedTransport;
use crate::error::PublishError;
use crate::group::Coordinator;
use crate::metrics::Metrics;
use crate::transport::PublishTransport;

/// A `keel-log` [`Log`] shared by publishers and routers in this process. Cheap to clone;
/// every clone is the same bus (same wake-ups, same consumer groups).
///
/// Build one bus per log: consumer groups are coordinated per bus, and two buses on one log
/// would each think they own every partition.
#[derive(Debug, Clone)]
pub struct EmbeddedBus {
    inner: Arc<BusInner>,
}

#[derive(Debug)]
struct BusInner {
    log: Arc<Log>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    coordinator: Coordinator,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

/// Where a published event was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The topic.
    pub topic: String,
    /// The partition the key mapped to.
    pub partition: u32,
    /// The offset the log assigned.
    pub offset: u64,
}

/// Publishes events to topics of an [`EmbeddedBus`], or of another transport
/// ([`Publisher::on_transport`]). Cheap to clone.
///
/// An event is validated, given a root `traceparent` if it has none (so every event can be
/// followed), and written in CloudEvents binary mode: attributes as `ce_*` headers, data as
/// the record value, `partitionkey` as the record key, which picks the partition (murmur2, as
/// the Java Kafka client); events without a key are spread round-robin and have no order.
#[derive(Debug, Clone)]
pub struct Publisher {
    target: Target,
}

/// Where a [`Publisher`] writes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The embedded log, with its wake-ups and metrics.
    Embedded(EmbeddedBus),
    /// Another transport (`transport.rs`).
    Transport(Arc<dyn PublishTransport>),
}

impl EmbeddedBus {
    /// A bus over `log`, on the system clock.
    pub fn new(log: Arc<Log>) -> EmbeddedBus {
        EmbeddedBus::with_clock(log, Arc::new(SystemClock))
    }

    /// A bus over `log` whose wall-clock time comes from `clock`: dead-letter failure times,
    /// offset commit times and the ages the metrics report. Give it the clock the log was opened with, so ages
    /// and record timestamps agree (tests pass one [`keel_log::ManualClock`] to both).
    pub fn with_clock(log: Arc<Log>, clock: Arc<dyn Clock>) -> EmbeddedBus {
        EmbeddedBus {
            inner: Arc::new(BusInner {
                metrics: Metrics::new(log.clone(), clock.clone()),
                log,
                wakers: Mutex::new(HashMap::new()),
                coordinator: Coordinator::default(),
                clock,
            }),
        }
    }

    /// The log under the bus.
    pub fn log(&self) -> &Arc<Log> {
        &self.inner.log
    }

    /// The runtime's metrics for everything on this bus ([`Metrics`] lists the families).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The metrics in the OpenMetrics text format Prometheus scrapes (see
    /// [`Metrics::encode`]). Reads the log to compute lag: call it off the async executor.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.encode()
    }

    /// Wall-clock milliseconds since the Unix epoch, from the bus's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// This bus as the router's consume transport: [`Router::new`](crate::Router::new) is
    /// `Router::on_transport(bus.transport())`.
    pub fn transport(&self) -> Arc<dyn ConsumeTransport> {
        Arc::new(EmbeddedTransport::new(self.clone()))
    }

    /// A publisher on this bus.
    pub fn publisher(&self) -> Publisher {
        Publisher::from_target(Target::Embedded(self.clone()))
    }

    pub(crate) fn coordinator(&self) -> &Coordinator {
        &self.inner.coordinator
    }

    /// The signal that wakes consumers of `topic` after an append through this bus.
    pub(crate) fn waker(&self, topic: &str) -> Arc<Notify> {
        let mut wakers = self.inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.entry(topic.to_string()).or_default().clone()
    }

    /// Appends records to one partition off the executor (an append may wait for an
    /// `fdatasync`), then wakes the topic's consumers.
    pub(crate) async fn append(
        &self,
        topic: Arc<Topic>,
        partition: u32,
        records: Vec<NewRecord>,
    ) -> Result<u64, PublishError> {
        let name = topic.name().to_string();
        let task = tokio::task::spawn_blocking(move || {
            let log_partition = topic.partition(partition).expect("partition of the topic");
            log_partition.append(&records)
        });
        let info = match task.await {
            Ok(Ok(info)) => info,
            Ok(Err(source)) => {
                return Err(PublishError::Append {
                    topic: name,
                    partition,
                    source,
                });
            }
            Err(_) => return Err(PublishError::Cancelled),
        };
        self.waker(&name).notify_waiters();
        Ok(info.base_offset)
    }
}

impl Publisher {
    pub(crate) fn from_target(target: Target) -> Publisher {
        Publisher { target }
    }

    /// Where this publisher writes.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Publishes `event` to `topic` and returns where it was stored, once the log
    /// acknowledged it under the topic's fsync policy.
    ///
    /// Cancel safety: not cancel safe. The append runs on a blocking thread and completes
    /// even if this future is dropped, so a dropped publish may or may not be stored; publish
    /// again with the same event id and let consumers dedupe.
    pub async fn publish(&self, topic: &str, mut event: Event) -> Result<Published, PublishError> {
        let span = crate::otel::send_span(topic, &mut event);
        self.send(topic, event).instrument(span).await
    }

    /// [`Publisher::publish`] inside its `send` span (`otel.rs`).
    async fn send(&self, topic: &str, mut event: Event) -> Result<Published, PublishError> {
        if event.traceparent.is_none() {
            event.traceparent = Some(TraceParent::new_root());
        }
        event.validate()?;
        let record = event_record(&event);
        let bus = match &self.target {
            Target::Embedded(bus) => bus,
            Target::Transport(transport) => return transport.send(topic, record).await,
        };
        let log_topic = bus
            .log()
            .topic(topic)
            .ok_or_else(|| PublishError::UnknownTopic(topic.to_string()))?;
        let partition = log_topic.partition_for(record.key.as_deref());
        let offset = bus.append(log_topic, partition, vec![record]).await?;
        bus.metrics().published(topic);
        Ok(Published {
            topic: topic.to_string(),
            partition,
            offset,
        })
    }
}

/// The log record of `event` in CloudEvents' Kafka binary mode: `ce_*` headers, the data as
/// the value, `partitionkey` as the key, and the event's `time` as the record timestamp (the
/// log's clock when the event has none). Every writer of events uses this one mapping, so the
/// CLI, the publisher and benchmarks store the same bytes.
pub fn event_record(event: &Event) -> NewRecord {
    let binary = event.to_binary();
    NewRecord {
        key: binary.key.map(Bytes::from),
        value: binary.value.map(Bytes::from),
        headers: binary
            .headers
            .into_iter()
            .map(|(key, value)| Header {
                key,
                value: Some(Bytes::from(value)),
            })
            .collect(),
        timestamp_ms: event.time.map(|t| t.timestamp_millis()),
    }
}
