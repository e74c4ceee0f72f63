//! Topic lookups, creation and deletion on a Kafka cluster: how many partitions a topic
//! has (metadata), a topic created when missing, `<topic>.dlq` or `<topic>.retry` created
//! with the source topic's partition count — what the embedded bus does on its log, done
//! with the admin API —, a topic deleted; the metadata and watermarks `KafkaAdmin` reports.
//!
//! Not here: publishing records (`publisher.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keel_core::{TopicInfo, TransportError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::metadata::MetadataTopic;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::limits::{METADATA_TIMEOUT, TOPIC_VISIBLE_POLL};

/// The admin side of one cluster connection, shared by a publisher's clones.
pub(crate) struct Topics {
    admin: AdminClient<DefaultClientContext>,
    /// Companion topics (`.dlq`, `.retry`) known to exist, with their partition counts, so
    /// a dead letter or redelivery costs no admin round trip.
    known: Mutex<HashMap<String, u32>>,
}

impl Topics {
    pub(crate) fn new(config: &KafkaConfig) -> Result<Topics, rdkafka::error::KafkaError> {
        Ok(Topics {
            admin: config.admin().create()?,
            known: Mutex::new(HashMap::new()),
        })
    }

    /// The partition count of `topic`, `None` when the cluster does not have it.
    pub(crate) async fn partitions(
        self: &Arc<Self>,
        topic: &str,
    ) -> Result<Option<u32>, TransportError> {
        let topics = self.clone();
        let name = topic.to_string();
        tokio::task::spawn_blocking(move || topics.partitions_blocking(&name))
            .await
            .map_err(unavailable)?
    }

    /// [`Topics::partitions`] on the calling thread.
    pub(crate) fn partitions_blocking(&self, name: &str) -> Result<Option<u32>, TransportError> {
        Ok(self
            .metadata_blocking(name, |t| t.partitions().len() as u32)?
            .filter(|count| *count > 0))
    }

    /// `read` of the metadata of `name`, `None` when the cluster does not have it. Blocks.
    fn metadata_blocking<T>(
        &self,
        name: &str,
        read: impl FnOnce(&MetadataTopic) -> T,
    ) -> Result<Option<T>, TransportError> {
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(Some(name), METADATA_TIMEOUT)
            .map_err(|e| unavailable(format!("metadata of topic '{name}': {e}")))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .map(read))
    }

    /// Whether the metadata shows `name` with a leader for each of its partitions.
    async fn led(self: &Arc<Self>, name: &str) -> Result<bool, TransportError> {
        let topics = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let led = topics.metadata_blocking(&name, |t| {
                !t.partitions().is_empty()
                    && t.partitions()
                        .iter()
                        .all(|p| p.leader() >= 0 && p.error().is_none())
            })?;
            Ok(led == Some(true))
        })
        .await
        .map_err(unavailable)?
    }

    /// Every topic of the cluster but Kafka's internal ones (`__consumer_offsets`,
    /// `__transaction_state`, any `__` name), with its partition count, by name. Blocks.
    pub(crate) fn all(&self) -> Result<Vec<TopicInfo>, TransportError> {
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(None, METADATA_TIMEOUT)
            .map_err(|e| unavailable(format!("metadata of every topic: {e}")))?;
        let mut topics: Vec<TopicInfo> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
            .map(|t| TopicInfo {
                name: t.name().to_string(),
                partitions: t.partitions().len() as u32,
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// The first stored offset and the high watermark of `topic`/`partition`. Blocks.
    pub(crate) fn watermarks(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<(u64, u64), TransportError> {
        let (low, high) = self
            .admin
            .inner()
            .fetch_watermarks(topic, partition as i32, METADATA_TIMEOUT)
            .map_err(|e| match e.rdkafka_error_code() {
                Some(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
                ) => TransportError::UnknownPartition {
                    topic: topic.to_string(),
                    partition,
                },
                _ => unavailable(format!("watermarks of {topic}/{partition}: {e}")),
            })?;
        Ok((low.max(0) as u64, high.max(0) as u64))
    }

    /// The partition count of `name`, a companion of `source` (its `.dlq` or `.retry`),
    /// created with `source`'s partition count (and the cluster's default replication) if
    /// missing.
    pub(crate) async fn ensure_companion(
        self: &Arc<Self>,
        source: &str,
        name: &str,
    ) -> Result<u32, TransportError> {
        if let Some(partitions) = self.known().get(name) {
            return Ok(*partitions);
        }
        let partitions = match self.partitions(name).await? {
            Some(partitions) => partitions,
            None => {
                let partitions =
                    self.partitions(source)
                        .await?
                        .ok_or_else(|| TransportError::UnknownTopic {
                            topic: source.to_string(),
                        })?;
                self.create(name, partitions).await?;
                partitions
            }
        };
        self.known().insert(name.to_string(), partitions);
        Ok(partitions)
    }

    /// The partition count of `name`, created with `partitions` (and the cluster's default
    /// replication) if the cluster does not have it. Several processes may race to create
    /// it; the count is then whichever creation won.
    pub(crate) async fn ensure_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: u32,
    ) -> Result<u32, TransportError> {
        if let Some(count) = self.partitions(name).await? {
            return Ok(count);
        }
        self.create(name, partitions).await?;
        Ok(self.partitions(name).await?.unwrap_or(partitions))
    }

    /// Creates `name` and waits until the cluster's metadata shows it with a leader for
    /// every partition: on Kafka a broker learns of a new topic from the controller a moment
    /// after CreateTopics answers, and a consumer that subscribed in that moment found no
    /// such topic, a ListOffsets of it failed with NOT_LEADER_OR_FOLLOWER.
    async fn create(self: &Arc<Self>, name: &str, partitions: u32) -> Result<(), TransportError> {
        self.create_request(name, partitions).await?;
        let deadline = tokio::time::Instant::now() + METADATA_TIMEOUT;
        while !self.led(name).await? {
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(format!(
                    "topic '{name}' was created but does not show in the metadata after {METADATA_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(TOPIC_VISIBLE_POLL).await;
        }
        Ok(())
    }

    async fn create_request(&self, name: &str, partitions: u32) -> Result<(), TransportError> {
        let new = NewTopic::new(name, partitions as i32, TopicReplication::Fixed(-1));
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = self
            .admin
            .create_topics([&new], &options)
            .await
            .map_err(|e| unavailable(format!("creating '{name}': {e}")))?;
        for result in results {
            match result {
                Ok(_) => {}
                // Another worker or process created it first.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    let reason = format!("creating '{name}': {code}");
                    return Err(match code {
                        RDKafkaErrorCode::InvalidTopic
                        | RDKafkaErrorCode::InvalidPartitions
                        | RDKafkaErrorCode::InvalidReplicationFactor
                        | RDKafkaErrorCode::InvalidConfig
                        | RDKafkaErrorCode::PolicyViolation
                        | RDKafkaErrorCode::TopicAuthorizationFailed
                        | RDKafkaErrorCode::ClusterAuthorizationFailed => {
                            TransportError::Refused { reason }
                        }
                        _ => unavailable(reason),
                    });
                }
            }
        }
        Ok(())
    }

    /// Deletes `name` (DeleteTopics) and waits until the metadata no longer shows it: the
    /// controller answers before every broker has forgotten the topic, and a list asked in
    /// that moment would still name it.
    pub(crate) async fn delete(self: &Arc<Self>, name: &str) -> Result<(), TransportError> {
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = self
            .admin
            .delete_topics(&[name], &options)
            .await
            .map_err(|e| unavailable(format!("deleting '{name}': {e}")))?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    return Err(TransportError::UnknownTopic {
                        topic: name.to_string(),
                    });
                }
                Err((
                    _,
                    code @ (RDKafkaErrorCode::TopicDeletionDisabled
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::PolicyViolation
                    | RDKafkaErrorCode::InvalidTopic),
                )) => {
                    return Err(TransportError::Refused {
                        reason: format!("deleting '{name}': {code}"),
                    });
                }
                Err((_, code)) => return Err(unavailable(format!("deleting '{name}': {code}"))),
            }
        }
        self.known().remove(name);
        let deadline = tokio::time::Instant::now() + METADATA_TIMEOUT;
        while self.partitions(name).await?.is_some() {
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(format!(
                    "topic '{name}' was deleted but still shows in the metadata after {METADATA_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(TOPIC_VISIBLE_POLL).await;
        }
        Ok(())
    }

    /// The admin client, for the requests beyond topics' metadata (DeleteGroups,
    /// DescribeConfigs, AlterConfigs).
    pub(crate) fn client(&self) -> &AdminClient<DefaultClientContext> {
        &self.admin
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The port's error for a cluster that could not answer.
pub(crate) fn unavailable(reason: impl std::fmt::Display) -> TransportError {
    TransportError::Unavailable {
        reason: reason.to_string(),
    }
}
