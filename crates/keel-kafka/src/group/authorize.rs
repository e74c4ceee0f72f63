//! Kafka's ACLs on the group APIs, around the [`GroupCoordinator`]'s calls: what each API
//! needs, as Kafka's `KafkaApis`, and how a denial is answered.
//!
//! | api | needs | denied |
//! |---|---|---|
//! | FindCoordinator | Describe on the group | `GROUP_AUTHORIZATION_FAILED` for that key |
//! | JoinGroup, SyncGroup, Heartbeat, LeaveGroup | Read on the group | `GROUP_AUTHORIZATION_FAILED` |
//! | OffsetCommit | Read on the group, Read on each topic | the group: every partition `GROUP_AUTHORIZATION_FAILED`; a topic: its partitions `TOPIC_AUTHORIZATION_FAILED`, the others committed |
//! | OffsetFetch | Describe on the group, Describe on each topic | the group: `GROUP_AUTHORIZATION_FAILED`; a named topic: `TOPIC_AUTHORIZATION_FAILED`; all topics asked: the undescribable ones left out |
//! | ListGroups | Describe on the cluster, else Describe on each group | groups the caller may not Describe left out |
//! | DescribeGroups | Describe on each group | that group `GROUP_AUTHORIZATION_FAILED` |
//! | DeleteGroups | Delete on each group | that group `GROUP_AUTHORIZATION_FAILED`, the others deleted |
//! | OffsetDelete | Delete on the group, Read on each topic | the group: `GROUP_AUTHORIZATION_FAILED`; a topic: its partitions `TOPIC_AUTHORIZATION_FAILED` |

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse,
};

use crate::acl::{Access, CLUSTER_NAME, Operation, ResourceType};
use crate::config::NodeAddress;

use super::coordinator::{GroupCoordinator, RequestContext};

const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const TRANSACTIONAL_ID_DENIED: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();

/// FindCoordinator: every key (group or transactional id) the caller may not Describe is
/// refused (v4+ per key).
pub(super) async fn find_coordinator(
    coordinator: &GroupCoordinator,
    context: &RequestContext,
    access: &Access,
    node: &NodeAddress,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    // A group needs Describe on it, a transactional id (key type 1) Describe on the id.
    let (resource, denied_code) = match request.key_type {
        1 => (ResourceType::TransactionalId, TRANSACTIONAL_ID_DENIED),
        _ => (ResourceType::Group, GROUP_DENIED),
    };
    let denied = |key: &str| {
        request.key_type <= 1
            && !access
                .authorizer
                .authorize(&access.caller, Operation::Describe, resource, key)
    };
    if context.api_version < 4 && denied(&request.key) {
        return FindCoordinatorResponse::default()
            .with_error_code(denied_code)
            .with_node_id((-1).into())
            .with_port(-1);
    }
    let refused: Vec<bool> = request.coordinator_keys.iter().map(|k| denied(k)).collect();
    let mut response = coordinator.find_coordinator(context, node, request).await;
    for (entry, refused) in response.coordinators.iter_mut().zip(refused) {
        if refused {
            *entry = std::mem::take(entry)
                .with_error_code(denied_code)
                .with_node_id((-1).into())
                .with_host(Default::default())
                .with_port(-1);
        }
    }
    response
}

/// Whether the caller may act as a member of `group` (JoinGroup, SyncGroup, Heartbeat,
/// LeaveGroup); the caller answers `GROUP_AUTHORIZATION_FAILED` when not.
pub(super) fn member(access: &Access, group: &str) -> bool {
    access.group(Operation::Read, group)
}

/// OffsetCommit: commits the partitions of the topics the caller may Read.
pub(super) async fn offset_commit(
    coordinator: &GroupCoordinator,
    context: &RequestContext,
    access: &Access,
    mut request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let refuse =
        |topics: Vec<_>, code: i16| -> Vec<OffsetCommitResponseTopic> {
            topics
            .into_iter()
            .map(|t: kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect()
        };
    if !access.group(Operation::Read, &request.group_id) {
        return OffsetCommitResponse::default().with_topics(refuse(request.topics, GROUP_DENIED));
    }
    let (allowed, denied) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|t| access.topic(Operation::Read, &t.name));
    request.topics = allowed;
    let mut response = OffsetCommitResponse::default();
    if !request.topics.is_empty() {
        response = coordinator.offset_commit(context, request).await;
    }
    response.topics.extend(refuse(denied, TOPIC_DENIED));
    response
}

/// OffsetFetch: the group's offsets for the topics the caller may Describe.
pub(super) async fn offset_fetch(
    coordinator: &GroupCoordinator,
    context: &RequestContext,
    access: &Access,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    // The topics of one group's answer (two types with the same fields, v0-7 and v8+): those
    // the caller may not Describe are refused when named, left out when all were asked for.
    macro_rules! hide_undescribed {
        ($topics:expr, $all_topics:expr) => {
            $topics.retain_mut(|topic| {
                if access.allows(Operation::Describe, ResourceType::Topic, &topic.name) {
                    return true;
                }
                if $all_topics {
                    return false;
                }
                access.topic(Operation::Describe, &topic.name);
                for partition in &mut topic.partitions {
                    partition.error_code = TOPIC_DENIED;
                    partition.committed_offset = -1;
                    partition.metadata = None;
                }
                true
            })
        };
    }
    if context.api_version < 8 {
        if !access.group(Operation::Describe, &request.group_id) {
            return OffsetFetchResponse::default().with_error_code(GROUP_DENIED);
        }
        let all_topics = request.topics.is_none();
        let mut response = coordinator.offset_fetch(context, request).await;
        hide_undescribed!(response.topics, all_topics);
        return response;
    }
    let groups: Vec<(bool, bool)> = request
        .groups
        .iter()
        .map(|g| {
            (
                access.group(Operation::Describe, &g.group_id),
                g.topics.is_none(),
            )
        })
        .collect();
    let mut response = coordinator.offset_fetch(context, request).await;
    for (group, (allowed, all_topics)) in response.groups.iter_mut().zip(groups) {
        if !allowed {
            group.error_code = GROUP_DENIED;
            group.topics.clear();
            continue;
        }
        hide_undescribed!(group.topics, all_topics);
    }
    response
}

/// ListGroups: every group with Describe on the cluster, else those the caller may Describe.
pub(super) async fn list_groups(
    coordinator: &GroupCoordinator,
    context: &RequestContext,
    access: &Access,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let mut response = coordinator.list_groups(context, request).await;
    if !access.allows(Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        response
            .groups
            .retain(|g| access.allows(Operation::Describe, ResourceType::Group, &g.group_id));
    }
    response
}

/// DescribeGroups: the groups the caller may Describe; the others refused.
pub(super) async fn describe_groups(
    coordinator: &GroupCoordinator,
    context: &RequestContext,
    access: &Access,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let allowed: Vec<bool> = request
        .groups
        .iter()
        .map(|g| access.group(Operation::Describe, g))
        .collect();
    let mut response = coordinator.describe_groups(context, request).await;
    for (group, allowed) in response.groups.iter_mut().zip(allowed) {
        if !allowed {
            *group = kafka_protocol::messages::describe_groups_response::DescribedGroup::default()
                .with_group_id(std::mem::take(&mut group.group_id))
                .with_error_code(GROUP_DENIED);
        }
    }
    response
}

/// DeleteGroups: deletes the groups the caller may Delete; the others refused.
/// ConsumerGroupDescribe: a group the caller may not Describe is answered
/// `GROUP_AUTHORIZATION_FAILED`, whatever it is.
pub(super) async fn consumer_group_describe(
    coordinator: &GroupCoordinator,
    context: &RequestContext,
    access: &Access,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let allowed: Vec<bool> = request
        .group_ids
        .iter()
        .map(|g| access.group(Operation::Describe, g))
        .collect();
    let mut response = coordinator.consumer_group_describe(context, request).await;
    for (group, allowed) in response.groups.iter_mut().zip(allowed) {
        if !allowed {
            *group = kafka_protocol::messages::consumer_group_describe_response::DescribedGroup::default()
                .with_group_id(std::mem::take(&mut group.group_id))
                .with_error_code(GROUP_DENIED);
        }
    }
    response
}

pub(super) async fn delete_groups(
    coordinator: &GroupCoordinator,
    context: &RequestContext,
    access: &Access,
    mut request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.groups_names)
        .into_iter()
        .partition(|g| access.group(Operation::Delete, g));
    request.groups_names = allowed;
    let mut response = coordinator.delete_groups(context, request).await;
    response.results.extend(denied.into_iter().map(|group| {
        DeletableGroupResult::default()
            .with_group_id(group)
            .with_error_code(GROUP_DENIED)
    }));
    response
}

/// OffsetDelete: needs Delete on the group; partitions of topics the caller may not Read are
/// refused.
pub(super) async fn offset_delete(
    coordinator: &GroupCoordinator,
    context: &RequestContext,
    access: &Access,
    mut request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if !access.group(Operation::Delete, &request.group_id) {
        return OffsetDeleteResponse::default().with_error_code(GROUP_DENIED);
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|t| access.topic(Operation::Read, &t.name));
    request.topics = allowed;
    let mut response = coordinator.offset_delete(context, request).await;
    response.topics.extend(denied.into_iter().map(|topic| {
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(TOPIC_DENIED)
            })
            .collect();
        OffsetDeleteResponseTopic::default()
            .with_name(topic.name)
            .with_partitions(partitions)
    }));
    response
}
