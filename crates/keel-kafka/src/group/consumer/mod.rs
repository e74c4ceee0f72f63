//! The consumer group protocol of KIP-848 (`group.protocol=consumer`): the coordinator, not
//! a leader member, computes the assignment and hands each member its share through
//! ConsumerGroupHeartbeat (68); ConsumerGroupDescribe (69) shows groups, members, epochs and
//! assignments.
//!
//! - `state.rs`: one group's epochs, members and reconciliation, pure, time passed in.
//! - `assignor.rs`: the target assignment (`uniform`, the default, and `range`).
//! - `wire.rs`: requests and answers, topic ids ↔ names.
//!
//! A group is classic or consumer, never both (Kafka with
//! `group.consumer.migration.policy=disabled`): the coordinator refuses a heartbeat for a
//! classic group with `GROUP_ID_NOT_FOUND` and a JoinGroup for a consumer group with
//! `INCONSISTENT_GROUP_PROTOCOL`. Members live in memory only; committed offsets are the
//! classic groups' (keel-log's `__consumer_offsets`), so they survive a restart.

pub(crate) mod assignor;
pub(crate) mod state;
pub(crate) mod wire;

#[cfg(test)]
mod tests;
