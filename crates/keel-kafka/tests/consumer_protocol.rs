//! The KIP-848 consumer protocol through the wire with hand-made requests: two members share
//! a topic by ConsumerGroupHeartbeat (the assignment names the topic by the id Metadata
//! reports, a partition moves only after its owner revoked it), ConsumerGroupDescribe and
//! ListGroups show the group as a consumer group, commits and fetches are checked against
//! member epochs, a classic join of the group is refused, and the offsets survive a restart
//! while the members do not.

mod support;

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DescribeGroupsRequest, GroupId, JoinGroupRequest, ListGroupsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use keel_log::TopicConfig;
use support::{RawClient, TestBroker};
use uuid::Uuid;

const GROUP: &str = "kip848-group";
const TOPIC: &str = "kip848-orders";

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

/// A member as the test drives it: its id, epoch and owned partitions.
struct Member {
    id: String,
    epoch: i32,
    owned: BTreeSet<i32>,
}

impl Member {
    fn new(id: &str) -> Member {
        Member {
            id: id.to_string(),
            epoch: 0,
            owned: BTreeSet::new(),
        }
    }

    /// Sends a heartbeat with the member's epoch and owned partitions of `topic_id`; takes
    /// the answer's epoch and assignment (revoking at once what it no longer lists).
    fn beat(&mut self, client: &mut RawClient, topic_id: Uuid) -> ConsumerGroupHeartbeatResponse {
        let mut request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text(GROUP)))
            .with_member_id(text(&self.id))
            .with_member_epoch(self.epoch)
            .with_rebalance_timeout_ms(-1)
            .with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(self.owned.iter().copied().collect()),
            ]));
        if self.epoch == 0 {
            request = request
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![TopicName(text(TOPIC))]))
                .with_topic_partitions(Some(Vec::new()));
        }
        let response = client.call(1, &request);
        assert_eq!(response.error_code, 0, "{:?}", response.error_message);
        self.epoch = response.member_epoch;
        if let Some(assignment) = &response.assignment {
            self.owned = assignment
                .topic_partitions
                .iter()
                .inspect(|t| assert_eq!(t.topic_id, topic_id, "topics are named by their id"))
                .flat_map(|t| t.partitions.iter().copied())
                .collect();
        }
        response
    }
}

fn commit(client: &mut RawClient, member: &str, epoch: i32, offset: i64) -> i16 {
    let response = client.call(
        9,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(text(GROUP)))
            .with_member_id(text(member))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(text(TOPIC)))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ]),
    );
    response.topics[0].partitions[0].error_code
}

/// OffsetFetch v9 of partition 0: the group's error code and the committed offset.
fn fetch(client: &mut RawClient, member: Option<&str>, epoch: i32) -> (i16, i64) {
    let response = client.call(
        9,
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(text(GROUP)))
                .with_member_id(member.map(text))
                .with_member_epoch(epoch)
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(text(TOPIC)))
                        .with_partition_indexes(vec![0]),
                ])),
        ]),
    );
    let group = &response.groups[0];
    let offset = group
        .topics
        .first()
        .map_or(-2, |t| t.partitions[0].committed_offset);
    (group.error_code, offset)
}

fn topic_id(client: &mut RawClient) -> Uuid {
    let metadata = client.call(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(text(TOPIC)))),
        ])),
    );
    metadata.topics[0].topic_id
}

#[test]
fn two_members_share_a_topic_through_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    broker
        .log
        .create_topic(TOPIC, TopicConfig::new(4))
        .expect("create topic");
    let mut client = RawClient::connect(broker.address);
    let id = topic_id(&mut client);
    assert_ne!(id, Uuid::nil(), "Metadata v12 reports a topic id");
    assert_eq!(topic_id(&mut client), id, "the same id every time");

    // The first member takes every partition.
    let mut a = Member::new("member-a");
    let joined = a.beat(&mut client, id);
    assert_eq!(joined.member_id.as_deref(), Some("member-a"));
    assert!(a.epoch > 0);
    assert_eq!(a.owned, (0..4).collect());
    assert_eq!(joined.heartbeat_interval_ms, 5_000);

    // The second joins: its share is still held by the first, so it gets nothing yet.
    let mut b = Member::new("member-b");
    b.beat(&mut client, id);
    assert!(b.owned.is_empty());
    let a_epoch = a.epoch;
    a.beat(&mut client, id);
    assert_eq!(a.owned.len(), 2, "told to revoke two");
    assert_eq!(
        a.epoch, a_epoch,
        "no new epoch before the revocation is confirmed"
    );
    b.beat(&mut client, id);
    assert!(
        b.owned.is_empty(),
        "nothing before the first member revoked"
    );
    a.beat(&mut client, id); // owns two now: revocation confirmed
    assert!(a.epoch > a_epoch);
    b.beat(&mut client, id);
    assert_eq!(b.epoch, a.epoch);
    assert_eq!(b.owned.len(), 2);
    assert!(a.owned.is_disjoint(&b.owned));

    // Described and listed as a consumer group.
    let described = client.call(
        1,
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(text(GROUP))]),
    );
    let group = &described.groups[0];
    assert_eq!(group.error_code, 0);
    assert_eq!(group.group_state.as_str(), "Stable");
    assert_eq!(group.assignor_name.as_str(), "uniform");
    assert_eq!(group.assignment_epoch, a.epoch);
    assert_eq!(group.members.len(), 2);
    let listed = client.call(5, &ListGroupsRequest::default());
    let listed = listed
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == GROUP)
        .expect("listed");
    assert_eq!(listed.group_type.as_str(), "consumer");
    assert_eq!(listed.protocol_type.as_str(), "consumer");
    // DescribeGroups has no classic group of that name.
    let classic = client.call(
        6,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(text(GROUP))]),
    );
    assert_eq!(
        classic.groups[0].error_code,
        code(ResponseError::GroupIdNotFound)
    );

    // A classic member cannot join a consumer group, nor a consumer member a classic one.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(text(GROUP)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(text("range")),
        ]);
    let refused = client.call(5, &join);
    assert_eq!(
        refused.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );

    // Commits and fetches carry the member epoch.
    assert_eq!(commit(&mut client, "member-b", b.epoch, 7), 0);
    assert_eq!(
        commit(&mut client, "member-b", b.epoch - 1, 8),
        code(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        commit(&mut client, "nobody", b.epoch, 8),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        commit(&mut client, "", -1, 8),
        code(ResponseError::UnknownMemberId),
        "no unmanaged commits while the group has members"
    );
    assert_eq!(fetch(&mut client, Some("member-b"), b.epoch), (0, 7));
    assert_eq!(
        fetch(&mut client, Some("member-b"), b.epoch + 1).0,
        code(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(fetch(&mut client, None, -1), (0, 7));

    // The first leaves; the second takes everything on its next heartbeats.
    let left = client.call(
        1,
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text(GROUP)))
            .with_member_id(text("member-a"))
            .with_member_epoch(-1),
    );
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    b.beat(&mut client, id);
    b.beat(&mut client, id);
    assert_eq!(b.owned, (0..4).collect());

    // After a restart the offsets are there, the members are not.
    drop(client);
    drop(broker);
    let broker = TestBroker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    assert_eq!(topic_id(&mut client), id, "the id survives a restart");
    assert_eq!(fetch(&mut client, None, -1), (0, 7));
    let gone = client.call(
        1,
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text(GROUP)))
            .with_member_id(text("member-b"))
            .with_member_epoch(b.epoch)
            .with_rebalance_timeout_ms(-1),
    );
    assert_eq!(gone.error_code, code(ResponseError::UnknownMemberId));
}
