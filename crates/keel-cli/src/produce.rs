//! `keel produce`: publish CloudEvents to a topic, from JSON lines on stdin or from flags.
//!
//! Events are stored in CloudEvents' Kafka binary mode (`ce_*` headers, the data as the
//! value, `partitionkey` as the key), the same bytes any Kafka client would produce. Input
//! is read in chunks; each chunk is parsed completely before any of it is appended, so a bad
//! line stops the command with nothing of its chunk written. An event whose type has a schema
//! in the data directory's registry must match it (as `keel serve` checks its API's
//! produces): a violation is a bad line, named by its path and rule; `--no-validate` skips
//! the check, and types without a schema are stored unchecked.
//!
//! While a `keel serve` owns the data directory (or with `--server`), each event goes to
//! the server's produce API as a structured CloudEvent, one request per line as it is read:
//! the server checks it against its type's schema and stores it as given, so a bad line
//! stops the command after the lines before it were stored (the error counts them), and
//! `--no-validate` is refused (the server always checks).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, bail};
use keel_core::Event;
use keel_log::{NewRecord, Topic};
use keel_runtime::event_record;
use keel_schema::{Registry, SCHEMAS_TOPIC, SchemaPublishError, check_event};
use serde_json::Value;

use crate::control::Control;

/// Lines parsed and appended together; bounds memory and the work a bad line discards.
const CHUNK_LINES_MAX: usize = 1000;
/// Default CloudEvents `source` of events produced from the command line.
const SOURCE_DEFAULT: &str = "/keel/cli";

/// Flags of `keel produce`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each stdin line is either a structured CloudEvent (it has \"specversion\") or the short form
  {\"key\": \"order-1\", \"type\": \"order.placed\", \"data\": {...}, \"subject\": \"...\", \"source\": \"...\"}
where only \"type\" is required. The key picks the partition (murmur2, as Kafka's Java client);
events without a key go to one partition per 1000 lines, picked at random (Kafka's sticky
partitioner).")]
pub(crate) struct ProduceArgs {
    /// Topic to publish to.
    topic: String,
    /// Publish one event with this CloudEvents `type` instead of reading stdin.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Partition key of the one event (`partitionkey`); also the Kafka record key.
    #[arg(long, requires = "event_type")]
    key: Option<String>,
    /// JSON data of the one event.
    #[arg(long, requires = "event_type")]
    data: Option<String>,
    /// Subject of the one event.
    #[arg(long, requires = "event_type")]
    subject: Option<String>,
    /// CloudEvents `source` of events that do not name one.
    #[arg(long, default_value = SOURCE_DEFAULT)]
    source: String,
    /// Store events without checking their data against the schema registered for their
    /// type (by default a violation refuses the event, naming the path that failed).
    #[arg(long)]
    no_validate: bool,
}

/// Runs `keel produce`.
pub(crate) fn run(data_dir: &Path, server: Option<&str>, args: ProduceArgs) -> anyhow::Result<()> {
    let control = Control::open(data_dir, server)?;
    let topic = control.topic(&args.topic)?.name;
    let (mut sink, registry) = match &control {
        Control::Local(log) => {
            // Opened only where schemas were registered: opening creates the registry's topic.
            let registry = match log.topic(SCHEMAS_TOPIC) {
                Some(_) if !args.no_validate => {
                    Some(Registry::open(log).context("cannot open the schema registry")?)
                }
                _ => None,
            };
            let topic = log
                .topic(&topic)
                .context("the topic was deleted meanwhile")?;
            (Sink::Log(topic, Vec::new()), registry)
        }
        Control::Remote(url) if args.no_validate => bail!(
            "--no-validate cannot be honoured through the server at {url}: its produce API checks every event against its type's schema"
        ),
        Control::Remote(_) => (Sink::Server(&control, &topic), None),
    };
    let check = |event: Event| -> anyhow::Result<Event> {
        if let Some(registry) = &registry {
            match check_event(registry, &event) {
                Ok(_) | Err(SchemaPublishError::UnknownType { .. }) => {}
                Err(error) => bail!("{error} (--no-validate stores it unchecked)"),
            }
        }
        Ok(event)
    };
    if let Some(event_type) = &args.event_type {
        let data = args.data.as_deref().unwrap_or("null");
        let data: Value =
            serde_json::from_str(data).with_context(|| format!("--data is not JSON: {data}"))?;
        let mut short = serde_json::Map::new();
        short.insert("type".into(), event_type.clone().into());
        short.insert("data".into(), data);
        if let Some(key) = &args.key {
            short.insert("key".into(), key.clone().into());
        }
        if let Some(subject) = &args.subject {
            short.insert("subject".into(), subject.clone().into());
        }
        let event = check(event_from_short_form(short, &args.source)?)?;
        sink.add(event)?;
        sink.flush()?;
        println!("produced 1 event to '{}'", args.topic);
        return Ok(());
    }
    let mut produced = 0usize;
    let stdin = BufReader::new(std::io::stdin().lock());
    for (index, line) in stdin.lines().enumerate() {
        let line = line.context("cannot read stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let event = parse_line(&line, &args.source)
            .and_then(&check)
            .with_context(|| {
                format!(
                    "line {}: {produced} earlier event(s) were produced, none after",
                    index + 1
                )
            })?;
        produced += sink.add(event)?;
    }
    produced += sink.flush()?;
    eprintln!("produced {produced} event(s) to '{}'", args.topic);
    Ok(())
}

/// Where the events go: the topic of the log this process opened, in chunks of
/// [`CHUNK_LINES_MAX`] events, or the produce API of the server that owns it, one by one.
enum Sink<'a> {
    Log(std::sync::Arc<Topic>, Vec<Event>),
    Server(&'a Control, &'a str),
}

impl Sink<'_> {
    /// Takes `event`; returns how many events were stored by this call.
    fn add(&mut self, event: Event) -> anyhow::Result<usize> {
        match self {
            Sink::Log(topic, chunk) => {
                chunk.push(event);
                if chunk.len() < CHUNK_LINES_MAX {
                    return Ok(0);
                }
                append_chunk(topic, std::mem::take(chunk))
            }
            Sink::Server(control, topic) => control.produce_one(topic, &event).map(|()| 1),
        }
    }

    /// Stores what is still held; returns how many events that was.
    fn flush(&mut self) -> anyhow::Result<usize> {
        match self {
            Sink::Log(topic, chunk) => append_chunk(topic, std::mem::take(chunk)),
            Sink::Server(..) => Ok(0),
        }
    }
}

/// A random number from the standard library's randomly keyed hasher (no generator crate
/// for one number per chunk).
fn random_u32() -> u32 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
}

/// One input line as an event: a structured CloudEvent, or the short form.
fn parse_line(line: &str, source: &str) -> anyhow::Result<Event> {
    let value: Value = serde_json::from_str(line).context("not valid JSON")?;
    let Value::Object(object) = value else {
        bail!("expected a JSON object");
    };
    if object.contains_key("specversion") {
        return Ok(Event::from_structured_json(line.as_bytes())?);
    }
    event_from_short_form(object, source)
}

fn event_from_short_form(
    mut object: serde_json::Map<String, Value>,
    source: &str,
) -> anyhow::Result<Event> {
    let mut text = |name: &str| -> anyhow::Result<Option<String>> {
        match object.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => bail!("'{name}' must be a string, not {other}"),
        }
    };
    let event_type = text("type")?.context("missing 'type' (the CloudEvents event type)")?;
    let source = text("source")?.unwrap_or_else(|| source.to_string());
    let key = text("key")?;
    let subject = text("subject")?;
    let mut event = Event::new(source, event_type);
    event.partitionkey = key;
    event.subject = subject;
    if let Some(data) = object.remove("data") {
        event = event.with_data_json(&data);
    }
    if let Some(unknown) = object.keys().next() {
        bail!("unknown field '{unknown}' (expected key, type, source, subject, data)");
    }
    event.validate()?;
    Ok(event)
}

/// Appends `events`, one batch per partition, and returns how many were appended. Keyed
/// events go where the key maps (as Kafka's Java client maps it); keyless events of one
/// chunk all go to one partition picked at random per chunk, as Kafka's sticky partitioner
/// fills one batch at a time, so keyless events of many runs spread over the partitions
/// instead of all landing in partition 0.
fn append_chunk(topic: &Topic, events: Vec<Event>) -> anyhow::Result<usize> {
    let count = events.len();
    let sticky = random_u32() % topic.partitions().len() as u32;
    let mut by_partition: BTreeMap<u32, Vec<NewRecord>> = BTreeMap::new();
    for event in events {
        let record = event_record(&event);
        let partition = match record.key.as_deref() {
            Some(key) => topic.partition_for(Some(key)),
            None => sticky,
        };
        by_partition.entry(partition).or_default().push(record);
    }
    for (partition, records) in by_partition {
        topic
            .partition(partition)
            .expect("partition_for returns an existing partition")
            .append(&records)
            .with_context(|| format!("cannot append to partition {partition}"))?;
    }
    Ok(count)
}
