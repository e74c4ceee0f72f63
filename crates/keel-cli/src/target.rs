//! Where the operator verbs `keel groups` and `keel dlq` act: the data directory (opened
//! here, or reached through the `keel serve` that owns it: `control.rs`), or with
//! `--brokers` (or `KEEL_BROKERS`, or the config file's `brokers` entry: `brokers.rs`) a
//! Kafka cluster (`cluster.rs`, the `kafka` feature). One
//! dispatch for both verbs, so a verb answers the same whichever target it has.
//!
//! Not here: printing, or the logic (`keel_runtime::admin`, run by either target).

use std::path::Path;

use keel_embedded::admin::audit::AuditEntry;
use keel_embedded::admin::dead_letters::{
    CanaryOutcome, DeadLetterFilter, DeadLetterSummary, PurgeReport, ReplayReport,
};
use keel_embedded::admin::groups::{
    GroupDeletion, GroupSummary, OffsetReset, PartitionLag, ResetTarget,
};
use serde_json::Value;

use crate::brokers::Brokers;
use crate::control::{Control, Replay};

/// Where an operator verb acts: a data directory or its server, or a Kafka cluster.
pub(crate) enum Target {
    Keel(Control),
    #[cfg(feature = "kafka")]
    Cluster(Box<crate::cluster::Cluster>),
}

/// Calls `$call` on the target's data directory (or server) or on its cluster: every verb
/// both offer, with the same arguments.
macro_rules! dispatch {
    ($target:expr, $target_var:ident => $call:expr) => {
        match $target {
            Target::Keel($target_var) => $call,
            #[cfg(feature = "kafka")]
            Target::Cluster($target_var) => $call,
        }
    };
}

impl Target {
    pub(crate) fn open(
        data: &Path,
        server: Option<&str>,
        brokers: &Brokers,
    ) -> anyhow::Result<Target> {
        match &brokers.resolve()? {
            None => Ok(Target::Keel(Control::open(data, server)?)),
            #[cfg(feature = "kafka")]
            Some(brokers) => Ok(Target::Cluster(Box::new(crate::cluster::Cluster::connect(
                brokers,
            )?))),
            #[cfg(not(feature = "kafka"))]
            Some(_) => anyhow::bail!("--brokers needs a keel built with the `kafka` feature"),
        }
    }

    /// Whether the consumers run elsewhere while this command runs (a server or a
    /// cluster), so waiting for a canary's outcome can see it change.
    pub(crate) fn is_remote(&self) -> bool {
        match self {
            Target::Keel(control) => control.is_remote(),
            #[cfg(feature = "kafka")]
            Target::Cluster(_) => true,
        }
    }

    pub(crate) fn list_groups(&self, now_ms: i64) -> anyhow::Result<Vec<GroupSummary>> {
        dispatch!(self, t => t.list_groups(now_ms))
    }

    pub(crate) fn group_lag(&self, group: &str, now_ms: i64) -> anyhow::Result<Vec<PartitionLag>> {
        dispatch!(self, t => t.group_lag(group, now_ms))
    }

    /// See `Control::reset_group`; a cluster refuses a group whose members run, `force`
    /// or not.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reset_group(
        &self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        target: ResetTarget,
        dry_run: bool,
        force: bool,
        now_ms: i64,
    ) -> anyhow::Result<Vec<OffsetReset>> {
        match self {
            Target::Keel(control) => {
                control.reset_group(group, topic, partition, target, dry_run, force, now_ms)
            }
            #[cfg(feature = "kafka")]
            Target::Cluster(cluster) => {
                cluster.reset_group(group, topic, partition, target, dry_run)
            }
        }
    }

    /// Deletes `group` and records it in the audit log with `command`; refused while
    /// members of the group run where the target can tell (a server, a cluster).
    pub(crate) fn delete_group(
        &self,
        group: &str,
        command: String,
        now_ms: i64,
    ) -> anyhow::Result<GroupDeletion> {
        dispatch!(self, t => t.delete_group(group, command, now_ms))
    }

    pub(crate) fn dead_letter_summaries(
        &self,
        now_ms: i64,
    ) -> anyhow::Result<Vec<DeadLetterSummary>> {
        dispatch!(self, t => t.dead_letter_summaries(now_ms))
    }

    /// Dead letters as the JSON the CLI prints (see `StoredDeadLetter::to_json`).
    pub(crate) fn dead_letters_json(
        &self,
        topic: &str,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> anyhow::Result<Vec<Value>> {
        dispatch!(self, t => t.dead_letters_json(topic, filter, limit))
    }

    pub(crate) fn replay(
        &self,
        topic: &str,
        filter: DeadLetterFilter,
        how: &Replay,
        command: String,
        now_ms: i64,
    ) -> anyhow::Result<ReplayReport> {
        dispatch!(self, t => t.replay(topic, filter, how, command, now_ms))
    }

    pub(crate) fn canary_outcome(&self, id: &str) -> anyhow::Result<CanaryOutcome> {
        dispatch!(self, t => t.canary_outcome(id))
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
        dispatch!(self, t => t.purge(topic, filter, confirmed, command, now_ms))
    }

    /// The audit log; only the dead-letter topic of `topic` (it or its source) when given.
    pub(crate) fn history(&self, topic: Option<&str>) -> anyhow::Result<Vec<AuditEntry>> {
        dispatch!(self, t => t.history(topic))
    }
}
