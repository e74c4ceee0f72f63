//! The consuming half of the port on the embedded log: `ConsumeTransport for EmbeddedBus`,
//! [`EmbeddedMembership`] (one member of a `group.rs` group: joins, heartbeats, claims what
//! is assigned to it and revokes what moved away) and [`EmbeddedLease`] (a claimed
//! partition: log reads, the bus's wake-up, commits checked against the claim under the
//! group's lock).
//!
//! Not here: the group rules (`group.rs`), and what the runtime does with the records (its
//! member loop and partition workers).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use keel_core::{
    BoxFuture, CommitError, ConsumeTransport, FetchError, GroupPolicy, LeaseStart, Membership,
    MembershipEvent, PartitionLease, Record, Revocation, StartFrom, TransportError,
};
use keel_log::{OffsetCommit, Partition, ReadError, Topic};
use keel_runtime::limits::RETRY_SUFFIX;
use keel_runtime::redelivery::retry_topic;
use keel_runtime::wait_for_signal;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::bus::EmbeddedBus;
use crate::group::{Claim, Group, MemberId, Refusal};
use crate::limits::MEMBERS_MAX;
use crate::publish::{ensure_companion_topic, transport_error};

impl ConsumeTransport for EmbeddedBus {
    fn engine(&self) -> &'static str {
        "the embedded log"
    }

    fn now_ms(&self) -> i64 {
        EmbeddedBus::now_ms(self)
    }

    fn check_route(
        &self,
        topic: &str,
        group: &str,
        policy: &GroupPolicy,
    ) -> Result<(), TransportError> {
        let Some(origin) = self.log().topic(topic) else {
            return Err(TransportError::UnknownTopic {
                topic: topic.to_string(),
            });
        };
        let mut consumed = vec![origin.clone()];
        // Every route also consumes its topic's redelivery topic (see `redelivery.rs`),
        // except a route on a redelivery topic itself.
        if !topic.ends_with(RETRY_SUFFIX) {
            let retry = ensure_companion_topic(self.log(), &origin, &retry_topic(topic))
                .map_err(transport_error)?;
            consumed.push(retry);
        }
        for topic in consumed {
            let partitions = topic.config().partitions;
            let group_state = self
                .coordinator()
                .group(group, topic.name(), partitions, policy);
            if group_state.lock().member_count() >= MEMBERS_MAX {
                return Err(TransportError::GroupFull {
                    group: group.to_string(),
                    topic: topic.name().to_string(),
                });
            }
        }
        Ok(())
    }

    fn join<'a>(
        &'a self,
        group: &'a str,
        topic: &'a str,
        policy: &'a GroupPolicy,
        start_from: StartFrom,
    ) -> BoxFuture<'a, Result<Box<dyn Membership>, TransportError>> {
        let topic = self
            .log()
            .topic(topic)
            .ok_or_else(|| TransportError::UnknownTopic {
                topic: topic.to_string(),
            });
        let joined = topic.map(|topic| {
            let state =
                self.coordinator()
                    .group(group, topic.name(), topic.config().partitions, policy);
            let membership = EmbeddedMembership {
                bus: self.clone(),
                changes: state.subscribe(),
                group: state,
                group_name: group.to_string(),
                topic,
                start_from,
                heartbeat: heartbeat(policy),
                policy: policy.clone(),
                member: None,
                held: BTreeMap::new(),
                pending: VecDeque::new(),
                left: false,
            };
            Box::new(membership) as Box<dyn Membership>
        });
        Box::pin(std::future::ready(joined))
    }
}

fn heartbeat(policy: &GroupPolicy) -> Interval {
    let mut heartbeat = tokio::time::interval(policy.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    heartbeat
}

/// One member of an embedded group: follows the group's assignment, turning its claims into
/// leases and partitions that moved away into revocations.
struct EmbeddedMembership {
    bus: EmbeddedBus,
    group: Arc<Group>,
    group_name: String,
    topic: Arc<Topic>,
    start_from: StartFrom,
    policy: GroupPolicy,
    changes: watch::Receiver<u64>,
    heartbeat: Interval,
    /// `None` before the first join and after being fenced out (rejoins on `next`).
    member: Option<MemberId>,
    /// The partitions whose lease is out, and whether they were revoked already.
    held: BTreeMap<u32, Held>,
    /// Changes found and not yet returned.
    pending: VecDeque<MembershipEvent>,
    left: bool,
}

struct Held {
    lease: Weak<EmbeddedLease>,
    revoked: bool,
}

impl Membership for EmbeddedMembership {
    fn next(&mut self) -> BoxFuture<'_, Option<MembershipEvent>> {
        // Every change is queued before an await, so a dropped call loses nothing.
        Box::pin(async move {
            loop {
                if let Some(event) = self.pending.pop_front() {
                    return Some(event);
                }
                if self.left {
                    return None;
                }
                let Some(member) = self.member else {
                    self.join();
                    continue;
                };
                self.follow(member);
                if !self.pending.is_empty() {
                    continue;
                }
                tokio::select! {
                    _ = self.changes.changed() => {}
                    _ = self.heartbeat.tick() => self.beat(member),
                }
            }
        })
    }

    fn leave(&mut self) {
        self.left = true;
        if let Some(member) = self.member.take() {
            self.group.lock().leave(member, Instant::now());
            self.group.notify();
            tracing::info!(topic = self.topic.name(), group = %self.group_name, member, "left group");
        }
    }
}

impl EmbeddedMembership {
    fn join(&mut self) {
        let member = self.group.lock().join(Instant::now());
        self.group.notify();
        self.member = Some(member);
        self.heartbeat = heartbeat(&self.policy);
        tracing::info!(topic = self.topic.name(), group = %self.group_name, member, "joined group");
    }

    /// Follows the assignment: revokes what moved away, claims what arrived.
    fn follow(&mut self, member: MemberId) {
        self.changes.borrow_and_update();
        let now = Instant::now();
        self.held.retain(|_, held| held.lease.strong_count() > 0);
        let assigned = {
            let state = self.group.lock();
            if !state.is_member(member) {
                drop(state);
                return self.lost(member);
            }
            state.assignment(member)
        };
        for (partition, held) in &mut self.held {
            if !held.revoked && !assigned.contains(partition) {
                held.revoked = true;
                // The claim is released when the lease is dropped, after the drain.
                let revocation = Revocation::new(*partition, || {});
                self.pending.push_back(MembershipEvent::Revoked(revocation));
            }
        }
        for partition in assigned {
            if self.held.contains_key(&partition) {
                continue;
            }
            let claimed = self.group.lock().claim(member, partition, now);
            match claimed {
                Ok(claim) => {
                    let lease = Arc::new(EmbeddedLease {
                        bus: self.bus.clone(),
                        group: self.group.clone(),
                        group_name: self.group_name.clone(),
                        log_partition: self
                            .topic
                            .partition(partition)
                            .expect("claimed partition exists")
                            .clone(),
                        topic: self.topic.clone(),
                        partition,
                        claim,
                        start_from: self.start_from,
                        waker: self.bus.waker(self.topic.name()),
                        skipped_to: AtomicU64::new(0),
                    });
                    let held = Held {
                        lease: Arc::downgrade(&lease),
                        revoked: false,
                    };
                    self.held.insert(partition, held);
                    self.pending.push_back(MembershipEvent::Assigned(lease));
                }
                Err(Refusal::NotYet) => {}
                Err(Refusal::Fenced) => return self.lost(member),
            }
        }
    }

    fn beat(&mut self, member: MemberId) {
        let beat = {
            let mut state = self.group.lock();
            let before = state.generation();
            state
                .heartbeat(member, Instant::now())
                .map(|after| after != before)
        };
        match beat {
            Ok(true) => self.group.notify(),
            Ok(false) => {}
            Err(_) => self.lost(member),
        }
    }

    /// The member's session expired: everything is given up at once, without committing
    /// (its partitions may already be someone else's), and the next call rejoins.
    fn lost(&mut self, member: MemberId) {
        tracing::warn!(
            topic = self.topic.name(),
            group = %self.group_name,
            member,
            "fenced out of the group; rejoining"
        );
        self.member = None;
        self.held.clear();
        self.pending.push_back(MembershipEvent::Lost);
    }
}

/// A claimed partition of the embedded log. Dropping it releases the claim, whether the
/// worker returned or its task was aborted.
struct EmbeddedLease {
    bus: EmbeddedBus,
    group: Arc<Group>,
    group_name: String,
    topic: Arc<Topic>,
    partition: u32,
    /// The log partition, held so the worker's hot loop does not look it up per pass.
    log_partition: Arc<Partition>,
    claim: Claim,
    start_from: StartFrom,
    waker: Arc<Notify>,
    /// Where a fetch that found only transaction markers (control batches, which hold no
    /// records) left off: the partition has no data for the worker until its high watermark
    /// passes this, or the worker would fetch the same markers again and again.
    skipped_to: AtomicU64,
}

impl Drop for EmbeddedLease {
    fn drop(&mut self) {
        self.group.lock().release(self.partition, self.claim);
        self.group.notify();
    }
}

impl PartitionLease for EmbeddedLease {
    fn partition(&self) -> u32 {
        self.partition
    }

    fn start(&self) -> BoxFuture<'_, Result<LeaseStart, FetchError>> {
        let log_start = self.log_partition.log_start_offset();
        let high_watermark = self.log_partition.high_watermark();
        let committed = self
            .bus
            .log()
            .group_offsets()
            .fetch(&self.group_name, self.topic.name(), self.partition)
            .map(|c| c.offset);
        let offset = match (committed, self.start_from) {
            (Some(offset), _) => offset.clamp(log_start, high_watermark),
            (None, StartFrom::Earliest) => log_start,
            (None, StartFrom::Latest) => high_watermark,
        };
        Box::pin(std::future::ready(Ok(LeaseStart { offset, committed })))
    }

    fn has_data(&self, next_offset: u64) -> bool {
        let from = next_offset.max(self.skipped_to.load(Ordering::Acquire));
        self.log_partition.high_watermark() > from
    }

    fn wait_for_data(&self, next_offset: u64) -> BoxFuture<'_, ()> {
        Box::pin(wait_for_signal(&self.waker, move || {
            self.has_data(next_offset)
        }))
    }

    fn fetch(
        &self,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'_, Result<Vec<Record>, FetchError>> {
        let log_partition = self.log_partition.clone();
        // Reads past batches of markers alone, so a fetch returns records when there are any.
        let read = tokio::task::spawn_blocking(move || {
            let mut from = offset;
            loop {
                let read = log_partition.read_records_from(from, bytes_max)?;
                if !read.records.is_empty() || read.next_offset <= from {
                    return Ok::<_, ReadError>(read);
                }
                from = read.next_offset;
            }
        });
        Box::pin(async move {
            match read.await {
                Ok(Ok(read)) => {
                    if read.records.is_empty() {
                        self.skipped_to
                            .fetch_max(read.next_offset, Ordering::AcqRel);
                    }
                    Ok(read.records)
                }
                Ok(Err(ReadError::OffsetOutOfRange { log_start, .. })) if offset < log_start => {
                    Err(FetchError::OutOfRange { log_start })
                }
                Ok(Err(error)) => Err(FetchError::Unavailable {
                    reason: error.to_string(),
                }),
                Err(error) => Err(FetchError::Unavailable {
                    reason: error.to_string(),
                }),
            }
        })
    }

    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>> {
        let group = self.group.clone();
        let log = self.bus.log().clone();
        let (claim, partition) = (self.claim, self.partition);
        let commit = OffsetCommit {
            topic: self.topic.name().to_string(),
            partition,
            offset,
            metadata: String::new(),
        };
        let group_name = self.group_name.clone();
        let now_ms = self.bus.now_ms();
        // The holder check and the durable write happen under the group's lock, so a
        // partition cannot change hands between them.
        let result = tokio::task::spawn_blocking(move || {
            let state = group.lock();
            if state.may_commit(partition, claim).is_err() {
                return Err(CommitError::Fenced);
            }
            log.group_offsets()
                .commit(&group_name, &[commit], now_ms)
                .map_err(|error| CommitError::Unavailable {
                    reason: error.to_string(),
                })
        });
        Box::pin(async move {
            result.await.map_err(|error| CommitError::Unavailable {
                reason: error.to_string(),
            })?
        })
    }
}
