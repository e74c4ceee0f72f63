//! Consumer groups on the embedded log: membership, partition assignment, generations and
//! partition claims, for members that all live in this process (the embedded log has one
//! owning process).
//!
//! [`GroupState`] is the pure state machine (time is passed in, so it is tested without a
//! runtime); [`Coordinator`] puts it behind a lock and a change signal for the async members.
//! This file decides *who* consumes a partition; how a partition is consumed is in
//! `partition_worker.rs`.
//!
//! # Protocol
//!
//! - A member *joins* (gets a member id), *heartbeats* every `heartbeat_interval`, and
//!   *leaves* on shutdown. Every membership change starts a new *generation*.
//! - The *assignment* of a generation spreads the partitions round-robin over the members
//!   sorted by id. It is a target, not a permission.
//! - The permission is a *claim*: a member consumes a partition only while it holds the
//!   partition's claim, and it gets the claim only while the partition is assigned to it
//!   *and* no one else holds it. A member that loses a partition in a new generation drains
//!   it (finishes running handlers, commits) and then releases the claim; only then can the
//!   new owner claim it. So a partition is never handled by two members at once.
//! - A claim carries the generation it was taken in (its *epoch*). A commit is accepted only
//!   from the current holder with that epoch, while it is a member. A member whose session
//!   expired is removed at once, so its commits are refused from that moment (fenced); its
//!   claims are freed when it releases them or, if it never does, `rebalance_timeout` after
//!   the expiry.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::time::Instant;

use keel_core::GroupPolicy;

/// A member id, unique within its group for the process's lifetime.
pub(crate) type MemberId = u64;

/// Why a member's request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The member is not (any more) in the group: its session expired or it left.
    Fenced,
    /// The claim is held by another member (or the partition is not assigned to this one):
    /// wait for a change and ask again.
    NotYet,
}

/// The claim of a partition: who holds it, since which generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) member: MemberId,
    pub(crate) epoch: u64,
}

/// A member that left the group but still holds claims.
#[derive(Debug, Clone, Copy)]
struct Departed {
    since: Instant,
    graceful: bool,
}

/// The pure state of one group on one topic.
#[derive(Debug)]
pub(crate) struct GroupState {
    policy: GroupPolicy,
    next_member: MemberId,
    generation: u64,
    /// Live members and their last heartbeat.
    members: BTreeMap<MemberId, Instant>,
    /// Members gone from the group that still hold claims: since when, and whether they
    /// left gracefully (and so may commit what they drain) or were expired (fenced).
    departed: BTreeMap<MemberId, Departed>,
    holders: Vec<Option<Claim>>,
}

impl GroupState {
    pub(crate) fn new(partitions: u32, policy: GroupPolicy) -> GroupState {
        GroupState {
            policy,
            next_member: 1,
            generation: 0,
            members: BTreeMap::new(),
            departed: BTreeMap::new(),
            holders: vec![None; partitions as usize],
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether `member` is in the group (it did not leave and its session did not expire).
    pub(crate) fn is_member(&self, member: MemberId) -> bool {
        self.members.contains_key(&member)
    }

    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn join(&mut self, now: Instant) -> MemberId {
        self.expire(now);
        let member = self.next_member;
        self.next_member += 1;
        self.members.insert(member, now);
        self.generation += 1;
        member
    }

    /// Removes a member that is shutting down; its claims stay until it releases them (it
    /// drains and commits them first), or until the rebalance timeout.
    pub(crate) fn leave(&mut self, member: MemberId, now: Instant) {
        if self.members.remove(&member).is_some() {
            self.generation += 1;
            if self.holds_any(member) {
                let departed = Departed {
                    since: now,
                    graceful: true,
                };
                self.departed.insert(member, departed);
            }
        }
    }

    fn holds_any(&self, member: MemberId) -> bool {
        self.holders.iter().flatten().any(|c| c.member == member)
    }

    /// Records a heartbeat; refused when the member's session already expired.
    pub(crate) fn heartbeat(&mut self, member: MemberId, now: Instant) -> Result<u64, Refusal> {
        self.expire(now);
        match self.members.get_mut(&member) {
            Some(last) => {
                *last = now;
                Ok(self.generation)
            }
            None => Err(Refusal::Fenced),
        }
    }

    /// Expires silent members and frees claims held too long after an expiry. Returns
    /// whether anything changed.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        let session = self.policy.session_timeout;
        let silent: Vec<MemberId> = self
            .members
            .iter()
            .filter(|(_, last)| now.saturating_duration_since(**last) > session)
            .map(|(m, _)| *m)
            .collect();
        let mut changed = false;
        for member in silent {
            self.members.remove(&member);
            if self.holds_any(member) {
                let departed = Departed {
                    since: now,
                    graceful: false,
                };
                self.departed.insert(member, departed);
            }
            self.generation += 1;
            changed = true;
            tracing::warn!(
                member,
                "group member missed its heartbeats; its partitions move"
            );
        }
        let overdue: Vec<MemberId> = self
            .departed
            .iter()
            .filter(|(_, d)| {
                now.saturating_duration_since(d.since) >= self.policy.rebalance_timeout
            })
            .map(|(m, _)| *m)
            .collect();
        for member in overdue {
            self.departed.remove(&member);
            for holder in &mut self.holders {
                if holder.is_some_and(|c| c.member == member) {
                    *holder = None;
                    changed = true;
                    tracing::error!(
                        member,
                        "a departed member kept a partition past the rebalance timeout; taking it"
                    );
                }
            }
        }
        changed
    }

    /// The partitions assigned to `member` in the current generation.
    pub(crate) fn assignment(&self, member: MemberId) -> Vec<u32> {
        let Some(index) = self.members.keys().position(|m| *m == member) else {
            return Vec::new();
        };
        let count = self.members.len();
        (0..self.holders.len() as u32)
            .filter(|p| *p as usize % count == index)
            .collect()
    }

    /// Takes the claim of `partition` for `member`, if assigned to it and free.
    pub(crate) fn claim(
        &mut self,
        member: MemberId,
        partition: u32,
        now: Instant,
    ) -> Result<Claim, Refusal> {
        self.expire(now);
        if !self.members.contains_key(&member) {
            return Err(Refusal::Fenced);
        }
        if !self.assignment(member).contains(&partition) {
            return Err(Refusal::NotYet);
        }
        let holder = &mut self.holders[partition as usize];
        match holder {
            Some(claim) if claim.member == member => Ok(*claim),
            Some(_) => Err(Refusal::NotYet),
            None => {
                let claim = Claim {
                    member,
                    epoch: self.generation,
                };
                *holder = Some(claim);
                Ok(claim)
            }
        }
    }

    /// Gives a claim back; a no-op if `claim` is no longer the holder.
    pub(crate) fn release(&mut self, partition: u32, claim: Claim) {
        let holder = &mut self.holders[partition as usize];
        if *holder == Some(claim) {
            *holder = None;
        }
        if !self.holds_any(claim.member) {
            self.departed.remove(&claim.member);
        }
    }

    /// Whether `claim` may commit offsets of `partition`: it is the current holder, and its
    /// member is in the group or left gracefully and is draining. An expired member is fenced.
    pub(crate) fn may_commit(&self, partition: u32, claim: Claim) -> Result<(), Refusal> {
        let holds = self.holders.get(partition as usize) == Some(&Some(claim));
        let live = self.members.contains_key(&claim.member)
            || self.departed.get(&claim.member).is_some_and(|d| d.graceful);
        if holds && live {
            Ok(())
        } else {
            Err(Refusal::Fenced)
        }
    }
}

/// One group's state plus the signal that tells its members something changed.
#[derive(Debug)]
pub(crate) struct Group {
    state: Mutex<GroupState>,
    changed: watch::Sender<u64>,
}

impl Group {
    pub(crate) fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Wakes every member and claimer of the group.
    pub(crate) fn notify(&self) {
        self.changed.send_modify(|version| *version += 1);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// All groups of one embedded bus, by (group, topic).
#[derive(Debug, Default)]
pub(crate) struct Coordinator {
    groups: Mutex<HashMap<(String, String), Arc<Group>>>,
}

impl Coordinator {
    /// The group `name` on `topic`, created with `partitions` and `policy` on first use.
    pub(crate) fn group(
        &self,
        name: &str,
        topic: &str,
        partitions: u32,
        policy: &GroupPolicy,
    ) -> Arc<Group> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .entry((name.to_string(), topic.to_string()))
            .or_insert_with(|| {
                Arc::new(Group {
                    state: Mutex::new(GroupState::new(partitions, policy.clone())),
                    changed: watch::Sender::new(0),
                })
            })
            .clone()
    }

    /// Whether `name` has a member on any topic: the embedded log's members all live in
    /// this process, so this is the whole group.
    pub(crate) fn has_members(&self, name: &str) -> bool {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.iter().any(|((group, _), state)| {
            group == name
                && state
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .member_count()
                    > 0
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> GroupPolicy {
        GroupPolicy {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_secs(1),
            rebalance_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn assignment_spreads_partitions_and_follows_membership() {
        let now = Instant::now();
        let mut group = GroupState::new(4, policy());
        let a = group.join(now);
        assert_eq!(group.assignment(a), [0, 1, 2, 3]);
        let b = group.join(now);
        assert_eq!(group.generation(), 2);
        assert_eq!(group.assignment(a), [0, 2]);
        assert_eq!(group.assignment(b), [1, 3]);
        group.leave(a, now);
        assert_eq!(group.assignment(b), [0, 1, 2, 3]);
        assert_eq!(group.assignment(a), Vec::<u32>::new());
    }

    #[test]
    fn a_partition_moves_only_after_its_holder_releases_it() {
        let now = Instant::now();
        let mut group = GroupState::new(2, policy());
        let a = group.join(now);
        let claim_a = group.claim(a, 1, now).unwrap();
        let b = group.join(now);
        assert_eq!(group.assignment(b), [1]);
        assert_eq!(
            group.claim(b, 1, now),
            Err(Refusal::NotYet),
            "a still holds 1"
        );
        assert!(group.may_commit(1, claim_a).is_ok(), "a drains and commits");
        group.release(1, claim_a);
        assert!(group.may_commit(1, claim_a).is_err(), "a released: fenced");
        let claim_b = group.claim(b, 1, now).unwrap();
        assert_eq!(claim_b.epoch, group.generation());
        assert_eq!(
            group.claim(a, 1, now),
            Err(Refusal::NotYet),
            "not assigned to a"
        );
    }

    #[test]
    fn silent_member_is_fenced_and_its_claim_freed_after_the_rebalance_timeout() {
        let start = Instant::now();
        let mut group = GroupState::new(1, policy());
        let a = group.join(start);
        let claim_a = group.claim(a, 0, start).unwrap();
        let b = group.join(start);
        let later = start + Duration::from_secs(2);
        assert!(group.heartbeat(b, later).is_ok());
        let expired_at = start + Duration::from_secs(4);
        assert!(group.heartbeat(b, expired_at).is_ok());
        assert_eq!(group.heartbeat(a, expired_at), Err(Refusal::Fenced));
        assert!(group.may_commit(0, claim_a).is_err(), "a is fenced at once");
        assert_eq!(group.assignment(b), [0]);
        assert_eq!(
            group.claim(b, 0, expired_at),
            Err(Refusal::NotYet),
            "a may still run"
        );
        let freed = expired_at + Duration::from_secs(5);
        assert!(
            group
                .heartbeat(b, expired_at + Duration::from_secs(2))
                .is_ok()
        );
        assert!(group.heartbeat(b, freed).is_ok());
        assert!(
            group.claim(b, 0, freed).is_ok(),
            "taken after the rebalance timeout"
        );
    }

    #[test]
    fn release_by_a_fenced_member_frees_at_once() {
        let start = Instant::now();
        let mut group = GroupState::new(1, policy());
        let a = group.join(start);
        let claim_a = group.claim(a, 0, start).unwrap();
        let b = group.join(start);
        assert!(group.heartbeat(b, start + Duration::from_secs(2)).is_ok());
        let at = start + Duration::from_secs(4);
        assert!(group.heartbeat(b, at).is_ok());
        group.release(0, claim_a);
        assert!(group.claim(b, 0, at).is_ok());
    }
}

#[cfg(test)]
mod leave_tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_graceful_leaver_commits_while_draining_and_then_hands_over() {
        let now = Instant::now();
        let policy = GroupPolicy {
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_secs(1),
            rebalance_timeout: Duration::from_secs(5),
        };
        let mut group = GroupState::new(1, policy);
        let a = group.join(now);
        let claim_a = group.claim(a, 0, now).unwrap();
        let b = group.join(now);
        group.leave(a, now);
        assert!(
            group.may_commit(0, claim_a).is_ok(),
            "draining commit accepted"
        );
        assert_eq!(group.claim(b, 0, now), Err(Refusal::NotYet));
        group.release(0, claim_a);
        assert!(group.may_commit(0, claim_a).is_err());
        assert!(group.claim(b, 0, now).is_ok());
    }
}
