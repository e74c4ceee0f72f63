//! [`EmbeddedBus`]: a `keel-log` [`Log`] plus what its in-process consumers share — the
//! wake-ups publishers send, the group coordinator, the clock and the runtime's
//! [`Metrics`] — and the [`Transport`] the runtime drives on it.
//!
//! Not here: the port implementations (`publish.rs`, `consume.rs`, `admin/port.rs`) or the
//! group rules (`group.rs`).
//!
//! # How consumers learn of new events
//!
//! A consumer never blocks an executor thread in [`keel_log::Partition::wait_for`]. A
//! publisher of the same bus wakes the topic's consumers right after its append, and an idle
//! partition also checks the high watermark every `poll_interval` for events appended by
//! anything else (the CLI, a replay, code holding the `Log` directly). Both are plain async
//! waits, so tests on paused tokio time stay deterministic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keel_core::{Clock, NewRecord, SendError, SystemClock};
use keel_log::{AppendError, Log, Topic};
use keel_runtime::{Metrics, Publisher, Transport};
use tokio::sync::Notify;

use crate::coalesce::{Coalescer, Coalescers};
use crate::gauges::LogGauges;
use crate::group::Coordinator;

/// A `keel-log` [`Log`] shared by publishers and routers in this process. Cheap to clone;
/// every clone is the same bus (same wake-ups, same consumer groups, same metrics).
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
    /// Sends waiting to be appended together, per partition (`coalesce.rs`).
    coalescers: Coalescers,
    coordinator: Coordinator,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl EmbeddedBus {
    /// A bus over `log`, on the system clock.
    pub fn new(log: Arc<Log>) -> EmbeddedBus {
        EmbeddedBus::with_clock(log, Arc::new(SystemClock))
    }

    /// A bus over `log` whose wall-clock time comes from `clock`: dead-letter failure times,
    /// offset commit times and the ages the metrics report. Give it the clock the log was
    /// opened with, so ages and record timestamps agree (tests pass one
    /// [`keel_core::ManualClock`] to both).
    pub fn with_clock(log: Arc<Log>, clock: Arc<dyn Clock>) -> EmbeddedBus {
        let gauges = LogGauges::new(log.clone(), clock.clone());
        EmbeddedBus {
            inner: Arc::new(BusInner {
                metrics: Metrics::with_gauges(Arc::new(gauges)),
                log,
                wakers: Mutex::new(HashMap::new()),
                coalescers: Coalescers::default(),
                coordinator: Coordinator::default(),
                clock,
            }),
        }
    }

    /// The log under the bus.
    pub fn log(&self) -> &Arc<Log> {
        &self.inner.log
    }

    /// The runtime's metrics for everything on this bus ([`Metrics`] lists the families;
    /// the lag and dead-letter gauges are read from the log at each scrape).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The metrics in the OpenMetrics text format Prometheus scrapes (see
    /// [`Metrics::encode`]). Reads the log to compute lag: call it off the async executor.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.encode()
    }

    /// This bus as the runtime's transport: what [`Router::new(&bus)`](keel_runtime::Router::new)
    /// consumes through.
    pub fn transport(&self) -> Transport {
        Transport::new(Arc::new(self.clone()), self.publisher())
    }

    /// A publisher on this bus.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(Arc::new(self.clone()), self.inner.metrics.clone())
    }

    /// Wall-clock milliseconds since the Unix epoch, from the bus's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    pub(crate) fn coalescer(&self, topic: &str, partition: u32) -> Arc<Coalescer> {
        self.inner.coalescers.partition(topic, partition)
    }

    /// Whether a route of this bus runs as a member of `group` (on any topic): the
    /// embedded log's members all live in the process that owns it, so a group without
    /// one here has no running member at all — except consumers of a `keel serve`'s Kafka
    /// listener, which its group coordinator knows.
    pub fn has_members(&self, group: &str) -> bool {
        self.inner.coordinator.has_members(group)
    }

    pub(crate) fn coordinator(&self) -> &Coordinator {
        &self.inner.coordinator
    }

    /// The signal that wakes consumers of `topic` after an append through this bus.
    pub(crate) fn waker(&self, topic: &str) -> Arc<Notify> {
        let mut wakers = self.inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.entry(topic.to_string()).or_default().clone()
    }

    /// The topic `name`, or the send error naming it.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>, SendError> {
        self.inner
            .log
            .topic(name)
            .ok_or_else(|| SendError::UnknownTopic {
                topic: name.to_string(),
            })
    }

    /// Appends records to one partition off the executor (an append may wait for an
    /// `fdatasync`), then wakes the topic's consumers; the first record's offset. A refused
    /// append hands its records back, so a caller can retry them one at a time without
    /// keeping a copy of every batch in case one fails.
    pub(crate) async fn append(
        &self,
        topic: Arc<Topic>,
        partition: u32,
        records: Vec<NewRecord>,
    ) -> Result<u64, Refused> {
        let name = topic.name().to_string();
        let task = tokio::task::spawn_blocking(move || {
            let log_partition = topic.partition(partition).expect("partition of the topic");
            log_partition
                .append(&records)
                .map_err(|error| (error, records))
        });
        let info = match task.await {
            Ok(Ok(info)) => info,
            Ok(Err((error, records))) => {
                return Err(Refused {
                    error: send_error(&name, error),
                    records,
                });
            }
            Err(_) => {
                return Err(Refused {
                    error: SendError::Cancelled,
                    records: Vec::new(),
                });
            }
        };
        self.waker(&name).notify_waiters();
        Ok(info.base_offset)
    }
}

/// An append the log refused: why, and the records it was given (none when the append's
/// task was cancelled).
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) error: SendError,
    pub(crate) records: Vec<NewRecord>,
}

impl From<&EmbeddedBus> for Transport {
    fn from(bus: &EmbeddedBus) -> Transport {
        bus.transport()
    }
}

/// The port's error for a refused append: rejected for what the same bytes will always fail
/// with, unavailable for what depends on the partition's state (a failed fsync, the disk).
pub(crate) fn send_error(topic: &str, error: AppendError) -> SendError {
    let topic = topic.to_string();
    let reason = error.to_string();
    match error {
        AppendError::RecordTooLarge { .. }
        | AppendError::InvalidBatch(_)
        | AppendError::KeyRequired
        | AppendError::Empty => SendError::Rejected { topic, reason },
        _ => SendError::Unavailable { topic, reason },
    }
}
