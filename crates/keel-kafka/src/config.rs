//! What the broker needs to know about itself: identity, advertised address, topic defaults.

use std::net::SocketAddr;

use keel_log::TopicConfig;

use crate::limits::REQUEST_BYTES_MAX_DEFAULT;

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
        }
    }
}

impl BrokerConfig {
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
