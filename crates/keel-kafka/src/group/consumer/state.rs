//! One consumer-protocol group (KIP-848): its epochs, members and their reconciliation, with
//! time passed in as `now_ms` so every transition is a plain call a test can drive.
//!
//! Three epochs, as Kafka keeps them:
//!
//! | epoch | moves when |
//! |---|---|
//! | group epoch | a member joins, leaves, is fenced, changes its subscription or assignor, or a subscribed topic appears or grows |
//! | assignment epoch | the target assignment is recomputed for the group epoch (at once here) |
//! | member epoch | the member reaches the target: it holds no partition the target took away |
//!
//! Reconciliation, run on each heartbeat of the member (Kafka's current-assignment builder):
//!
//! | member holds | then |
//! |---|---|
//! | partitions its target no longer has | it keeps only the others and must revoke those (`revoking`); its epoch stays until a heartbeat's owned partitions no longer include them |
//! | nothing to revoke | it moves to the assignment epoch and gets every target partition no other member still holds or is revoking; the rest follow on later heartbeats, once released |
//!
//! So a partition is never held by two members at once. A member silent for the session
//! timeout, or not revoking within its rebalance timeout, is fenced: removed, its partitions
//! free, its next heartbeat answered `UNKNOWN_MEMBER_ID`.
//!
//! Not here: the wire (`wire.rs`), the assignors (`assignor.rs`), persisting members (they
//! rejoin after a restart; committed offsets live in keel-log).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use regex::Regex;

use super::assignor::{self, Assignment, AssignorInput, UNIFORM};
use crate::group::GroupConfig;

/// The member epoch of a heartbeat that joins (or rejoins after being fenced).
pub(crate) const JOIN_EPOCH: i32 = 0;
/// The member epoch of a heartbeat that leaves the group.
pub(crate) const LEAVE_EPOCH: i32 = -1;
/// The member epoch of a static member's heartbeat that leaves for a while: its partitions
/// wait for its instance id to rejoin within the session timeout.
pub(crate) const STATIC_LEAVE_EPOCH: i32 = -2;

/// What a group needs to know of the log's topics.
pub(crate) trait TopicCatalog {
    /// The partition count of user topic `topic`, if it exists.
    fn partitions(&self, topic: &str) -> Option<u32>;
    /// Every user topic's name (for regex subscriptions).
    fn names(&self) -> Vec<String>;
}

/// A decoded ConsumerGroupHeartbeat; `None` fields mean "unchanged since the last one".
#[derive(Debug, Clone, Default)]
pub(crate) struct Heartbeat {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    /// -1 when unchanged.
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) subscribed_topics: Option<Vec<String>>,
    /// An empty pattern removes the member's regex.
    pub(crate) subscribed_regex: Option<String>,
    pub(crate) server_assignor: Option<String>,
    /// The partitions the member owns now (sent when they changed).
    pub(crate) owned: Option<Assignment>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
}

/// A heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    /// The member's assignment, when it differs from what the member knows.
    pub(crate) assignment: Option<Assignment>,
}

/// A refused heartbeat: the error and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) error: ResponseError,
    pub(crate) message: String,
}

fn refuse<T>(error: ResponseError, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        error,
        message: message.into(),
    })
}

/// One member of a consumer-protocol group.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    /// The assignment epoch the member has reached.
    pub(crate) epoch: i32,
    /// The epoch before, still accepted from a member whose last answer was lost.
    previous_epoch: i32,
    pub(crate) rebalance_timeout_ms: u64,
    pub(crate) subscribed_topics: Vec<String>,
    pub(crate) subscribed_regex: Option<Regex>,
    pub(crate) server_assignor: Option<String>,
    /// The partitions it holds.
    pub(crate) assigned: Assignment,
    /// Partitions it must give up before it moves to the assignment epoch.
    pub(crate) revoking: Assignment,
    last_heard_ms: u64,
    revoke_deadline_ms: Option<u64>,
    /// A static member that left with epoch -2 and may come back under its instance id.
    away: bool,
}

impl ConsumerMember {
    fn new(id: String, now_ms: u64) -> ConsumerMember {
        ConsumerMember {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            epoch: JOIN_EPOCH,
            previous_epoch: LEAVE_EPOCH,
            rebalance_timeout_ms: 0,
            subscribed_topics: Vec::new(),
            subscribed_regex: None,
            server_assignor: None,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            last_heard_ms: now_ms,
            revoke_deadline_ms: None,
            away: false,
        }
    }

    /// Whether the member subscribes to `topic`, by name or regex.
    fn subscribes(&self, topic: &str) -> bool {
        self.subscribed_topics.iter().any(|t| t == topic)
            || self
                .subscribed_regex
                .as_ref()
                .is_some_and(|r| r.is_match(topic))
    }

    /// Applies the heartbeat's fields; whether the subscription or assignor changed.
    fn update(&mut self, request: &Heartbeat, regex: Option<Option<Regex>>, now_ms: u64) -> bool {
        let mut changed = false;
        if let Some(topics) = &request.subscribed_topics {
            let mut topics = topics.clone();
            topics.sort();
            topics.dedup();
            changed |= topics != self.subscribed_topics;
            self.subscribed_topics = topics;
        }
        if let Some(regex) = regex {
            changed |= regex.as_ref().map(Regex::as_str)
                != self.subscribed_regex.as_ref().map(Regex::as_str);
            self.subscribed_regex = regex;
        }
        if let Some(assignor) = &request.server_assignor {
            changed |= self.server_assignor.as_ref() != Some(assignor);
            self.server_assignor = Some(assignor.clone());
        }
        if request.rebalance_timeout_ms >= 0 {
            self.rebalance_timeout_ms = request.rebalance_timeout_ms as u64;
        }
        if request.instance_id.is_some() {
            self.instance_id = request.instance_id.clone();
        }
        if request.rack_id.is_some() {
            self.rack_id = request.rack_id.clone();
        }
        self.client_id = request.client_id.clone();
        self.client_host = request.client_host.clone();
        self.last_heard_ms = now_ms;
        self.away = false;
        changed
    }
}

/// One consumer-protocol group.
#[derive(Debug)]
pub(crate) struct ConsumerGroup {
    id: String,
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, ConsumerMember>,
    /// Each member's target assignment for the assignment epoch.
    target: BTreeMap<String, Assignment>,
    /// The partition counts of the subscribed topics the target was computed from.
    partitions: BTreeMap<String, u32>,
    assignor: &'static str,
}

impl ConsumerGroup {
    /// A new, empty group.
    pub(crate) fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            partitions: BTreeMap::new(),
            assignor: UNIFORM,
        }
    }

    pub(crate) fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    pub(crate) fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    pub(crate) fn assignor(&self) -> &'static str {
        self.assignor
    }

    /// Members by id.
    pub(crate) fn members(&self) -> impl Iterator<Item = &ConsumerMember> {
        self.members.values()
    }

    /// A member's target assignment.
    pub(crate) fn target_of(&self, member_id: &str) -> Assignment {
        self.target.get(member_id).cloned().unwrap_or_default()
    }

    /// Kafka's name of the group's state: `Empty`, `Reconciling` (a member has not reached
    /// its target yet) or `Stable`.
    pub(crate) fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.members.values().all(|m| {
            m.epoch == self.assignment_epoch
                && m.revoking.is_empty()
                && m.assigned == self.target_of(&m.id)
        }) {
            "Stable"
        } else {
            "Reconciling"
        }
    }

    /// Whether the group holds nothing worth keeping in memory (its offsets live in the log).
    pub(crate) fn is_removable(&self) -> bool {
        self.members.is_empty()
    }

    /// Handles a ConsumerGroupHeartbeat.
    pub(crate) fn heartbeat(
        &mut self,
        request: &Heartbeat,
        topics: &dyn TopicCatalog,
        config: &GroupConfig,
        now_ms: u64,
    ) -> Result<Answer, Refusal> {
        let regex = match request.subscribed_regex.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(pattern) => match Regex::new(&format!("^(?:{pattern})$")) {
                Ok(regex) => Some(Some(regex)),
                Err(error) => {
                    return refuse(
                        ResponseError::InvalidRegularExpression,
                        format!("subscribed topic regex {pattern:?} does not parse: {error}"),
                    );
                }
            },
        };
        if let Some(name) = &request.server_assignor
            && assignor::known(name).is_none()
        {
            return refuse(
                ResponseError::UnsupportedAssignor,
                format!("server assignor {name:?} is not one of uniform, range"),
            );
        }
        let (member_id, new) = match request.member_epoch {
            LEAVE_EPOCH => return self.leave(request),
            STATIC_LEAVE_EPOCH => return self.step_away(request),
            JOIN_EPOCH => self.join(request, config, now_ms)?,
            epoch => {
                self.check_epoch(request, epoch)?;
                (request.member_id.clone(), false)
            }
        };
        let member = self.members.get_mut(&member_id).expect("joined or checked");
        let before = (member.epoch, member.assigned.clone());
        let changed = member.update(request, regex, now_ms);
        if new {
            self.bump(&format!("member {member_id} joined"));
        } else if changed {
            self.bump(&format!("member {member_id} changed its subscription"));
        }
        self.refresh(topics);
        self.reconcile(&member_id, request.owned.as_ref(), now_ms);
        let member = &self.members[&member_id];
        let knows = request.member_epoch == member.epoch
            && before == (member.epoch, member.assigned.clone())
            && request.owned.as_ref().is_none_or(|o| *o == member.assigned);
        Ok(Answer {
            member_id,
            member_epoch: member.epoch,
            assignment: (!knows || request.member_epoch == JOIN_EPOCH)
                .then(|| member.assigned.clone()),
        })
    }

    /// Validates an OffsetCommit's member and epoch (Kafka's rules for consumer groups): an
    /// unmanaged commit (no member, epoch -1) only while the group is empty, or any time when
    /// `transactional` (TxnOffsetCommit need not name a member); otherwise the member must
    /// exist and send its current epoch.
    pub(crate) fn check_commit(
        &self,
        member_id: &str,
        epoch: i32,
        transactional: bool,
    ) -> Result<(), ResponseError> {
        if member_id.is_empty() && epoch < 0 {
            return if self.members.is_empty() || transactional {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        let Some(member) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if member.epoch != epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Validates an OffsetFetch's member and epoch (v9+ send them; epoch -1 means none).
    pub(crate) fn check_fetch(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        if epoch < 0 {
            return Ok(());
        }
        match self.members.get(member_id) {
            None => Err(ResponseError::UnknownMemberId),
            Some(member) if member.epoch != epoch => Err(ResponseError::StaleMemberEpoch),
            Some(_) => Ok(()),
        }
    }

    /// Fences members silent for the session timeout and members that did not revoke within
    /// their rebalance timeout.
    pub(crate) fn tick(&mut self, config: &GroupConfig, now_ms: u64) {
        let session_ms = config.consumer_session_timeout_ms;
        let expired: Vec<(String, &str)> = self
            .members
            .values()
            .filter_map(|m| {
                if m.last_heard_ms + session_ms <= now_ms {
                    Some((m.id.clone(), "session timed out"))
                } else if m.revoke_deadline_ms.is_some_and(|d| d <= now_ms) {
                    Some((m.id.clone(), "did not revoke within the rebalance timeout"))
                } else {
                    None
                }
            })
            .collect();
        for (id, reason) in expired {
            self.remove(&id, reason);
        }
    }

    /// The earliest time [`ConsumerGroup::tick`] has something to do, if any.
    pub(crate) fn next_deadline_ms(&self, config: &GroupConfig) -> Option<u64> {
        self.members
            .values()
            .flat_map(|m| {
                [
                    Some(m.last_heard_ms + config.consumer_session_timeout_ms),
                    m.revoke_deadline_ms,
                ]
            })
            .flatten()
            .min()
    }

    /// Epoch 0: a new member, a member rejoining after it was fenced or lost its partitions,
    /// or a static member coming back under its instance id. The member's id, and whether
    /// it is new to the group.
    fn join(
        &mut self,
        request: &Heartbeat,
        config: &GroupConfig,
        now_ms: u64,
    ) -> Result<(String, bool), Refusal> {
        if request.rebalance_timeout_ms < 0 {
            return refuse(
                ResponseError::InvalidRequest,
                "a joining heartbeat must set rebalance_timeout_ms",
            );
        }
        if request.subscribed_topics.is_none() && request.subscribed_regex.is_none() {
            return refuse(
                ResponseError::InvalidRequest,
                "a joining heartbeat must subscribe to topic names or a regex",
            );
        }
        if request.owned.as_ref().is_some_and(|o| !o.is_empty()) {
            return refuse(
                ResponseError::InvalidRequest,
                "a joining heartbeat cannot own partitions",
            );
        }
        let member_id = if request.member_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            request.member_id.clone()
        };
        let away = request.instance_id.as_ref().and_then(|instance| {
            self.members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance) && m.id != member_id)
        });
        if let Some(previous) = away {
            if !previous.away {
                return refuse(
                    ResponseError::UnreleasedInstanceId,
                    format!(
                        "instance id {} is still used by member {}",
                        previous.instance_id.as_deref().unwrap_or(""),
                        previous.id
                    ),
                );
            }
            // The static member comes back: its partitions, epoch and target carry over.
            let previous_id = previous.id.clone();
            let mut member = self.members.remove(&previous_id).expect("found above");
            member.id = member_id.clone();
            if let Some(target) = self.target.remove(&previous_id) {
                self.target.insert(member_id.clone(), target);
            }
            self.members.insert(member_id.clone(), member);
            return Ok((member_id, false));
        }
        if let Some(member) = self.members.get_mut(&member_id) {
            // A member that lost its partitions (fenced on its side) starts over.
            member.assigned.clear();
            member.revoking.clear();
            member.revoke_deadline_ms = None;
            member.epoch = JOIN_EPOCH;
            return Ok((member_id, false));
        }
        if self.members.len() >= config.group_members_max {
            return refuse(
                ResponseError::GroupMaxSizeReached,
                format!(
                    "group {} has its maximum of {} members",
                    self.id, config.group_members_max
                ),
            );
        }
        self.members.insert(
            member_id.clone(),
            ConsumerMember::new(member_id.clone(), now_ms),
        );
        Ok((member_id, true))
    }

    /// Whether a heartbeat's epoch is the member's, or its previous one from a member whose
    /// last answer was lost (then it may own only partitions it still holds).
    fn check_epoch(&self, request: &Heartbeat, epoch: i32) -> Result<(), Refusal> {
        if request.member_id.is_empty() {
            return refuse(ResponseError::InvalidRequest, "member_id is empty");
        }
        let Some(member) = self.members.get(&request.member_id) else {
            return refuse(
                ResponseError::UnknownMemberId,
                format!("member {} is not in group {}", request.member_id, self.id),
            );
        };
        let retried = epoch == member.previous_epoch
            && request
                .owned
                .as_ref()
                .is_some_and(|owned| is_subset(owned, &member.assigned));
        if epoch != member.epoch && !retried {
            return refuse(
                ResponseError::FencedMemberEpoch,
                format!(
                    "member epoch {epoch} is not the member's epoch {}",
                    member.epoch
                ),
            );
        }
        Ok(())
    }

    fn leave(&mut self, request: &Heartbeat) -> Result<Answer, Refusal> {
        if !self.members.contains_key(&request.member_id) {
            return refuse(
                ResponseError::UnknownMemberId,
                format!("member {} is not in group {}", request.member_id, self.id),
            );
        }
        self.remove(&request.member_id, "left the group");
        Ok(Answer {
            member_id: request.member_id.clone(),
            member_epoch: LEAVE_EPOCH,
            assignment: None,
        })
    }

    /// Epoch -2: a static member leaves for a while; it keeps its partitions until its
    /// session times out, unless its instance id joins again first.
    fn step_away(&mut self, request: &Heartbeat) -> Result<Answer, Refusal> {
        let Some(member) = self.members.get_mut(&request.member_id) else {
            return refuse(
                ResponseError::UnknownMemberId,
                format!("member {} is not in group {}", request.member_id, self.id),
            );
        };
        if member.instance_id.is_none() || member.instance_id != request.instance_id {
            return refuse(
                ResponseError::InvalidRequest,
                "member epoch -2 is for static members and needs their instance id",
            );
        }
        member.away = true;
        Ok(Answer {
            member_id: request.member_id.clone(),
            member_epoch: STATIC_LEAVE_EPOCH,
            assignment: None,
        })
    }

    /// Removes a member; its partitions go to the others through a new target.
    fn remove(&mut self, member_id: &str, reason: &str) {
        if self.members.remove(member_id).is_none() {
            return;
        }
        self.target.remove(member_id);
        tracing::info!(group = %self.id, member = %member_id, reason, "member removed");
        self.bump(reason);
        self.retarget();
    }

    /// A new group epoch; the target follows.
    fn bump(&mut self, reason: &str) {
        self.group_epoch += 1;
        tracing::debug!(group = %self.id, epoch = self.group_epoch, reason, "group epoch");
    }

    /// Reads the subscribed topics' partition counts (a topic created or grown moves the
    /// group epoch), then recomputes the target if the group epoch moved.
    fn refresh(&mut self, topics: &dyn TopicCatalog) {
        let mut wanted: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed_topics.iter().cloned())
            .collect();
        if self.members.values().any(|m| m.subscribed_regex.is_some()) {
            wanted.extend(
                topics
                    .names()
                    .into_iter()
                    .filter(|t| self.members.values().any(|m| m.subscribes(t))),
            );
        }
        let partitions: BTreeMap<String, u32> = wanted
            .into_iter()
            .filter_map(|t| topics.partitions(&t).map(|count| (t, count)))
            .collect();
        if partitions != self.partitions {
            self.partitions = partitions;
            self.bump("subscribed topics changed");
        }
        self.retarget();
    }

    /// Computes the target assignment for the group epoch, if it is behind.
    fn retarget(&mut self) {
        if self.assignment_epoch == self.group_epoch {
            return;
        }
        self.assignor = self.chosen_assignor();
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self
            .members
            .values()
            .map(|m| {
                let topics = self
                    .partitions
                    .keys()
                    .filter(|t| m.subscribes(t))
                    .cloned()
                    .collect();
                (m.id.clone(), topics)
            })
            .collect();
        self.target = assignor::assign(
            self.assignor,
            &AssignorInput {
                subscriptions: &subscriptions,
                partitions: &self.partitions,
                current: &self.target,
            },
        );
        self.assignment_epoch = self.group_epoch;
        tracing::info!(
            group = %self.id,
            epoch = self.assignment_epoch,
            assignor = self.assignor,
            members = self.members.len(),
            "target assignment computed"
        );
    }

    /// The assignor most members ask for (ties to the first name), `uniform` when none asks.
    fn chosen_assignor(&self) -> &'static str {
        let mut votes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for name in self
            .members
            .values()
            .filter_map(|m| m.server_assignor.as_deref())
        {
            if let Some(known) = assignor::known(name) {
                *votes.entry(known).or_default() += 1;
            }
        }
        let most = votes.values().copied().max().unwrap_or(0);
        votes
            .into_iter()
            .find(|(_, count)| *count == most)
            .map_or(UNIFORM, |(name, _)| name)
    }

    /// Moves one member toward its target (the table in the module docs).
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now_ms: u64) {
        let target = self.target_of(member_id);
        let held_by_others: BTreeSet<(String, i32)> = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| pairs(&m.assigned).chain(pairs(&m.revoking)))
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let member = self.members.get_mut(member_id).expect("a member");
        if !member.revoking.is_empty() {
            let released = owned.is_some_and(|owned| {
                pairs(&member.revoking).all(|(t, p)| !owned.get(&t).is_some_and(|s| s.contains(&p)))
            });
            if !released {
                return;
            }
            member.revoking.clear();
            member.revoke_deadline_ms = None;
        }
        let (kept, revoked) = split(&member.assigned, &target);
        if !revoked.is_empty() {
            member.assigned = kept;
            member.revoking = revoked;
            member.revoke_deadline_ms = Some(now_ms + member.rebalance_timeout_ms);
            return;
        }
        if member.epoch != assignment_epoch {
            member.previous_epoch = member.epoch;
            member.epoch = assignment_epoch;
        }
        let mut assigned = Assignment::new();
        for (topic, partition) in pairs(&target) {
            if !held_by_others.contains(&(topic.clone(), partition)) {
                assigned.entry(topic).or_default().insert(partition);
            }
        }
        member.assigned = assigned;
    }
}

/// An assignment's (topic, partition) pairs.
fn pairs(assignment: &Assignment) -> impl Iterator<Item = (String, i32)> + '_ {
    assignment
        .iter()
        .flat_map(|(topic, set)| set.iter().map(move |p| (topic.clone(), *p)))
}

/// `held` split into the partitions `target` keeps and those it does not.
fn split(held: &Assignment, target: &Assignment) -> (Assignment, Assignment) {
    let (mut kept, mut revoked) = (Assignment::new(), Assignment::new());
    for (topic, partition) in pairs(held) {
        let keep = target.get(&topic).is_some_and(|s| s.contains(&partition));
        let side = if keep { &mut kept } else { &mut revoked };
        side.entry(topic).or_default().insert(partition);
    }
    (kept, revoked)
}

fn is_subset(small: &Assignment, big: &Assignment) -> bool {
    pairs(small).all(|(t, p)| big.get(&t).is_some_and(|s| s.contains(&p)))
}
