//! `--brokers`: the operator verbs on a Kafka cluster (Apache Kafka, Redpanda, another
//! `keel serve`) instead of a data directory — the engine-neutral logic of
//! `keel_runtime::admin` run through `KafkaAdmin`, so `keel groups lag|reset` answers the
//! same on Kafka as on the embedded log.
//!
//! Not here: printing (`groups.rs`), or the logic itself.

use anyhow::Context;
use keel_kafka_client::{KafkaAdmin, KafkaConfig};
use keel_runtime::admin::groups::{self, GroupSummary, OffsetReset, PartitionLag, ResetTarget};

/// A Kafka cluster's administrative side, with the runtime its calls run on.
pub(crate) struct Cluster {
    runtime: tokio::runtime::Runtime,
    admin: KafkaAdmin,
}

impl Cluster {
    /// The cluster at `brokers` (`host:port[,host:port…]`); connects on the first call.
    pub(crate) fn connect(brokers: &str) -> anyhow::Result<Cluster> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let config = KafkaConfig::new(brokers).with_client_id("keel-cli");
        Ok(Cluster {
            runtime,
            admin: KafkaAdmin::connect(&config)?,
        })
    }

    pub(crate) fn list_groups(&self, now_ms: i64) -> anyhow::Result<Vec<GroupSummary>> {
        Ok(self
            .runtime
            .block_on(groups::list_groups(&self.admin, now_ms))?)
    }

    pub(crate) fn group_lag(&self, group: &str, now_ms: i64) -> anyhow::Result<Vec<PartitionLag>> {
        Ok(self
            .runtime
            .block_on(groups::group_lag(&self.admin, group, now_ms))?)
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
        self.runtime.block_on(async {
            let plan = groups::plan_reset(&self.admin, group, topic, partition, target).await?;
            if !dry_run {
                groups::apply_reset(&self.admin, group, &plan).await?;
            }
            Ok(plan)
        })
    }
}
