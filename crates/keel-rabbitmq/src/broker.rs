//! [`Broker`]: what the publisher, the members and the administrative port share of one
//! RabbitMQ — the connection, the namespace, topics' partition counts (asked once, then
//! kept) — and the topic and group registries: streams listing what was created and who
//! joined, since RabbitMQ's AMQP side cannot list queues.
//!
//! Not here: group membership (`member.rs`), committed offsets (`offsets.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;
use keel_core::{Clock, NewRecord, SystemClock, TopicInfo};

use crate::client::{Client, ClientError};
use crate::codec::encode;
use crate::names::Names;
use crate::reader::{StreamStart, read};

/// One RabbitMQ as the transport's parts share it.
#[derive(Debug)]
pub(crate) struct Broker {
    pub(crate) client: Client,
    pub(crate) names: Names,
    /// Partition counts of topics known to exist.
    partitions: Mutex<HashMap<String, u32>>,
    /// Groups this process registered already.
    registered_groups: Mutex<HashSet<(String, String)>>,
    /// Held while streams are declared: RabbitMQ 3.10 closes the connection with an
    /// internal error when declarations of one new stream race, failing every request in
    /// flight on it (`Client::declare_stream`).
    declaring: tokio::sync::Mutex<()>,
}

impl Broker {
    pub(crate) fn new(client: Client, names: Names) -> Broker {
        Broker {
            client,
            names,
            partitions: Mutex::default(),
            registered_groups: Mutex::default(),
            declaring: tokio::sync::Mutex::default(),
        }
    }

    /// Wall-clock time in ms.
    pub(crate) fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    /// The partition count of `topic`; 0 when it does not exist.
    pub(crate) async fn partitions(&self, topic: &str) -> Result<u32, ClientError> {
        if let Some(count) = self.known(topic) {
            return Ok(count);
        }
        let count = self.client.partition_count(&self.names, topic).await?;
        if count > 0 {
            self.remember(topic, count);
        }
        Ok(count)
    }

    /// Forgets `topic`'s partition count (a publish found a partition missing).
    pub(crate) fn forget(&self, topic: &str) {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(topic);
    }

    /// The partition count of `topic`, created with `partitions` streams when missing, and
    /// listed in the topic registry.
    pub(crate) async fn create_topic(
        &self,
        topic: &str,
        partitions: u32,
    ) -> Result<u32, ClientError> {
        let _declaring = self.declaring.lock().await;
        let existing = self.partitions(topic).await?;
        if existing > 0 {
            return Ok(existing);
        }
        for partition in 0..partitions {
            self.client
                .declare_stream(&self.names.partition(topic, partition))
                .await?;
        }
        self.register(&self.names.topic_registry(), topic, &partitions.to_string())
            .await?;
        self.remember(topic, partitions);
        Ok(partitions)
    }

    /// Every topic in the registry that still has its streams, by name.
    pub(crate) async fn topics(&self) -> Result<Vec<TopicInfo>, ClientError> {
        let mut listed = BTreeSet::new();
        for (name, _) in self.registry(&self.names.topic_registry()).await? {
            listed.insert(name);
        }
        let mut topics = Vec::new();
        for name in listed {
            let partitions = self.partitions(&name).await?;
            if partitions > 0 {
                topics.push(TopicInfo { name, partitions });
            }
        }
        Ok(topics)
    }

    /// Whether `topic` is listed in the topic registry: created through Keel, so a missing
    /// partition stream of it is one RabbitMQ lost or cannot serve now, not a topic that
    /// never existed.
    pub(crate) async fn registered(&self, topic: &str) -> Result<bool, ClientError> {
        Ok(self
            .registry(&self.names.topic_registry())
            .await?
            .iter()
            .any(|(name, _)| name == topic))
    }

    /// Lists `group` on `topic` in the group registry (once per process).
    pub(crate) async fn register_group(&self, group: &str, topic: &str) -> Result<(), ClientError> {
        let entry = (group.to_string(), topic.to_string());
        if self
            .registered_groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&entry)
        {
            return Ok(());
        }
        let _declaring = self.declaring.lock().await;
        self.register(&self.names.group_registry(), group, topic)
            .await?;
        self.registered_groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(entry);
        Ok(())
    }

    /// Every group that joined, with the topics it joined on.
    pub(crate) async fn groups(&self) -> Result<BTreeMap<String, BTreeSet<String>>, ClientError> {
        let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (group, topic) in self.registry(&self.names.group_registry()).await? {
            groups.entry(group).or_default().insert(topic);
        }
        Ok(groups)
    }

    fn known(&self, topic: &str) -> Option<u32> {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .copied()
    }

    fn remember(&self, topic: &str, partitions: u32) {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_string(), partitions);
    }

    /// Appends (name, value) to the registry stream `registry`.
    async fn register(&self, registry: &str, name: &str, value: &str) -> Result<(), ClientError> {
        self.client.declare_stream(registry).await?;
        let record = NewRecord::new(Some(Bytes::from(name.to_string())), value.to_string());
        let (body, properties) = encode(&record, self.now_ms());
        self.client.publish(registry, &body, properties).await
    }

    /// Every (name, value) in the registry stream `registry`; none when it does not exist.
    async fn registry(&self, registry: &str) -> Result<Vec<(String, String)>, ClientError> {
        let records = match read(
            &self.client,
            registry,
            StreamStart::First,
            usize::MAX,
            |_| false,
        )
        .await
        {
            Ok(records) => records,
            Err(ClientError::NotFound(_)) => return Ok(Vec::new()),
            Err(other) => return Err(other),
        };
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let name = String::from_utf8(r.key?.to_vec()).ok()?;
                let value = String::from_utf8(r.value?.to_vec()).ok()?;
                Some((name, value))
            })
            .collect())
    }
}
