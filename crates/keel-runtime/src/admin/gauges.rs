//! [`AdminGauges`]: the lag and dead-letter gauges of a networked engine (NATS, Redis,
//! RabbitMQ, Kafka), asked of its administrative port at each scrape — the lag `keel groups
//! lag` computes (`groups.rs`) for every partition a group committed in, and the depth and
//! oldest age of every `<topic>.dlq`. The same series, by the same formulas, as the
//! embedded log's gauges, so a dashboard does not change with the engine. A
//! [`GaugeScope`] narrows both to the groups and topics a process consumes, where asking
//! every group of the cluster at each scrape would not fit in one (Kafka).
//!
//! Not here: engines that read their own storage (the embedded log) or a client's
//! statistics (Kafka's live members), and encoding (`Metrics`).

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use keel_core::{AdminTransport, Clock, SystemClock, TransportError};
use tokio::runtime::Handle;

use crate::admin::dead_letters::{self, DeadLetterError};
use crate::admin::groups::{self, GroupsError, age_ms};
use crate::dead_letter::dead_letter_topic;
use crate::limits::{DLQ_SUFFIX, GAUGE_SCRAPE_TIMEOUT, LAG_PARTITIONS_MAX};
use crate::metrics::{ConsumerLag, DeadLetterDepth, GaugeSource};

/// A [`GaugeSource`] over an administrative port. Its questions run on the tokio runtime
/// it was made on, from the scraping thread, which therefore must not be one of that
/// runtime's workers (`Metrics::encode` is called off the executor, as it documents).
#[derive(Debug)]
pub struct AdminGauges {
    admin: Arc<dyn AdminTransport>,
    runtime: Handle,
    /// What is reported: everything the port lists, or only this.
    scope: Option<Arc<GaugeScope>>,
}

/// The (group, topic) pairs a scoped [`AdminGauges`] reports, filled by a transport as its
/// routes join: the lag of those groups in every topic they committed in, and the dead
/// letters of those topics.
pub type GaugeScope = Mutex<BTreeSet<(String, String)>>;

impl AdminGauges {
    /// The gauges of the broker behind `admin`. Call it inside a tokio runtime (a
    /// transport's `connect`): the scrapes run their questions there.
    pub fn new(admin: Arc<dyn AdminTransport>) -> AdminGauges {
        AdminGauges {
            admin,
            runtime: Handle::current(),
            scope: None,
        }
    }

    /// The gauges of the groups and topics in `scope` only, as [`AdminGauges::new`]
    /// otherwise.
    pub fn scoped(admin: Arc<dyn AdminTransport>, scope: Arc<GaugeScope>) -> AdminGauges {
        AdminGauges {
            scope: Some(scope),
            ..AdminGauges::new(admin)
        }
    }

    /// The groups and the topics in scope, `None` when everything is.
    fn in_scope(&self) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
        let scope = self.scope.as_ref()?;
        let pairs = scope.lock().unwrap_or_else(|p| p.into_inner());
        Some((
            pairs.iter().map(|(group, _)| group.clone()).collect(),
            pairs.iter().map(|(_, topic)| topic.clone()).collect(),
        ))
    }
}

/// The answer of `question`, run on `runtime` from the scraping thread, or `None` (logged)
/// when it failed or took longer than [`GAUGE_SCRAPE_TIMEOUT`]: a gauge is left out rather
/// than reported wrong. Shared by every engine's gauges (SQS has its own questions).
pub fn scrape<T, E: fmt::Display>(
    runtime: &Handle,
    what: &str,
    question: impl Future<Output = Result<T, E>>,
) -> Option<T> {
    match runtime.block_on(tokio::time::timeout(GAUGE_SCRAPE_TIMEOUT, question)) {
        Ok(Ok(answer)) => Some(answer),
        Ok(Err(error)) => {
            tracing::warn!(%error, "the {what} gauges could not be read");
            None
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = GAUGE_SCRAPE_TIMEOUT.as_millis() as u64,
                "the {what} gauges took too long to read"
            );
            None
        }
    }
}

impl GaugeSource for AdminGauges {
    /// Only partitions with a commit are measured, as on the embedded log. Reading stops
    /// one past [`LAG_PARTITIONS_MAX`], so the runtime can say the rest were left out.
    fn lags(&self) -> Vec<ConsumerLag> {
        let admin = self.admin.as_ref();
        let now_ms = SystemClock.now_ms();
        let scope = self.in_scope();
        scrape(&self.runtime, "lag", async move {
            let mut out = Vec::new();
            let groups = match scope {
                Some((groups, _)) => groups.into_iter().collect(),
                None => admin.groups().await?,
            };
            for group in groups {
                let lags = match groups::group_lag(admin, &group, now_ms).await {
                    Ok(lags) => lags,
                    Err(GroupsError::GroupNotFound(_)) => continue,
                    Err(error) => return Err(error),
                };
                for lag in lags.into_iter().filter(|l| l.committed_offset.is_some()) {
                    if out.len() > LAG_PARTITIONS_MAX {
                        return Ok(out);
                    }
                    out.push(ConsumerLag {
                        topic: lag.topic,
                        group: lag.group,
                        partition: lag.partition,
                        events: lag.lag_events,
                        age_ms: Some(lag.lag_ms),
                    });
                }
            }
            Ok(out)
        })
        .unwrap_or_default()
    }

    fn dead_letters(&self) -> Vec<DeadLetterDepth> {
        let admin = self.admin.as_ref();
        let now_ms = SystemClock.now_ms();
        let scope = self.in_scope().map(|(_, topics)| {
            topics
                .iter()
                .map(|topic| dead_letter_topic(topic))
                .collect::<BTreeSet<String>>()
        });
        scrape(&self.runtime, "dead-letter", async move {
            let mut out = Vec::new();
            let topics = dead_letters::dead_letter_topics(admin).await?;
            let in_scope = |name: &str| scope.as_ref().is_none_or(|s| s.contains(name));
            for topic in topics.into_iter().filter(|t| in_scope(&t.name)) {
                let Some(source) = topic.name.strip_suffix(DLQ_SUFFIX) else {
                    continue;
                };
                let (depth, oldest_ms) = stored(admin, &topic.name).await?;
                out.push(DeadLetterDepth {
                    topic: source.to_string(),
                    depth,
                    oldest_age_ms: oldest_ms.map(|ts| age_ms(now_ms, ts)),
                });
            }
            Ok::<_, DeadLetterError>(out)
        })
        .unwrap_or_default()
    }
}

/// How many records `topic` stores, and the oldest timestamp among its partitions' first
/// records.
async fn stored(
    admin: &dyn AdminTransport,
    topic: &str,
) -> Result<(u64, Option<i64>), TransportError> {
    let mut depth = 0;
    let mut oldest_ms: Option<i64> = None;
    for range in admin.partition_offsets(topic).await? {
        if range.high_watermark <= range.log_start {
            continue;
        }
        depth += admin
            .records_between(
                topic,
                range.partition,
                range.log_start,
                range.high_watermark,
            )
            .await?;
        if let Some(ts) =
            groups::oldest_timestamp_ms(admin, topic, range.partition, range.log_start).await?
        {
            oldest_ms = Some(oldest_ms.map_or(ts, |o| o.min(ts)));
        }
    }
    Ok((depth, oldest_ms))
}
