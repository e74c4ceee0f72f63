//! The one-partition compacted topics where the broker keeps its own state (SASL users,
//! ACLs): `fsync = always`, so a change is durable before it is acknowledged, and compacted,
//! so the topic holds one record per key.

use std::sync::Arc;

use keel_log::{CleanupPolicy, FsyncPolicy, Log, Partition, TopicConfig};

/// The partition of the internal topic `name` of `log`, creating the topic when missing; the
/// error is the log's, as text.
pub(crate) fn open_state_partition(log: &Log, name: &str) -> Result<Arc<Partition>, String> {
    let topic = match log.topic(name) {
        Some(topic) => topic,
        None => {
            let config = TopicConfig::new(1)
                .with_fsync(FsyncPolicy::Always)
                .with_cleanup(CleanupPolicy::Compact);
            log.create_internal_topic(name, config)
                .map_err(|e| e.to_string())?
        }
    };
    Ok(topic.partitions()[0].clone())
}
