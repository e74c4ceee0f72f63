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
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            group_members_max: 1_000,
            groups_max: 10_000,
            offset_metadata_bytes_max: 4_096,
            member_protocols_max: 16,
            member_metadata_bytes_max: 1024 * 1024,
        }
    }
}
