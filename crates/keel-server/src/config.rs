//! What `keel serve` listens on and how it behaves, as one validated value.
//!
//! The binary builds it from defaults, the TOML config file, environment variables and flags
//! (in that order of precedence, last wins); this crate only checks it.

use std::net::SocketAddr;
use std::path::PathBuf;

use keel_kafka::BrokerConfig;
use keel_kafka::group::GroupConfig;

/// Default Kafka listener, as in the design's port table (the binary's default; a
/// [`ServerConfig`] built in code serves Kafka only when `kafka_addr` is set).
pub const KAFKA_ADDR_DEFAULT: &str = "127.0.0.1:9092";
/// Default HTTP listener (API, `/metrics`, `/health`), as in the design's port table.
pub const HTTP_ADDR_DEFAULT: &str = "127.0.0.1:8080";
/// Default schema registry listener: Confluent Schema Registry's port, as in the design's
/// port table (the binary's default; a [`ServerConfig`] built in code serves the registry
/// only when `registry_addr` is set).
pub const REGISTRY_ADDR_DEFAULT: &str = "127.0.0.1:8081";
/// Longest a graceful shutdown waits for in-flight requests by default.
const SHUTDOWN_GRACE_MS_DEFAULT: u64 = 10_000;
/// Upper bound on the grace period: a shutdown that can hang for minutes is not graceful.
const SHUTDOWN_GRACE_MS_MAX: u64 = 300_000;

/// The server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The data directory of the embedded log (created if missing).
    pub data_dir: PathBuf,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where the Kafka protocol listens; `None` serves no Kafka listener.
    pub kafka_addr: Option<SocketAddr>,
    /// Where the schema registry's REST API (Confluent's shape) listens; `None` serves none.
    pub registry_addr: Option<SocketAddr>,
    /// The Kafka broker's settings (auto-creation, topic defaults, request size limit).
    pub kafka: BrokerConfig,
    /// The Kafka group coordinator's settings (session timeout bounds, initial rebalance
    /// delay).
    pub groups: GroupConfig,
    /// How long shutdown waits for in-flight requests before it closes them, in milliseconds.
    pub shutdown_grace_ms: u64,
}

/// A configuration value out of range, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid server setting '{key}': {reason}")]
pub struct ConfigError {
    /// The setting.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ServerConfig {
    /// The defaults for a data directory: HTTP on [`HTTP_ADDR_DEFAULT`].
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            http_addr: HTTP_ADDR_DEFAULT.parse().expect("valid default address"),
            kafka_addr: None,
            registry_addr: None,
            kafka: BrokerConfig::default(),
            groups: GroupConfig::default(),
            shutdown_grace_ms: SHUTDOWN_GRACE_MS_DEFAULT,
        }
    }

    /// Checks every setting; the first one out of range is named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.shutdown_grace_ms > SHUTDOWN_GRACE_MS_MAX {
            return Err(ConfigError {
                key: "shutdown_grace_ms",
                reason: format!(
                    "{} is above the maximum of {SHUTDOWN_GRACE_MS_MAX}",
                    self.shutdown_grace_ms
                ),
            });
        }
        if let Err(error) = self.kafka.topic_defaults.validate() {
            return Err(ConfigError {
                key: "kafka topic defaults",
                reason: error.to_string(),
            });
        }
        if let Err(error) = self.groups.validate() {
            return Err(ConfigError {
                key: error.key,
                reason: error.reason,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_use_the_design_ports() {
        let config = ServerConfig::new("data");
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.http_addr.port(), 8080);
    }

    #[test]
    fn an_endless_grace_period_is_refused_by_name() {
        let mut config = ServerConfig::new("data");
        config.shutdown_grace_ms = SHUTDOWN_GRACE_MS_MAX + 1;
        assert_eq!(config.validate().unwrap_err().key, "shutdown_grace_ms");
    }

    #[test]
    fn coordinator_settings_are_checked_by_their_kafka_names() {
        let mut config = ServerConfig::new("data");
        config.groups.session_timeout_ms_max = config.groups.session_timeout_ms_min - 1;
        assert_eq!(
            config.validate().unwrap_err().key,
            "group.max.session.timeout.ms"
        );
    }
}
