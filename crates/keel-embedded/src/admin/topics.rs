//! Topics as an operator sees them: settings by their `topic.conf` names, size, and each
//! partition's offsets and segments — the one view `keel topics`, the server's API and its
//! console show, so they cannot disagree — and the one way they change a topic's settings.
//! Not here: creating or deleting topics (the log does that) or printing.

use std::collections::BTreeMap;

use keel_log::{Log, TopicConfig, TopicError};
use serde::{Deserialize, Serialize};

/// One topic: settings, size and partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopicView {
    /// The topic.
    pub name: String,
    /// Events stored (high watermark − log start, summed over partitions).
    pub events: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Settings, as `topic.conf` names them (`keel topics create --config` takes the same).
    pub config: BTreeMap<String, String>,
    /// Its partitions.
    pub partitions: Vec<PartitionView>,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartitionView {
    /// The partition.
    pub partition: u32,
    /// The first offset still stored.
    pub log_start_offset: u64,
    /// One past the last readable offset.
    pub high_watermark: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Segment files.
    pub segments: usize,
}

/// `config` by its `topic.conf` names (`partitions` included), as `TopicConfig::set` takes
/// them back.
pub fn settings(config: &TopicConfig) -> BTreeMap<String, String> {
    config
        .to_conf()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// The view of `topic`.
pub fn topic_view(topic: &keel_log::Topic) -> TopicView {
    let partitions: Vec<PartitionView> = (0u32..)
        .zip(topic.partitions())
        .map(|(partition, p)| PartitionView {
            partition,
            log_start_offset: p.log_start_offset(),
            high_watermark: p.high_watermark(),
            bytes: p.size_bytes(),
            segments: p.segment_count(),
        })
        .collect();
    TopicView {
        name: topic.name().to_string(),
        events: partitions
            .iter()
            .map(|p| p.high_watermark - p.log_start_offset)
            .sum(),
        bytes: partitions.iter().map(|p| p.bytes).sum(),
        config: settings(&topic.config()),
        partitions,
    }
}

/// Changes the settings `changes` names (by `topic.conf` names) of the topic `name` and keeps
/// the others, committed through [`Log::alter_topic_config`]: what `keel topics alter` and the
/// server's `PATCH /api/topics/{topic}/config` do. The partition count is not a setting here.
pub fn alter_settings(
    log: &Log,
    name: &str,
    changes: &BTreeMap<String, String>,
) -> Result<TopicView, TopicError> {
    let topic = log
        .topic(name)
        .ok_or_else(|| TopicError::NotFound(name.into()))?;
    let mut config = topic.config();
    for (key, value) in changes {
        if key == "partitions" {
            return Err(keel_log::ConfigError {
                key: key.clone(),
                reason: "partitions are added (CreatePartitions), not altered".into(),
            }
            .into());
        }
        config.set(key, value)?;
    }
    Ok(topic_view(&*log.alter_topic_config(name, config)?))
}
