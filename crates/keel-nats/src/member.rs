//! Group membership on JetStream: `keel_runtime::lease_group`'s algorithm (member slots and
//! partition leases, `p mod n = rank`) over [`KvLeases`], a JetStream key-value bucket —
//! NATS's own compare-and-set store, not consensus written here.
//!
//! A lease is a key holding the member's id; taking it is a create (refused while the key
//! exists), renewing it an update expecting the revision this member wrote last, releasing
//! it a delete expecting that revision. The bucket's maximum age is the group's session
//! timeout (per-key TTLs need NATS 2.11), so a key not renewed for that long is gone.
//!
//! Not here: reading and committing a partition (`lease.rs`).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::kv::Store;
use async_nats::jetstream::stream::{Config as StreamConfig, DiscardPolicy};
use bytes::Bytes;
use keel_core::{BoxFuture, GroupPolicy, Membership, PartitionLease, StartFrom, TransportError};
use keel_runtime::lease_group::{LeaseKeys, LeaseStore, lease_group, member_id};

use crate::connection::{Connection, unavailable};
use crate::lease::NatsLease;
use crate::names::Names;

/// What a member needs to run.
pub(crate) struct Join<'a> {
    pub(crate) connection: Arc<Connection>,
    pub(crate) group: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) policy: &'a GroupPolicy,
    pub(crate) start_from: StartFrom,
}

/// Joins the group: the member runs on its own task until it left or its membership was
/// dropped.
pub(crate) async fn join(join: Join<'_>) -> Result<Box<dyn Membership>, TransportError> {
    let Join {
        connection,
        group,
        topic,
        policy,
        start_from,
    } = join;
    let stream = connection
        .stream(topic)
        .await?
        .ok_or_else(|| TransportError::UnknownTopic {
            topic: topic.to_string(),
        })?;
    let partitions = stream.cached_info().config.subjects.len() as u32;
    let store = KvLeases {
        store: lease_bucket(&connection, policy).await?,
        owner: Bytes::from(member_id()),
        revisions: Mutex::new(HashMap::new()),
    };
    let keys = NatsKeys {
        names: connection.names.clone(),
        topic: topic.to_string(),
        group: group.to_string(),
    };
    let (topic, group) = (topic.to_string(), group.to_string());
    let new_lease = move |partition, fenced: Arc<AtomicBool>| {
        Arc::new(NatsLease {
            connection: connection.clone(),
            stream: stream.clone(),
            topic: topic.clone(),
            group: group.clone(),
            partition,
            start_from,
            fenced,
            pull: Mutex::new(None),
        }) as Arc<dyn PartitionLease>
    };
    Ok(lease_group(
        Arc::new(store),
        Arc::new(keys),
        partitions,
        policy.heartbeat_interval,
        Box::new(new_lease),
    ))
}

/// The lease bucket of `policy`'s session timeout, created when missing.
async fn lease_bucket(
    connection: &Connection,
    policy: &GroupPolicy,
) -> Result<Store, TransportError> {
    let bucket = connection
        .names
        .lease_bucket(policy.session_timeout.as_millis());
    if let Ok(store) = connection.jetstream.get_key_value(&bucket).await {
        return Ok(store);
    }
    // The bucket's stream as `create_key_value` would make it, created directly: that call
    // first asks for the account's limits, which async-nats 0.51 cannot parse from a 2.9
    // server.
    let config = StreamConfig {
        name: format!("KV_{bucket}"),
        description: Some("keel partition leases and member slots".to_string()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: policy.session_timeout,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..StreamConfig::default()
    };
    let created = connection.jetstream.create_stream(config).await.err();
    connection
        .jetstream
        .get_key_value(&bucket)
        .await
        .map_err(|e| {
            let reason = created.map_or(e.to_string(), |c| c.to_string());
            unavailable(format!("lease bucket '{bucket}': {reason}"))
        })
}

/// The key-value keys of one group on one topic.
struct NatsKeys {
    names: Names,
    topic: String,
    group: String,
}

impl LeaseKeys for NatsKeys {
    fn slot(&self, slot: u32) -> String {
        self.names.slot_key(&self.topic, &self.group, slot)
    }

    fn partition(&self, partition: u32) -> String {
        self.names.lease_key(&self.topic, &self.group, partition)
    }
}

/// One member's leases in a key-value bucket, with the revision it wrote last per key.
struct KvLeases {
    store: Store,
    owner: Bytes,
    revisions: Mutex<HashMap<String, u64>>,
}

impl KvLeases {
    fn revisions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.revisions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LeaseStore for KvLeases {
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, TransportError>> {
        Box::pin(async move {
            match self.store.create(key, self.owner.clone()).await {
                Ok(revision) => {
                    self.revisions().insert(key.to_string(), revision);
                    Ok(true)
                }
                Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                    Ok(false)
                }
                Err(e) => Err(unavailable(format!("lease '{key}': {e}"))),
            }
        })
    }

    fn renew<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, TransportError>> {
        Box::pin(async move {
            let Some(revision) = self.revisions().get(key).copied() else {
                return Ok(false);
            };
            match self.store.update(key, self.owner.clone(), revision).await {
                Ok(revision) => {
                    self.revisions().insert(key.to_string(), revision);
                    Ok(true)
                }
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision =>
                {
                    self.revisions().remove(key);
                    Ok(false)
                }
                Err(e) => Err(unavailable(format!("lease '{key}': {e}"))),
            }
        })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let revision = self.revisions().remove(key);
            if let Some(revision) = revision {
                let _ = self.store.delete_expect_revision(key, Some(revision)).await;
            }
        })
    }

    fn is_held<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, TransportError>> {
        Box::pin(async move {
            self.store
                .get(key)
                .await
                .map(|value| value.is_some())
                .map_err(|e| unavailable(format!("lease '{key}': {e}")))
        })
    }
}
