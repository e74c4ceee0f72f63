//! [`NatsMembership`]: one member of a group on one topic, holding partitions through
//! leases in a JetStream key-value bucket — NATS's own compare-and-set store, not
//! consensus written here.
//!
//! The bucket's maximum age is the group's session timeout, so a key not written for that
//! long is gone. Every heartbeat a member
//!
//! 1. keeps a *member slot* (`<topic>.<group>.m<i>`, one of as many slots as partitions):
//!    rewritten with the revision it last saw (a compare-and-set), or taken with a create
//!    when it has none;
//! 2. renews each partition lease it holds (`<topic>.<group>.p<n>`) the same way; a
//!    renewal refused means another member holds the partition now: the lease is fenced
//!    (its commits refused) and revoked;
//! 3. reads the slots: with `n` live members, the member at rank `r` (by slot number) is
//!    due the partitions `p` with `p mod n = r`;
//! 4. revokes the partitions it holds and is not due (the router drains and commits them,
//!    then the lease key is deleted), and creates the lease of each partition it is due and
//!    nobody holds.
//!
//! A member killed outright stops writing: its slot and leases age out after the session
//! timeout and the others take its partitions over. A member cut off from NATS for longer
//! than the session timeout finds its renewals refused and gives its partitions up.
//!
//! Not here: reading and committing a partition (`lease.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream::kv::Store;
use async_nats::jetstream::stream::{Config as StreamConfig, DiscardPolicy};
use bytes::Bytes;
use keel_core::{
    BoxFuture, GroupPolicy, Membership, MembershipEvent, Revocation, StartFrom, TransportError,
};
use tokio::sync::{mpsc, watch};

use crate::connection::{Connection, unavailable};
use crate::lease::NatsLease;

/// A route's group member on JetStream.
pub(crate) struct NatsMembership {
    events: mpsc::UnboundedReceiver<MembershipEvent>,
    leave: watch::Sender<bool>,
}

impl Membership for NatsMembership {
    fn next(&mut self) -> BoxFuture<'_, Option<MembershipEvent>> {
        Box::pin(self.events.recv())
    }

    fn leave(&mut self) {
        let _ = self.leave.send(true);
    }
}

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
pub(crate) async fn join(join: Join<'_>) -> Result<NatsMembership, TransportError> {
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
    let store = lease_bucket(&connection, policy).await?;
    let (events, receiver) = mpsc::unbounded_channel();
    let (leave, left) = watch::channel(false);
    let (released, released_rx) = mpsc::unbounded_channel();
    let member = Member {
        id: member_id(),
        store,
        connection,
        stream,
        topic: topic.to_string(),
        group: group.to_string(),
        partitions,
        start_from,
        slot: None,
        held: BTreeMap::new(),
        events,
        released,
    };
    tokio::spawn(member.run(policy.heartbeat_interval, left, released_rx));
    Ok(NatsMembership {
        events: receiver,
        leave,
    })
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
            unavailable(format!(
                "lease bucket '{bucket}': {}",
                created.map_or(e.to_string(), |c| c.to_string())
            ))
        })
}

/// A member id unique across processes: the process id, the time and a counter.
fn member_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

struct Member {
    id: String,
    store: Store,
    connection: Arc<Connection>,
    stream: async_nats::jetstream::stream::Stream,
    topic: String,
    group: String,
    partitions: u32,
    start_from: StartFrom,
    /// This member's slot and the revision it last wrote there.
    slot: Option<(u32, u64)>,
    held: BTreeMap<u32, Held>,
    events: mpsc::UnboundedSender<MembershipEvent>,
    /// Partitions whose revocation is done (drained and committed).
    released: mpsc::UnboundedSender<u32>,
}

/// A partition this member holds.
struct Held {
    /// The lease key's revision this member wrote last.
    revision: u64,
    fenced: Arc<AtomicBool>,
    revoking: bool,
}

impl Member {
    async fn run(
        mut self,
        heartbeat: std::time::Duration,
        mut left: watch::Receiver<bool>,
        mut released: mpsc::UnboundedReceiver<u32>,
    ) {
        let mut tick = tokio::time::interval(heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leaving = false;
        loop {
            tokio::select! {
                _ = tick.tick() => self.beat(leaving).await,
                Some(partition) = released.recv() => self.release(partition).await,
                changed = left.changed(), if !leaving => {
                    leaving = true;
                    let _ = changed;
                    self.revoke_all();
                }
                () = self.events.closed() => break,
            }
            if leaving && self.held.is_empty() {
                break;
            }
        }
        // Gone: the slot and any lease still held age out, or go now.
        if let Some((slot, revision)) = self.slot.take() {
            let key = self
                .connection
                .names
                .slot_key(&self.topic, &self.group, slot);
            let _ = self
                .store
                .delete_expect_revision(&key, Some(revision))
                .await;
        }
        for (partition, held) in std::mem::take(&mut self.held) {
            let _ = self
                .store
                .delete_expect_revision(&self.lease_key(partition), Some(held.revision))
                .await;
        }
    }

    fn lease_key(&self, partition: u32) -> String {
        self.connection
            .names
            .lease_key(&self.topic, &self.group, partition)
    }

    fn value(&self) -> Bytes {
        Bytes::from(self.id.clone())
    }

    async fn beat(&mut self, leaving: bool) {
        self.keep_slot().await;
        self.renew_leases().await;
        if leaving {
            return;
        }
        let Some(due) = self.due().await else {
            return;
        };
        let surplus: Vec<u32> = self
            .held
            .iter()
            .filter(|(p, held)| !held.revoking && !due.contains(p))
            .map(|(p, _)| *p)
            .collect();
        for partition in surplus {
            self.revoke(partition);
        }
        for partition in due {
            if !self.held.contains_key(&partition) {
                self.acquire(partition).await;
            }
        }
    }

    async fn keep_slot(&mut self) {
        let names = &self.connection.names;
        if let Some((slot, revision)) = self.slot {
            let key = names.slot_key(&self.topic, &self.group, slot);
            match self.store.update(&key, self.value(), revision).await {
                Ok(revision) => {
                    self.slot = Some((slot, revision));
                    return;
                }
                Err(error) => {
                    tracing::debug!(%error, key, "member slot lost");
                    self.slot = None;
                }
            }
        }
        for slot in 0..self.partitions {
            let key = names.slot_key(&self.topic, &self.group, slot);
            if let Ok(revision) = self.store.create(&key, self.value()).await {
                self.slot = Some((slot, revision));
                return;
            }
        }
    }

    async fn renew_leases(&mut self) {
        let partitions: Vec<(u32, u64)> = self.held.iter().map(|(p, h)| (*p, h.revision)).collect();
        for (partition, revision) in partitions {
            let key = self.lease_key(partition);
            let renewed = self.store.update(&key, self.value(), revision).await;
            let Some(held) = self.held.get_mut(&partition) else {
                continue;
            };
            match renewed {
                Ok(revision) => held.revision = revision,
                Err(error) => {
                    tracing::warn!(%error, key, "partition lease lost");
                    held.fenced.store(true, Ordering::SeqCst);
                    self.revoke(partition);
                }
            }
        }
    }

    /// The partitions due to this member; `None` while it has no slot (it keeps what it
    /// holds until it has one again).
    async fn due(&self) -> Option<Vec<u32>> {
        let (mine, _) = self.slot?;
        let mut live = Vec::new();
        for slot in 0..self.partitions {
            let key = self
                .connection
                .names
                .slot_key(&self.topic, &self.group, slot);
            match self.store.get(&key).await {
                Ok(Some(_)) => live.push(slot),
                Ok(None) => {}
                Err(_) => return None,
            }
        }
        let rank = live.iter().position(|s| *s == mine)? as u32;
        let members = live.len() as u32;
        Some(
            (0..self.partitions)
                .filter(|p| p % members == rank)
                .collect(),
        )
    }

    fn revoke(&mut self, partition: u32) {
        let Some(held) = self.held.get_mut(&partition) else {
            return;
        };
        if held.revoking {
            return;
        }
        held.revoking = true;
        let released = self.released.clone();
        let _ = self.events.send(MembershipEvent::Revoked(Revocation::new(
            partition,
            move || {
                let _ = released.send(partition);
            },
        )));
    }

    fn revoke_all(&mut self) {
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        for partition in partitions {
            self.revoke(partition);
        }
    }

    async fn release(&mut self, partition: u32) {
        let Some(held) = self.held.remove(&partition) else {
            return;
        };
        if !held.fenced.load(Ordering::SeqCst) {
            let _ = self
                .store
                .delete_expect_revision(&self.lease_key(partition), Some(held.revision))
                .await;
        }
    }

    async fn acquire(&mut self, partition: u32) {
        let Ok(revision) = self
            .store
            .create(&self.lease_key(partition), self.value())
            .await
        else {
            return;
        };
        let fenced = Arc::new(AtomicBool::new(false));
        self.held.insert(
            partition,
            Held {
                revision,
                fenced: fenced.clone(),
                revoking: false,
            },
        );
        let lease = NatsLease {
            connection: self.connection.clone(),
            stream: self.stream.clone(),
            topic: self.topic.clone(),
            group: self.group.clone(),
            partition,
            start_from: self.start_from,
            fenced,
            pull: std::sync::Mutex::new(None),
        };
        let _ = self.events.send(MembershipEvent::Assigned(Arc::new(lease)));
    }
}
