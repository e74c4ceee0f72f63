//! One consumer group's membership state machine: Kafka's classic rebalance protocol
//! (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), with time passed in as `now_ms` so every
//! transition is a plain function call a test can drive.
//!
//! It does no I/O and never waits: a JoinGroup or SyncGroup that must wait for other members
//! gets [`Reply::Wait`], a receiver the group fills when the rebalance completes. Deadlines
//! (session expiry, rebalance timeout, the sync timeout) fire when the caller runs
//! [`Group::tick`] at or after [`Group::next_deadline_ms`].
//!
//! States, as Kafka names them:
//!
//! | state | meaning | leaves it when |
//! |---|---|---|
//! | `Empty` | no members (offsets may exist) | a member joins → `PreparingRebalance` |
//! | `PreparingRebalance` | waiting for every known member to (re)join | all joined (after the initial delay) or the rebalance timeout → `CompletingRebalance` (or `Empty` if nobody is left) |
//! | `CompletingRebalance` | joins answered; waiting for the leader's SyncGroup | leader syncs → `Stable`; a member joins, leaves or dies → `PreparingRebalance` |
//! | `Stable` | every member has its assignment | a member joins with new metadata, the leader rejoins, a member leaves, dies or misses the sync timeout → `PreparingRebalance` |

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::config::GroupConfig;
use super::coordinator::RequestContext;
use super::member::{Member, Protocol};
use super::protocol::{compatible, select_protocol};

/// Where a group is in its rebalance cycle (see the table in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignments.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl GroupState {
    /// The name Kafka's ListGroups and DescribeGroups use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// The answer to a request that may have to wait for other members.
#[derive(Debug)]
pub(crate) enum Reply<T> {
    /// The answer, now.
    Ready(T),
    /// The answer arrives when the rebalance or sync completes. A dropped sender means the
    /// coordinator went away.
    Wait(oneshot::Receiver<T>),
}

/// One group's membership and generation.
#[derive(Debug)]
pub(crate) struct Group {
    /// The group id, for log lines.
    id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out by the v4+ MEMBER_ID_REQUIRED handshake, with the time by which
    /// the member must join with them.
    pending: BTreeMap<String, u64>,
    /// `group.instance.id` → member id of each static member.
    instances: BTreeMap<String, String>,
    next_joined_seq: u64,
    initial_rebalance_delay_ms: u64,
    /// While preparing: complete no earlier than this (the initial delay of an empty group).
    join_not_before_ms: u64,
    /// While preparing: complete at this time whoever has rejoined.
    rebalance_deadline_ms: u64,
    /// Members of the current generation that have not sent SyncGroup yet, and when they
    /// are removed for it (the group's rebalance timeout after the join completed).
    awaiting_sync: BTreeSet<String>,
    sync_deadline_ms: u64,
}

impl Group {
    /// A new, empty group.
    pub(crate) fn new(id: &str, config: &GroupConfig) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            instances: BTreeMap::new(),
            next_joined_seq: 0,
            initial_rebalance_delay_ms: config.initial_rebalance_delay_ms.max(0) as u64,
            join_not_before_ms: 0,
            rebalance_deadline_ms: 0,
            awaiting_sync: BTreeSet::new(),
            sync_deadline_ms: 0,
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> GroupState {
        self.state
    }

    /// The protocol type of the group's members (`consumer` for consumers), once one joined.
    pub(crate) fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The protocol of the current generation.
    pub(crate) fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Members in join order.
    pub(crate) fn members(&self) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.joined_seq);
        members
    }

    /// Whether the group holds nothing worth keeping in memory (its offsets live in the log).
    pub(crate) fn is_removable(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.pending.is_empty()
    }

    /// Handles a JoinGroup.
    pub(crate) fn join(
        &mut self,
        request: &JoinGroupRequest,
        context: &RequestContext,
        config: &GroupConfig,
        now_ms: u64,
    ) -> Reply<JoinGroupResponse> {
        let member_id = request.member_id.as_str();
        let fail = |error: ResponseError| Reply::Ready(join_error(error, member_id));
        if !(config.session_timeout_ms_min..=config.session_timeout_ms_max)
            .contains(&request.session_timeout_ms)
        {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        let Some(protocols) = offered_protocols(request, config) else {
            return fail(ResponseError::InconsistentGroupProtocol);
        };
        if !self.accepts(request.protocol_type.as_str(), &protocols) {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let session_timeout_ms = request.session_timeout_ms as u64;
        // JoinGroup v0 has no rebalance timeout; Kafka uses the session timeout for it.
        let rebalance_timeout_ms = if request.rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            request.rebalance_timeout_ms as u64
        };
        let instance_id = request.group_instance_id.as_ref().map(|i| i.to_string());
        let mut joining = Member {
            id: member_id.to_string(),
            instance_id: instance_id.clone(),
            client_id: context.client_id.clone(),
            client_host: context.client_host.clone(),
            session_timeout_ms,
            rebalance_timeout_ms,
            protocols,
            assignment: Bytes::new(),
            joined_seq: 0,
            last_heard_ms: now_ms,
            join_waiter: None,
            sync_waiter: None,
        };

        if member_id.is_empty() {
            if self.members.len() + self.pending.len() >= config.group_members_max {
                return fail(ResponseError::GroupMaxSizeReached);
            }
            joining.id = format!("{}-{}", context.client_id, uuid::Uuid::now_v7());
            if let Some(instance) = &instance_id
                && let Some(old_id) = self.instances.get(instance).cloned()
            {
                return self.replace_static_member(&old_id, joining, now_ms);
            }
            if instance_id.is_none() && context.api_version >= 4 {
                // KIP-394: a dynamic member first learns its id and must join again with it,
                // so a client that times out and retries does not leave ghost members behind.
                let deadline_ms = now_ms + session_timeout_ms;
                self.pending.insert(joining.id.clone(), deadline_ms);
                return Reply::Ready(join_error(ResponseError::MemberIdRequired, &joining.id));
            }
            return self.add_member(joining, request.protocol_type.as_str(), now_ms);
        }
        if self.pending.remove(member_id).is_some() {
            return self.add_member(joining, request.protocol_type.as_str(), now_ms);
        }
        if self.is_fenced(instance_id.as_deref(), member_id) {
            return fail(ResponseError::FencedInstanceId);
        }
        let Some(existing) = self.members.get_mut(member_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        let unchanged = existing.protocols == joining.protocols;
        existing.session_timeout_ms = joining.session_timeout_ms;
        existing.rebalance_timeout_ms = joining.rebalance_timeout_ms;
        existing.protocols = joining.protocols;
        existing.client_id = joining.client_id;
        existing.client_host = joining.client_host;
        existing.last_heard_ms = now_ms;
        let is_leader = self.leader.as_deref() == Some(member_id);
        match self.state {
            GroupState::Empty => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                let reply = self.park_join(member_id);
                self.maybe_complete_join(now_ms);
                reply
            }
            // A repeated join of the current generation (a lost response, or a follower
            // rejoining without change) gets the generation's answer again.
            GroupState::CompletingRebalance if unchanged => {
                Reply::Ready(self.join_response(member_id))
            }
            GroupState::Stable if unchanged && !is_leader => {
                Reply::Ready(self.join_response(member_id))
            }
            // New metadata, or the leader asking for a new assignment (its subscription
            // changed): everyone rebalances.
            GroupState::CompletingRebalance | GroupState::Stable => {
                let reply = self.park_join(member_id);
                self.prepare_rebalance(now_ms);
                self.maybe_complete_join(now_ms);
                reply
            }
        }
    }

    /// Handles a SyncGroup.
    pub(crate) fn sync(
        &mut self,
        request: &SyncGroupRequest,
        now_ms: u64,
    ) -> Reply<SyncGroupResponse> {
        let member_id = request.member_id.as_str();
        let fail = |error: ResponseError| Reply::Ready(sync_error(error));
        if self.is_fenced(request.group_instance_id.as_deref(), member_id) {
            return fail(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return fail(ResponseError::UnknownMemberId);
        }
        if request.generation_id != self.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        let type_differs = request
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t.as_str()) != self.protocol_type.as_deref());
        let name_differs = request
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n.as_str()) != self.protocol.as_deref());
        if type_differs || name_differs {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                self.awaiting_sync.remove(member_id);
                let member = self.members.get_mut(member_id).expect("checked above");
                member.last_heard_ms = now_ms;
                Reply::Ready(self.sync_response(member_id))
            }
            GroupState::CompletingRebalance => {
                self.awaiting_sync.remove(member_id);
                let (sender, receiver) = oneshot::channel();
                let member = self.members.get_mut(member_id).expect("checked above");
                member.last_heard_ms = now_ms;
                member.sync_waiter = Some(sender);
                if self.leader.as_deref() == Some(member_id) {
                    self.apply_assignments(request);
                }
                Reply::Wait(receiver)
            }
        }
    }

    /// Handles a Heartbeat; returns its error code.
    pub(crate) fn heartbeat(&mut self, request: &HeartbeatRequest, now_ms: u64) -> i16 {
        let member_id = request.member_id.as_str();
        if self.is_fenced(request.group_instance_id.as_deref(), member_id) {
            return ResponseError::FencedInstanceId.code();
        }
        let generation = self.generation;
        let state = self.state;
        let Some(member) = self.members.get_mut(member_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if request.generation_id != generation {
            return ResponseError::IllegalGeneration.code();
        }
        member.last_heard_ms = now_ms;
        match state {
            GroupState::Empty => ResponseError::UnknownMemberId.code(),
            GroupState::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            GroupState::CompletingRebalance | GroupState::Stable => 0,
        }
    }

    /// Handles one member of a LeaveGroup; returns its error code.
    pub(crate) fn leave(&mut self, member_id: &str, instance_id: Option<&str>, now_ms: u64) -> i16 {
        if let Some(instance) = instance_id {
            return match self.instances.get(instance).cloned() {
                Some(current) if !member_id.is_empty() && current != member_id => {
                    ResponseError::FencedInstanceId.code()
                }
                Some(current) => {
                    self.remove_member(&current, "left the group", now_ms);
                    0
                }
                None => ResponseError::UnknownMemberId.code(),
            };
        }
        if self.pending.remove(member_id).is_some() {
            self.maybe_complete_join(now_ms);
            return 0;
        }
        if !self.members.contains_key(member_id) {
            return ResponseError::UnknownMemberId.code();
        }
        self.remove_member(member_id, "left the group", now_ms);
        0
    }

    /// Checks that a group-managed offset commit comes from a current member of the current
    /// generation (and counts as a sign of life). `generation < 0` on an empty group is a
    /// commit by a client that only stores offsets here and is always allowed. A
    /// `transactional` commit (TxnOffsetCommit) naming no member is allowed too (before v3
    /// it cannot name one; the producer's epoch fences zombies), and is not held back by a
    /// rebalance — Kafka's `validateOffsetCommit` rules.
    pub(crate) fn check_commit(
        &mut self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        transactional: bool,
        now_ms: u64,
    ) -> Result<(), ResponseError> {
        if self.is_fenced(instance_id, member_id) {
            return Err(ResponseError::FencedInstanceId);
        }
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if transactional && generation < 0 && member_id.is_empty() && instance_id.is_none() {
            return Ok(());
        }
        let current = self.generation;
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if generation != current {
            return Err(ResponseError::IllegalGeneration);
        }
        if !transactional && self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        // A commit while preparing a rebalance is the member saving its work before it
        // rejoins (its partitions are being revoked): allowed, as in Kafka.
        member.last_heard_ms = now_ms;
        Ok(())
    }

    /// Fires every deadline due at `now_ms`: unused handshake ids expire, silent members are
    /// removed, a rebalance past its timeout completes with whoever rejoined, and members that
    /// never sent SyncGroup are removed.
    pub(crate) fn tick(&mut self, now_ms: u64) {
        let stale: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, deadline)| **deadline <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            self.pending.remove(id);
        }
        let silent: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline_ms().is_some_and(|d| d <= now_ms))
            .map(|m| m.id.clone())
            .collect();
        for id in &silent {
            self.remove_member(id, "session timed out", now_ms);
        }
        let syncing = matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        );
        if syncing && !self.awaiting_sync.is_empty() && self.sync_deadline_ms <= now_ms {
            let late: Vec<String> = std::mem::take(&mut self.awaiting_sync)
                .into_iter()
                .collect();
            for id in &late {
                self.remove_member(id, "sent no SyncGroup within the rebalance timeout", now_ms);
            }
        }
        self.maybe_complete_join(now_ms);
    }

    /// The earliest time [`Group::tick`] has something to do, if any.
    pub(crate) fn next_deadline_ms(&self) -> Option<u64> {
        let pending = self.pending.values().copied();
        let sessions = self
            .members
            .values()
            .filter_map(Member::session_deadline_ms);
        let join = (self.state == GroupState::PreparingRebalance).then(|| {
            if self.all_joined() {
                self.join_not_before_ms.min(self.rebalance_deadline_ms)
            } else {
                self.rebalance_deadline_ms
            }
        });
        let syncing = matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && !self.awaiting_sync.is_empty();
        let sync = syncing.then_some(self.sync_deadline_ms);
        pending.chain(sessions).chain(join).chain(sync).min()
    }

    /// Whether a joiner offering `protocols` of `protocol_type` fits the group.
    fn accepts(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        let offered: Vec<&str> = protocols.iter().map(|p| p.name.as_str()).collect();
        self.protocol_type.as_deref() == Some(protocol_type)
            && compatible(&self.members(), &offered)
    }

    /// A static member's instance id is registered to another member id.
    fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|instance| self.instances.get(instance))
            .is_some_and(|registered| registered != member_id)
    }

    fn add_member(
        &mut self,
        mut member: Member,
        protocol_type: &str,
        now_ms: u64,
    ) -> Reply<JoinGroupResponse> {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_string());
        }
        member.joined_seq = self.next_joined_seq;
        self.next_joined_seq += 1;
        if let Some(instance) = &member.instance_id {
            self.instances.insert(instance.clone(), member.id.clone());
        }
        let id = member.id.clone();
        self.members.insert(id.clone(), member);
        let reply = self.park_join(&id);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now_ms);
        }
        self.maybe_complete_join(now_ms);
        reply
    }

    /// A static member came back with a new member id: the old id is fenced and the new one
    /// takes over its place and assignment. A known follower with unchanged metadata rejoins
    /// a stable group without a rebalance (KIP-345); anything else rebalances.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        mut member: Member,
        now_ms: u64,
    ) -> Reply<JoinGroupResponse> {
        let mut old = self
            .members
            .remove(old_id)
            .expect("instances point at members");
        if let Some(waiter) = old.join_waiter.take() {
            let _ = waiter.send(join_error(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(waiter) = old.sync_waiter.take() {
            let _ = waiter.send(sync_error(ResponseError::FencedInstanceId));
        }
        let unchanged = old.protocols == member.protocols;
        let was_leader = self.leader.as_deref() == Some(old_id);
        member.assignment = old.assignment;
        member.joined_seq = old.joined_seq;
        let id = member.id.clone();
        if let Some(instance) = &member.instance_id {
            self.instances.insert(instance.clone(), id.clone());
        }
        if self.awaiting_sync.remove(old_id) {
            self.awaiting_sync.insert(id.clone());
        }
        if was_leader {
            self.leader = Some(id.clone());
        }
        self.members.insert(id.clone(), member);
        match self.state {
            GroupState::Stable if unchanged && !was_leader => Reply::Ready(self.join_response(&id)),
            GroupState::PreparingRebalance => {
                let reply = self.park_join(&id);
                self.maybe_complete_join(now_ms);
                reply
            }
            _ => {
                let reply = self.park_join(&id);
                self.prepare_rebalance(now_ms);
                self.maybe_complete_join(now_ms);
                reply
            }
        }
    }

    /// Parks the member's join until the rebalance completes. A join it had parked before
    /// (a retry) is dropped; its caller sees the coordinator's "gone" answer.
    fn park_join(&mut self, member_id: &str) -> Reply<JoinGroupResponse> {
        let (sender, receiver) = oneshot::channel();
        let member = self
            .members
            .get_mut(member_id)
            .expect("parked member exists");
        member.join_waiter = Some(sender);
        Reply::Wait(receiver)
    }

    fn remove_member(&mut self, member_id: &str, reason: &str, now_ms: u64) {
        let Some(mut member) = self.members.remove(member_id) else {
            return;
        };
        tracing::info!(group = %self.id, member = member_id, reason, "member removed");
        if let Some(instance) = &member.instance_id
            && self.instances.get(instance).map(String::as_str) == Some(member_id)
        {
            self.instances.remove(instance);
        }
        self.awaiting_sync.remove(member_id);
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(join_error(ResponseError::UnknownMemberId, member_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(sync_error(ResponseError::UnknownMemberId));
        }
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now_ms);
        }
        self.maybe_complete_join(now_ms);
    }

    fn prepare_rebalance(&mut self, now_ms: u64) {
        if self.state == GroupState::CompletingRebalance {
            // The leader's assignment for this generation will never come: members waiting
            // for it learn that a new rebalance started.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(sync_error(ResponseError::RebalanceInProgress));
                }
            }
        }
        self.awaiting_sync.clear();
        let rebalance_timeout_ms = self.rebalance_timeout_ms();
        self.join_not_before_ms = if self.state == GroupState::Empty {
            now_ms + self.initial_rebalance_delay_ms.min(rebalance_timeout_ms)
        } else {
            now_ms
        };
        self.rebalance_deadline_ms = now_ms + rebalance_timeout_ms;
        self.state = GroupState::PreparingRebalance;
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            rebalance_timeout_ms,
            "rebalance started"
        );
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    fn maybe_complete_join(&mut self, now_ms: u64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let ready = self.all_joined() && now_ms >= self.join_not_before_ms;
        if ready || now_ms >= self.rebalance_deadline_ms {
            self.complete_join(now_ms);
        }
    }

    /// Starts the next generation with the members that rejoined; those that did not are
    /// removed. Every rejoined member gets its JoinGroup answer, the leader with the members'
    /// metadata to compute the assignment from.
    fn complete_join(&mut self, now_ms: u64) {
        let absent: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &absent {
            tracing::info!(
                group = %self.id,
                member = %id,
                reason = "did not rejoin within the rebalance timeout",
                "member removed"
            );
            let member = self.members.remove(id).expect("listed above");
            if let Some(instance) = &member.instance_id {
                self.instances.remove(instance);
            }
            if self.leader.as_deref() == Some(id) {
                self.leader = None;
            }
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            tracing::info!(group = %self.id, generation = self.generation, "group is empty");
            return;
        }
        let members = self.members();
        let protocol = select_protocol(&members);
        let first = members.first().map(|m| m.id.clone());
        self.protocol = protocol;
        if self.leader.is_none() {
            self.leader = first;
        }
        self.state = GroupState::CompletingRebalance;
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol.as_deref().unwrap_or(""),
            leader = self.leader.as_deref().unwrap_or(""),
            "rebalance completed"
        );
        self.awaiting_sync = self.members.keys().cloned().collect();
        self.sync_deadline_ms = now_ms + self.rebalance_timeout_ms();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let response = self.join_response(&id);
            let member = self.members.get_mut(&id).expect("listed above");
            member.last_heard_ms = now_ms;
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(response);
            }
        }
    }

    /// The leader's SyncGroup: store each member's assignment (none for members it left
    /// out) and answer every parked SyncGroup.
    fn apply_assignments(&mut self, request: &SyncGroupRequest) {
        let assignments: BTreeMap<&str, &Bytes> = request
            .assignments
            .iter()
            .map(|a| (a.member_id.as_str(), &a.assignment))
            .collect();
        for member in self.members.values_mut() {
            member.assignment = assignments
                .get(member.id.as_str())
                .map(|a| (*a).clone())
                .unwrap_or_default();
        }
        self.state = GroupState::Stable;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let response = self.sync_response(&id);
            let member = self.members.get_mut(&id).expect("listed above");
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(response);
            }
        }
    }

    /// The longest rebalance timeout among the members: how long a rebalance waits.
    fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// The current generation's JoinGroup answer for `member_id`.
    fn join_response(&self, member_id: &str) -> JoinGroupResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members()
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.id.clone()))
                        .with_group_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                        .with_metadata(m.metadata_for(&protocol))
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse::default()
            .with_generation_id(self.generation)
            .with_protocol_type(self.protocol_type.clone().map(StrBytes::from_string))
            .with_protocol_name(Some(StrBytes::from_string(protocol)))
            .with_leader(StrBytes::from_string(leader))
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_members(members)
    }

    fn sync_response(&self, member_id: &str) -> SyncGroupResponse {
        let assignment = self
            .members
            .get(member_id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default();
        SyncGroupResponse::default()
            .with_protocol_type(self.protocol_type.clone().map(StrBytes::from_string))
            .with_protocol_name(self.protocol.clone().map(StrBytes::from_string))
            .with_assignment(assignment)
    }
}

/// A JoinGroup answer carrying only an error (and, for MEMBER_ID_REQUIRED, the new id).
pub(crate) fn join_error(error: ResponseError, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error.code())
        .with_member_id(StrBytes::from_string(member_id.to_string()))
}

/// A SyncGroup answer carrying only an error.
pub(crate) fn sync_error(error: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error.code())
}

/// The protocols a JoinGroup offers, or `None` if the offer is empty, names no protocol type,
/// repeats a name or exceeds the configured limits.
fn offered_protocols(request: &JoinGroupRequest, config: &GroupConfig) -> Option<Vec<Protocol>> {
    let too_many = request.protocols.len() > config.member_protocols_max;
    if request.protocol_type.is_empty() || request.protocols.is_empty() || too_many {
        return None;
    }
    let mut protocols: Vec<Protocol> = Vec::with_capacity(request.protocols.len());
    for offered in &request.protocols {
        let repeated = protocols.iter().any(|p| p.name == offered.name.as_str());
        if repeated || offered.metadata.len() > config.member_metadata_bytes_max {
            return None;
        }
        protocols.push(Protocol {
            name: offered.name.to_string(),
            metadata: offered.metadata.clone(),
        });
    }
    Some(protocols)
}
