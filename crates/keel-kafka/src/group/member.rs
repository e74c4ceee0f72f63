//! One member of a group as the coordinator sees it: who it is, what it offered, what it was
//! assigned, when it was last heard from, and the join or sync request it is waiting on.

use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot;

/// A protocol a member offered in its join, with the member's metadata for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protocol {
    /// The protocol name (for consumers: the assignor, such as `range` or `roundrobin`).
    pub(crate) name: String,
    /// Opaque to the broker: the leader decodes it (topics subscribed, owned partitions).
    pub(crate) metadata: Bytes,
}

/// A joined member of a group.
#[derive(Debug)]
pub(crate) struct Member {
    /// The id the coordinator handed out.
    pub(crate) id: String,
    /// `group.instance.id` of a static member.
    pub(crate) instance_id: Option<String>,
    /// The client id from the request header, shown by DescribeGroups.
    pub(crate) client_id: String,
    /// The peer's host, shown by DescribeGroups.
    pub(crate) client_host: String,
    /// Silence longer than this removes the member.
    pub(crate) session_timeout_ms: u64,
    /// How long a rebalance may wait for this member to rejoin.
    pub(crate) rebalance_timeout_ms: u64,
    /// Offered protocols in the member's order of preference.
    pub(crate) protocols: Vec<Protocol>,
    /// What the leader assigned it in the current generation.
    pub(crate) assignment: Bytes,
    /// Join order within the group: the earliest member becomes leader when one is needed.
    pub(crate) joined_seq: u64,
    /// When it last proved it was alive (heartbeat, join, sync, commit).
    pub(crate) last_heard_ms: u64,
    /// Its JoinGroup waiting for the rebalance to complete.
    pub(crate) join_waiter: Option<oneshot::Sender<JoinGroupResponse>>,
    /// Its SyncGroup waiting for the leader's assignments.
    pub(crate) sync_waiter: Option<oneshot::Sender<SyncGroupResponse>>,
}

impl Member {
    /// The member's metadata for `protocol` (empty if it did not offer it).
    pub(crate) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// Whether the member offered `protocol`.
    pub(crate) fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// When silence removes the member, if it can be removed for silence now: a member whose
    /// join or sync is parked is waiting on the coordinator, not silent, so the rebalance and
    /// sync deadlines govern it instead.
    pub(crate) fn session_deadline_ms(&self) -> Option<u64> {
        (self.join_waiter.is_none() && self.sync_waiter.is_none())
            .then_some(self.last_heard_ms + self.session_timeout_ms)
    }
}
