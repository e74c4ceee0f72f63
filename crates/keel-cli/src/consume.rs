//! `keel consume`: print a topic's events as JSON lines, alone or as a consumer group.
//!
//! Without `--group` nothing is remembered; with it, the group's committed offset is where
//! reading starts (the oldest stored event where it has none, as Keel's router starts and as
//! `keel groups lag` counts, so a topic deleted and created again is read whole) and it is
//! committed after each pass of printed events (at-least-once: an interrupted pass prints
//! its events again next time). `--follow` keeps polling; between polls the data directory
//! is released so `keel produce` in another terminal can append.
//!
//! A group shared by several processes needs a group coordinator: with `--brokers` (or
//! `KEEL_BROKERS`), or while a `keel serve` owns the data directory, `--group` joins the
//! group through that Kafka listener (`group_member.rs`), so members split the partitions
//! as Kafka consumers do. On a bare data directory a `--group` reader holds the directory
//! for its whole run, so a second one fails at once, naming it, instead of reading the same
//! events beside it. Without `--group`, a directory a server owns is read through its event
//! API (`served_consume.rs`).

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use keel_core::{CONTENT_TYPE_HEADER, Event, STRUCTURED_MEDIA_TYPE};
use keel_log::{Log, OffsetCommit, Record, Topic};
use serde_json::{Value, json};

use crate::brokers::{Brokers, KafkaCluster};
use crate::control::{Control, served_kafka};
use crate::store::{existing_topic, hold_log, open_existing_log};
use crate::time;

/// Bytes read from a partition per call.
const READ_BYTES_MAX: usize = 1024 * 1024;

/// Flags of `keel consume`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsumeArgs {
    /// Topic to read.
    pub(crate) topic: String,
    /// Start at the oldest stored event (default: the group's committed offset, else with
    /// --group the oldest stored event, else the end).
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    pub(crate) from_beginning: bool,
    /// Start at this offset in every partition read (a shorter partition from its end, as
    /// Kafka resets an offset out of range); past the end of all of them is an error.
    #[arg(long, conflicts_with = "from_time")]
    pub(crate) offset: Option<u64>,
    /// Start at the first event at or after this time (RFC 3339, or ms since the epoch).
    #[arg(long, value_name = "TIME")]
    pub(crate) from_time: Option<String>,
    /// Read only this partition.
    #[arg(long)]
    pub(crate) partition: Option<u32>,
    /// Read as this consumer group: start at its committed offsets and commit progress;
    /// through a server's or cluster's Kafka listener, share the partitions with the
    /// group's other members.
    #[arg(long)]
    pub(crate) group: Option<String>,
    /// Keep waiting for new events until Ctrl-C.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub(crate) max: Option<u64>,
    /// How often `--follow` looks for new events, in milliseconds.
    #[arg(long, default_value_t = 250, value_name = "MS")]
    pub(crate) poll_ms: u64,
    #[command(flatten)]
    brokers: Brokers,
}

/// Where one partition's reading stands.
struct Cursor {
    partition: u32,
    next_offset: u64,
    committed: Option<u64>,
}

/// Runs `keel consume`.
pub(crate) fn run(data: &Path, server: Option<&str>, args: ConsumeArgs) -> anyhow::Result<()> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")?;
    let Some(group) = &args.group else {
        if args.brokers.resolve()?.is_some() {
            bail!(
                "without --group, `keel consume` reads a data directory or its server: --brokers (or $KEEL_BROKERS, or the config file's brokers entry) needs --group, to read the cluster as a member of that group"
            );
        }
        return match Control::open(data, server)? {
            control @ Control::Remote(_) => {
                crate::served_consume::run(&control, &args, &interrupted)
            }
            Control::Local(log) => {
                drop(log);
                read(data, None, &args, &interrupted)
            }
        };
    };
    if let Some(url) = server {
        bail!(
            "--group through --server {url} cannot be honoured: a group joins through a Kafka listener (--brokers HOST:PORT names the server's)"
        );
    }
    if let Some(cluster) = args.brokers.resolve()? {
        return join_group(&cluster, group, &args, &interrupted);
    }
    if let Some(listener) = served_kafka(data) {
        let cluster = args.brokers.at(listener)?;
        return join_group(&cluster, group, &args, &interrupted);
    }
    let command = format!("keel consume {} --group {group}", args.topic);
    let held = hold_log(data, &command)?;
    read(data, Some(&held), &args, &interrupted)
}

/// Reads as a member of `group` through the Kafka listener of `cluster`.
#[cfg(feature = "kafka")]
fn join_group(
    cluster: &KafkaCluster,
    group: &str,
    args: &ConsumeArgs,
    interrupted: &AtomicBool,
) -> anyhow::Result<()> {
    crate::group_member::run(cluster, group, args, interrupted)
}

#[cfg(not(feature = "kafka"))]
fn join_group(_: &KafkaCluster, _: &str, _: &ConsumeArgs, _: &AtomicBool) -> anyhow::Result<()> {
    bail!(
        "`keel consume --group` through a Kafka listener (a running keel serve, or --brokers) needs a keel built with the `kafka` feature"
    )
}

/// Reads the data directory: `held` for the whole run (a group), else opened for each pass.
fn read(
    data: &Path,
    held: Option<&Log>,
    args: &ConsumeArgs,
    interrupted: &AtomicBool,
) -> anyhow::Result<()> {
    let mut cursors: Option<Vec<Cursor>> = None;
    let mut printed = 0u64;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    loop {
        let opened;
        let log = match held {
            Some(log) => log,
            None => {
                opened = open_existing_log(data)?;
                &opened
            }
        };
        let topic = existing_topic(log, &args.topic)?;
        let cursors = match &mut cursors {
            Some(cursors) => cursors,
            None => cursors.insert(start_cursors(log, &topic, args)?),
        };
        for cursor in cursors.iter_mut() {
            let partition = topic.partition(cursor.partition).expect("cursor partition");
            while cursor.next_offset < partition.high_watermark() {
                if args.max.is_some_and(|max| printed >= max) {
                    break;
                }
                let records = partition
                    .read_records(cursor.next_offset, READ_BYTES_MAX)
                    .with_context(|| format!("partition {}", cursor.partition))?;
                let first_unread = cursor.next_offset;
                for record in records.iter().filter(|r| r.offset >= first_unread) {
                    if args.max.is_some_and(|max| printed >= max) {
                        break;
                    }
                    if !print_record(&mut out, cursor.partition, record)? {
                        return commit(log, args, cursors);
                    }
                    cursor.next_offset = record.offset + 1;
                    printed += 1;
                }
                if cursor.next_offset == first_unread {
                    // Compaction can leave a batch whose remaining records all lie below the
                    // offset asked for; nothing more is readable in this pass.
                    break;
                }
            }
        }
        out.flush().ok();
        commit(log, args, cursors)?;
        if stop_after_pass(args, printed, interrupted) {
            return Ok(());
        }
    }
}

/// Whether reading ends after a pass (no `--follow`, `--max` reached, Ctrl-C); else waits
/// the poll interval first.
pub(crate) fn stop_after_pass(args: &ConsumeArgs, printed: u64, interrupted: &AtomicBool) -> bool {
    let done = args.max.is_some_and(|max| printed >= max);
    if !args.follow || done || interrupted.load(Ordering::SeqCst) {
        return true;
    }
    thread::sleep(Duration::from_millis(args.poll_ms));
    interrupted.load(Ordering::SeqCst)
}

fn start_cursors(log: &Log, topic: &Topic, args: &ConsumeArgs) -> anyhow::Result<Vec<Cursor>> {
    let count = topic.partitions().len() as u32;
    let indexes: Vec<u32> = match args.partition {
        Some(index) if index >= count => {
            bail!(
                "topic '{}' has no partition {index} (it has {count})",
                args.topic
            )
        }
        Some(index) => vec![index],
        None => (0..count).collect(),
    };
    let from_time = args
        .from_time
        .as_deref()
        .map(|text| time::parse_ms("--from-time", text))
        .transpose()?;
    let mut cursors = Vec::with_capacity(indexes.len());
    for index in indexes {
        let partition = topic.partition(index).expect("checked above");
        let (start, end) = (partition.log_start_offset(), partition.high_watermark());
        let committed = args.group.as_deref().and_then(|group| {
            log.group_offsets()
                .fetch(group, topic.name(), index)
                .map(|c| c.offset)
        });
        let next_offset = if args.from_beginning {
            start
        } else if let Some(offset) = args.offset {
            // Kafka's reset: a partition shorter than the offset is read from its end.
            offset.clamp(start, end)
        } else if let Some(time_ms) = from_time {
            partition.offset_for_timestamp(time_ms)?.unwrap_or(end)
        } else if args.group.is_some() {
            committed.unwrap_or(start).clamp(start, end)
        } else {
            end
        };
        cursors.push(Cursor {
            partition: index,
            next_offset,
            committed,
        });
    }
    if let Some(offset) = args.offset {
        let longest = topic
            .partitions()
            .iter()
            .map(|p| p.high_watermark())
            .max()
            .unwrap_or(0);
        if offset > longest {
            bail!(
                "--offset {offset} is past the end of every partition read (the longest ends at {longest})"
            );
        }
    }
    Ok(cursors)
}

/// Writes one record as a JSON line; `false` when stdout is closed (say, `| head`).
pub(crate) fn print_record(
    out: &mut impl Write,
    partition: u32,
    record: &Record,
) -> anyhow::Result<bool> {
    let mut line = json!({
        "partition": partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
    });
    // A CloudEvent in binary mode has `ce_specversion`; in structured mode its content type
    // names the CloudEvents format. Anything else is printed as a plain record.
    let is_cloud_event = record.headers.iter().any(|h| {
        h.key == "ce_specversion"
            || (h.key == CONTENT_TYPE_HEADER
                && h.value
                    .as_deref()
                    .is_some_and(|v| v.starts_with(STRUCTURED_MEDIA_TYPE.as_bytes())))
    });
    if is_cloud_event {
        let headers = record
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_deref()));
        match Event::from_record(record.key.as_deref(), headers, record.value.as_deref()) {
            Ok(event) => line["event"] = event.to_structured_json(),
            Err(error) => line["error"] = error.to_string().into(),
        }
    } else {
        line["key"] = record
            .key
            .as_ref()
            .map(|k| Value::from(String::from_utf8_lossy(k)))
            .unwrap_or(Value::Null);
        line["value"] = record
            .value
            .as_ref()
            .map(|v| value_json(v))
            .unwrap_or(Value::Null);
    }
    write_line(out, &line)
}

/// Writes one output line; `false` when stdout is closed (say, `| head`).
pub(crate) fn write_line(out: &mut impl Write, line: &Value) -> anyhow::Result<bool> {
    match writeln!(out, "{line}") {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(error).context("cannot write to stdout"),
    }
}

/// A stored value as printed: JSON when it parses, else (lossy) text.
pub(crate) fn value_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| String::from_utf8_lossy(bytes).into())
}

/// Commits every cursor that moved, as one atomic batch, when reading as a group.
fn commit(log: &Log, args: &ConsumeArgs, cursors: &mut [Cursor]) -> anyhow::Result<()> {
    let Some(group) = &args.group else {
        return Ok(());
    };
    let moved: Vec<OffsetCommit> = cursors
        .iter()
        .filter(|c| c.committed != Some(c.next_offset))
        .map(|c| OffsetCommit {
            topic: args.topic.clone(),
            partition: c.partition,
            offset: c.next_offset,
            metadata: String::new(),
        })
        .collect();
    if moved.is_empty() {
        return Ok(());
    }
    let now_ms = Utc::now().timestamp_millis();
    log.group_offsets()
        .commit(group, &moved, now_ms)
        .with_context(|| format!("cannot commit offsets of group '{group}'"))?;
    for cursor in cursors {
        cursor.committed = Some(cursor.next_offset);
    }
    Ok(())
}
