//! The coordinator's knobs and limits, each with Kafka's default where Kafka has one, in one
//! place so nothing on the group path grows without a named bound.

/// Limits and timing of the group coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// Smallest session timeout a member may ask for (Kafka's `group.min.session.timeout.ms`).
    /// Shorter timeouts make a member's death visible sooner at the price of more heartbeats.
    pub session_timeout_ms_min: i32,
    /// Largest session timeout a member may ask for (`group.max.session.timeout.ms`).
    pub session_timeout_ms_max: i32,
    /// How long the first rebalance of an empty group waits for more members before it
    /// completes (`group.initial.rebalance.delay.ms`), so members starting together land in
    /// one generation instead of one rebalance each. Never longer than the rebalance timeout.
    pub initial_rebalance_delay_ms: i32,
    /// How long the committed offsets of a group without members are kept after its newest
    /// commit (Kafka's `offsets.retention.minutes`, in milliseconds; `retention.rs`). `None`
    /// keeps them forever, Keel's default: Kafka's is 7 days.
    pub offsets_retention_ms: Option<u64>,
    /// How often expired offsets are looked for (`offsets.retention.check.interval.ms`).
    pub offsets_retention_check_interval_ms: u64,
    /// Members (joined plus those holding a member id from the v4+ handshake) per group
    /// (`group.max.size`); a join beyond it gets `GROUP_MAX_SIZE_REACHED`.
    pub group_members_max: usize,
    /// Groups the coordinator tracks in memory at once; a join that would create one more
    /// gets `COORDINATOR_NOT_AVAILABLE` (retriable) instead of growing without bound.
    pub groups_max: usize,
    /// Bytes of client metadata stored with a committed offset (`offset.metadata.max.bytes`);
    /// a longer one gets `OFFSET_METADATA_TOO_LARGE` for that partition.
    pub offset_metadata_bytes_max: usize,
    /// Protocols one member may offer in a join (each carries metadata the group keeps).
    pub member_protocols_max: usize,
    /// Bytes of one member's protocol metadata or assignment.
    pub member_metadata_bytes_max: usize,
    /// Silence after which a consumer-protocol member is fenced
    /// (`group.consumer.session.timeout.ms`). The broker sets it, not the client.
    pub consumer_session_timeout_ms: u64,
    /// How often consumer-protocol members heartbeat (`group.consumer.heartbeat.interval.ms`):
    /// the pace at which a member learns of a new assignment or a released partition.
    pub consumer_heartbeat_interval_ms: u64,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: None,
            offsets_retention_check_interval_ms: 600_000,
            group_members_max: 1_000,
            groups_max: 10_000,
            offset_metadata_bytes_max: crate::limits::OFFSET_METADATA_BYTES_MAX_DEFAULT,
            member_protocols_max: 16,
            member_metadata_bytes_max: 1024 * 1024,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
        }
    }
}

/// A coordinator setting out of range, naming it by Kafka's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct GroupConfigError {
    /// Kafka's name of the setting, such as `group.min.session.timeout.ms`.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl GroupConfig {
    /// Checks the settings an operator may change; the first one out of range is named.
    pub fn validate(&self) -> Result<(), GroupConfigError> {
        let error = |key, reason: String| Err(GroupConfigError { key, reason });
        if self.session_timeout_ms_min <= 0 {
            return error(
                "group.min.session.timeout.ms",
                format!("{} is not positive", self.session_timeout_ms_min),
            );
        }
        if self.session_timeout_ms_max < self.session_timeout_ms_min {
            return error(
                "group.max.session.timeout.ms",
                format!(
                    "{} is below group.min.session.timeout.ms ({})",
                    self.session_timeout_ms_max, self.session_timeout_ms_min
                ),
            );
        }
        if self.initial_rebalance_delay_ms < 0 {
            return error(
                "group.initial.rebalance.delay.ms",
                format!("{} is negative", self.initial_rebalance_delay_ms),
            );
        }
        if self.offsets_retention_ms == Some(0) {
            return error(
                "offsets.retention.minutes",
                "0 would delete offsets as soon as they are committed".into(),
            );
        }
        if self.consumer_heartbeat_interval_ms == 0 {
            return error(
                "group.consumer.heartbeat.interval.ms",
                "0 is not a period".into(),
            );
        }
        if self.consumer_session_timeout_ms <= self.consumer_heartbeat_interval_ms {
            return error(
                "group.consumer.session.timeout.ms",
                format!(
                    "{} is not above group.consumer.heartbeat.interval.ms ({})",
                    self.consumer_session_timeout_ms, self.consumer_heartbeat_interval_ms
                ),
            );
        }
        if self.offsets_retention_check_interval_ms == 0 {
            return error(
                "offsets.retention.check.interval.ms",
                "0 is not a period".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(change: impl FnOnce(&mut GroupConfig), expected: Result<(), &str>) {
        let mut config = GroupConfig::default();
        change(&mut config);
        assert_eq!(config.validate().map_err(|e| e.key), expected);
    }

    #[test]
    fn out_of_range_settings_are_named() {
        check(|_| {}, Ok(()));
        check(|c| c.initial_rebalance_delay_ms = 0, Ok(()));
        check(
            |c| c.session_timeout_ms_max = c.session_timeout_ms_min,
            Ok(()),
        );
        check(
            |c| c.session_timeout_ms_min = 0,
            Err("group.min.session.timeout.ms"),
        );
        check(
            |c| c.session_timeout_ms_max = 5_000,
            Err("group.max.session.timeout.ms"),
        );
        check(
            |c| c.initial_rebalance_delay_ms = -1,
            Err("group.initial.rebalance.delay.ms"),
        );
        check(|c| c.offsets_retention_ms = Some(60_000), Ok(()));
        check(
            |c| c.offsets_retention_ms = Some(0),
            Err("offsets.retention.minutes"),
        );
        check(
            |c| c.consumer_session_timeout_ms = 5_000,
            Err("group.consumer.session.timeout.ms"),
        );
        check(
            |c| c.consumer_heartbeat_interval_ms = 0,
            Err("group.consumer.heartbeat.interval.ms"),
        );
    }
}
