//! The group coordinator through its public API, on a real `keel-log` data directory and
//! tokio's paused clock: concurrent joins, the timer task's deadlines, offsets that survive a
//! restart, the admin APIs, and every response encoding at every served version.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as ConsumerTopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use keel_kafka::NodeAddress;
use keel_kafka::group::{GroupConfig, GroupCoordinator, RequestContext};
use keel_log::{Log, OffsetCommit, TopicConfig};
use tokio::time::Instant;

const SESSION_MS: i32 = 10_000;

fn context(api_version: i16) -> RequestContext {
    RequestContext {
        api_version,
        client_id: "test-client".into(),
        client_host: "/127.0.0.1".into(),
    }
}

fn node() -> NodeAddress {
    NodeAddress {
        node_id: 1,
        host: "127.0.0.1".into(),
        port: 9092,
    }
}

fn group_id(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

fn name(code: i16) -> String {
    ResponseError::try_from_code(code).map_or("NONE".into(), |e| e.to_string())
}

fn open_log(dir: &std::path::Path) -> Arc<Log> {
    let log = Log::open(dir).expect("open log");
    if log.topic("orders").is_none() {
        log.create_topic("orders", TopicConfig::new(2))
            .expect("create topic");
    }
    Arc::new(log)
}

fn join_request(group: &str, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(20_000)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"subscription")),
        ])
}

/// The v4+ join: learn a member id, then join with it (waits for the rebalance).
async fn join(coordinator: &GroupCoordinator, group: &str) -> JoinGroupResponse {
    let first = coordinator
        .join_group(&context(5), join_request(group, ""))
        .await;
    assert_eq!(name(first.error_code), "MemberIdRequired");
    coordinator
        .join_group(&context(5), join_request(group, &first.member_id))
        .await
}

fn sync_request(
    group: &str,
    joined: &JoinGroupResponse,
    assignments: &[(&StrBytes, &'static [u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(
            assignments
                .iter()
                .map(|(member, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id((*member).clone())
                        .with_assignment(Bytes::from_static(assignment))
                })
                .collect(),
        )
}

fn heartbeat_request(group: &str, joined: &JoinGroupResponse) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
}

fn commit_request(
    group: &str,
    generation: i32,
    member_id: &str,
    topic: &str,
    partitions: &[(i32, i64, &str)],
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(StrBytes::from_string(topic.to_string()).into())
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(index, offset, metadata)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*index)
                                .with_committed_offset(*offset)
                                .with_committed_metadata(Some(StrBytes::from_string(
                                    metadata.to_string(),
                                )))
                        })
                        .collect(),
                ),
        ])
}

fn commit_codes(response: &OffsetCommitResponse) -> Vec<String> {
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| name(p.error_code)))
        .collect()
}

/// (topic, partition, offset, metadata) of a v0–7 OffsetFetch for all of `group`'s topics.
async fn fetch_all(coordinator: &GroupCoordinator, group: &str) -> Vec<(String, i32, i64, String)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(None);
    let response = coordinator.offset_fetch(&context(7), request).await;
    assert_eq!(response.error_code, 0);
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let metadata = p.metadata.as_deref().unwrap_or("").to_string();
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    metadata,
                )
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn members_starting_together_share_one_generation_and_a_silent_one_expires() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = GroupCoordinator::start(open_log(dir.path()), GroupConfig::default());
    let started = Instant::now();
    let (a, b) = tokio::join!(join(&coordinator, "g"), join(&coordinator, "g"));
    // Kafka's initial rebalance delay (3 s) gathered both into generation 1.
    assert_eq!(started.elapsed(), Duration::from_millis(3_000));
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    let (leader, follower) = if a.leader == a.member_id {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(leader.members.len(), 2);

    let assignments = [
        (&leader.member_id, &b"p0"[..]),
        (&follower.member_id, &b"p1"[..]),
    ];
    let v5 = context(5);
    let (leader_sync, follower_sync) = tokio::join!(
        coordinator.sync_group(&v5, sync_request("g", &leader, &assignments)),
        coordinator.sync_group(&v5, sync_request("g", &follower, &[])),
    );
    assert_eq!(leader_sync.assignment, Bytes::from_static(b"p0"));
    assert_eq!(follower_sync.assignment, Bytes::from_static(b"p1"));

    // Only the leader heartbeats; the timer task removes the follower when its session
    // (10 s after its sync) runs out, and the leader's next heartbeat says to rejoin.
    let synced = Instant::now();
    // Heartbeats half-way between whole seconds never coincide with the expiry instant.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rebalance_seen = loop {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let response = coordinator
            .heartbeat(&context(4), heartbeat_request("g", &leader))
            .await;
        if response.error_code != 0 {
            assert_eq!(name(response.error_code), "RebalanceInProgress");
            break synced.elapsed();
        }
    };
    assert_eq!(rebalance_seen, Duration::from_millis(10_500));
    let stale = coordinator
        .heartbeat(&context(4), heartbeat_request("g", &follower))
        .await;
    assert_eq!(name(stale.error_code), "UnknownMemberId");

    let rejoined = coordinator
        .join_group(&context(5), join_request("g", &leader.member_id))
        .await;
    assert_eq!((rejoined.generation_id, rejoined.members.len()), (2, 1));
    let described = coordinator
        .describe_groups(
            &context(5),
            DescribeGroupsRequest::default().with_groups(vec![group_id("g")]),
        )
        .await;
    let group = &described.groups[0];
    assert_eq!(group.group_state.as_str(), "CompletingRebalance");
    assert_eq!(group.members.len(), 1);
    assert_eq!(group.members[0].client_id.as_str(), "test-client");
}

#[tokio::test(start_paused = true)]
async fn offsets_of_groups_without_members_expire_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let entry = OffsetCommit {
        topic: "orders".into(),
        partition: 0,
        offset: 3,
        metadata: String::new(),
    };
    // Committed in 1970: older than an hour's retention by any wall clock.
    log.group_offsets().commit("gone", &[entry], 1_000).unwrap();
    let config = GroupConfig {
        offsets_retention_ms: Some(3_600_000),
        offsets_retention_check_interval_ms: 1_000,
        ..GroupConfig::default()
    };
    let coordinator = GroupCoordinator::start(log.clone(), config);
    let recent = coordinator
        .offset_commit(
            &context(8),
            commit_request("recent", -1, "", "orders", &[(0, 5, "")]),
        )
        .await;
    assert_eq!(commit_codes(&recent), ["NONE"]);
    // Paused time: the checks run every virtual second; ten of them is plenty.
    let give_up = Instant::now() + Duration::from_secs(10);
    while !log.group_offsets().group("gone").is_empty() {
        assert!(
            Instant::now() < give_up,
            "the expired offsets were never deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fetch_all(&coordinator, "recent").await,
        [("orders".to_string(), 0, 5, String::new())]
    );
}

#[tokio::test(start_paused = true)]
async fn committed_offsets_are_checked_stored_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = GroupCoordinator::start(open_log(dir.path()), GroupConfig::default());
    let long_metadata = "m".repeat(5_000);
    let partitions = [
        (0, 5, "first"),
        (1, 7, ""),
        (2, 1, ""),
        (0, -3, ""),
        (1, 8, long_metadata.as_str()),
    ];
    let simple = coordinator
        .offset_commit(
            &context(8),
            commit_request("g", -1, "", "orders", &partitions),
        )
        .await;
    assert_eq!(
        commit_codes(&simple),
        [
            "NONE",
            "NONE",
            "UnknownTopicOrPartition",
            "InvalidCommitOffsetSize",
            "OffsetMetadataTooLarge"
        ]
    );
    let unknown_topic = coordinator
        .offset_commit(
            &context(8),
            commit_request("g", -1, "", "missing", &[(0, 1, "")]),
        )
        .await;
    assert_eq!(commit_codes(&unknown_topic), ["UnknownTopicOrPartition"]);
    let stale = coordinator
        .offset_commit(
            &context(8),
            commit_request("g", 4, "gone", "orders", &[(0, 9, "")]),
        )
        .await;
    assert_eq!(
        commit_codes(&stale),
        ["IllegalGeneration"],
        "no group has generation 4"
    );

    let expected = vec![
        ("orders".to_string(), 0, 5, "first".to_string()),
        ("orders".to_string(), 1, 7, String::new()),
    ];
    assert_eq!(fetch_all(&coordinator, "g").await, expected);

    // A member of a live group commits with its generation; a stale one is refused.
    let member = join(&coordinator, "live").await;
    let commit_live = |generation: i32, offset: i64| {
        let request = commit_request(
            "live",
            generation,
            &member.member_id,
            "orders",
            &[(1, offset, "")],
        );
        let coordinator = &coordinator;
        async move { commit_codes(&coordinator.offset_commit(&context(8), request).await) }
    };
    let current = member.generation_id;
    assert_eq!(
        commit_live(current, 41).await,
        ["RebalanceInProgress"],
        "not synced yet"
    );
    coordinator
        .sync_group(&context(5), sync_request("live", &member, &[]))
        .await;
    assert_eq!(commit_live(current, 42).await, ["NONE"]);
    assert_eq!(commit_live(current - 1, 43).await, ["IllegalGeneration"]);

    drop(coordinator);
    let coordinator = GroupCoordinator::start(open_log(dir.path()), GroupConfig::default());
    assert_eq!(
        fetch_all(&coordinator, "g").await,
        expected,
        "offsets survive a restart"
    );

    // v8+: several groups per request, named partitions (one never committed: -1).
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(group_id("live"))
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(StrBytes::from_static_str("orders").into())
                    .with_partition_indexes(vec![0, 1]),
            ])),
        OffsetFetchRequestGroup::default()
            .with_group_id(group_id("g"))
            .with_topics(None),
    ]);
    let response = coordinator.offset_fetch(&context(8), request).await;
    let offsets: Vec<Vec<(i32, i64)>> = response
        .groups
        .iter()
        .map(|g| {
            g.topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, p.committed_offset))
                })
                .collect()
        })
        .collect();
    assert_eq!(offsets, [vec![(0, -1), (1, 42)], vec![(0, 5), (1, 7)]]);

    // After the restart the groups exist only through their offsets.
    let listed = coordinator
        .list_groups(&context(4), ListGroupsRequest::default())
        .await;
    let groups: Vec<(String, String)> = listed
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect();
    assert_eq!(
        groups,
        [
            ("g".into(), "Empty".into()),
            ("live".into(), "Empty".into())
        ]
    );
    let stable_only = coordinator
        .list_groups(
            &context(4),
            ListGroupsRequest::default()
                .with_states_filter(vec![StrBytes::from_static_str("Stable")]),
        )
        .await;
    assert!(stable_only.groups.is_empty());
    let described = coordinator
        .describe_groups(
            &context(6),
            DescribeGroupsRequest::default().with_groups(vec![group_id("g"), group_id("nope")]),
        )
        .await;
    let states: Vec<(String, String)> = described
        .groups
        .iter()
        .map(|g| (g.group_state.to_string(), name(g.error_code)))
        .collect();
    assert_eq!(
        states,
        [
            ("Empty".into(), "NONE".into()),
            ("Dead".into(), "GroupIdNotFound".into())
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn find_coordinator_names_this_broker_for_groups_and_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = GroupCoordinator::start(open_log(dir.path()), GroupConfig::default());
    let old = coordinator
        .find_coordinator(
            &context(3),
            &node(),
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
        )
        .await;
    assert_eq!(
        (old.error_code, old.node_id.0, old.host.as_str(), old.port),
        (0, 1, "127.0.0.1", 9092)
    );
    let batch = coordinator
        .find_coordinator(
            &context(4),
            &node(),
            FindCoordinatorRequest::default().with_coordinator_keys(vec![
                StrBytes::from_static_str("a"),
                StrBytes::from_static_str("b"),
            ]),
        )
        .await;
    let keys: Vec<(&str, i32)> = batch
        .coordinators
        .iter()
        .map(|c| (c.key.as_str(), c.port))
        .collect();
    assert_eq!(keys, [("a", 9092), ("b", 9092)]);
    let transaction = coordinator
        .find_coordinator(
            &context(3),
            &node(),
            FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("tx"))
                .with_key_type(1),
        )
        .await;
    assert_eq!(
        (transaction.error_code, transaction.port),
        (0, 9092),
        "the transaction coordinator too"
    );
    let share = coordinator
        .find_coordinator(
            &context(3),
            &node(),
            FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("s"))
                .with_key_type(2),
        )
        .await;
    assert_eq!(name(share.error_code), "InvalidRequest");
}

/// Runs a whole group life cycle at each version of each API and encodes every answer at
/// that version: kafka-protocol refuses to encode a field a version lacks, so a response
/// shaped for the wrong version fails here instead of on a client's connection.
/// A ConsumerGroupHeartbeat of `member` in group `k` at `epoch`, owning `owned` of `orders`
/// (named by `topic_id`, as the assignments name it).
fn consumer_heartbeat(
    member: &str,
    epoch: i32,
    topic_id: uuid::Uuid,
    owned: &[i32],
) -> ConsumerGroupHeartbeatRequest {
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group_id("k"))
        .with_member_id(StrBytes::from_string(member.to_string()))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(vec![
            ConsumerTopicPartitions::default()
                .with_topic_id(topic_id)
                .with_partitions(owned.to_vec()),
        ]));
    if epoch > 0 {
        return request;
    }
    request
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![StrBytes::from_static_str("orders").into()]))
        .with_topic_partitions(Some(Vec::new()))
}

/// The member's epoch and owned partitions after `answer`: its assignment when it carries
/// one (the member revokes and takes at once), else what it owned.
fn taken(answer: &ConsumerGroupHeartbeatResponse, owned: Vec<i32>) -> (i32, Vec<i32>) {
    let owned = answer.assignment.as_ref().map_or(owned, |assignment| {
        assignment
            .topic_partitions
            .iter()
            .flat_map(|t| t.partitions.clone())
            .collect()
    });
    (answer.member_epoch, owned)
}

#[tokio::test(start_paused = true)]
async fn the_timer_task_fences_a_silent_consumer_protocol_member_at_its_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = GroupCoordinator::start(open_log(dir.path()), GroupConfig::default());
    let v1 = context(1);
    let a = coordinator
        .consumer_group_heartbeat(&v1, consumer_heartbeat("a", 0, uuid::Uuid::nil(), &[]))
        .await;
    let topic_id = a.assignment.as_ref().expect("assigned").topic_partitions[0].topic_id;
    let joined = Instant::now();
    let b = coordinator
        .consumer_group_heartbeat(&v1, consumer_heartbeat("b", 0, topic_id, &[]))
        .await;
    assert_eq!(
        (name(a.error_code), name(b.error_code)),
        ("NONE".into(), "NONE".into())
    );
    // Only `a` heartbeats, every second, half-way between whole seconds; `b` is fenced by the
    // timer task when its session (45 s, Kafka's default) runs out, not by a heartbeat.
    let members = || async {
        let described = coordinator
            .consumer_group_describe(
                &v1,
                ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id("k")]),
            )
            .await;
        described.groups[0].members.len()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut epoch, mut owned) = (a.member_epoch, vec![0, 1]);
    let mut fenced_after = None;
    for _ in 0..60 {
        let answer = coordinator
            .consumer_group_heartbeat(&v1, consumer_heartbeat("a", epoch, topic_id, &owned))
            .await;
        assert_eq!(name(answer.error_code), "NONE");
        (epoch, owned) = taken(&answer, owned);
        if members().await == 1 {
            fenced_after = Some(joined.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    }
    assert_eq!(fenced_after, Some(Duration::from_millis(45_500)));
    let stale = coordinator
        .consumer_group_heartbeat(&v1, consumer_heartbeat("b", b.member_epoch, topic_id, &[]))
        .await;
    assert_eq!(name(stale.error_code), "UnknownMemberId");
    // `a` gets back the partition `b` was to have.
    for _ in 0..2 {
        let answer = coordinator
            .consumer_group_heartbeat(&v1, consumer_heartbeat("a", epoch, topic_id, &owned))
            .await;
        (epoch, owned) = taken(&answer, owned);
    }
    assert_eq!(owned, [0, 1]);
}

#[tokio::test(start_paused = true)]
async fn every_answer_encodes_at_every_served_version() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = GroupCoordinator::start(open_log(dir.path()), GroupConfig::default());
    fn encodes<T: Encodable>(api: ApiKey, version: i16, response: &T) {
        let mut buf = BytesMut::new();
        if let Err(error) = response.encode(&mut buf, version) {
            panic!("{api:?} v{version}: {error}");
        }
    }
    let range = |api| {
        let (min, max) = GroupCoordinator::versions(api).expect("served");
        min..=max
    };
    for version in range(ApiKey::FindCoordinator) {
        for key_type in [0, 1] {
            let request = FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_key(StrBytes::from_static_str("g"))
                .with_coordinator_keys(vec![StrBytes::from_static_str("g")]);
            let response = coordinator
                .find_coordinator(&context(version), &node(), request)
                .await;
            encodes(ApiKey::FindCoordinator, version, &response);
        }
    }
    for version in range(ApiKey::JoinGroup) {
        let group = format!("g{version}");
        let mut joined = coordinator
            .join_group(&context(version), join_request(&group, ""))
            .await;
        encodes(ApiKey::JoinGroup, version, &joined);
        if joined.error_code != 0 {
            joined = coordinator
                .join_group(&context(version), join_request(&group, &joined.member_id))
                .await;
            encodes(ApiKey::JoinGroup, version, &joined);
        }
        assert_eq!(name(joined.error_code), "NONE", "JoinGroup v{version}");
        let sync_version = version.min(5);
        let sync = coordinator
            .sync_group(
                &context(sync_version),
                sync_request(&group, &joined, &[(&joined.member_id, b"all")]),
            )
            .await;
        encodes(ApiKey::SyncGroup, sync_version, &sync);
        assert_eq!(sync.assignment, Bytes::from_static(b"all"));
        let heartbeat_version = version.min(4);
        let heartbeat = coordinator
            .heartbeat(
                &context(heartbeat_version),
                heartbeat_request(&group, &joined),
            )
            .await;
        encodes(ApiKey::Heartbeat, heartbeat_version, &heartbeat);
        for describe_version in range(ApiKey::DescribeGroups) {
            let request = DescribeGroupsRequest::default()
                .with_groups(vec![group_id(&group), group_id("unknown")]);
            let response = coordinator
                .describe_groups(&context(describe_version), request)
                .await;
            encodes(ApiKey::DescribeGroups, describe_version, &response);
        }
        let leave_version = version.min(5);
        let leave = LeaveGroupRequest::default()
            .with_group_id(group_id(&group))
            .with_member_id(joined.member_id.clone())
            .with_members(vec![
                MemberIdentity::default().with_member_id(joined.member_id.clone()),
            ]);
        let left = coordinator
            .leave_group(&context(leave_version), leave)
            .await;
        encodes(ApiKey::LeaveGroup, leave_version, &left);
        let code = left
            .members
            .first()
            .map_or(left.error_code, |m| m.error_code);
        assert_eq!(name(code), "NONE", "LeaveGroup v{leave_version}");
    }
    for version in range(ApiKey::OffsetCommit) {
        let response = coordinator
            .offset_commit(
                &context(version),
                commit_request("c", -1, "", "orders", &[(0, 1, "x"), (9, 1, "")]),
            )
            .await;
        encodes(ApiKey::OffsetCommit, version, &response);
    }
    for version in range(ApiKey::OffsetFetch) {
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id("c"))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(StrBytes::from_static_str("orders").into())
                    .with_partition_indexes(vec![0, 1]),
            ]))
            .with_groups(vec![
                OffsetFetchRequestGroup::default().with_group_id(group_id("c")),
            ]);
        let response = coordinator.offset_fetch(&context(version), request).await;
        encodes(ApiKey::OffsetFetch, version, &response);
    }
    for version in range(ApiKey::ListGroups) {
        let response = coordinator
            .list_groups(&context(version), ListGroupsRequest::default())
            .await;
        encodes(ApiKey::ListGroups, version, &response);
        assert!(response.groups.iter().any(|g| g.group_id.as_str() == "c"));
    }
    for version in range(ApiKey::ConsumerGroupHeartbeat) {
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group_id(&format!("kip848-{version}")))
            .with_member_id(StrBytes::from_static_str("m"))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![StrBytes::from_static_str("orders").into()]))
            .with_topic_partitions(Some(Vec::new()));
        let response = coordinator
            .consumer_group_heartbeat(&context(version), request)
            .await;
        encodes(ApiKey::ConsumerGroupHeartbeat, version, &response);
        assert_eq!(name(response.error_code), "NONE", "heartbeat v{version}");
        assert!(response.assignment.is_some());
    }
    // The console's view of a consumer-protocol group: its members and what they hold.
    let view = coordinator.group_view("kip848-0").expect("live");
    assert_eq!(
        (view.protocol_type.as_str(), view.state),
        ("consumer", "Stable")
    );
    assert_eq!(
        view.members[0].partitions,
        [("orders".to_string(), vec![0, 1])]
    );
    for version in range(ApiKey::ConsumerGroupDescribe) {
        let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![
            group_id("kip848-0"),
            group_id("c"),
            group_id("none"),
        ]);
        let response = coordinator
            .consumer_group_describe(&context(version), request)
            .await;
        encodes(ApiKey::ConsumerGroupDescribe, version, &response);
        let codes: Vec<String> = response.groups.iter().map(|g| name(g.error_code)).collect();
        assert_eq!(codes, ["NONE", "GroupIdNotFound", "GroupIdNotFound"]);
    }
}
