//! [`GroupCoordinator`]: the async face of the group state machines. The connection handler
//! hands it decoded requests; it finds the group, runs the transition under one lock, and
//! waits (without the lock) for answers that depend on other members. One background task
//! fires the groups' deadlines.
//!
//! Time is tokio's clock, so tests with paused time drive session and rebalance timeouts
//! exactly. Committed offsets go to `keel-log`'s `__consumer_offsets` on a blocking thread;
//! group membership itself is memory only (after a restart members get `UNKNOWN_MEMBER_ID`
//! and rejoin, as after a coordinator move in Kafka).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use keel_log::Log;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::NodeAddress;

use super::admin;
use super::config::GroupConfig;
use super::consumer::state::{ConsumerGroup, Refusal};
use super::consumer::wire::{self, LogTopics};
use super::delete;
use super::offsets;
use super::retention;
use super::state::{Group, Reply, join_error, sync_error};

/// What the coordinator needs to know about the request besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The API version the request was decoded with; answers follow it.
    pub api_version: i16,
    /// The client id from the request header (part of new member ids, shown by
    /// DescribeGroups).
    pub client_id: String,
    /// The peer's address, shown by DescribeGroups.
    pub client_host: String,
}

/// The group coordinator of one broker: every consumer group's membership, and committed
/// offsets through `keel-log`. Dropping it stops its timer task; requests parked in it are
/// answered `COORDINATOR_NOT_AVAILABLE`.
#[derive(Debug)]
pub struct GroupCoordinator {
    pub(super) shared: Arc<Shared>,
    timers: JoinHandle<()>,
    /// The offsets-retention check (`retention.rs`), when a retention is set.
    expiry: Option<JoinHandle<()>>,
}

/// State shared with the timer task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) log: Arc<Log>,
    pub(crate) config: GroupConfig,
    groups: Mutex<Groups>,
    /// Shared with the timer task, which holds the rest of this struct only weakly: dropping
    /// the coordinator releases the log at once, not when the aborted task is next polled.
    wake: Arc<Notify>,
    epoch: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Groups {
    /// Classic groups (JoinGroup/SyncGroup).
    pub(crate) map: BTreeMap<String, Group>,
    /// Consumer-protocol groups (KIP-848); an id is in one map at most.
    pub(crate) consumer: BTreeMap<String, ConsumerGroup>,
    /// When the timer task will next run; a transition that creates an earlier deadline
    /// wakes it.
    wake_at_ms: u64,
}

impl Groups {
    /// Whether a group of either protocol named `id` has members in memory.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id) || self.consumer.contains_key(id)
    }
}

impl GroupCoordinator {
    /// Starts a coordinator over `log`'s committed offsets. Must be called inside a tokio
    /// runtime: it spawns the task that fires session and rebalance deadlines.
    pub fn start(log: Arc<Log>, config: GroupConfig) -> GroupCoordinator {
        let shared = Arc::new(Shared {
            log,
            config,
            groups: Mutex::new(Groups::default()),
            wake: Arc::new(Notify::new()),
            epoch: Instant::now(),
        });
        let timers = tokio::spawn(run_timers(
            Arc::downgrade(&shared),
            shared.wake.clone(),
            shared.epoch,
        ));
        let expiry = shared.config.offsets_retention_ms.map(|retention_ms| {
            let interval = Duration::from_millis(shared.config.offsets_retention_check_interval_ms);
            tokio::spawn(retention::run(
                Arc::downgrade(&shared),
                retention_ms,
                interval,
            ))
        });
        GroupCoordinator {
            shared,
            timers,
            expiry,
        }
    }

    /// The versions served for each group API key (what ApiVersions should advertise), or
    /// `None` for keys this coordinator does not serve. The ranges are what kafka-protocol
    /// 0.18 decodes; every version's response shape is covered by the coordinator tests.
    pub fn versions(api_key: ApiKey) -> Option<(i16, i16)> {
        let range = match api_key {
            ApiKey::FindCoordinator => (0, 6),
            ApiKey::JoinGroup => (0, 9),
            ApiKey::SyncGroup => (0, 5),
            ApiKey::Heartbeat => (0, 4),
            ApiKey::LeaveGroup => (0, 5),
            ApiKey::OffsetCommit => (2, 9),
            ApiKey::OffsetFetch => (1, 9),
            ApiKey::ListGroups => (0, 5),
            ApiKey::DescribeGroups => (0, 6),
            ApiKey::DeleteGroups => (0, 2),
            ApiKey::OffsetDelete => (0, 0),
            ApiKey::ConsumerGroupHeartbeat => (0, 1),
            ApiKey::ConsumerGroupDescribe => (0, 1),
            _ => return None,
        };
        Some(range)
    }

    /// FindCoordinator: `node` (this broker) for every group and transactional id.
    pub async fn find_coordinator(
        &self,
        context: &RequestContext,
        node: &NodeAddress,
        request: FindCoordinatorRequest,
    ) -> FindCoordinatorResponse {
        admin::find_coordinator(node, context.api_version, &request)
    }

    /// JoinGroup. Waits until the rebalance completes (at most the group's rebalance
    /// timeout). Cancel safety: dropping the future leaves the member joined; like a lost
    /// response, the member either joins again or is removed when the rebalance times out.
    pub async fn join_group(
        &self,
        context: &RequestContext,
        request: JoinGroupRequest,
    ) -> JoinGroupResponse {
        if request.group_id.is_empty() {
            return join_error(ResponseError::InvalidGroupId, &request.member_id);
        }
        if self
            .shared
            .groups()
            .consumer
            .contains_key(request.group_id.as_str())
        {
            return join_error(ResponseError::InconsistentGroupProtocol, &request.member_id);
        }
        let reply = self
            .shared
            .with_group(&request.group_id, true, |group, now_ms| {
                group.join(&request, context, &self.shared.config, now_ms)
            });
        match reply {
            None => join_error(ResponseError::CoordinatorNotAvailable, &request.member_id),
            Some(Reply::Ready(response)) => response,
            Some(Reply::Wait(receiver)) => receiver.await.unwrap_or_else(|_| {
                join_error(ResponseError::CoordinatorNotAvailable, &request.member_id)
            }),
        }
    }

    /// SyncGroup. A follower waits for the leader's assignment (at most the group's
    /// rebalance timeout). Cancel safety: dropping the future is like a lost response; the
    /// member syncs again and gets the stored assignment.
    pub async fn sync_group(
        &self,
        _context: &RequestContext,
        request: SyncGroupRequest,
    ) -> SyncGroupResponse {
        if request.group_id.is_empty() {
            return sync_error(ResponseError::InvalidGroupId);
        }
        let reply = self
            .shared
            .with_group(&request.group_id, false, |group, now_ms| {
                group.sync(&request, now_ms)
            });
        match reply {
            None => sync_error(ResponseError::UnknownMemberId),
            Some(Reply::Ready(response)) => response,
            Some(Reply::Wait(receiver)) => receiver
                .await
                .unwrap_or_else(|_| sync_error(ResponseError::CoordinatorNotAvailable)),
        }
    }

    /// Heartbeat: keeps the member alive and tells it whether to rejoin.
    pub async fn heartbeat(
        &self,
        _context: &RequestContext,
        request: HeartbeatRequest,
    ) -> HeartbeatResponse {
        let code = if request.group_id.is_empty() {
            ResponseError::InvalidGroupId.code()
        } else {
            self.shared
                .with_group(&request.group_id, false, |group, now_ms| {
                    group.heartbeat(&request, now_ms)
                })
                .unwrap_or(ResponseError::UnknownMemberId.code())
        };
        HeartbeatResponse::default().with_error_code(code)
    }

    /// LeaveGroup: one member (v0–2) or a batch (v3+); the group rebalances without them.
    pub async fn leave_group(
        &self,
        context: &RequestContext,
        request: LeaveGroupRequest,
    ) -> LeaveGroupResponse {
        let leaving: Vec<(String, Option<String>)> = if context.api_version >= 3 {
            request
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|i| i.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(request.member_id.to_string(), None)]
        };
        let codes: Vec<i16> = if request.group_id.is_empty() {
            vec![ResponseError::InvalidGroupId.code(); leaving.len()]
        } else {
            self.shared
                .with_group(&request.group_id, false, |group, now_ms| {
                    leaving
                        .iter()
                        .map(|(member, instance)| group.leave(member, instance.as_deref(), now_ms))
                        .collect()
                })
                .unwrap_or_else(|| vec![ResponseError::UnknownMemberId.code(); leaving.len()])
        };
        if context.api_version < 3 {
            return LeaveGroupResponse::default().with_error_code(codes[0]);
        }
        let members = leaving
            .into_iter()
            .zip(codes)
            .map(|((member_id, instance_id), code)| {
                MemberResponse::default()
                    .with_member_id(member_id.into())
                    .with_group_instance_id(instance_id.map(Into::into))
                    .with_error_code(code)
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    }

    /// OffsetCommit: validates the member and generation of a group-managed commit, then
    /// stores the offsets durably (one atomic batch in `__consumer_offsets`, fsynced) before
    /// answering. Cancel safety: a commit already handed to the blocking thread completes
    /// even if the future is dropped; the client then does not know and commits again.
    pub async fn offset_commit(
        &self,
        context: &RequestContext,
        request: OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        offsets::commit(&self.shared, context.api_version, request).await
    }

    /// OffsetFetch: the committed offsets of one group (v0–7) or several (v8+).
    pub async fn offset_fetch(
        &self,
        context: &RequestContext,
        request: OffsetFetchRequest,
    ) -> OffsetFetchResponse {
        offsets::fetch(&self.shared, context.api_version, &request)
    }

    /// ConsumerGroupHeartbeat (KIP-848): joins, keeps alive, reconciles or removes a member
    /// of a consumer-protocol group and answers with its epoch and, when it changed, its
    /// assignment. Never waits for other members.
    pub async fn consumer_group_heartbeat(
        &self,
        context: &RequestContext,
        request: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        if request.group_id.is_empty() {
            return wire::heartbeat_error(ResponseError::InvalidGroupId, "group_id is empty");
        }
        let topics = LogTopics(&self.shared.log);
        let heartbeat = wire::heartbeat_from(&request, context, &topics);
        let config = &self.shared.config;
        let outcome = self
            .shared
            .with_consumer_group(&request.group_id, |group, now_ms| {
                group.heartbeat(&heartbeat, &topics, config, now_ms)
            });
        wire::heartbeat_response(outcome, config.consumer_heartbeat_interval_ms)
    }

    /// ConsumerGroupDescribe: each named consumer-protocol group with its epochs, members
    /// and their current and target assignments; `GROUP_ID_NOT_FOUND` for other groups.
    pub async fn consumer_group_describe(
        &self,
        _context: &RequestContext,
        request: ConsumerGroupDescribeRequest,
    ) -> ConsumerGroupDescribeResponse {
        let groups = self.shared.groups();
        let described = request
            .group_ids
            .iter()
            .map(|id| match groups.consumer.get(id.as_str()) {
                Some(group) => wire::describe_group(id, group),
                None => {
                    let kind = if groups.map.contains_key(id.as_str()) {
                        "is a classic group, not a consumer group"
                    } else {
                        "has no consumer-protocol members"
                    };
                    let message = format!("group {} {kind}", id.as_str());
                    wire::describe_error(id, ResponseError::GroupIdNotFound, message)
                }
            })
            .collect();
        ConsumerGroupDescribeResponse::default().with_groups(described)
    }

    /// ListGroups: groups with members and groups that only have committed offsets.
    pub async fn list_groups(
        &self,
        context: &RequestContext,
        request: ListGroupsRequest,
    ) -> ListGroupsResponse {
        admin::list_groups(&self.shared, context.api_version, &request)
    }

    /// The live membership of `group` (members and their assigned partitions), `None` when
    /// no member of it is known; for operators (the console, refusing resets).
    pub fn group_view(&self, group: &str) -> Option<super::GroupView> {
        super::view::group_view(&self.shared, group)
    }

    /// DescribeGroups: state, protocol and members of each named group.
    pub async fn describe_groups(
        &self,
        context: &RequestContext,
        request: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        admin::describe_groups(&self.shared, context.api_version, &request)
    }

    /// DeleteGroups: each group without live members loses its committed offsets.
    /// Cancel safety: a deletion handed to the blocking thread completes even if the future
    /// is dropped.
    pub async fn delete_groups(
        &self,
        _context: &RequestContext,
        request: DeleteGroupsRequest,
    ) -> DeleteGroupsResponse {
        delete::delete_groups(&self.shared, request).await
    }

    /// OffsetDelete: one group's offsets in some partitions, except for topics its live
    /// members consume. Cancel safety: as [`GroupCoordinator::delete_groups`].
    pub async fn offset_delete(
        &self,
        _context: &RequestContext,
        request: OffsetDeleteRequest,
    ) -> OffsetDeleteResponse {
        delete::offset_delete(&self.shared, request).await
    }
}

impl Drop for GroupCoordinator {
    fn drop(&mut self) {
        self.timers.abort();
        if let Some(expiry) = &self.expiry {
            expiry.abort();
        }
    }
}

impl Shared {
    /// Milliseconds since the coordinator started, on tokio's (pausable) clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The groups, locked. Never held across an `.await`.
    pub(crate) fn groups(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().expect("groups lock")
    }

    /// Runs `transition` on the group named `id` (creating it if `create`), then drops the
    /// group if it holds nothing, and wakes the timer task if the transition set an earlier
    /// deadline. `None` when the group does not exist (or cannot be created: too many groups).
    pub(crate) fn with_group<T>(
        &self,
        id: &str,
        create: bool,
        transition: impl FnOnce(&mut Group, u64) -> T,
    ) -> Option<T> {
        let now_ms = self.now_ms();
        let mut groups = self.groups();
        if !groups.map.contains_key(id) {
            if !create || groups.map.len() >= self.config.groups_max {
                return None;
            }
            groups
                .map
                .insert(id.to_string(), Group::new(id, &self.config));
        }
        let group = groups.map.get_mut(id).expect("present");
        let out = transition(group, now_ms);
        let next = group.next_deadline_ms();
        if group.is_removable() {
            groups.map.remove(id);
        }
        if let Some(next) = next
            && next < groups.wake_at_ms
        {
            groups.wake_at_ms = next;
            self.wake.notify_one();
        }
        Some(out)
    }

    /// Runs `transition` on the consumer-protocol group named `id`, created if needed, then
    /// drops it if it has no members and wakes the timer task for an earlier deadline. A
    /// classic group of that id refuses with `GROUP_ID_NOT_FOUND`, as Kafka does.
    pub(crate) fn with_consumer_group<T>(
        &self,
        id: &str,
        transition: impl FnOnce(&mut ConsumerGroup, u64) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let now_ms = self.now_ms();
        let mut groups = self.groups();
        if groups.map.contains_key(id) {
            return Err(Refusal {
                error: ResponseError::GroupIdNotFound,
                message: format!("group {id} is a classic group, not a consumer group"),
            });
        }
        if !groups.consumer.contains_key(id) {
            if groups.map.len() + groups.consumer.len() >= self.config.groups_max {
                return Err(Refusal {
                    error: ResponseError::CoordinatorNotAvailable,
                    message: format!(
                        "the coordinator tracks its maximum of {} groups",
                        self.config.groups_max
                    ),
                });
            }
            groups
                .consumer
                .insert(id.to_string(), ConsumerGroup::new(id));
        }
        let group = groups.consumer.get_mut(id).expect("present");
        let out = transition(group, now_ms);
        let next = group.next_deadline_ms(&self.config);
        if group.is_removable() {
            groups.consumer.remove(id);
        }
        if let Some(next) = next
            && next < groups.wake_at_ms
        {
            groups.wake_at_ms = next;
            self.wake.notify_one();
        }
        out
    }

    /// Groups with members (or a rebalance in progress) in memory now, of either protocol.
    pub(crate) fn live_groups(&self) -> std::collections::BTreeSet<String> {
        let groups = self.groups();
        groups
            .map
            .keys()
            .chain(groups.consumer.keys())
            .cloned()
            .collect()
    }

    /// Fires every due deadline; returns when the next one is due.
    fn tick_all(&self) -> Option<u64> {
        let now_ms = self.now_ms();
        let mut groups = self.groups();
        let mut next: Option<u64> = None;
        groups.map.retain(|_, group| {
            group.tick(now_ms);
            next = next.into_iter().chain(group.next_deadline_ms()).min();
            !group.is_removable()
        });
        let config = &self.config;
        groups.consumer.retain(|_, group| {
            group.tick(config, now_ms);
            next = next.into_iter().chain(group.next_deadline_ms(config)).min();
            !group.is_removable()
        });
        groups.wake_at_ms = next.unwrap_or(u64::MAX);
        next
    }
}

/// The timer task: tick every group at its earliest deadline, or sooner when a transition
/// brings a deadline forward.
async fn run_timers(shared: Weak<Shared>, wake: Arc<Notify>, epoch: Instant) {
    loop {
        let Some(next) = shared.upgrade().map(|shared| shared.tick_all()) else {
            return;
        };
        let woken = wake.notified();
        match next {
            Some(at_ms) => {
                let at = epoch + Duration::from_millis(at_ms);
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = woken => {}
                }
            }
            None => woken.await,
        }
    }
}
