//! `keel topics`: create, list, describe and delete topics of the embedded log.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use keel_log::{Log, Topic, TopicConfig};

use crate::store::{existing_topic, open_existing_log, open_log};

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
        /// Any other topic setting, as KEY=VALUE (repeatable): segment_bytes, segment_ms,
        /// retention_ms, retention_bytes, cleanup (delete|compact), delete_retention_ms,
        /// max_batch_bytes.
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

/// Runs `keel topics`.
pub(crate) fn run(data: &Path, args: TopicsArgs) -> anyhow::Result<()> {
    // Only `create` may make the data directory; the other verbs need one to exist.
    let log = match args.command {
        TopicsCommand::Create { .. } => open_log(data)?,
        _ => open_existing_log(data)?,
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
                settings.set(key.trim(), value.trim())?;
            }
            log.create_topic(&name, settings)?;
            println!("created topic '{name}' with {partitions} partition(s)");
        }
        TopicsCommand::List => print_list(&log),
        TopicsCommand::Describe { name } => print_description(&existing_topic(&log, &name)?),
        TopicsCommand::Delete { name } => {
            log.delete_topic(&name)?;
            println!("deleted topic '{name}'");
        }
    }
    Ok(())
}

fn print_list(log: &Log) {
    println!(
        "{:<32} {:>10} {:>14} {:>12}",
        "TOPIC", "PARTITIONS", "RECORDS", "BYTES"
    );
    for topic in log.topics() {
        let partitions = topic.partitions();
        let records: u64 = partitions
            .iter()
            .map(|p| p.high_watermark() - p.log_start_offset())
            .sum();
        let bytes: u64 = partitions.iter().map(|p| p.size_bytes()).sum();
        println!(
            "{:<32} {:>10} {:>14} {:>12}",
            topic.name(),
            partitions.len(),
            records,
            bytes
        );
    }
}

fn print_description(topic: &Arc<Topic>) {
    println!("topic: {}", topic.name());
    for line in topic.config().to_conf().lines() {
        println!("  {line}");
    }
    println!(
        "{:>9} {:>14} {:>14} {:>14} {:>9} {:>12}",
        "PARTITION", "START", "END", "RECORDS", "SEGMENTS", "BYTES"
    );
    for (index, partition) in topic.partitions().iter().enumerate() {
        let (start, end) = (partition.log_start_offset(), partition.high_watermark());
        println!(
            "{:>9} {:>14} {:>14} {:>14} {:>9} {:>12}",
            index,
            start,
            end,
            end - start,
            partition.segment_count(),
            partition.size_bytes()
        );
    }
}
