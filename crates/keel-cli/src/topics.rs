//! `keel topics`: create, list, describe and delete topics, in the data directory or through
//! the `keel serve` that owns it (`control.rs`).

use std::path::Path;

use anyhow::Context;
use keel_embedded::admin::topics::TopicView;
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
        /// segment.bytes, segment.ms, delete.retention.ms, keel.fsync; or by Keel's
        /// topic.conf name (retention_ms, cleanup, max_batch_bytes, ...).
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
            for pair in &config {
                let (key, value) = pair
                    .split_once('=')
                    .with_context(|| format!("--config '{pair}': expected KEY=VALUE"))?;
                apply_setting(&mut settings, key.trim(), value.trim())?;
            }
            control.create_topic(&name, settings)?;
            println!("created topic '{name}' with {partitions} partition(s)");
        }
        TopicsCommand::List => print_list(&control.topics()?),
        TopicsCommand::Describe { name } => print_description(&control.topic(&name)?),
        TopicsCommand::Delete { name } => {
            control.delete_topic(&name)?;
            println!("deleted topic '{name}'");
        }
    }
    Ok(())
}

/// Applies one setting named as Kafka names it (the names have dots) or as `topic.conf`
/// does, so `--config` takes what `kafka-topics --config` and the Kafka listener take.
fn apply_setting(config: &mut TopicConfig, key: &str, value: &str) -> anyhow::Result<()> {
    if key.contains('.') {
        keel_kafka::apply_kafka_config(config, key, Some(value))?;
    } else {
        config.set(key, value)?;
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
