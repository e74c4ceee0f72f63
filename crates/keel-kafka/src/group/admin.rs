//! The read-only group APIs: FindCoordinator (always this broker), ListGroups (both group
//! types) and DescribeGroups (classic groups; consumer-protocol groups are
//! ConsumerGroupDescribe's). Groups that only have committed offsets (no members in memory, for
//! example after a restart) are reported as `Empty` with protocol type `""`, since their
//! membership was never persisted.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::config::NodeAddress;

use super::coordinator::Shared;
use super::state::{Group, GroupState};

/// FindCoordinator's key type for consumer groups.
const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator's key type for transactional ids.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// ListGroups v5's `group_type` of a classic group (and of one known only by its offsets).
const GROUP_TYPE_CLASSIC: &str = "classic";
/// ListGroups v5's `group_type` of a consumer-protocol (KIP-848) group.
const GROUP_TYPE_CONSUMER: &str = "consumer";
/// DescribeGroups' "operations not computed" (no ACLs in `keel serve`).
const AUTHORIZED_OPERATIONS_NONE: i32 = i32::MIN;

/// Answers FindCoordinator: this broker for every group and every transactional id (its
/// transaction coordinator is the broker's `txn/`); other key types (share groups) get
/// `INVALID_REQUEST` with a message saying why.
pub(crate) fn find_coordinator(
    node: &NodeAddress,
    api_version: i16,
    request: &FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let refusal = match request.key_type {
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => None,
        _ => Some("keel serve coordinates consumer groups and transactions only (key types 0, 1)"),
    };
    let (error_code, error_message, node_id, host, port) = match refusal {
        None => (
            0,
            None,
            node.node_id,
            node.host.as_str(),
            i32::from(node.port),
        ),
        Some(message) => (
            ResponseError::InvalidRequest.code(),
            Some(StrBytes::from_static_str(message)),
            -1,
            "",
            -1,
        ),
    };
    if api_version < 4 {
        return FindCoordinatorResponse::default()
            .with_error_code(error_code)
            .with_error_message(error_message)
            .with_node_id(BrokerId(node_id))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(port);
    }
    let coordinators = request
        .coordinator_keys
        .iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key.clone())
                .with_error_code(error_code)
                .with_error_message(error_message.clone())
                .with_node_id(BrokerId(node_id))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(port)
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

/// Answers ListGroups, applying the state filter (v4+) and type filter (v5+).
pub(crate) fn list_groups(
    shared: &Shared,
    api_version: i16,
    request: &ListGroupsRequest,
) -> ListGroupsResponse {
    let groups = shared.groups();
    let mut listed: Vec<(String, String, &'static str, &'static str)> = groups
        .map
        .iter()
        .map(|(id, group)| {
            let protocol_type = group.protocol_type().unwrap_or("").to_string();
            (
                id.clone(),
                protocol_type,
                group.state().name(),
                GROUP_TYPE_CLASSIC,
            )
        })
        .collect();
    listed.extend(groups.consumer.iter().map(|(id, group)| {
        let protocol_type = GROUP_TYPE_CONSUMER.to_string();
        (
            id.clone(),
            protocol_type,
            group.state(),
            GROUP_TYPE_CONSUMER,
        )
    }));
    drop(groups);
    for id in shared.log.group_offsets().groups() {
        if !listed.iter().any(|(listed_id, ..)| *listed_id == id) {
            let state = GroupState::Empty.name();
            listed.push((id, String::new(), state, GROUP_TYPE_CLASSIC));
        }
    }
    listed.sort();
    let state_wanted = |state: &str| {
        api_version < 4
            || request.states_filter.is_empty()
            || request
                .states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
    };
    let type_wanted = |group_type: &str| {
        api_version < 5
            || request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(group_type))
    };
    let groups = listed
        .into_iter()
        .filter(|(_, _, state, group_type)| type_wanted(group_type) && state_wanted(state))
        .map(|(id, protocol_type, state, group_type)| {
            let group = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type))
                .with_group_state(StrBytes::from_static_str(state));
            if api_version >= 5 {
                group.with_group_type(StrBytes::from_static_str(group_type))
            } else {
                group
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// Answers DescribeGroups. Member metadata and assignments are shown only for a stable
/// group, as Kafka does; an unknown group is `Dead` (v6: with `GROUP_ID_NOT_FOUND`).
pub(crate) fn describe_groups(
    shared: &Shared,
    api_version: i16,
    request: &DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = shared.groups();
    let described = request
        .groups
        .iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(AUTHORIZED_OPERATIONS_NONE);
            if let Some(group) = groups.map.get(id.as_str()) {
                return describe(base, group);
            }
            // A consumer-protocol group is ConsumerGroupDescribe's to show; DescribeGroups
            // answers it as Kafka does, as no classic group.
            if groups.consumer.contains_key(id.as_str()) {
                let reason = "is a consumer group, not a classic group";
                return dead(base, api_version, id, reason);
            }
            if !shared.log.group_offsets().group(id).is_empty() {
                return base.with_group_state(StrBytes::from_static_str(GroupState::Empty.name()));
            }
            dead(base, api_version, id, "is not known to this coordinator")
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}

/// A group DescribeGroups has no classic group for: `Dead`, and from v6 `GROUP_ID_NOT_FOUND`
/// with `reason`.
fn dead(base: DescribedGroup, api_version: i16, id: &GroupId, reason: &str) -> DescribedGroup {
    let dead = base.with_group_state(StrBytes::from_static_str("Dead"));
    if api_version < 6 {
        return dead;
    }
    dead.with_error_code(ResponseError::GroupIdNotFound.code())
        .with_error_message(Some(StrBytes::from_string(format!(
            "group {} {reason}",
            id.as_str()
        ))))
}

fn describe(base: DescribedGroup, group: &Group) -> DescribedGroup {
    let stable = group.state() == GroupState::Stable;
    let protocol = if stable {
        group.protocol().unwrap_or("")
    } else {
        ""
    };
    let members = group
        .members()
        .into_iter()
        .map(|m| {
            let described = DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(m.id.clone()))
                .with_group_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                .with_client_id(StrBytes::from_string(m.client_id.clone()))
                .with_client_host(StrBytes::from_string(m.client_host.clone()));
            if stable {
                described
                    .with_member_metadata(m.metadata_for(protocol))
                    .with_member_assignment(m.assignment.clone())
            } else {
                described
            }
        })
        .collect();
    base.with_group_state(StrBytes::from_static_str(group.state().name()))
        .with_protocol_type(StrBytes::from_string(
            group.protocol_type().unwrap_or("").to_string(),
        ))
        .with_protocol_data(StrBytes::from_string(protocol.to_string()))
        .with_members(members)
}
