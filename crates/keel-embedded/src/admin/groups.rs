//! Consumer groups on the embedded log, synchronously: the engine-neutral logic of
//! `keel_runtime::admin::groups` (lag in events and seconds, offset resets) run on the log
//! through [`LogAdmin`], whose answers are ready at once. The types are that module's.
//!
//! Not here: live membership (members and generations live in the in-process coordinator
//! and are gone when the process is).

use keel_log::Log;
pub use keel_runtime::admin::groups::{
    DeletedOffset, GroupDeletion, GroupSummary, GroupsError, OffsetReset, PartitionLag, ResetTarget,
};

use super::{LogAdmin, at_once};
use keel_runtime::admin::groups as neutral;

/// Every group with committed offsets, with its totals, by name.
pub fn list_groups(log: &Log, now_ms: i64) -> Result<Vec<GroupSummary>, GroupsError> {
    at_once(neutral::list_groups(&LogAdmin::new(log, now_ms), now_ms))
}

/// The lag of `group` in every partition of every topic it committed offsets in, by topic
/// and partition. Topics deleted since are left out.
pub fn group_lag(log: &Log, group: &str, now_ms: i64) -> Result<Vec<PartitionLag>, GroupsError> {
    at_once(neutral::group_lag(
        &LogAdmin::new(log, now_ms),
        group,
        now_ms,
    ))
}

/// The lag of `group` in `topic` only (empty when it committed nothing there).
pub fn group_lag_in_topic(
    log: &Log,
    group: &str,
    topic: &str,
    now_ms: i64,
) -> Result<Vec<PartitionLag>, GroupsError> {
    at_once(neutral::group_lag_in_topic(
        &LogAdmin::new(log, now_ms),
        group,
        topic,
        now_ms,
    ))
}

/// The moves a reset of `group` in `topic` (one partition, or all) to `target` would make.
/// Nothing is written; pass the result to [`apply_reset`]. A group without committed
/// offsets is refused (see `keel_runtime::admin::groups::plan_reset`).
pub fn plan_reset(
    log: &Log,
    group: &str,
    topic: &str,
    partition: Option<u32>,
    target: ResetTarget,
) -> Result<Vec<OffsetReset>, GroupsError> {
    let admin = LogAdmin::new(log, 0);
    at_once(neutral::plan_reset(&admin, group, topic, partition, target))
}

/// Commits a planned reset as one atomic batch.
///
/// Call it only while no member of `group` runs on this log: in another process that is
/// impossible (the log has one owner), in this process it is the caller's duty (a running
/// member's next commit would overwrite the reset).
pub fn apply_reset(
    log: &Log,
    group: &str,
    plan: &[OffsetReset],
    now_ms: i64,
) -> Result<(), GroupsError> {
    at_once(neutral::apply_reset(
        &LogAdmin::new(log, now_ms),
        group,
        plan,
    ))
}

/// Deletes `group` (its committed offsets tombstoned, through the port's `delete_group`)
/// and records the deletion, with the offsets it had and `command`, in the audit log
/// (`keel_runtime::admin::groups::delete_group`). Same duty as [`apply_reset`]: no member
/// may run.
pub fn delete_group(
    log: &Log,
    group: &str,
    command: impl Into<String>,
    now_ms: i64,
) -> Result<GroupDeletion, GroupsError> {
    let port = LogAdmin::new(log, now_ms);
    at_once(neutral::delete_group(&port, &port, group, command, now_ms))
}
