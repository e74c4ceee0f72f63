//! `keel topics`: create, list, describe and delete topics, in the data directory or through
//! the `keel serve` that owns it (`control.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use keel_embedded::admin::topics::TopicView;

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
            let mut settings = BTreeMap::from([("fsync".to_string(), fsync)]);
            for pair in &config {
                let (key, value) = pair
                    .split_once('=')
                    .with_context(|| format!("--config '{pair}': expected KEY=VALUE"))?;
                settings.insert(key.trim().to_string(), value.trim().to_string());
            }
            control.create_topic(&name, partitions, &settings)?;
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
