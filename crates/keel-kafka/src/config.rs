//! What the broker needs to know about itself: identity, advertised address, topic defaults.

use std::net::SocketAddr;

use keel_log::TopicConfig;

use crate::limits::{
    CONNECTION_IDLE_MS_DEFAULT, CONNECTIONS_MAX_DEFAULT, IN_FLIGHT_BYTES_MAX_DEFAULT,
    PARTITIONS_MAX_DEFAULT, REQUEST_BYTES_MAX_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT,
    TOPICS_MAX_DEFAULT, TRANSACTIONAL_ID_EXPIRATION_MS_DEFAULT,
};

/// The host and port clients are told to connect to (Metadata, FindCoordinator,
/// DescribeCluster). Must be reachable by clients, so it is the bound address unless set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// The broker's node id (always the only node).
    pub node_id: i32,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Broker settings. Build with [`BrokerConfig::default`] and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// This broker's node id.
    pub node_id: i32,
    /// Cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// Address advertised to clients; `None` advertises the listener's bound address.
    pub advertised: Option<(String, u16)>,
    /// Create a topic when a Metadata request names an unknown one (Kafka's
    /// `auto.create.topics.enable`, on by default as in Kafka).
    pub auto_create_topics: bool,
    /// Configuration of topics created without explicit settings; its `partitions` is
    /// Kafka's `num.partitions`.
    pub topic_defaults: TopicConfig,
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    pub request_bytes_max: usize,
    /// Most connections open at once (`max.connections`); the idlest is evicted for a new one.
    pub connections_max: usize,
    /// Idle connections are closed after this (`connections.max.idle.ms`).
    pub connection_idle_ms: u64,
    /// A frame must arrive, and its response be read, within this once started.
    pub request_timeout_ms: u64,
    /// Request and fetch-response bytes held at once over all connections; past it
    /// connections wait (`queued.max.request.bytes`).
    pub in_flight_bytes_max: usize,
    /// Most user topics.
    pub topics_max: usize,
    /// Most partitions over all user topics.
    pub partitions_max: usize,
    /// A transactional id idle this long (no transaction in progress, no request) is
    /// forgotten (Kafka's `transactional.id.expiration.ms`).
    pub transactional_id_expiration_ms: u64,
}

/// A broker setting out of range, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct BrokerConfigError {
    /// The setting, by its Kafka name where Kafka has one.
    pub key: &'static str,
    /// Why it was refused.
    pub reason: String,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            node_id: 0,
            cluster_id: "keel".into(),
            advertised: None,
            auto_create_topics: true,
            topic_defaults: TopicConfig::new(1),
            request_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            connection_idle_ms: CONNECTION_IDLE_MS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            in_flight_bytes_max: IN_FLIGHT_BYTES_MAX_DEFAULT,
            topics_max: TOPICS_MAX_DEFAULT,
            partitions_max: PARTITIONS_MAX_DEFAULT,
            transactional_id_expiration_ms: TRANSACTIONAL_ID_EXPIRATION_MS_DEFAULT,
        }
    }
}

impl BrokerConfig {
    /// Checks the limits; the first out of range is named.
    pub fn validate(&self) -> Result<(), BrokerConfigError> {
        let error = |key, reason: String| Err(BrokerConfigError { key, reason });
        if self.request_bytes_max < crate::limits::REQUEST_HEADER_BYTES_MIN {
            return error(
                "socket.request.max.bytes",
                format!("{} cannot hold a request header", self.request_bytes_max),
            );
        }
        // A frame's buffer is taken from the budget as it fills: a budget below the largest
        // frame would leave such a frame waiting forever.
        if self.in_flight_bytes_max < self.request_bytes_max
            || self.in_flight_bytes_max > u32::MAX as usize
        {
            return error(
                "queued.max.request.bytes",
                format!(
                    "{} must be at least socket.request.max.bytes ({}) and at most {}",
                    self.in_flight_bytes_max,
                    self.request_bytes_max,
                    u32::MAX
                ),
            );
        }
        keel_listener::ListenerLimits {
            connections_max: self.connections_max,
        }
        .validate()
        .or_else(|e| error("max.connections", e.reason))?;
        for (key, ms) in [
            ("connections.max.idle.ms", self.connection_idle_ms),
            ("request.timeout.ms", self.request_timeout_ms),
            (
                "transactional.id.expiration.ms",
                self.transactional_id_expiration_ms,
            ),
        ] {
            if ms == 0 {
                return error(key, "must be above 0".into());
            }
        }
        if self.topics_max == 0 || self.partitions_max == 0 {
            return error(
                "topics_max",
                "topic and partition limits must be above 0".into(),
            );
        }
        Ok(())
    }

    /// The address to advertise when the listener is bound to `bound`.
    pub fn node_address(&self, bound: SocketAddr) -> NodeAddress {
        let (host, port) = self
            .advertised
            .clone()
            .unwrap_or_else(|| (bound.ip().to_string(), bound.port()));
        NodeAddress {
            node_id: self.node_id,
            host,
            port,
        }
    }
}
