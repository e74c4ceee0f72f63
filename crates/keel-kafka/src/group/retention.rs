//! Offsets retention (Kafka's `offsets.retention.minutes`): the committed offsets of a group
//! that has no members are deleted once its newest commit is older than the retention, so
//! groups that are gone for good do not keep offsets (and lag series) forever.
//!
//! Kafka measures from when the group became empty; the coordinator keeps no membership
//! across restarts, so this measures from the group's newest commit, which is never later
//! than that moment for a group whose members committed. A group with members in memory is
//! never expired. The check runs every `offsets_retention_check_interval_ms` on its own task;
//! deleting is one batch of tombstones in `__consumer_offsets` (`GroupOffsets::delete_group`).

use std::sync::Weak;
use std::time::Duration;

use keel_log::{Clock, GroupOffsets, SystemClock};

use super::coordinator::Shared;

/// Groups whose offsets have expired at `now_ms`: not `live`, and every commit older than
/// `retention_ms`.
pub(crate) fn expired_groups(
    offsets: &GroupOffsets,
    live: impl Fn(&str) -> bool,
    now_ms: i64,
    retention_ms: u64,
) -> Vec<String> {
    let retention_ms = i64::try_from(retention_ms).unwrap_or(i64::MAX);
    offsets
        .groups()
        .into_iter()
        .filter(|group| !live(group))
        .filter(|group| {
            let newest = offsets
                .group(group)
                .iter()
                .map(|(_, _, c)| c.commit_time_ms)
                .max();
            newest.is_some_and(|newest| now_ms.saturating_sub(newest) >= retention_ms)
        })
        .collect()
}

/// Deletes expired groups' offsets every `interval` until the coordinator is dropped.
pub(crate) async fn run(shared: Weak<Shared>, retention_ms: u64, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let live = shared.live_groups();
        let log = shared.log.clone();
        drop(shared);
        let deleted = tokio::task::spawn_blocking(move || {
            let offsets = log.group_offsets();
            let expired = expired_groups(
                offsets,
                |group| live.contains(group),
                SystemClock.now_ms(),
                retention_ms,
            );
            for group in &expired {
                if let Err(error) = offsets.delete_group(group) {
                    tracing::warn!(group, %error, "expired offsets could not be deleted; next check retries");
                }
            }
            expired
        })
        .await;
        if let Ok(expired) = deleted
            && !expired.is_empty()
        {
            tracing::info!(groups = ?expired, retention_ms, "committed offsets expired");
        }
    }
}

#[cfg(test)]
mod tests {
    use keel_log::{Log, OffsetCommit};

    use super::*;

    #[test]
    fn only_groups_without_members_whose_newest_commit_is_old_expire() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let offsets = log.group_offsets();
        let commit = |group: &str, partition: u32, at_ms: i64| {
            let entry = OffsetCommit {
                topic: "orders".into(),
                partition,
                offset: 1,
                metadata: String::new(),
            };
            offsets.commit(group, &[entry], at_ms).unwrap();
        };
        commit("old", 0, 1_000);
        commit("recent", 0, 1_000);
        commit("recent", 1, 9_000);
        commit("old-but-live", 0, 1_000);
        let live = |group: &str| group == "old-but-live";
        // The retention is reached exactly at 6,000 ms after the newest commit.
        assert_eq!(
            expired_groups(offsets, live, 6_999, 6_000),
            Vec::<String>::new()
        );
        assert_eq!(expired_groups(offsets, live, 7_000, 6_000), ["old"]);
        assert_eq!(
            expired_groups(offsets, live, 15_000, 6_000),
            ["old", "recent"]
        );
    }
}
