//! A member of a group on SQS: its group's queue, made into one lease. SQS shares a queue
//! between its receivers itself (a message group to one receiver at a time), so a member
//! needs no slot, no partition assignment and no rebalance: it is assigned its lease once,
//! when it joins, and gives it back when it leaves.

use std::sync::Arc;

use keel_core::{
    BoxFuture, GroupPolicy, Membership, MembershipEvent, PartitionLease, TransportError,
};

use crate::connection::Connection;
use crate::lease::QueueLease;
use crate::limits::{VISIBILITY_MAX_S, VISIBILITY_MIN_S};

/// What joining needs.
pub(crate) struct Join<'a> {
    pub(crate) connection: &'a Connection,
    pub(crate) group: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) policy: &'a GroupPolicy,
}

/// Joins: the group's queue (created and subscribed when missing), read through one lease.
pub(crate) async fn join(join: Join<'_>) -> Result<Box<dyn Membership>, TransportError> {
    let queue_url = join.connection.group_queue(join.topic, join.group).await?;
    let lease = QueueLease::start(
        join.connection.sqs.clone(),
        queue_url,
        visibility_s(join.policy),
    );
    Ok(Box::new(QueueMember {
        assigned: Some(Arc::new(lease)),
        left: false,
    }))
}

/// The visibility timeout of a member's messages: the group's session timeout — how long
/// a dead member's messages wait before another member gets them — in whole seconds
/// within SQS's range.
pub(crate) fn visibility_s(policy: &GroupPolicy) -> i32 {
    let seconds = policy.session_timeout.as_secs_f64().ceil() as i64;
    seconds.clamp(i64::from(VISIBILITY_MIN_S), i64::from(VISIBILITY_MAX_S)) as i32
}

struct QueueMember {
    /// The lease, until handed to the router.
    assigned: Option<Arc<dyn PartitionLease>>,
    left: bool,
}

impl Membership for QueueMember {
    fn next(&mut self) -> BoxFuture<'_, Option<MembershipEvent>> {
        if self.left {
            return Box::pin(async { None });
        }
        match self.assigned.take() {
            Some(lease) => Box::pin(async move { Some(MembershipEvent::Assigned(lease)) }),
            // Nothing changes until the member leaves: no heartbeat, no rebalance.
            None => Box::pin(std::future::pending()),
        }
    }

    fn leave(&mut self) {
        self.left = true;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_visibility_timeout_is_the_session_timeout_in_sqs_range() {
        let check = |session: Duration, expected: i32| {
            let policy = GroupPolicy {
                session_timeout: session,
                ..GroupPolicy::default()
            };
            assert_eq!(visibility_s(&policy), expected, "{session:?}");
        };
        check(Duration::from_secs(10), 10);
        check(Duration::from_millis(4_200), 5);
        check(Duration::from_millis(500), VISIBILITY_MIN_S);
        check(Duration::from_secs(3_600), 3_600);
    }
}
