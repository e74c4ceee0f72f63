//! Group membership on Redis: `keel_runtime::lease_group`'s algorithm (member slots and
//! partition leases, `p mod n = rank`) over [`RedisLeases`] — a lease is a key holding the
//! member's id with a time to live: taken with `SET NX PX`, renewed and released by Lua
//! scripts that check the id first (a compare-and-set: a member never extends or deletes a
//! lease another member took after its own expired).
//!
//! Not here: reading and committing a partition (`lease.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use keel_core::{BoxFuture, GroupPolicy, Membership, PartitionLease, StartFrom, TransportError};
use keel_runtime::lease_group::{LeaseKeys, LeaseStore, lease_group, member_id};

use crate::connection::{Connection, unavailable};
use crate::keys::Keys;
use crate::lease::RedisLease;

/// Extends the lease `KEYS[1]` by `ARGV[2]` ms while it holds `ARGV[1]`.
const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes the lease `KEYS[1]` while it holds `ARGV[1]`.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

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
    let partitions =
        connection
            .partitions(topic)
            .await?
            .ok_or_else(|| TransportError::UnknownTopic {
                topic: topic.to_string(),
            })?;
    let owner = member_id();
    let store = RedisLeases {
        connection: connection.clone(),
        owner: owner.clone(),
        ttl: policy.session_timeout,
    };
    let keys = RedisKeys {
        keys: connection.keys.clone(),
        topic: topic.to_string(),
        group: group.to_string(),
    };
    let (topic, group) = (topic.to_string(), group.to_string());
    let new_lease = move |partition, fenced: Arc<AtomicBool>| {
        Arc::new(RedisLease {
            stream: connection.keys.stream(&topic, partition),
            lease_key: connection.keys.lease(&topic, &group, partition),
            connection: connection.clone(),
            group: group.clone(),
            partition,
            owner: owner.clone(),
            start_from,
            fenced,
            acked: AtomicU64::new(0),
            end: AtomicU64::new(0),
            replaying: AtomicBool::new(true),
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

/// The lease keys of one group on one topic.
struct RedisKeys {
    keys: Keys,
    topic: String,
    group: String,
}

impl LeaseKeys for RedisKeys {
    fn slot(&self, slot: u32) -> String {
        self.keys.slot(&self.topic, &self.group, slot)
    }

    fn partition(&self, partition: u32) -> String {
        self.keys.lease(&self.topic, &self.group, partition)
    }
}

/// One member's leases: keys holding its id, expiring after `ttl`.
struct RedisLeases {
    connection: Arc<Connection>,
    owner: String,
    ttl: Duration,
}

impl RedisLeases {
    async fn script(&self, script: &str, key: &str) -> Result<i64, TransportError> {
        redis::Script::new(script)
            .key(key)
            .arg(&self.owner)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut self.connection.redis())
            .await
            .map_err(|e| unavailable(format!("lease '{key}': {e}")))
    }
}

impl LeaseStore for RedisLeases {
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, TransportError>> {
        Box::pin(async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(&self.owner)
                .arg("NX")
                .arg("PX")
                .arg(self.ttl.as_millis() as u64)
                .query_async(&mut self.connection.redis())
                .await
                .map_err(|e| unavailable(format!("lease '{key}': {e}")))?;
            Ok(set.is_some())
        })
    }

    fn renew<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, TransportError>> {
        Box::pin(async move { Ok(self.script(RENEW_SCRIPT, key).await? == 1) })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.script(RELEASE_SCRIPT, key).await;
        })
    }

    fn is_held<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, TransportError>> {
        Box::pin(async move {
            redis::cmd("EXISTS")
                .arg(key)
                .query_async(&mut self.connection.redis())
                .await
                .map_err(|e| unavailable(format!("lease '{key}': {e}")))
        })
    }
}
