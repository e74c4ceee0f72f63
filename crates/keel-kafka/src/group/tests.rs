//! The group state machine driven step by step with explicit time: joins, the member-id
//! handshake, syncs, heartbeats, leaves, session and rebalance expiry, generation fencing and
//! static membership.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::config::GroupConfig;
use super::coordinator::RequestContext;
use super::state::{Group, GroupState, Reply};

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

/// A group, its configuration and a clock the test moves.
struct Harness {
    group: Group,
    config: GroupConfig,
    now_ms: u64,
}

/// A member as a test client sees it: its id and the generation it is in.
#[derive(Debug, Clone)]
struct Joined {
    id: String,
    generation: i32,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        })
    }

    fn with_config(config: GroupConfig) -> Harness {
        Harness {
            group: Group::new("g", &config),
            config,
            now_ms: 0,
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        self.group.tick(self.now_ms);
    }

    fn join_with(&mut self, version: i16, request: JoinGroupRequest) -> Reply<JoinGroupResponse> {
        let context = RequestContext {
            api_version: version,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
        };
        self.group
            .join(&request, &context, &self.config, self.now_ms)
    }

    fn join(&mut self, member_id: &str, protocols: &[&str]) -> Reply<JoinGroupResponse> {
        self.join_with(5, join_request(member_id, protocols))
    }

    /// The v4+ handshake: the id handed out by MEMBER_ID_REQUIRED.
    fn member_id(&mut self) -> String {
        let response = ready(self.join("", &["range"]));
        assert_eq!(
            code(response.error_code),
            code(ResponseError::MemberIdRequired.code())
        );
        response.member_id.to_string()
    }

    fn sync(&mut self, member: &Joined, assignments: &[(&str, &str)]) -> Reply<SyncGroupResponse> {
        let assignments = assignments
            .iter()
            .map(|(id, assignment)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(id.to_string()))
                    .with_assignment(Bytes::from(assignment.to_string()))
            })
            .collect();
        let request = SyncGroupRequest::default()
            .with_generation_id(member.generation)
            .with_member_id(StrBytes::from_string(member.id.clone()))
            .with_assignments(assignments);
        self.group.sync(&request, self.now_ms)
    }

    fn heartbeat(&mut self, member: &Joined) -> String {
        let request = HeartbeatRequest::default()
            .with_generation_id(member.generation)
            .with_member_id(StrBytes::from_string(member.id.clone()));
        code(self.group.heartbeat(&request, self.now_ms))
    }

    fn commit(&mut self, generation: i32, member_id: &str) -> String {
        match self
            .group
            .check_commit(generation, member_id, None, false, self.now_ms)
        {
            Ok(()) => code(0),
            Err(error) => code(error.code()),
        }
    }

    /// A stable generation 2 of the leader `a` (assigned "p0") and `b` (assigned "p1").
    fn stable_pair(&mut self) -> (Joined, Joined) {
        let a = self.stable_leader();
        let b_id = self.member_id();
        let mut b_join = parked(self.join(&b_id, &["range"]));
        let a = joined(answered(&mut parked(self.join(&a.id, &["range"]))));
        let b = joined(answered(&mut b_join));
        let mut b_sync = parked(self.sync(&b, &[]));
        let a_sync = answered(&mut parked(self.sync(&a, &[(&a.id, "p0"), (&b.id, "p1")])));
        assert_eq!(a_sync.assignment, Bytes::from("p0"));
        assert_eq!(answered(&mut b_sync).assignment, Bytes::from("p1"));
        assert_eq!((a.generation, self.group.state()), (2, GroupState::Stable));
        (a, b)
    }

    /// Moves time forward in steps of `step_ms`, `members` heartbeating after each.
    fn keep_alive(&mut self, members: &[&Joined], total_ms: u64, step_ms: u64) {
        let mut elapsed = 0;
        while elapsed + step_ms <= total_ms {
            self.advance(step_ms);
            elapsed += step_ms;
            for member in members {
                self.heartbeat(member);
            }
        }
    }

    /// One member alone forms generation 1 and syncs its own assignment.
    fn stable_leader(&mut self) -> Joined {
        let id = self.member_id();
        let leader = joined(answered(&mut parked(self.join(&id, &["range"]))));
        let assignment = answered(&mut parked(self.sync(&leader, &[(&id, "all")])));
        assert_eq!(assignment.assignment, Bytes::from("all"));
        leader
    }
}

fn join_request(member_id: &str, protocols: &[&str]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(StrBytes::from_static_str("g").into())
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|name| {
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_string(name.to_string()))
                        .with_metadata(Bytes::from(format!("{member_id}:{name}")))
                })
                .collect(),
        )
}

/// An error code by name, so a failing assertion reads as the protocol does.
fn code(code: i16) -> String {
    let Some(error) = ResponseError::try_from_code(code) else {
        return "NONE".into();
    };
    let mut name = String::new();
    for (i, c) in error.to_string().chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn ready<T: std::fmt::Debug>(reply: Reply<T>) -> T {
    match reply {
        Reply::Ready(response) => response,
        Reply::Wait(_) => panic!("expected an immediate answer"),
    }
}

fn parked<T>(reply: Reply<T>) -> oneshot::Receiver<T> {
    match reply {
        Reply::Wait(receiver) => receiver,
        Reply::Ready(_) => panic!("expected the request to wait"),
    }
}

fn answered<T>(receiver: &mut oneshot::Receiver<T>) -> T {
    receiver
        .try_recv()
        .expect("the parked request was answered")
}

fn pending<T: std::fmt::Debug>(receiver: &mut oneshot::Receiver<T>) {
    assert_eq!(
        receiver.try_recv().err(),
        Some(oneshot::error::TryRecvError::Empty),
        "the request should still be waiting"
    );
}

fn joined(response: JoinGroupResponse) -> Joined {
    assert_eq!(code(response.error_code), "NONE", "{response:?}");
    Joined {
        id: response.member_id.to_string(),
        generation: response.generation_id,
    }
}

#[test]
fn a_v4_member_gets_its_id_first_and_then_leads_generation_one() {
    let mut h = Harness::new();
    let id = h.member_id();
    assert!(id.starts_with("client-"), "{id}");
    assert_eq!(h.group.state(), GroupState::Empty);
    let response = answered(&mut parked(h.join(&id, &["range", "roundrobin"])));
    assert_eq!(response.generation_id, 1);
    assert_eq!(response.leader.as_str(), id);
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
    assert_eq!(response.members.len(), 1);
    assert_eq!(
        response.members[0].metadata,
        Bytes::from(format!("{id}:range"))
    );
    assert_eq!(h.group.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_v3_member_joins_without_the_handshake() {
    let mut h = Harness::new();
    let response = answered(&mut parked(h.join_with(3, join_request("", &["range"]))));
    assert_eq!(code(response.error_code), "NONE");
    assert_eq!(response.generation_id, 1);
    assert_eq!(response.leader, response.member_id);
}

#[test]
fn a_new_member_makes_everyone_rejoin_and_the_leader_assigns_for_both() {
    let mut h = Harness::new();
    let a = h.stable_leader();
    let b_id = h.member_id();
    let mut b_join = parked(h.join(&b_id, &["range"]));
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    pending(&mut b_join);
    assert_eq!(h.heartbeat(&a), "REBALANCE_IN_PROGRESS");
    assert_eq!(
        h.commit(a.generation, &a.id),
        "NONE",
        "commits before rejoining are allowed"
    );

    let a_response = answered(&mut parked(h.join(&a.id, &["range"])));
    let b_response = answered(&mut b_join);
    assert_eq!(a_response.generation_id, 2);
    assert_eq!(a_response.leader.as_str(), a.id, "the leader stays leader");
    assert_eq!(a_response.members.len(), 2);
    assert!(
        b_response.members.is_empty(),
        "only the leader sees the members"
    );
    let (a, b) = (joined(a_response), joined(b_response));

    assert_eq!(h.commit(a.generation, &a.id), "REBALANCE_IN_PROGRESS");
    let mut b_sync = parked(h.sync(&b, &[]));
    pending(&mut b_sync);
    let a_sync = answered(&mut parked(h.sync(&a, &[(&a.id, "p0"), (&b.id, "p1")])));
    assert_eq!(a_sync.assignment, Bytes::from("p0"));
    assert_eq!(answered(&mut b_sync).assignment, Bytes::from("p1"));
    assert_eq!(h.group.state(), GroupState::Stable);
    assert_eq!(h.heartbeat(&b), "NONE");
    // A repeated sync in the stable generation returns the stored assignment.
    assert_eq!(ready(h.sync(&b, &[])).assignment, Bytes::from("p1"));
}

#[test]
fn a_member_that_does_not_rejoin_in_time_is_dropped_from_the_generation() {
    let mut h = Harness::new();
    let (a, b) = h.stable_pair();
    let c_id = h.member_id();
    let mut c_join = parked(h.join(&c_id, &["range"]));
    let mut a_join = parked(h.join(&a.id, &["range"]));
    // `b` heartbeats (so its session never expires) but never rejoins.
    h.keep_alive(&[&b], 27_000, 3_000);
    pending(&mut a_join);
    assert_eq!(h.heartbeat(&b), "REBALANCE_IN_PROGRESS");
    h.advance(3_000);
    let a_response = answered(&mut a_join);
    assert_eq!(a_response.generation_id, 3);
    let ids: Vec<&str> = a_response
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, [a.id.as_str(), c_id.as_str()]);
    assert_eq!(joined(answered(&mut c_join)).generation, 3);
    assert_eq!(h.heartbeat(&b), "UNKNOWN_MEMBER_ID");
}

#[test]
fn a_silent_member_expires_after_its_session_timeout_and_the_group_rebalances() {
    let mut h = Harness::new();
    let (a, b) = h.stable_pair();
    h.keep_alive(&[&a], 9_000, 3_000);
    assert_eq!(h.group.state(), GroupState::Stable);
    h.advance(999);
    assert_eq!(
        h.heartbeat(&b),
        "NONE",
        "alive one millisecond before the deadline"
    );
    h.keep_alive(&[&a], 9_999, 3_333);
    assert_eq!(h.group.state(), GroupState::Stable);
    h.advance(1);
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&b), "UNKNOWN_MEMBER_ID");
    assert_eq!(h.heartbeat(&a), "REBALANCE_IN_PROGRESS");
    let a3 = answered(&mut parked(h.join(&a.id, &["range"])));
    assert_eq!((a3.generation_id, a3.members.len()), (3, 1));
}

#[test]
fn stale_generations_and_unknown_members_are_fenced() {
    let mut h = Harness::new();
    let (a, b) = h.stable_pair();
    let stale = Joined {
        generation: 1,
        ..a.clone()
    };
    let stranger = Joined {
        id: "nobody".into(),
        ..a.clone()
    };
    assert_eq!(h.heartbeat(&stale), "ILLEGAL_GENERATION");
    assert_eq!(h.heartbeat(&stranger), "UNKNOWN_MEMBER_ID");
    assert_eq!(
        code(ready(h.sync(&stale, &[])).error_code),
        "ILLEGAL_GENERATION"
    );
    assert_eq!(h.commit(1, &a.id), "ILLEGAL_GENERATION");
    assert_eq!(h.commit(2, "nobody"), "UNKNOWN_MEMBER_ID");
    assert_eq!(
        h.commit(-1, ""),
        "UNKNOWN_MEMBER_ID",
        "no simple commits into a live group"
    );
    assert_eq!(h.commit(2, &b.id), "NONE");
    let rejoin = ready(h.join("nobody", &["range"]));
    assert_eq!(code(rejoin.error_code), "UNKNOWN_MEMBER_ID");

    assert_eq!(code(h.group.leave(&a.id, None, h.now_ms)), "NONE");
    assert_eq!(code(h.group.leave(&b.id, None, h.now_ms)), "NONE");
    assert_eq!(h.group.state(), GroupState::Empty);
    assert!(h.group.is_removable());
    assert_eq!(
        h.commit(-1, ""),
        "NONE",
        "an empty group takes simple commits"
    );
    assert_eq!(h.commit(2, &a.id), "UNKNOWN_MEMBER_ID");
}

#[test]
fn a_leaving_leader_hands_over_and_a_leaving_member_stops_holding_up_the_rebalance() {
    let mut h = Harness::new();
    let (a, b) = h.stable_pair();
    // `b` asks for a new assignment (its metadata changed), then `a` leaves instead of
    // rejoining: the rebalance completes at once with `b` alone, as its leader.
    let mut b_join = parked(h.join(&b.id, &["range", "roundrobin"]));
    pending(&mut b_join);
    assert_eq!(code(h.group.leave(&a.id, None, h.now_ms)), "NONE");
    let b3 = answered(&mut b_join);
    assert_eq!((b3.generation_id, b3.leader.as_str()), (3, b.id.as_str()));
    assert_eq!(b3.members.len(), 1);
    assert_eq!(
        code(h.group.leave(&a.id, None, h.now_ms)),
        "UNKNOWN_MEMBER_ID"
    );
}

#[test]
fn a_member_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let mut h = Harness::new();
    let a = h.stable_leader();
    let b_id = h.member_id();
    let mut b_join = parked(h.join(&b_id, &["range"]));
    let a = joined(answered(&mut parked(h.join(&a.id, &["range"]))));
    let b = joined(answered(&mut b_join));
    answered(&mut parked(h.sync(&a, &[(&a.id, "p0"), (&b.id, "p1")])));
    assert_eq!(h.group.state(), GroupState::Stable);
    // `b` heartbeats but never fetches its assignment: after the rebalance timeout its
    // partitions go to someone who will consume them.
    h.keep_alive(&[&a, &b], 27_000, 3_000);
    assert_eq!(h.group.state(), GroupState::Stable);
    h.advance(3_000);
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&b), "UNKNOWN_MEMBER_ID");
}

#[test]
fn a_sync_waiting_for_the_leader_learns_of_a_new_rebalance() {
    let mut h = Harness::new();
    let a = h.stable_leader();
    let b_id = h.member_id();
    let mut b_join = parked(h.join(&b_id, &["range"]));
    let _a = joined(answered(&mut parked(h.join(&a.id, &["range"]))));
    let b = joined(answered(&mut b_join));
    let mut b_sync = parked(h.sync(&b, &[]));
    let c_id = h.member_id();
    let _c_join = parked(h.join(&c_id, &["range"]));
    assert_eq!(
        code(answered(&mut b_sync).error_code),
        "REBALANCE_IN_PROGRESS"
    );
}

#[test]
fn joins_that_do_not_fit_the_group_are_refused() {
    let mut h = Harness::new();
    let _a = h.stable_leader();
    let check = |h: &mut Harness, request: JoinGroupRequest, expected: &str| {
        let response = ready(h.join_with(5, request));
        assert_eq!(code(response.error_code), expected);
    };
    check(
        &mut h,
        join_request("", &["sticky"]),
        "INCONSISTENT_GROUP_PROTOCOL",
    );
    check(&mut h, join_request("", &[]), "INCONSISTENT_GROUP_PROTOCOL");
    check(
        &mut h,
        join_request("", &["range"]).with_protocol_type(StrBytes::from_static_str("connect")),
        "INCONSISTENT_GROUP_PROTOCOL",
    );
    check(
        &mut h,
        join_request("", &["range", "range"]),
        "INCONSISTENT_GROUP_PROTOCOL",
    );
    check(
        &mut h,
        join_request("", &["range"]).with_session_timeout_ms(1_000),
        "INVALID_SESSION_TIMEOUT",
    );
    check(
        &mut h,
        join_request("", &["roundrobin", "range"]),
        "MEMBER_ID_REQUIRED",
    );
}

#[test]
fn the_first_rebalance_waits_the_initial_delay_for_more_members() {
    let mut h = Harness::with_config(GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..GroupConfig::default()
    });
    let mut a_join = parked(h.join_with(3, join_request("", &["range"])));
    h.advance(1_000);
    let mut b_join = parked(h.join_with(3, join_request("", &["range"])));
    assert_eq!(h.group.next_deadline_ms(), Some(3_000));
    h.advance(1_999);
    pending(&mut a_join);
    h.advance(1);
    let a = answered(&mut a_join);
    let b = answered(&mut b_join);
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    assert_eq!(a.members.len(), 2, "both members in the first generation");
}

#[test]
fn a_handed_out_member_id_holds_the_rebalance_until_used_or_expired() {
    let mut h = Harness::new();
    let a = h.stable_leader();
    let b_id = h.member_id();
    let mut a_join = parked(h.join(&a.id, &["range", "roundrobin"]));
    pending(&mut a_join);
    let mut b_join = parked(h.join(&b_id, &["range"]));
    assert_eq!(answered(&mut a_join).members.len(), 2);
    answered(&mut b_join);

    let unused = h.member_id();
    h.advance(SESSION_MS as u64);
    let late = ready(h.join(&unused, &["range"]));
    assert_eq!(code(late.error_code), "UNKNOWN_MEMBER_ID");
}

#[test]
fn the_group_size_is_bounded() {
    let mut h = Harness::with_config(GroupConfig {
        initial_rebalance_delay_ms: 0,
        group_members_max: 2,
        ..GroupConfig::default()
    });
    h.member_id();
    h.member_id();
    let third = ready(h.join("", &["range"]));
    assert_eq!(code(third.error_code), "GROUP_MAX_SIZE_REACHED");
}

#[test]
fn a_restarted_static_follower_takes_its_place_back_without_a_rebalance() {
    let mut h = Harness::new();
    let static_join = |h: &mut Harness, member_id: &str, instance: &str| {
        let request = join_request(member_id, &["range"])
            .with_group_instance_id(Some(StrBytes::from_string(instance.to_string())));
        h.join_with(5, request)
    };
    let a = joined(answered(&mut parked(static_join(&mut h, "", "i-a"))));
    answered(&mut parked(h.sync(&a, &[(&a.id, "all")])));
    let mut b_join = parked(static_join(&mut h, "", "i-b"));
    let a = joined(answered(&mut parked(static_join(&mut h, &a.id, "i-a"))));
    let b = joined(answered(&mut b_join));
    let mut b_sync = parked(h.sync(&b, &[]));
    answered(&mut parked(h.sync(&a, &[(&a.id, "p0"), (&b.id, "p1")])));
    answered(&mut b_sync);

    let b2 = joined(ready(static_join(&mut h, "", "i-b")));
    assert_ne!(b2.id, b.id);
    assert_eq!(b2.generation, b.generation, "no rebalance");
    assert_eq!(h.group.state(), GroupState::Stable);
    assert_eq!(ready(h.sync(&b2, &[])).assignment, Bytes::from("p1"));
    let old = HeartbeatRequest::default()
        .with_generation_id(b.generation)
        .with_member_id(StrBytes::from_string(b.id.clone()))
        .with_group_instance_id(Some(StrBytes::from_static_str("i-b")));
    assert_eq!(
        code(h.group.heartbeat(&old, h.now_ms)),
        "FENCED_INSTANCE_ID"
    );
    assert_eq!(h.heartbeat(&a), "NONE");
    assert_eq!(code(h.group.leave("", Some("i-b"), h.now_ms)), "NONE");
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
}
