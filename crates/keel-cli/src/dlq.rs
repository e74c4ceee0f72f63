//! `keel dlq`: list, show, replay and purge dead letters, check a replay canary, and show
//! the audit log of replays and purges.
//!
//! Argument handling and printing only; the logic is `keel_runtime::admin::dead_letters`.
//! The log has one owning process, so no consumer runs while this command does: a canary is
//! two steps. `keel dlq replay --canary` replays one event and exits; once the consumers ran,
//! `keel dlq canary <id>` reports the outcome and `keel dlq replay --after-canary <id>`
//! continues only if the canary was handled.

use std::path::Path;

use anyhow::bail;
use chrono::Utc;
use keel_runtime::admin::audit;
use keel_runtime::admin::dead_letters::{
    self, CanaryOutcome, DeadLetterError, DeadLetterFilter, StoredDeadLetter,
};
use serde_json::json;

use crate::store::open_log;
use crate::time;

/// Flags of `keel dlq`.
#[derive(Debug, clap::Args)]
pub(crate) struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

/// Which dead letters: one by offset or event id, a filter, or all.
#[derive(Debug, Clone, clap::Args)]
struct Selection {
    /// Every dead letter of the topic.
    #[arg(long)]
    all: bool,
    /// Partition of the dead-letter topic.
    #[arg(long)]
    partition: Option<u32>,
    /// Offset in the dead-letter topic (in partition 0 unless --partition says otherwise).
    #[arg(long)]
    offset: Option<u64>,
    /// CloudEvent id.
    #[arg(long = "id", value_name = "EVENT_ID")]
    event_id: Option<String>,
    /// CloudEvent type.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// The group that gave up.
    #[arg(long)]
    group: Option<String>,
    /// Error kind: transient, permanent or decode.
    #[arg(long)]
    kind: Option<String>,
    /// Record key (the event's partition key).
    #[arg(long)]
    key: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// List dead-letter topics: pending, replayed and purged counts, age of the oldest, causes.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show dead letters with their keel_dlq_* headers decoded and the CloudEvent.
    Show {
        /// Dead-letter topic (`orders.dlq`) or its source topic (`orders`).
        topic: String,
        #[command(flatten)]
        selection: Selection,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Append dead letters back to their original topic, keeping their event ids. Dead
    /// letters replayed before are skipped unless --force; the replay stops at the dead
    /// letters that existed when it started.
    Replay {
        /// Dead-letter topic (`orders.dlq`) or its source topic (`orders`).
        topic: String,
        #[command(flatten)]
        selection: Selection,
        /// Replay dead letters that were replayed before, too.
        #[arg(long)]
        force: bool,
        /// Replay only the first matching dead letter; check it with `keel dlq canary <id>`.
        #[arg(long, conflicts_with = "after_canary")]
        canary: bool,
        /// Go on only if this canary was handled by its group.
        #[arg(long, value_name = "CANARY_ID")]
        after_canary: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Report a replay canary: handled, dead-lettered again, or pending. Exits non-zero
    /// unless it was handled.
    Canary {
        /// The canary's id, as printed by `keel dlq replay --canary`.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Mark dead letters purged: hidden from counts and never replayed. Without --yes,
    /// prints what would be purged and exits non-zero.
    Purge {
        /// Dead-letter topic (`orders.dlq`) or its source topic (`orders`).
        topic: String,
        #[command(flatten)]
        selection: Selection,
        /// Confirm the purge.
        #[arg(long)]
        yes: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the audit log: every replay, canary and purge, with its command line.
    History {
        /// Only this dead-letter topic (or its source topic).
        topic: Option<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Most dead letters `keel dlq show` prints.
const SHOW_LIMIT: usize = 100;

/// Runs `keel dlq`.
pub(crate) fn run(data: &Path, args: DlqArgs) -> anyhow::Result<()> {
    let log = open_log(data)?;
    let now_ms = Utc::now().timestamp_millis();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match args.command {
        DlqCommand::List { json } => {
            let summaries = dead_letters::summaries(&log, now_ms)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summaries)?);
                return Ok(());
            }
            println!(
                "{:<24} {:>8} {:>8} {:>8} {:>10}",
                "TOPIC", "PENDING", "REPLAYED", "PURGED", "OLDEST_S"
            );
            for s in &summaries {
                println!(
                    "{:<24} {:>8} {:>8} {:>8} {:>10.1}",
                    s.dead_letter_topic,
                    s.pending,
                    s.replayed,
                    s.purged,
                    s.oldest_pending_age_ms as f64 / 1000.0
                );
                for c in &s.causes {
                    println!(
                        "  group={} handler={} kind={}: {}",
                        c.group, c.handler, c.kind, c.pending
                    );
                }
            }
        }
        DlqCommand::Show {
            topic,
            selection,
            json,
        } => {
            let filter = selection.filter();
            let found = dead_letters::dead_letters(&log, &topic, &filter, SHOW_LIMIT)?;
            if found.is_empty() {
                bail!("no dead letter in '{topic}' matches");
            }
            for dead_letter in &found {
                if json {
                    println!("{}", show_json(dead_letter));
                } else {
                    print_dead_letter(dead_letter);
                }
            }
        }
        DlqCommand::Replay {
            topic,
            selection,
            force,
            canary,
            after_canary,
            json,
        } => {
            selection.check()?;
            if let Some(id) = after_canary {
                match dead_letters::canary_outcome(&log, &id)? {
                    CanaryOutcome::Handled => {}
                    CanaryOutcome::Pending => {
                        bail!("canary '{id}' is not handled yet: run the consumers, then try again")
                    }
                    CanaryOutcome::DeadLettered { partition, offset } => bail!(
                        "canary '{id}' failed again (dead letter at partition {partition} offset {offset}): nothing replayed"
                    ),
                }
            }
            let plan = dead_letters::plan_replay(
                &log,
                &topic,
                selection.filter(),
                force,
                canary,
                command_line,
            )?;
            let report = dead_letters::replay(&log, &plan, now_ms)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            for item in &report.replayed {
                let (topic, partition, offset) = item.target.clone().unwrap_or_default();
                println!(
                    "replayed {}/{}/{} (event {}) -> {topic}/{partition}/{offset}",
                    report.dead_letter_topic,
                    item.partition,
                    item.offset,
                    item.event_id.as_deref().unwrap_or("-")
                );
            }
            println!(
                "{}: {} replayed, {} skipped as replayed before (--force replays them), {} purged, {} malformed",
                report.id,
                report.replayed.len(),
                report.skipped_replayed,
                report.skipped_purged,
                report.skipped_malformed
            );
            if report.canary && !report.replayed.is_empty() {
                println!(
                    "canary: run the consumers, then `keel dlq canary {}`; go on with `keel dlq replay {} ... --after-canary {}`",
                    report.id, report.dead_letter_topic, report.id
                );
            }
        }
        DlqCommand::Canary { id, json } => {
            let outcome = dead_letters::canary_outcome(&log, &id)?;
            if json {
                println!("{}", serde_json::to_string(&outcome)?);
            }
            match outcome {
                CanaryOutcome::Handled => {
                    if !json {
                        println!("canary {id}: handled");
                    }
                }
                CanaryOutcome::Pending => bail!("canary '{id}' is not handled yet"),
                CanaryOutcome::DeadLettered { partition, offset } => bail!(
                    "canary '{id}' failed again: dead letter at partition {partition} offset {offset}"
                ),
            }
        }
        DlqCommand::Purge {
            topic,
            selection,
            yes,
            json,
        } => {
            selection.check()?;
            let filter = selection.filter();
            match dead_letters::purge(&log, &topic, &filter, yes, command_line, now_ms) {
                Ok(report) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        println!(
                            "{}: purged {} dead letter(s) of {}",
                            report.id,
                            report.purged.len(),
                            report.dead_letter_topic
                        );
                    }
                }
                Err(DeadLetterError::NotConfirmed { count }) => {
                    let plan = dead_letters::plan_purge(&log, &topic, &filter)?;
                    for item in &plan.purged {
                        println!(
                            "would purge {}/{}/{} (event {})",
                            plan.dead_letter_topic,
                            item.partition,
                            item.offset,
                            item.event_id.as_deref().unwrap_or("-")
                        );
                    }
                    bail!("would purge {count} dead letter(s); add --yes to purge them");
                }
                Err(error) => return Err(error.into()),
            }
        }
        DlqCommand::History { topic, json } => {
            let topic = match topic {
                Some(name) => Some(dead_letters::resolve_topic(&log, &name)?.name().to_string()),
                None => None,
            };
            let entries = audit::history(&log, topic.as_deref())?;
            if json {
                for entry in &entries {
                    println!("{}", serde_json::to_string(entry)?);
                }
                return Ok(());
            }
            println!(
                "{:<25} {:<8} {:<20} {:>6}  ID / COMMAND",
                "TIME", "ACTION", "TOPIC", "COUNT"
            );
            for e in &entries {
                println!(
                    "{:<25} {:<8} {:<20} {:>6}  {} / {}",
                    time::rfc3339(e.time_ms),
                    e.action.as_str(),
                    e.dead_letter_topic,
                    e.items.len(),
                    e.id,
                    e.command
                );
            }
        }
    }
    Ok(())
}

impl Selection {
    /// Replay and purge need an explicit selection: `--all` or at least one filter.
    fn check(&self) -> anyhow::Result<()> {
        if self.all == (self.filter() != DeadLetterFilter::default()) {
            bail!(
                "select dead letters with --all or with filters (--offset, --id, --type, --group, --kind, --key), not both and not neither"
            );
        }
        Ok(())
    }

    fn filter(&self) -> DeadLetterFilter {
        DeadLetterFilter {
            partition: self.partition.or(self.offset.map(|_| 0)),
            offset: self.offset,
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            group: self.group.clone(),
            kind: self.kind.clone(),
            key: self.key.clone(),
        }
    }
}

fn show_json(dead_letter: &StoredDeadLetter) -> serde_json::Value {
    let mut value = serde_json::to_value(dead_letter).expect("dead letters serialize");
    value["event"] = dead_letter
        .event
        .as_ref()
        .map_or(serde_json::Value::Null, |e| e.to_structured_json());
    value
}

fn print_dead_letter(d: &StoredDeadLetter) {
    println!("{}/{}/{}", d.dead_letter_topic, d.partition, d.offset);
    println!("  status:          {:?}", d.status);
    println!("  dead-lettered:   {}", time::rfc3339(d.timestamp_ms));
    println!("  key:             {}", d.key.as_deref().unwrap_or("-"));
    match &d.headers {
        Some(h) => {
            println!(
                "  original:        {}/{}/{}",
                h.topic, h.partition, h.offset
            );
            println!("  group:           {}", h.group);
            println!("  handler:         {}", h.handler);
            println!("  attempts:        {}", h.attempts);
            println!("  first failure:   {}", time::rfc3339(h.first_failure_ms));
            println!("  last failure:    {}", time::rfc3339(h.last_failure_ms));
            println!("  error kind:      {}", h.kind.as_str());
            println!("  error:           {}", h.error);
        }
        None => println!("  headers:         keel_dlq_* headers missing or malformed"),
    }
    if let Some(replay_of) = &d.replay_of {
        println!("  replay of:       {replay_of}");
    }
    match (&d.event, &d.event_error) {
        (Some(event), _) => println!("  event:           {}", json!(event.to_structured_json())),
        (None, Some(error)) => println!("  event:           not a CloudEvent: {error}"),
        (None, None) => {}
    }
}
