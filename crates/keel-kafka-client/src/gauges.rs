//! [`KafkaGauges`]: the lag and dead-letter gauges of a [`KafkaTransport`](crate::KafkaTransport),
//! from two sources:
//!
//! | series | running members of this process | the groups its routes joined, asked of the cluster |
//! |---|---|---|
//! | `keel_consumer_lag_events` | librdkafka's statistics (every `statistics.interval.ms`) | `keel groups lag`'s count (`keel_runtime::admin::gauges`) |
//! | `keel_consumer_lag_seconds` | the oldest record a member holds uncommitted (`uncommitted.rs`) | the age of the record at the commit |
//! | `keel_dead_letters`, `…_oldest_age_seconds` | — | the `<topic>.dlq` of the routes' topics |
//!
//! A partition a running member holds is reported from the member, which needs no request
//! and still answers while the cluster does not; the cluster is asked for the rest (a group
//! stopped in this process, a partition another process holds), within the runtime's scrape
//! limit. Only the groups and topics this process's routes joined are asked about: a
//! cluster's every group is too many for one scrape (282 on the CI broker, ~90 ms each).
//!
//! Not here: the gauges' formulas (`keel_runtime::admin::groups`) or encoding
//! (`keel_runtime::Metrics`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};

use keel_core::{Clock, SystemClock};
use keel_runtime::admin::gauges::{AdminGauges, GaugeScope};
use keel_runtime::{ConsumerLag, DeadLetterDepth, GaugeSource};

use crate::admin::KafkaAdmin;
use crate::config::KafkaConfig;
use crate::member::PartitionLags;
use crate::uncommitted::Uncommitted;

/// The gauges of one transport.
#[derive(Debug)]
pub(crate) struct KafkaGauges {
    /// The members this transport started; gone once the member is.
    members: Mutex<Vec<MemberLag>>,
    /// The (group, topic) pairs its routes joined, for `cluster`.
    scope: Arc<GaugeScope>,
    /// The cluster's answers; `None` where the transport was made outside a tokio runtime
    /// (the questions run on one) or the admin clients could not be made.
    cluster: Option<AdminGauges>,
}

/// What one member reports its lag from.
#[derive(Debug)]
struct MemberLag {
    group: String,
    topic: String,
    /// Events behind per assigned partition, from librdkafka's statistics.
    events: Weak<PartitionLags>,
    /// The records it holds uncommitted, for the age of the oldest.
    uncommitted: Weak<Uncommitted>,
}

impl KafkaGauges {
    pub(crate) fn new(config: &KafkaConfig) -> KafkaGauges {
        let scope = Arc::new(GaugeScope::default());
        let cluster = match (
            tokio::runtime::Handle::try_current(),
            KafkaAdmin::connect(config),
        ) {
            (Ok(_), Ok(admin)) => Some(AdminGauges::scoped(Arc::new(admin), scope.clone())),
            (Err(_), _) => {
                tracing::warn!(
                    "Kafka transport made outside a tokio runtime: lag gauges only from its running members, no dead-letter gauges"
                );
                None
            }
            (_, Err(error)) => {
                tracing::warn!(%error, "lag gauges only from running members, no dead-letter gauges");
                None
            }
        };
        KafkaGauges {
            members: Mutex::default(),
            scope,
            cluster,
        }
    }

    /// A member of `group` on `topic` joined: report it, and its group and topic from now
    /// on.
    pub(crate) fn add(
        &self,
        group: &str,
        topic: &str,
        events: Weak<PartitionLags>,
        uncommitted: Weak<Uncommitted>,
    ) {
        self.scope
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((group.to_string(), topic.to_string()));
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members.retain(|member| member.events.strong_count() > 0);
        members.push(MemberLag {
            group: group.to_string(),
            topic: topic.to_string(),
            events,
            uncommitted,
        });
    }

    /// The partitions librdkafka's last statistics list as assigned, each with the age of
    /// the oldest record its member holds uncommitted (see [`Uncommitted::age_ms`]).
    fn member_lags(&self) -> Vec<ConsumerLag> {
        let now_ms = SystemClock.now_ms();
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let mut lags = Vec::new();
        for member in members.iter() {
            let (Some(events), Some(uncommitted)) =
                (member.events.upgrade(), member.uncommitted.upgrade())
            else {
                continue;
            };
            let events = events.lock().unwrap_or_else(|p| p.into_inner());
            lags.extend(events.iter().map(|(partition, events)| ConsumerLag {
                topic: member.topic.clone(),
                group: member.group.clone(),
                partition: *partition,
                events: *events,
                age_ms: Some(uncommitted.age_ms(*partition, now_ms)),
            }));
        }
        lags
    }
}

impl GaugeSource for KafkaGauges {
    /// The running members' partitions, then the cluster's answer for every other
    /// partition the scope's groups committed in.
    fn lags(&self) -> Vec<ConsumerLag> {
        let mut lags = self.member_lags();
        let Some(cluster) = &self.cluster else {
            return lags;
        };
        let held: HashSet<(String, String, u32)> = lags
            .iter()
            .map(|l| (l.group.clone(), l.topic.clone(), l.partition))
            .collect();
        lags.extend(
            cluster
                .lags()
                .into_iter()
                .filter(|l| !held.contains(&(l.group.clone(), l.topic.clone(), l.partition))),
        );
        lags
    }

    fn dead_letters(&self) -> Vec<DeadLetterDepth> {
        self.cluster
            .as_ref()
            .map(GaugeSource::dead_letters)
            .unwrap_or_default()
    }
}
