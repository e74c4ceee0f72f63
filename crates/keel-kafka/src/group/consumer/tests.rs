//! The consumer-protocol group driven heartbeat by heartbeat with explicit time, as a client
//! would: members join, converge to a balanced assignment, and no partition is ever held by
//! two members; revocation comes before reassignment; silence and slow revocation fence.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;

use super::assignor::Assignment;
use super::state::{
    Answer, ConsumerGroup, Heartbeat, JOIN_EPOCH, LEAVE_EPOCH, Refusal, STATIC_LEAVE_EPOCH,
    TopicCatalog,
};
use crate::group::GroupConfig;

/// Topics and their partition counts, as the log would have them.
struct Topics(BTreeMap<String, u32>);

impl TopicCatalog for Topics {
    fn partitions(&self, topic: &str) -> Option<u32> {
        self.0.get(topic).copied()
    }

    fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// A client's view of its membership: its epoch and the partitions it owns.
#[derive(Debug, Clone, Default)]
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

struct Harness {
    group: ConsumerGroup,
    topics: Topics,
    config: GroupConfig,
    now_ms: u64,
}

impl Harness {
    fn new(topics: &[(&str, u32)]) -> Harness {
        Harness {
            group: ConsumerGroup::new("g"),
            topics: Topics(topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()),
            config: GroupConfig {
                consumer_session_timeout_ms: 10_000,
                consumer_heartbeat_interval_ms: 1_000,
                ..GroupConfig::default()
            },
            now_ms: 0,
        }
    }

    fn send(&mut self, request: Heartbeat) -> Result<Answer, Refusal> {
        self.group
            .heartbeat(&request, &self.topics, &self.config, self.now_ms)
    }

    fn join(&mut self, id: &str, topics: &[&str]) -> Client {
        let answer = self
            .send(Heartbeat {
                member_id: id.to_string(),
                member_epoch: JOIN_EPOCH,
                rebalance_timeout_ms: 5_000,
                subscribed_topics: Some(topics.iter().map(|t| t.to_string()).collect()),
                owned: Some(Assignment::new()),
                ..Heartbeat::default()
            })
            .expect("join");
        let mut client = Client {
            id: answer.member_id.clone(),
            ..Client::default()
        };
        client.apply(answer);
        client
    }

    /// One heartbeat of `client`, as the Java client sends it: its epoch and what it owns.
    /// It revokes at once what the answer no longer assigns it and takes the rest.
    fn beat(&mut self, client: &mut Client) -> Result<(), Refusal> {
        let answer = self.send(Heartbeat {
            member_id: client.id.clone(),
            member_epoch: client.epoch,
            rebalance_timeout_ms: -1,
            owned: Some(client.owned.clone()),
            ..Heartbeat::default()
        })?;
        client.apply(answer);
        Ok(())
    }

    /// Every client beats, round after round, until nothing changes; checks after each beat
    /// that no partition is owned twice.
    fn settle(&mut self, clients: &mut [Client]) {
        for _ in 0..10 {
            let before: Vec<(i32, Assignment)> =
                clients.iter().map(|c| (c.epoch, c.owned.clone())).collect();
            for i in 0..clients.len() {
                self.beat(&mut clients[i]).expect("beat");
                assert_owned_once(clients);
            }
            let after: Vec<(i32, Assignment)> =
                clients.iter().map(|c| (c.epoch, c.owned.clone())).collect();
            if before == after {
                return;
            }
        }
        panic!("the group did not settle: {clients:?}");
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        self.group.tick(&self.config, self.now_ms);
    }
}

impl Client {
    fn apply(&mut self, answer: Answer) {
        self.epoch = answer.member_epoch;
        if let Some(assignment) = answer.assignment {
            self.owned = assignment;
        }
    }

    fn count(&self) -> usize {
        self.owned.values().map(BTreeSet::len).sum()
    }
}

fn assert_owned_once(clients: &[Client]) {
    let mut seen = BTreeSet::new();
    for client in clients {
        for (topic, partitions) in &client.owned {
            for p in partitions {
                assert!(
                    seen.insert((topic.clone(), *p)),
                    "{topic}-{p} owned twice: {clients:?}"
                );
            }
        }
    }
}

fn counts(clients: &[Client]) -> Vec<usize> {
    clients.iter().map(Client::count).collect()
}

#[test]
fn three_members_converge_to_two_partitions_each_without_overlap() {
    let mut h = Harness::new(&[("t", 6)]);
    let a = h.join("a", &["t"]);
    assert_eq!(a.count(), 6, "the first member takes every partition");
    let mut clients = vec![a, h.join("b", &["t"]), h.join("c", &["t"])];
    h.settle(&mut clients);
    assert_eq!(counts(&clients), [2, 2, 2]);
    let epochs: BTreeSet<i32> = clients.iter().map(|c| c.epoch).collect();
    assert_eq!(
        epochs.len(),
        1,
        "everyone at the assignment epoch: {clients:?}"
    );
    assert_eq!(h.group.state(), "Stable");
}

#[test]
fn a_partition_is_revoked_before_it_is_assigned_elsewhere() {
    let mut h = Harness::new(&[("t", 2)]);
    let mut a = h.join("a", &["t"]);
    assert_eq!(a.count(), 2);
    // `b` joins: its target has one of `a`'s partitions, still held, so it gets none yet.
    let mut b = h.join("b", &["t"]);
    assert_eq!(b.count(), 0, "{b:?}");
    // `a` hears that it keeps one; it has not confirmed the revocation, so its epoch stays.
    let answer = h
        .send(Heartbeat {
            member_id: "a".into(),
            member_epoch: a.epoch,
            rebalance_timeout_ms: -1,
            ..Heartbeat::default()
        })
        .expect("beat");
    assert_eq!(answer.member_epoch, a.epoch);
    let kept = answer.assignment.clone().expect("a new assignment");
    assert_eq!(kept.values().map(BTreeSet::len).sum::<usize>(), 1);
    // While `a` has not revoked, `b` still gets nothing.
    h.beat(&mut b).expect("beat");
    assert_eq!(b.count(), 0);
    // `a` revokes (its owned partitions no longer include the other), moves to the new
    // epoch; then `b` gets the released partition.
    a.apply(answer);
    h.beat(&mut a).expect("beat");
    assert_eq!(a.epoch, h.group.assignment_epoch());
    h.beat(&mut b).expect("beat");
    assert_eq!(b.count(), 1);
    assert_owned_once(&[a, b]);
}

#[test]
fn silence_fences_and_the_partitions_move_on() {
    let mut h = Harness::new(&[("t", 4)]);
    let mut clients = vec![h.join("a", &["t"]), h.join("b", &["t"])];
    h.settle(&mut clients);
    assert_eq!(counts(&clients), [2, 2]);
    // `a` keeps beating, `b` goes silent past the session timeout.
    for _ in 0..11 {
        h.advance(1_000);
        h.beat(&mut clients[0]).expect("a beats");
    }
    let fenced = h.beat(&mut clients[1]).expect_err("b was fenced");
    assert_eq!(fenced.error, ResponseError::UnknownMemberId);
    h.beat(&mut clients[0]).expect("a beats");
    assert_eq!(clients[0].count(), 4);
    // `b` rejoins with epoch 0 and gets its share back once `a` revokes.
    let mut clients = vec![clients[0].clone(), h.join("b", &["t"])];
    h.settle(&mut clients);
    assert_eq!(counts(&clients), [2, 2]);
}

#[test]
fn a_member_that_does_not_revoke_is_fenced_after_its_rebalance_timeout() {
    let mut h = Harness::new(&[("t", 2)]);
    let a = h.join("a", &["t"]);
    let mut b = h.join("b", &["t"]);
    // `a` is told to give one partition up but keeps reporting both (rebalance timeout 5 s).
    let stubborn = |h: &mut Harness| {
        h.send(Heartbeat {
            member_id: "a".into(),
            member_epoch: a.epoch,
            rebalance_timeout_ms: -1,
            owned: Some(a.owned.clone()),
            ..Heartbeat::default()
        })
    };
    for _ in 0..4 {
        stubborn(&mut h).expect("still a member");
        h.beat(&mut b).expect("beat");
        assert_eq!(b.count(), 0, "nothing while `a` holds on");
        h.advance(1_000);
    }
    h.advance(1_500);
    let fenced = stubborn(&mut h).expect_err("fenced past the rebalance timeout");
    assert_eq!(fenced.error, ResponseError::UnknownMemberId);
    h.beat(&mut b).expect("beat");
    assert_eq!(b.count(), 2);
}

#[test]
fn epochs_are_checked() {
    let mut h = Harness::new(&[("t", 2)]);
    let a = h.join("a", &["t"]);
    let beat = |epoch: i32, id: &str| Heartbeat {
        member_id: id.to_string(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        ..Heartbeat::default()
    };
    let error = |r: Result<Answer, Refusal>| r.expect_err("refused").error;
    assert_eq!(
        error(h.send(beat(a.epoch + 1, "a"))),
        ResponseError::FencedMemberEpoch
    );
    assert_eq!(
        error(h.send(beat(1, "nobody"))),
        ResponseError::UnknownMemberId
    );
    assert_eq!(error(h.send(beat(1, ""))), ResponseError::InvalidRequest);
    // A join without a subscription or rebalance timeout, an unknown assignor, a bad regex.
    assert_eq!(
        error(h.send(beat(JOIN_EPOCH, "x"))),
        ResponseError::InvalidRequest
    );
    let mut unknown = beat(JOIN_EPOCH, "x");
    unknown.server_assignor = Some("sticky".into());
    assert_eq!(error(h.send(unknown)), ResponseError::UnsupportedAssignor);
    let mut regex = beat(JOIN_EPOCH, "x");
    regex.subscribed_regex = Some("(".into());
    assert_eq!(
        error(h.send(regex)),
        ResponseError::InvalidRegularExpression
    );
    // Commits: the member's epoch, nothing else; unmanaged commits only when empty.
    assert_eq!(h.group.check_commit("a", a.epoch, false), Ok(()));
    assert_eq!(
        h.group.check_commit("a", a.epoch - 1, false),
        Err(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        h.group.check_commit("", -1, false),
        Err(ResponseError::UnknownMemberId)
    );
    // A transactional commit need not name a member (TxnOffsetCommit before v3).
    assert_eq!(h.group.check_commit("", -1, true), Ok(()));
    assert_eq!(
        h.group.check_commit("gone", 1, true),
        Err(ResponseError::UnknownMemberId)
    );
    // Leaving frees the partitions and empties the group.
    let left = h.send(beat(LEAVE_EPOCH, "a")).expect("left");
    assert_eq!(left.member_epoch, LEAVE_EPOCH);
    assert!(h.group.is_removable());
}

#[test]
fn regex_and_range_and_new_partitions() {
    let mut h = Harness::new(&[("orders-eu", 2), ("orders-us", 2), ("payments", 2)]);
    let joined = h
        .send(Heartbeat {
            member_id: "a".into(),
            member_epoch: JOIN_EPOCH,
            rebalance_timeout_ms: 5_000,
            subscribed_regex: Some("orders-.*".into()),
            server_assignor: Some("range".into()),
            owned: Some(Assignment::new()),
            ..Heartbeat::default()
        })
        .expect("join");
    let assigned = joined.assignment.expect("assignment");
    let topics: Vec<&String> = assigned.keys().collect();
    assert_eq!(topics, ["orders-eu", "orders-us"]);
    assert_eq!(h.group.assignor(), "range");
    // A matching topic appears: the group epoch moves and the member gets it.
    let epoch = h.group.group_epoch();
    h.topics.0.insert("orders-jp".into(), 3);
    let mut a = Client {
        id: "a".into(),
        epoch: joined.member_epoch,
        owned: assigned,
    };
    h.beat(&mut a).expect("beat");
    assert!(h.group.group_epoch() > epoch);
    assert_eq!(a.count(), 7);
}

#[test]
fn a_static_member_comes_back_to_its_partitions() {
    let mut h = Harness::new(&[("t", 4)]);
    let join = |id: &str| Heartbeat {
        member_id: id.to_string(),
        member_epoch: JOIN_EPOCH,
        instance_id: Some("instance-1".into()),
        rebalance_timeout_ms: 5_000,
        subscribed_topics: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..Heartbeat::default()
    };
    let first = h.send(join("a")).expect("join");
    assert_eq!(
        h.send(join("a2")).expect_err("instance in use").error,
        ResponseError::UnreleasedInstanceId
    );
    h.send(Heartbeat {
        member_id: "a".into(),
        member_epoch: STATIC_LEAVE_EPOCH,
        instance_id: Some("instance-1".into()),
        rebalance_timeout_ms: -1,
        ..Heartbeat::default()
    })
    .expect("steps away");
    let back = h.send(join("a2")).expect("comes back");
    assert_eq!(back.member_epoch, first.member_epoch);
    assert_eq!(back.assignment, first.assignment);
}
