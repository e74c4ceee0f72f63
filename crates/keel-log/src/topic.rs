//! A topic: a name, a configuration and its partitions, plus the record-to-partition mapping.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::TopicConfig;
use crate::error::TopicError;
use crate::limits::TOPIC_NAME_BYTES_MAX;
use crate::partition::Partition;
use keel_core::partition_for_key;

/// A topic with its partitions.
#[derive(Debug)]
pub struct Topic {
    name: String,
    /// Replaced whole by [`Topic::set_config`]; each partition holds the same copy.
    config: RwLock<TopicConfig>,
    partitions: Vec<Arc<Partition>>,
    round_robin: AtomicU32,
}

impl Topic {
    pub(crate) fn new(name: String, config: TopicConfig, partitions: Vec<Arc<Partition>>) -> Topic {
        Topic {
            name,
            config: RwLock::new(config),
            partitions,
            round_robin: AtomicU32::new(0),
        }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic's configuration now (a copy: `Log::alter_topic_config` may change it).
    pub fn config(&self) -> TopicConfig {
        self.config.read().expect("config lock poisoned").clone()
    }

    /// Makes the topic and every partition follow `config`. The caller has committed it to
    /// `topic.conf` first, so what runs is never ahead of what a restart would read.
    pub(crate) fn set_config(&self, config: TopicConfig) {
        for partition in &self.partitions {
            partition.set_config(config.clone());
        }
        *self.config.write().expect("config lock poisoned") = config;
    }

    /// All partitions, by number.
    pub fn partitions(&self) -> &[Arc<Partition>] {
        &self.partitions
    }

    /// Partition number `index`, if it exists.
    pub fn partition(&self, index: u32) -> Option<&Arc<Partition>> {
        self.partitions.get(index as usize)
    }

    /// The partition a record with this key goes to: murmur2 as the Java client for a key,
    /// round-robin for records without one.
    pub fn partition_for(&self, key: Option<&[u8]>) -> u32 {
        let count = self.partitions.len() as u32;
        match key {
            Some(key) => partition_for_key(key, count),
            None => self.round_robin.fetch_add(1, Ordering::Relaxed) % count,
        }
    }
}

/// The dead-letter audit log (`keel_runtime`'s admin tools write it): which dead letters
/// were replayed and purged, so a replay happens once.
const AUDIT_TOPIC: &str = "keel.dlq.audit";

/// Whether `name` is one of Keel's own topics, which no client deletes: names starting with
/// `__` (committed offsets, SASL users) or `_keel` (the schema registry's, as Confluent's
/// `_schemas`), and the dead-letter audit log. Deleting one would lose every group's
/// progress, the users, the registered schemas or the record of replays.
pub fn is_internal_topic(name: &str) -> bool {
    name.starts_with("__") || name.starts_with("_keel") || name == AUDIT_TOPIC
}

/// Checks a topic name against Kafka's rules, so any Kafka client can use it.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let invalid = |reason| {
        Err(TopicError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}
