//! Topic lookups and the dead-letter topic on a Kafka cluster: how many partitions a topic
//! has (metadata), and `<topic>.dlq` created with the source topic's partition count when it
//! is missing — what the embedded bus does in `keel-log`, done with the admin API.
//!
//! Not here: publishing records (`publisher.rs`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use keel_runtime::dead_letter::dead_letter_topic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::limits::METADATA_TIMEOUT;

/// The admin side of one cluster connection, shared by a publisher's clones.
pub(crate) struct Topics {
    admin: AdminClient<DefaultClientContext>,
    /// Dead-letter topics known to exist, so a dead letter costs no admin round trip.
    known: Mutex<HashSet<String>>,
}

impl Topics {
    pub(crate) fn new(config: &KafkaConfig) -> Result<Topics, rdkafka::error::KafkaError> {
        Ok(Topics {
            admin: config.admin().create()?,
            known: Mutex::new(HashSet::new()),
        })
    }

    /// The partition count of `topic`, `None` when the cluster does not have it.
    pub(crate) async fn partitions(self: &Arc<Self>, topic: &str) -> Result<Option<u32>, String> {
        let topics = self.clone();
        let name = topic.to_string();
        tokio::task::spawn_blocking(move || {
            let metadata = topics
                .admin
                .inner()
                .fetch_metadata(Some(&name), METADATA_TIMEOUT)
                .map_err(|e| format!("metadata of topic '{name}': {e}"))?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none())
                .map(|t| t.partitions().len() as u32)
                .filter(|count| *count > 0))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The name of `source`'s dead-letter topic, created with `source`'s partition count
    /// (and the cluster's default replication) if missing.
    pub(crate) async fn ensure_dead_letter_topic(
        self: &Arc<Self>,
        source: &str,
    ) -> Result<String, String> {
        let name = dead_letter_topic(source);
        if self.known().contains(&name) {
            return Ok(name);
        }
        if self.partitions(&name).await?.is_none() {
            let partitions = self
                .partitions(source)
                .await?
                .ok_or_else(|| format!("topic '{source}' does not exist"))?;
            let new = NewTopic::new(&name, partitions as i32, TopicReplication::Fixed(-1));
            let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
            let results = self
                .admin
                .create_topics([&new], &options)
                .await
                .map_err(|e| format!("creating '{name}': {e}"))?;
            for result in results {
                match result {
                    Ok(_) => {}
                    // Another worker or process created it first.
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => return Err(format!("creating '{name}': {code}")),
                }
            }
        }
        self.known().insert(name.clone());
        Ok(name)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}
