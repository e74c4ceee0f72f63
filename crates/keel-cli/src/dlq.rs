//! `keel dlq`: list, show, replay and purge dead letters, check a replay canary, and show
//! the audit log of replays and purges.
//!
//! Argument handling and printing only; the logic is `keel_runtime::admin`'s dead-letter
//! tools, run here on the data directory, by the `keel serve` that owns it (`control.rs`),
//! or with `--brokers` (or `KEEL_BROKERS`) on a Kafka cluster (`cluster.rs`).
//!
//! The canary: with a running server (whose consumers handle the replayed event),
//! `keel dlq replay --canary --canary-wait 60` replays one event, waits for its outcome and
//! replays the rest only if it was handled. Without a server, this process owns the log and
//! no consumer can run meanwhile, so the canary is two steps: `keel dlq replay --canary`
//! replays one event and exits; once the consumers ran, `keel dlq canary <id>` reports the
//! outcome and `keel dlq replay --after-canary <id>` continues only if it was handled. On a
//! cluster the consumers run elsewhere, so `--canary-wait` works as with a server.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::Utc;
use keel_embedded::admin::dead_letters::{CanaryOutcome, DeadLetterFilter, ReplayReport};
use serde_json::Value;

use crate::brokers::Brokers;
use crate::control::Replay;
use crate::target::Target;
use crate::time;

/// Flags of `keel dlq`.
#[derive(Debug, clap::Args)]
pub(crate) struct DlqArgs {
    #[command(flatten)]
    brokers: Brokers,
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
    #[arg(long, value_parser = ["transient", "permanent", "decode"])]
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
    /// Append dead letters back to their original topic (every group sees them again), or
    /// with --to-group straight to the group that gave up on them, keeping their event ids.
    /// Dead letters replayed before are skipped unless --force; the replay stops at the dead
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
        /// With --canary and a running server: wait up to this many seconds for the canary's
        /// outcome, then replay the rest only if it was handled.
        #[arg(long, requires = "canary", value_name = "SECONDS")]
        canary_wait: Option<u64>,
        /// Go on only if this canary was handled by its group.
        #[arg(long, value_name = "CANARY_ID")]
        after_canary: Option<String>,
        /// Replay only this group's dead letters, and only to this group: through the
        /// topic's redelivery topic `<topic>.retry`, which the group's router reads and
        /// every other group skips.
        #[arg(long, value_name = "GROUP")]
        to_group: Option<String>,
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
    /// Show the audit log: every replay, canary and purge, and every group deletion (`keel
    /// groups delete`), with its command line.
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
/// How often a waiting canary's outcome is asked for.
const CANARY_POLL: Duration = Duration::from_millis(200);

/// Runs `keel dlq`.
pub(crate) fn run(data: &Path, server: Option<&str>, args: DlqArgs) -> anyhow::Result<()> {
    let control = Target::open(data, server, &args.brokers)?;
    let now_ms = Utc::now().timestamp_millis();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match args.command {
        DlqCommand::List { json } => {
            let summaries = control.dead_letter_summaries(now_ms)?;
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
            let found = control.dead_letters_json(&topic, &filter, SHOW_LIMIT)?;
            if found.is_empty() {
                bail!("no dead letter in '{topic}' matches");
            }
            for dead_letter in &found {
                if json {
                    println!("{dead_letter}");
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
            canary_wait,
            after_canary,
            to_group,
            json,
        } => {
            selection.check()?;
            let mut wanted = selection.filter();
            if to_group.is_some() {
                wanted.group = to_group.clone();
            }
            selection.check_matches(&control, &topic, &wanted)?;
            if canary_wait.is_some() && !control.is_remote() {
                bail!(
                    "--canary-wait needs a running keel serve whose consumers handle the canary; without one, replay with --canary and go on with --after-canary"
                );
            }
            if let (Some(to), Some(group)) = (&to_group, &selection.group)
                && to != group
            {
                bail!(
                    "--to-group {to} replays only dead letters of group {to}, not of --group {group}"
                );
            }
            if let Some(id) = after_canary {
                match control.canary_outcome(&id)? {
                    CanaryOutcome::Handled => {}
                    CanaryOutcome::Pending => {
                        bail!("canary '{id}' is not handled yet: run the consumers, then try again")
                    }
                    CanaryOutcome::DeadLettered { partition, offset } => bail!(
                        "canary '{id}' failed again (dead letter at partition {partition} offset {offset}): nothing replayed"
                    ),
                }
            }
            let filter = selection.filter();
            let replay = |canary: bool| {
                let now_ms = Utc::now().timestamp_millis();
                let how = Replay {
                    force,
                    canary,
                    to_group: to_group.clone(),
                };
                control.replay(&topic, filter.clone(), &how, command_line.clone(), now_ms)
            };
            let report = replay(canary)?;
            print_replay(&report, json)?;
            let last = match canary_wait {
                Some(seconds) if !report.replayed.is_empty() => {
                    wait_for_canary(&control, &report.id, Duration::from_secs(seconds))?;
                    let rest = replay(false)?;
                    print_replay(&rest, json)?;
                    rest
                }
                None if report.canary && !report.replayed.is_empty() && !json => {
                    println!(
                        "canary: run the consumers, then `keel dlq canary {}`; go on with `keel dlq replay {} ... --after-canary {}`",
                        report.id, report.dead_letter_topic, report.id
                    );
                    report
                }
                _ => report,
            };
            refuse_incomplete(&last)?;
        }
        DlqCommand::Canary { id, json } => {
            let outcome = control.canary_outcome(&id)?;
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
            selection.check_matches(&control, &topic, &filter)?;
            let report = control.purge(&topic, &filter, yes, command_line, now_ms)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            if !report.confirmed {
                for item in &report.purged {
                    println!(
                        "would purge {}/{}/{} (event {})",
                        report.dead_letter_topic,
                        item.partition,
                        item.offset,
                        item.event_id.as_deref().unwrap_or("-")
                    );
                }
                bail!(
                    "would purge {} dead letter(s); add --yes to purge them",
                    report.purged.len()
                );
            }
            if !json {
                println!(
                    "{}: purged {} dead letter(s) of {}",
                    report.id,
                    report.purged.len(),
                    report.dead_letter_topic
                );
            }
        }
        DlqCommand::History { topic, json } => {
            let entries = control.history(topic.as_deref())?;
            if json {
                for entry in &entries {
                    println!("{}", serde_json::to_string(entry)?);
                }
                return Ok(());
            }
            println!(
                "{:<25} {:<12} {:<20} {:>6}  ID / COMMAND",
                "TIME", "ACTION", "SUBJECT", "COUNT"
            );
            for e in &entries {
                println!(
                    "{:<25} {:<12} {:<20} {:>6}  {} / {}",
                    time::rfc3339(e.time_ms),
                    e.action.as_str(),
                    e.subject(),
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

    /// A selection by filters must match at least one dead letter (replayed or purged ones
    /// count): one that matches none is a typo, not a replay of nothing. `--all` may match
    /// none.
    fn check_matches(
        &self,
        control: &Target,
        topic: &str,
        wanted: &DeadLetterFilter,
    ) -> anyhow::Result<()> {
        if *wanted == DeadLetterFilter::default() {
            return Ok(());
        }
        if control.dead_letters_json(topic, wanted, 1)?.is_empty() {
            match (&wanted.group, self.group.is_none()) {
                (Some(group), true) => bail!(
                    "group '{group}' gave up on no dead letter in '{topic}' (`keel dlq list` names the groups)"
                ),
                _ => bail!(
                    "no dead letter in '{topic}' matches the selection (`keel dlq show {topic} --all` lists them)"
                ),
            }
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

/// Prints a replay's report: one line per replayed event and a summary line.
fn print_replay(report: &ReplayReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for refused in &report.refused {
        println!(
            "refused {}/{}/{} (event {}): payload {}, the original is in {}",
            report.dead_letter_topic,
            refused.partition,
            refused.offset,
            refused.event_id.as_deref().unwrap_or("-"),
            refused.loss,
            refused.original
        );
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
        "{}: {} replayed, {} refused (payload incomplete), {} skipped as replayed before (--force replays them), {} purged, {} malformed",
        report.id,
        report.replayed.len(),
        report.refused.len(),
        report.skipped_replayed,
        report.skipped_purged,
        report.skipped_malformed
    );
    Ok(())
}

/// Fails when the replay refused dead letters that do not hold their whole event, naming
/// where each original is kept: the replay did not do all it was asked.
fn refuse_incomplete(report: &ReplayReport) -> anyhow::Result<()> {
    let Some(first) = report.refused.first() else {
        return Ok(());
    };
    bail!(
        "refused {} dead letter(s) of {} that do not hold their whole event (first: {}/{}, payload {}; the original is in {}): publish the originals again from where they are kept, then purge these",
        report.refused.len(),
        report.dead_letter_topic,
        first.partition,
        first.offset,
        first.loss,
        first.original
    )
}

/// Polls the canary's outcome until it is handled (`Ok`), failed again or `wait` is over.
fn wait_for_canary(control: &Target, id: &str, wait: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        match control.canary_outcome(id)? {
            CanaryOutcome::Handled => {
                println!("canary {id}: handled; replaying the rest");
                return Ok(());
            }
            CanaryOutcome::DeadLettered { partition, offset } => bail!(
                "canary '{id}' failed again (dead letter at partition {partition} offset {offset}): nothing more replayed"
            ),
            CanaryOutcome::Pending if Instant::now() >= deadline => bail!(
                "canary '{id}' was not handled within {} s: nothing more replayed; check it later with `keel dlq canary {id}`",
                wait.as_secs()
            ),
            CanaryOutcome::Pending => std::thread::sleep(CANARY_POLL),
        }
    }
}

/// Prints one dead letter (the JSON of `StoredDeadLetter::to_json`) for people.
fn print_dead_letter(d: &Value) {
    let text = |v: &Value| v.as_str().map_or_else(|| "-".to_string(), str::to_string);
    let when = |v: &Value| v.as_i64().map_or_else(|| "-".to_string(), time::rfc3339);
    println!(
        "{}/{}/{}",
        text(&d["dead_letter_topic"]),
        d["partition"],
        d["offset"]
    );
    println!("  status:          {}", text(&d["status"]));
    println!("  dead-lettered:   {}", when(&d["timestamp_ms"]));
    println!("  key:             {}", text(&d["key"]));
    let h = &d["headers"];
    if h.is_object() {
        println!(
            "  original:        {}/{}/{}",
            text(&h["topic"]),
            h["partition"],
            h["offset"]
        );
        println!("  group:           {}", text(&h["group"]));
        println!("  handler:         {}", text(&h["handler"]));
        println!("  attempts:        {}", h["attempts"]);
        println!("  first failure:   {}", when(&h["first_failure_ms"]));
        println!("  last failure:    {}", when(&h["last_failure_ms"]));
        println!("  error kind:      {}", text(&h["kind"]));
        println!("  error:           {}", text(&h["error"]));
    } else {
        println!("  headers:         keel_dlq_* headers missing or malformed");
    }
    if d["incomplete"].is_object() {
        println!(
            "  payload:         {} (never replayed; the original is in {})",
            text(&d["incomplete"]["loss"]),
            text(&d["incomplete"]["original"])
        );
    }
    if d["replay_of"].is_string() {
        println!("  replay of:       {}", text(&d["replay_of"]));
    }
    if d["event"].is_object() {
        println!("  event:           {}", d["event"]);
    } else if d["event_error"].is_string() {
        println!(
            "  event:           not a CloudEvent: {}",
            text(&d["event_error"])
        );
    }
}
