//! `keel topics`: create, list, describe, alter and delete topics, in the data directory or
//! through the `keel serve` that owns it (`control.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use keel_embedded::admin::topics::{TopicView, settings};
use keel_log::TopicConfig;

use crate::control::Control;
use crate::store::open_log;

/// Flags of `keel topics`.
#[derive(Debug, clap::Args)]
pub(crate) struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TopicsCommand {
    /// Create a topic.
    Create {
        /// Topic name: letters, digits, '.', '_' and '-', at most 249 bytes.
        name: String,
        /// Number of partitions (fixed for the topic's life).
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Durability of appends: always (fsync before acknowledging), interval:<ms>, never.
        #[arg(long, default_value = "always")]
        fsync: String,
        /// Any other topic setting, as KEY=VALUE (repeatable), by Kafka's name: retention.ms,
        /// retention.bytes (-1: no limit), cleanup.policy (delete|compact), max.message.bytes,
        /// segment.bytes, segment.ms, delete.retention.ms, keel.fsync, keel.preallocate.bytes
        /// (zeros written ahead of the active segment; 0: off); or by Keel's topic.conf name
        /// (retention_ms, cleanup, max_batch_bytes, ...).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// List topics with their partition count, record count and size.
    List,
    /// Show a topic's settings and each partition's offsets, segments and size.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Change settings of an existing topic while it runs (as kafka-configs --alter): the
    /// settings named change, the others keep their values; appends, reads and retention
    /// follow the new values at once, and a restart keeps them.
    Alter {
        /// Topic name.
        name: String,
        /// A setting to change, as KEY=VALUE (repeatable), by the names `create --config`
        /// takes: retention.ms, retention.bytes (-1: no limit), cleanup.policy,
        /// max.message.bytes, segment.bytes, segment.ms, delete.retention.ms, keel.fsync,
        /// keel.preallocate.bytes, or their topic.conf names. A lowered max.message.bytes applies to new events only.
        #[arg(long = "config", value_name = "KEY=VALUE", required = true)]
        config: Vec<String>,
    },
    /// Delete a topic and all its data.
    Delete {
        /// Topic name.
        name: String,
    },
}

/// Runs `keel topics`: on the data directory, or through the `keel serve` that owns it.
pub(crate) fn run(data: &Path, server: Option<&str>, args: TopicsArgs) -> anyhow::Result<()> {
    // Only `create` may make the data directory; the other verbs need one to exist.
    let control = match (&args.command, server) {
        (TopicsCommand::Create { .. }, None) if !data.is_dir() => Control::Local(open_log(data)?),
        _ => Control::open(data, server)?,
    };
    match args.command {
        TopicsCommand::Create {
            name,
            partitions,
            fsync,
            config,
        } => {
            let mut settings = TopicConfig::new(partitions);
            settings.set("fsync", &fsync)?;
            apply_settings(&mut settings, &config)?;
            control.create_topic(&name, settings)?;
            println!("created topic '{name}' with {partitions} partition(s)");
        }
        TopicsCommand::List => print_list(&control.topics()?),
        TopicsCommand::Describe { name } => print_description(&control.topic(&name)?),
        TopicsCommand::Alter { name, config } => alter(&control, &name, &config)?,
        TopicsCommand::Delete { name } => {
            control.delete_topic(&name)?;
            println!("deleted topic '{name}'");
        }
    }
    Ok(())
}

/// Changes the settings `pairs` name: applied to the topic's settings as they are, and only
/// those that differ sent (by `topic.conf` name), so the Kafka names and Keel's both work
/// whether the log is here or behind a server.
fn alter(control: &Control, name: &str, pairs: &[String]) -> anyhow::Result<()> {
    let current = control.topic(name)?.config;
    let mut config = TopicConfig::new(1);
    for (key, value) in &current {
        config.set(key, value)?;
    }
    apply_settings(&mut config, pairs)?;
    let changes: BTreeMap<String, String> = settings(&config)
        .into_iter()
        .filter(|(key, value)| current.get(key) != Some(value))
        .collect();
    if changes.is_empty() {
        println!("topic '{name}' already has these settings; nothing changed");
        return Ok(());
    }
    let altered = control.alter_topic(name, &changes)?;
    println!("altered topic '{name}':");
    for key in changes.keys() {
        let before = current.get(key).map_or("?", String::as_str);
        let after = altered.config.get(key).map_or("?", String::as_str);
        println!("  {key} = {after} (was {before})");
    }
    Ok(())
}

/// Applies `--config KEY=VALUE` pairs in order.
fn apply_settings(config: &mut TopicConfig, pairs: &[String]) -> anyhow::Result<()> {
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--config '{pair}': expected KEY=VALUE"))?;
        keel_kafka::apply_named_config(config, key.trim(), value.trim())?;
    }
    Ok(())
}

fn print_list(topics: &[TopicView]) {
    println!(
        "{:<32} {:>10} {:>14} {:>12}",
        "TOPIC", "PARTITIONS", "RECORDS", "BYTES"
    );
    for topic in topics {
        println!(
            "{:<32} {:>10} {:>14} {:>12}",
            topic.name,
            topic.partitions.len(),
            topic.events,
            topic.bytes
        );
    }
}

fn print_description(topic: &TopicView) {
    println!("topic: {}", topic.name);
    for (key, value) in &topic.config {
        println!("  {key} = {value}");
    }
    println!(
        "{:>9} {:>14} {:>14} {:>14} {:>9} {:>12}",
        "PARTITION", "START", "END", "RECORDS", "SEGMENTS", "BYTES"
    );
    for p in &topic.partitions {
        println!(
            "{:>9} {:>14} {:>14} {:>14} {:>9} {:>12}",
            p.partition,
            p.log_start_offset,
            p.high_watermark,
            p.high_watermark - p.log_start_offset,
            p.segments,
            p.bytes
        );
    }
}
