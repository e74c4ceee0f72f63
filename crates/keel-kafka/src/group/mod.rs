//! The group coordinator of `keel serve`: Kafka's classic consumer-group protocol and the
//! KIP-848 consumer protocol (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! ListGroups, DescribeGroups, DeleteGroups, OffsetDelete) over `keel-log`'s committed offsets.
//!
//! - `state.rs`: one group's membership state machine, pure, with time passed in.
//! - `coordinator.rs`: [`GroupCoordinator`], the async entry point the connection handler
//!   calls with decoded requests; it parks joins and syncs and fires deadlines on tokio time.
//! - `hook.rs`: the coordinator as the broker's [`crate::GroupHook`] (decode, route, encode).
//! - `offsets.rs`: OffsetCommit/OffsetFetch through `keel_log::GroupOffsets`.
//! - `admin.rs`: FindCoordinator, ListGroups, DescribeGroups.
//! - `delete.rs`: DeleteGroups, OffsetDelete.
//! - `view.rs`: a group's live membership for operators ([`GroupView`]).
//! - `member.rs`, `protocol.rs`, `config.rs`: a member, protocol selection, limits.
//!
//! - `consumer/`: the KIP-848 consumer protocol (ConsumerGroupHeartbeat,
//!   ConsumerGroupDescribe): server-side assignment, member epochs, reconciliation.
//!
//! Not here: transactions, and persisting membership (only offsets survive a restart;
//! members rejoin).

mod admin;
mod authorize;
mod config;
mod consumer;
mod coordinator;
mod delete;
mod hook;
mod member;
mod offsets;
mod protocol;
mod retention;
mod state;
#[cfg(test)]
mod tests;
mod view;

pub use config::{GroupConfig, GroupConfigError};
pub use coordinator::{GroupCoordinator, RequestContext};
pub use view::{GroupView, MemberView};
