//! `--brokers`: the operator verbs on a Kafka cluster (Apache Kafka, Redpanda, another
//! `keel serve`) instead of a data directory — the engine-neutral logic of
//! `keel_runtime::admin` run through `KafkaAdmin` (reads, commits) and `KafkaPublisher`
//! (a replay's events and the dead-letter audit log's records), so `keel groups lag|reset`
//! and `keel dlq` answer the same on Kafka as on the embedded log.
//!
//! A `keel serve` keeps its dead-letter audit log `keel.dlq.audit` as its own topic, which
//! no Kafka client may write: there `keel dlq replay|purge --brokers` fails at the audit
//! record, and so does `keel groups delete --brokers`; `--server` (its HTTP API) replays,
//! purges and deletes.
//!
//! Not here: printing (`groups.rs`, `dlq.rs`), or the logic itself.

use std::sync::Arc;

use anyhow::Context;
use keel_kafka_client::{KafkaAdmin, KafkaConfig, KafkaPublisher, diagnose};
use keel_runtime::admin::audit::{self, AuditEntry};
use keel_runtime::admin::dead_letters::{self, DeadLetterFilter, DeadLetterSummary, PurgeReport};
use keel_runtime::admin::groups::{
    self, GroupDeletion, GroupSummary, OffsetReset, PartitionLag, ResetTarget,
};
use keel_runtime::admin::replay::{self, CanaryOutcome, ReplayReport};
use serde_json::Value;

use crate::brokers::KafkaCluster;
use crate::control::Replay;

/// A Kafka cluster's administrative and publishing sides, with the runtime their calls run
/// on.
pub(crate) struct Cluster {
    runtime: tokio::runtime::Runtime,
    config: KafkaConfig,
    admin: KafkaAdmin,
    publisher: KafkaPublisher,
}

impl KafkaCluster {
    /// The client config of this cluster for `client_id`; a property Keel fixes is refused
    /// in one line.
    pub(crate) fn config(&self, client_id: &str) -> anyhow::Result<KafkaConfig> {
        self.properties.iter().try_fold(
            KafkaConfig::new(&self.brokers).with_client_id(client_id),
            |config, (key, value)| config.try_set(key, value).map_err(anyhow::Error::msg),
        )
    }
}

/// The ports of `cluster` for `keel console`'s pages. Call it inside the runtime that
/// serves them (the publisher's delivery reports are read there).
pub(crate) fn console_ports(cluster: &KafkaCluster) -> anyhow::Result<keel_server::Cluster> {
    let config = cluster.config("keel-console")?;
    Ok(keel_server::Cluster {
        name: format!("kafka://{cluster}"),
        admin: Arc::new(KafkaAdmin::connect(&config)?),
        publish: Arc::new(KafkaPublisher::new(&config)?),
    })
}

impl Cluster {
    /// The cluster's ports; they connect on the first call.
    pub(crate) fn connect(cluster: &KafkaCluster) -> anyhow::Result<Cluster> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let config = cluster.config("keel-cli")?;
        let publisher = {
            let _inside = runtime.enter();
            KafkaPublisher::new(&config)?
        };
        Ok(Cluster {
            admin: KafkaAdmin::connect(&config)?,
            publisher,
            runtime,
            config,
        })
    }

    /// Runs `work` on the cluster's runtime. A failure gets the brokers' own words when they
    /// refused this client (a wrong password, a failed TLS handshake), which a failed
    /// request alone reports as "Broker transport failure".
    fn run<T>(&self, work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        self.runtime
            .block_on(work)
            .map_err(|error| match diagnose(&self.config) {
                Some(reason) => error.context(format!("the brokers report: {reason}")),
                None => error,
            })
    }

    pub(crate) fn list_groups(&self, now_ms: i64) -> anyhow::Result<Vec<GroupSummary>> {
        self.run(async { Ok(groups::list_groups(&self.admin, now_ms).await?) })
    }

    pub(crate) fn group_lag(&self, group: &str, now_ms: i64) -> anyhow::Result<Vec<PartitionLag>> {
        self.run(async { Ok(groups::group_lag(&self.admin, group, now_ms).await?) })
    }

    /// Plans a reset and, unless `dry_run`, commits it; the cluster refuses it while
    /// members of the group run (`TransportError::GroupActive`).
    pub(crate) fn reset_group(
        &self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        target: ResetTarget,
        dry_run: bool,
    ) -> anyhow::Result<Vec<OffsetReset>> {
        self.run(async {
            let plan = groups::plan_reset(&self.admin, group, topic, partition, target).await?;
            if !dry_run {
                groups::apply_reset(&self.admin, group, &plan).await?;
            }
            Ok(plan)
        })
    }

    /// Deletes `group` (DeleteGroups) and records it in the audit log; a group without
    /// committed offsets is an error, so a misspelt name is not reported deleted, and one
    /// whose members run is refused (`TransportError::GroupActive`, Kafka's NON_EMPTY_GROUP).
    pub(crate) fn delete_group(
        &self,
        group: &str,
        command: String,
        now_ms: i64,
    ) -> anyhow::Result<GroupDeletion> {
        self.run(async {
            Ok(groups::delete_group(&self.admin, &self.publisher, group, command, now_ms).await?)
        })
    }

    pub(crate) fn dead_letter_summaries(
        &self,
        now_ms: i64,
    ) -> anyhow::Result<Vec<DeadLetterSummary>> {
        self.run(async { Ok(dead_letters::summaries(&self.admin, now_ms).await?) })
    }

    pub(crate) fn dead_letters_json(
        &self,
        topic: &str,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> anyhow::Result<Vec<Value>> {
        self.run(async {
            let found = dead_letters::dead_letters(&self.admin, topic, filter, limit).await?;
            Ok(found.iter().map(|d| d.to_json()).collect())
        })
    }

    pub(crate) fn replay(
        &self,
        topic: &str,
        filter: DeadLetterFilter,
        how: &Replay,
        command: String,
        now_ms: i64,
    ) -> anyhow::Result<ReplayReport> {
        self.run(async {
            let plan =
                replay::plan_replay(&self.admin, topic, filter, how.force, how.canary, command)
                    .await?;
            let plan = match &how.to_group {
                Some(group) => plan.to_group(group.clone()),
                None => plan,
            };
            Ok(replay::replay(&self.admin, &self.publisher, &plan, now_ms).await?)
        })
    }

    pub(crate) fn canary_outcome(&self, id: &str) -> anyhow::Result<CanaryOutcome> {
        self.run(async { Ok(replay::canary_outcome(&self.admin, id).await?) })
    }

    /// Purges when `confirmed`; otherwise reports what would be purged and writes nothing.
    pub(crate) fn purge(
        &self,
        topic: &str,
        filter: &DeadLetterFilter,
        confirmed: bool,
        command: String,
        now_ms: i64,
    ) -> anyhow::Result<PurgeReport> {
        self.run(async {
            Ok(if confirmed {
                dead_letters::purge(
                    &self.admin,
                    &self.publisher,
                    topic,
                    filter,
                    true,
                    command,
                    now_ms,
                )
                .await?
            } else {
                dead_letters::plan_purge(&self.admin, topic, filter).await?
            })
        })
    }

    /// The audit log; only the dead-letter topic of `topic` (it or its source) when given.
    pub(crate) fn history(&self, topic: Option<&str>) -> anyhow::Result<Vec<AuditEntry>> {
        self.run(async {
            let topic = match topic {
                Some(name) => Some(dead_letters::resolve_topic(&self.admin, name).await?.name),
                None => None,
            };
            Ok(audit::history(&self.admin, topic.as_deref()).await?)
        })
    }
}
