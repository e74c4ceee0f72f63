//! ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69) on the wire: requests into the
//! state machine's terms and answers back, topic ids (which these APIs name topics by) to
//! names and back through [`crate::topic_id`], and the log's topics as a [`TopicCatalog`].

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, DescribedGroup,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    self as heartbeat_response, ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use keel_log::Log;

use super::assignor::Assignment;
use super::state::{Answer, ConsumerGroup, Heartbeat, Refusal, TopicCatalog};
use crate::group::coordinator::RequestContext;
use crate::topic_id::topic_id;

/// DescribeGroups' and ConsumerGroupDescribe's "operations not computed".
const AUTHORIZED_OPERATIONS_NONE: i32 = i32::MIN;
/// ConsumerGroupDescribe v1's member type of a consumer-protocol member.
const MEMBER_TYPE_CONSUMER: i8 = 1;

/// The log's user topics (not Keel's own `__` topics), as a group sees them.
pub(crate) struct LogTopics<'a>(pub(crate) &'a Log);

impl TopicCatalog for LogTopics<'_> {
    fn partitions(&self, topic: &str) -> Option<u32> {
        if topic.starts_with("__") {
            return None;
        }
        let topic = self.0.topic(topic)?;
        Some(topic.partitions().len() as u32)
    }

    fn names(&self) -> Vec<String> {
        self.0
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .filter(|name| !name.starts_with("__"))
            .collect()
    }
}

/// A heartbeat request in the state machine's terms. Owned partitions of topics the log no
/// longer has are dropped: nobody can hold them.
pub(crate) fn heartbeat_from(
    request: &ConsumerGroupHeartbeatRequest,
    context: &RequestContext,
    topics: &LogTopics,
) -> Heartbeat {
    let owned = request.topic_partitions.as_ref().map(|owned| {
        let names = if owned.is_empty() {
            Vec::new()
        } else {
            topics.names()
        };
        let mut assignment = Assignment::new();
        for topic in owned.iter().filter(|t| !t.partitions.is_empty()) {
            if let Some(name) = names.iter().find(|n| topic_id(n) == topic.topic_id) {
                assignment
                    .entry(name.clone())
                    .or_default()
                    .extend(topic.partitions.iter().copied());
            }
        }
        assignment
    });
    Heartbeat {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|i| i.to_string()),
        rack_id: request.rack_id.as_ref().map(|r| r.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topics: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.to_string()).collect()),
        subscribed_regex: request
            .subscribed_topic_regex
            .as_ref()
            .map(|r| r.to_string()),
        server_assignor: request.server_assignor.as_ref().map(|a| a.to_string()),
        owned,
        client_id: context.client_id.clone(),
        client_host: context.client_host.clone(),
    }
}

/// The heartbeat's answer on the wire.
pub(crate) fn heartbeat_response(
    outcome: Result<Answer, Refusal>,
    heartbeat_interval_ms: u64,
) -> ConsumerGroupHeartbeatResponse {
    let answer = match outcome {
        Ok(answer) => answer,
        Err(refusal) => return heartbeat_error(refusal.error, refusal.message),
    };
    let assignment = answer.assignment.map(|assigned| {
        let topic_partitions = assigned
            .iter()
            .map(|(topic, partitions)| {
                heartbeat_response::TopicPartitions::default()
                    .with_topic_id(topic_id(topic))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect();
        heartbeat_response::Assignment::default().with_topic_partitions(topic_partitions)
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(StrBytes::from_string(answer.member_id)))
        .with_member_epoch(answer.member_epoch)
        .with_heartbeat_interval_ms(i32::try_from(heartbeat_interval_ms).unwrap_or(i32::MAX))
        .with_assignment(assignment)
}

/// A heartbeat refused with `error` and a one-line reason.
pub(crate) fn heartbeat_error(
    error: ResponseError,
    message: impl Into<String>,
) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message.into())))
}

/// A consumer group as ConsumerGroupDescribe shows it.
pub(crate) fn describe_group(id: &GroupId, group: &ConsumerGroup) -> DescribedGroup {
    let members = group
        .members()
        .map(|m| {
            describe::Member::default()
                .with_member_id(StrBytes::from_string(m.id.clone()))
                .with_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                .with_rack_id(m.rack_id.clone().map(StrBytes::from_string))
                .with_member_epoch(m.epoch)
                .with_client_id(StrBytes::from_string(m.client_id.clone()))
                .with_client_host(StrBytes::from_string(m.client_host.clone()))
                .with_subscribed_topic_names(
                    m.subscribed_topics
                        .iter()
                        .map(|t| TopicName(StrBytes::from_string(t.clone())))
                        .collect(),
                )
                .with_subscribed_topic_regex(
                    m.subscribed_regex
                        .as_ref()
                        .map(|r| StrBytes::from_string(unanchored(r.as_str()).to_string())),
                )
                .with_assignment(described_assignment(&m.assigned))
                .with_target_assignment(described_assignment(&group.target_of(&m.id)))
                .with_member_type(MEMBER_TYPE_CONSUMER)
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(id.clone())
        .with_group_state(StrBytes::from_static_str(group.state()))
        .with_group_epoch(group.group_epoch())
        .with_assignment_epoch(group.assignment_epoch())
        .with_assignor_name(StrBytes::from_static_str(group.assignor()))
        .with_members(members)
        .with_authorized_operations(AUTHORIZED_OPERATIONS_NONE)
}

/// A group ConsumerGroupDescribe cannot show: unknown, or a classic group.
pub(crate) fn describe_error(
    id: &GroupId,
    error: ResponseError,
    message: String,
) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(id.clone())
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_group_state(StrBytes::from_static_str("Dead"))
        .with_authorized_operations(AUTHORIZED_OPERATIONS_NONE)
}

fn described_assignment(assignment: &Assignment) -> describe::Assignment {
    let topic_partitions = assignment
        .iter()
        .map(|(topic, partitions)| {
            describe::TopicPartitions::default()
                .with_topic_id(topic_id(topic))
                .with_topic_name(TopicName(StrBytes::from_string(topic.clone())))
                .with_partitions(partitions.iter().copied().collect())
        })
        .collect();
    describe::Assignment::default().with_topic_partitions(topic_partitions)
}

/// The member's pattern as it sent it, without the anchors the state machine added.
fn unanchored(pattern: &str) -> &str {
    pattern
        .strip_prefix("^(?:")
        .and_then(|p| p.strip_suffix(")$"))
        .unwrap_or(pattern)
}
