//! What `keel serve` listens on and how it behaves, as one validated value.
//!
//! The binary builds it from defaults, the TOML config file, environment variables and flags
//! (in that order of precedence, last wins); this crate only checks it.

use std::net::SocketAddr;
use std::path::PathBuf;

use keel_kafka::BrokerConfig;
use keel_kafka::group::GroupConfig;
use keel_kafka::sasl::SaslMechanism;
use keel_listener::tls::TlsIdentity;

use crate::history::{HISTORY_INTERVAL_MS_MIN, HistoryConfig};
use crate::http_listener::HttpLimits;

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
    /// Limits of each HTTP listener (the API and the schema registry).
    pub http_limits: HttpLimits,
    /// The budget of each schema compatibility check (visited pairs, time).
    pub registry_checks: keel_schema::CheckLimits,
    /// The web console's settings.
    pub console: ConsoleConfig,
    /// SASL mechanisms the Kafka listener requires (Kafka's `sasl.enabled.mechanisms`);
    /// empty serves every client unauthenticated. Users are managed with `keel users`.
    pub kafka_sasl: Vec<SaslMechanism>,
    /// TLS on the Kafka listener (`SSL`, or `SASL_SSL` with [`ServerConfig::kafka_sasl`]);
    /// `None` is plaintext.
    pub kafka_tls: Option<TlsIdentity>,
    /// Principals (`User:<name>`) the Kafka listener's ACLs allow everything (Kafka's
    /// `super.users`).
    pub kafka_super_users: Vec<String>,
    /// Whether a resource no ACL covers is open to every principal (Kafka's
    /// `allow.everyone.if.no.acl.found`); `None` chooses: closed when SASL is on (a new user
    /// may do nothing until granted), open without SASL (every client is `User:ANONYMOUS`,
    /// so ACLs could not tell clients apart and closing would only lock everyone out).
    pub kafka_allow_if_no_acl: Option<bool>,
    /// TLS on the HTTP listeners (the API with the console, and the schema registry): they
    /// speak HTTPS only; `None` is plain HTTP.
    pub http_tls: Option<TlsIdentity>,
    /// Names the HTTP listeners answer to beyond `localhost`, `127.0.0.1`, `::1` and their
    /// bound address (any IP address too when bound to every interface); a request for
    /// another `Host` is refused (DNS rebinding). `*` turns the check off.
    pub http_allowed_hosts: Vec<String>,
    /// Tokens the HTTP listeners (API, console, schema registry) accept, by their SHA-256;
    /// empty asks nobody (every caller is admin).
    pub http_tokens: Vec<crate::HttpToken>,
    /// Most segment and index files the log keeps open (`keel_log::LogOptions::open_files_max`);
    /// `None` takes the log's default from the process's descriptor limit.
    pub log_open_files_max: Option<usize>,
}

/// The web console's settings: how often its charts sample the log, when it raises an
/// alert, and where it links a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// How often throughput and lag are sampled for the charts.
    pub history: HistoryConfig,
    /// A group lagging more than this many ms behind raises an alert.
    pub lag_alert_ms: u64,
    /// A link to a trace viewer with `{trace_id}` where the 32-hex trace id goes (Jaeger:
    /// `http://127.0.0.1:16686/trace/{trace_id}`); `None` shows trace ids without a link.
    pub trace_url: Option<String>,
    /// SQLite application databases whose sagas, event-sourced streams and outbox the
    /// console shows (read-only).
    pub databases: Vec<PathBuf>,
}

/// Lag above which the console raises an alert by default: one minute.
pub const LAG_ALERT_MS_DEFAULT: u64 = 60_000;
/// Most application databases the console reads ([`ConsoleConfig::databases`]).
pub const CONSOLE_DATABASES_MAX: usize = 32;
/// Where [`ConsoleConfig::trace_url`] puts the trace id.
pub const TRACE_ID_PLACEHOLDER: &str = "{trace_id}";

impl Default for ConsoleConfig {
    fn default() -> ConsoleConfig {
        ConsoleConfig {
            history: HistoryConfig::default(),
            lag_alert_ms: LAG_ALERT_MS_DEFAULT,
            trace_url: None,
            databases: Vec::new(),
        }
    }
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
            http_limits: HttpLimits::default(),
            registry_checks: keel_schema::CheckLimits::default(),
            console: ConsoleConfig::default(),
            kafka_sasl: Vec::new(),
            kafka_tls: None,
            kafka_super_users: Vec::new(),
            kafka_allow_if_no_acl: None,
            http_tls: None,
            http_allowed_hosts: Vec::new(),
            http_tokens: Vec::new(),
            log_open_files_max: None,
        }
    }

    /// Checks every setting; the first one out of range is named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.log_open_files_max == Some(0) {
            return Err(ConfigError {
                key: "log_open_files_max",
                reason: "must be at least 1".into(),
            });
        }
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
        if let Err(error) = self.kafka.validate() {
            return Err(ConfigError {
                key: error.key,
                reason: error.reason,
            });
        }
        let http = &self.http_limits;
        if let Err(error) = (keel_listener::ListenerLimits {
            connections_max: http.connections_max,
        })
        .validate()
        {
            return Err(ConfigError {
                key: "http_connections_max",
                reason: error.reason,
            });
        }
        for (key, ms) in [
            ("http_header_read_timeout_ms", http.header_read_timeout_ms),
            ("http_idle_ms", http.idle_ms),
            ("registry_check_steps_max", self.registry_checks.steps_max),
            ("registry_check_time_ms", self.registry_checks.time_max_ms),
        ] {
            if ms == 0 {
                return Err(ConfigError {
                    key,
                    reason: "must be above 0".into(),
                });
            }
        }
        if self.console.history.interval_ms < HISTORY_INTERVAL_MS_MIN {
            return Err(ConfigError {
                key: "console_sample_ms",
                reason: format!(
                    "{} is below the minimum of {HISTORY_INTERVAL_MS_MIN}",
                    self.console.history.interval_ms
                ),
            });
        }
        if self.console.history.groups_max == 0 {
            return Err(ConfigError {
                key: "console_sample_groups_max",
                reason: "must be above 0".into(),
            });
        }
        if self.console.databases.len() > CONSOLE_DATABASES_MAX {
            return Err(ConfigError {
                key: "console_database",
                reason: format!(
                    "{} databases named, at most {CONSOLE_DATABASES_MAX}",
                    self.console.databases.len()
                ),
            });
        }
        if let Some(url) = &self.console.trace_url
            && !url.contains(TRACE_ID_PLACEHOLDER)
        {
            return Err(ConfigError {
                key: "console_trace_url",
                reason: format!("'{url}' has no {TRACE_ID_PLACEHOLDER} for the trace id"),
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
    fn console_settings_are_checked_by_their_keys() {
        let mut config = ServerConfig::new("data");
        config.console.history.interval_ms = HISTORY_INTERVAL_MS_MIN - 1;
        assert_eq!(config.validate().unwrap_err().key, "console_sample_ms");
        let mut config = ServerConfig::new("data");
        config.console.history.groups_max = 0;
        assert_eq!(
            config.validate().unwrap_err().key,
            "console_sample_groups_max"
        );
        let mut config = ServerConfig::new("data");
        config.console.trace_url = Some("http://jaeger/trace/".into());
        assert_eq!(config.validate().unwrap_err().key, "console_trace_url");
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
