//! `keel groups`: list consumer groups, show their lag, reset and delete their committed
//! offsets.
//!
//! Argument handling and printing only; the logic is `keel_embedded::admin::groups`, run here
//! or (list, lag and reset) by the `keel serve` that owns the data directory (`control.rs`).
//! A reset through a server is refused while members of the group are connected, as Kafka
//! refuses it, unless forced; here, while this command holds the data directory, no consumer
//! of another process can commit offsets, so a reset never races one. A delete goes to the
//! server too (refused while members of the group run) and is recorded, with the offsets the
//! group had, in the audit log that `keel dlq history` prints. With `--brokers` (or
//! `KEEL_BROKERS`) list, lag, reset and delete act on a Kafka cluster (`cluster.rs`, the
//! `kafka` feature), which refuses a reset or a delete while members of the group run
//! (Kafka's NON_EMPTY_GROUP).

use std::path::Path;

use anyhow::{Context, bail};
use chrono::Utc;
use keel_embedded::admin::groups::{PartitionLag, ResetTarget};

use crate::brokers::Brokers;
use crate::target::Target;
use crate::time;

/// Flags of `keel groups`.
#[derive(Debug, clap::Args)]
pub(crate) struct GroupsArgs {
    #[command(flatten)]
    brokers: Brokers,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GroupsCommand {
    /// List groups with committed offsets, their topics and total lag.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show lag per topic and partition: events behind and age of the oldest unconsumed one.
    Lag {
        /// The group; every group when left out.
        group: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move a group's committed offsets. Refused while members are connected to the server
    /// that owns the data directory, unless --force; a group without committed offsets is an
    /// error.
    Reset {
        /// The group.
        group: String,
        /// The topic whose offsets move.
        #[arg(long)]
        topic: String,
        /// Only this partition (default: every partition of the topic).
        #[arg(long)]
        partition: Option<u32>,
        /// To the first stored offset: everything is read again.
        #[arg(long, group = "target")]
        to_earliest: bool,
        /// To the high watermark: everything stored is skipped.
        #[arg(long, group = "target")]
        to_latest: bool,
        /// To this offset (clamped to the stored range).
        #[arg(long, group = "target", value_name = "OFFSET")]
        to_offset: Option<u64>,
        /// To the first event at or after this time: RFC 3339 or ms since the epoch.
        #[arg(long, group = "target", value_name = "TIME")]
        to_time: Option<String>,
        /// Print the moves without committing them.
        #[arg(long)]
        dry_run: bool,
        /// Reset even while members of the group are connected to the server (their next
        /// commit may overwrite the reset).
        #[arg(long)]
        force: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a group: forget all its committed offsets (with --brokers: Kafka's
    /// DeleteGroups), recorded with those offsets in the audit log (`keel dlq history`).
    /// Refused while members of the group run; stop its consumers first.
    Delete {
        /// The group.
        group: String,
        /// Print JSON (the deletion's audit id and the offsets the group had) instead of a
        /// line.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `keel groups`.
pub(crate) fn run(data: &Path, server: Option<&str>, args: GroupsArgs) -> anyhow::Result<()> {
    let control = Target::open(data, server, &args.brokers)?;
    let now_ms = Utc::now().timestamp_millis();
    match args.command {
        GroupsCommand::List { json } => {
            let summaries = control.list_groups(now_ms)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summaries)?);
                return Ok(());
            }
            println!("{:<24} {:>10} {:>10}  TOPICS", "GROUP", "LAG", "LAG_S");
            for s in summaries {
                println!(
                    "{:<24} {:>10} {:>10}  {}",
                    s.group,
                    s.lag_events,
                    seconds(s.lag_ms),
                    s.topics.join(",")
                );
            }
        }
        GroupsCommand::Lag { group, json } => {
            let names = match group {
                Some(group) => vec![group],
                None => control
                    .list_groups(now_ms)?
                    .into_iter()
                    .map(|s| s.group)
                    .collect(),
            };
            let mut lags: Vec<PartitionLag> = Vec::new();
            for name in names {
                lags.extend(
                    control
                        .group_lag(&name, now_ms)
                        .with_context(|| format!("cannot measure lag of group '{name}'"))?,
                );
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&lags)?);
                return Ok(());
            }
            println!(
                "{:<20} {:<20} {:>4} {:>10} {:>10} {:>10} {:>10}",
                "GROUP", "TOPIC", "PART", "COMMITTED", "END", "LAG", "LAG_S"
            );
            for l in lags {
                let committed = l
                    .committed_offset
                    .map_or("-".to_string(), |c| c.to_string());
                println!(
                    "{:<20} {:<20} {:>4} {:>10} {:>10} {:>10} {:>10}",
                    l.group,
                    l.topic,
                    l.partition,
                    committed,
                    l.high_watermark,
                    l.lag_events,
                    seconds(l.lag_ms)
                );
            }
        }
        GroupsCommand::Reset {
            group,
            topic,
            partition,
            to_earliest,
            to_latest,
            to_offset,
            to_time,
            dry_run,
            force,
            json,
        } => {
            let target = if to_earliest {
                ResetTarget::Earliest
            } else if to_latest {
                ResetTarget::Latest
            } else if let Some(offset) = to_offset {
                ResetTarget::Offset(offset)
            } else if let Some(time) = to_time {
                ResetTarget::Time(time::parse_ms("--to-time", &time)?)
            } else {
                bail!("say where to: --to-earliest, --to-latest, --to-offset or --to-time");
            };
            let plan = control
                .reset_group(&group, &topic, partition, target, dry_run, force, now_ms)
                .with_context(|| format!("cannot reset group '{group}'"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
                return Ok(());
            }
            println!(
                "{:<20} {:>4} {:>10} {:>10}",
                "TOPIC", "PART", "BEFORE", "AFTER"
            );
            for r in &plan {
                let before = r.offset_before.map_or("-".to_string(), |c| c.to_string());
                println!(
                    "{:<20} {:>4} {:>10} {:>10}",
                    r.topic, r.partition, before, r.offset_after
                );
            }
            if dry_run {
                println!("dry run: nothing committed");
            }
        }
        GroupsCommand::Delete { group, json } => {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let deletion = control
                .delete_group(&group, command, now_ms)
                .with_context(|| format!("cannot delete group '{group}'"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&deletion)?);
                return Ok(());
            }
            println!(
                "deleted group '{group}' (committed offsets of {} partition(s), kept in the audit log as {})",
                deletion.offsets.len(),
                deletion.id
            );
        }
    }
    Ok(())
}

/// Milliseconds as seconds with one decimal.
fn seconds(ms: u64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}
