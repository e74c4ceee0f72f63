//! Group membership settings every consume transport honours: [`GroupPolicy`] (how fast a
//! silent member is presumed dead and how long a revoked one may drain) and [`StartFrom`]
//! (where a group starts in a partition it never committed), with their limits and
//! [`PolicyError`], the error of every settings check in Keel's runtime.
//!
//! Not here: how a transport runs a group (the embedded coordinator, Kafka's group protocol).

use std::time::Duration;

/// Default time after its last heartbeat at which a group member is presumed dead.
pub const SESSION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Default interval between a member's heartbeats.
pub const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// Default time a revoked member gets to release a partition before it is taken from it.
pub const REBALANCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Longest session or rebalance timeout a policy may ask for.
pub const GROUP_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// A setting that is out of range, naming it. Its `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid runtime setting '{setting}': {reason}")]
pub struct PolicyError {
    /// The setting, as `policy.field`.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl PolicyError {
    /// `Ok` when `ok`, otherwise the error for `setting` with the reason `reason` gives.
    pub fn check(
        ok: bool,
        setting: &'static str,
        reason: impl FnOnce() -> String,
    ) -> Result<(), PolicyError> {
        if ok {
            Ok(())
        } else {
            Err(PolicyError {
                setting,
                reason: reason(),
            })
        }
    }
}

/// How a group notices failed members and hands partitions over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPolicy {
    /// A member silent for this long is presumed dead and its partitions are reassigned.
    pub session_timeout: Duration,
    /// How often a member heartbeats; at most a third of the session timeout.
    pub heartbeat_interval: Duration,
    /// How long a member whose session expired may keep a partition before it is taken from
    /// it anyway. A live member that is asked to give a partition up always drains it first.
    pub rebalance_timeout: Duration,
}

impl Default for GroupPolicy {
    fn default() -> GroupPolicy {
        GroupPolicy {
            session_timeout: SESSION_TIMEOUT_DEFAULT,
            heartbeat_interval: HEARTBEAT_INTERVAL_DEFAULT,
            rebalance_timeout: REBALANCE_TIMEOUT_DEFAULT,
        }
    }
}

impl GroupPolicy {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        PolicyError::check(
            !self.session_timeout.is_zero() && self.session_timeout <= GROUP_TIMEOUT_MAX,
            "group.session_timeout",
            || {
                format!(
                    "{:?} is not in (0, {GROUP_TIMEOUT_MAX:?}]",
                    self.session_timeout
                )
            },
        )?;
        PolicyError::check(
            !self.heartbeat_interval.is_zero()
                && self.heartbeat_interval * 3 <= self.session_timeout,
            "group.heartbeat_interval",
            || {
                format!(
                    "{:?} is zero or above a third of the session timeout",
                    self.heartbeat_interval
                )
            },
        )?;
        PolicyError::check(
            self.rebalance_timeout <= GROUP_TIMEOUT_MAX,
            "group.rebalance_timeout",
            || {
                format!(
                    "{:?} is above {GROUP_TIMEOUT_MAX:?}",
                    self.rebalance_timeout
                )
            },
        )
    }
}

/// Where a group starts in a partition it has never committed an offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The first stored event (the default: a new group sees the history).
    #[default]
    Earliest,
    /// The high watermark when the partition is first assigned: only new events.
    Latest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_group_settings_are_named() {
        GroupPolicy::default().validate().unwrap();
        let group = |f: fn(&mut GroupPolicy)| {
            let mut policy = GroupPolicy::default();
            f(&mut policy);
            policy.validate().unwrap_err().setting
        };
        assert_eq!(
            group(|p| p.heartbeat_interval = Duration::from_secs(4)),
            "group.heartbeat_interval"
        );
        assert_eq!(
            group(|p| p.session_timeout = Duration::ZERO),
            "group.session_timeout"
        );
        assert_eq!(
            group(|p| p.rebalance_timeout = GROUP_TIMEOUT_MAX * 2),
            "group.rebalance_timeout"
        );
    }
}
