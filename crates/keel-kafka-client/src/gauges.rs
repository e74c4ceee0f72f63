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
use std::sync::{Arc, Mutex, OnceLock, Weak};

use keel_core::{Clock, SystemClock};
use keel_runtime::admin::gauges::{AdminGauges, GaugeScope};
use keel_runtime::{ConsumerLag, DeadLetterDepth, GaugeSource};
use tokio::runtime::Handle;

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
    config: KafkaConfig,
    /// The runtime the transport was made on, where the cluster's questions run; `None`
    /// when it was made outside one.
    runtime: Option<Handle>,
    /// The cluster's answers, made at the first scrape (a transport never scraped opens no
    /// admin clients); `None` when they cannot be asked (no runtime, no admin clients).
    cluster: OnceLock<Option<AdminGauges>>,
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
        KafkaGauges {
            members: Mutex::default(),
            scope: Arc::default(),
            config: config.clone(),
            runtime: Handle::try_current().ok(),
            cluster: OnceLock::new(),
        }
    }

    /// The cluster's side of the gauges, made on first use.
    fn cluster(&self) -> Option<&AdminGauges> {
        self.cluster
            .get_or_init(|| {
                let Some(runtime) = &self.runtime else {
                    tracing::warn!("a Kafka transport made outside a tokio runtime reports lag from its running members only, and no dead letters");
                    return None;
                };
                let _on_runtime = runtime.enter();
                match KafkaAdmin::connect(&self.config) {
                    Ok(admin) => Some(AdminGauges::scoped(Arc::new(admin), self.scope.clone())),
                    Err(error) => {
                        tracing::warn!(%error, "lag gauges from running members only, no dead-letter gauges");
                        None
                    }
                }
            })
            .as_ref()
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
        let Some(cluster) = self.cluster() else {
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
        self.cluster()
            .map(GaugeSource::dead_letters)
            .unwrap_or_default()
    }
}
