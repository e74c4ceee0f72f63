//! The Kafka cluster a verb runs on: `--brokers`, else `KEEL_BROKERS`, else the config
//! file's `brokers` entry; and the client properties that reach it (`--kafka-property`,
//! `KEEL_KAFKA_PROPERTIES`, the config file's `[kafka_properties]` table) — a secured
//! cluster wants `security.protocol`, `sasl.*` and `ssl.*`. Resolved here once, so `keel
//! groups`, `keel dlq`, `keel consume`, `keel demo`, `keel relay` and `keel console` find
//! the same cluster the same way.
//!
//! Not here: connecting (the `kafka` feature's `cluster.rs` and `engine.rs`), or what a verb
//! does without a cluster.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::config_file::{self, OperatorEntries};

/// The `--brokers` flag, the client properties, and the config file that stands in for
/// both.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Brokers {
    /// The Kafka cluster at these brokers (host:port[,host:port…]; needs a keel built with
    /// the `kafka` feature): `groups` and `dlq` act on it instead of a data directory,
    /// `consume --group` joins its group there, `demo` runs its services on it, `relay`
    /// publishes to it. Else the config file's `brokers` entry.
    #[arg(
        long = "brokers",
        global = true,
        env = "KEEL_BROKERS",
        value_name = "HOST:PORT[,…]"
    )]
    pub(crate) list: Option<String>,
    #[command(flatten)]
    properties: KafkaProperties,
    /// TOML config file (as `keel serve --config`) whose `brokers` entry is used when
    /// neither --brokers nor KEEL_BROKERS is given, and whose `[kafka_properties]` table
    /// --kafka-property adds to.
    #[arg(long, global = true, env = "KEEL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `--kafka-property`, on every verb that reaches a Kafka cluster.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct KafkaProperties {
    /// A librdkafka client property for the Kafka cluster (KEY=VALUE, repeatable; in
    /// KEEL_KAFKA_PROPERTIES separated by `;`), as kcat's -X: e.g.
    /// security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512, sasl.username=…,
    /// ssl.ca.location=FILE. Added to the config file's [kafka_properties] table, winning
    /// over it; keep passwords in that file rather than on a command line others can read.
    #[arg(
        long = "kafka-property",
        short = 'X',
        global = true,
        env = "KEEL_KAFKA_PROPERTIES",
        value_delimiter = ';',
        value_name = "KEY=VALUE",
        value_parser = property
    )]
    client_properties: Vec<(String, String)>,
}

/// A Kafka cluster to connect to: where it is and how to talk to it.
#[derive(Clone, PartialEq)]
pub(crate) struct KafkaCluster {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub(crate) brokers: String,
    /// Client properties in the order they apply (the file's, then the flags'; a later one
    /// wins).
    pub(crate) properties: Vec<(String, String)>,
}

impl Brokers {
    /// The cluster to run on: the flag, else `KEEL_BROKERS`, else the config file's entry;
    /// `None` when none names one.
    pub(crate) fn resolve(&self) -> anyhow::Result<Option<KafkaCluster>> {
        let entries = self.file_entries()?;
        Ok(self
            .list
            .clone()
            .or(entries.brokers)
            .map(|brokers| KafkaCluster {
                brokers,
                properties: self.properties.after(entries.kafka_properties),
            }))
    }

    /// The cluster at `brokers` found some other way (the Kafka listener of the `keel
    /// serve` that owns a data directory, a `kafka://` URL), with the properties given
    /// here.
    pub(crate) fn at(&self, brokers: String) -> anyhow::Result<KafkaCluster> {
        let entries = self.file_entries()?;
        Ok(KafkaCluster {
            brokers,
            properties: self.properties.after(entries.kafka_properties),
        })
    }

    fn file_entries(&self) -> anyhow::Result<OperatorEntries> {
        match &self.config {
            Some(path) => config_file::read(path),
            None => Ok(OperatorEntries::default()),
        }
    }
}

impl KafkaProperties {
    /// The file's properties, then these (so these win where both set a key).
    pub(crate) fn after(&self, file: BTreeMap<String, String>) -> Vec<(String, String)> {
        file.into_iter()
            .chain(self.client_properties.iter().cloned())
            .collect()
    }
}

/// Parses one `KEY=VALUE`.
fn property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "'{text}' is not KEY=VALUE (a librdkafka property, e.g. security.protocol=SASL_SSL)"
        )),
    }
}

/// The brokers only: properties may hold passwords, and this goes into messages.
impl fmt::Display for KafkaCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.brokers)
    }
}

/// As `Display`: never the properties.
impl fmt::Debug for KafkaCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaCluster")
            .field("brokers", &self.brokers)
            .field("properties", &self.properties.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_property_is_key_equals_value_and_the_value_may_hold_equals_signs() {
        assert_eq!(
            property("sasl.password=a=b").unwrap(),
            ("sasl.password".to_string(), "a=b".to_string())
        );
        assert!(
            property("security.protocol")
                .unwrap_err()
                .contains("KEY=VALUE")
        );
        assert!(property("=x").is_err());
    }

    #[test]
    fn flags_come_after_the_file_so_they_win() {
        let flags = KafkaProperties {
            client_properties: vec![("sasl.username".into(), "bob".into())],
        };
        let file = BTreeMap::from([
            ("sasl.username".to_string(), "alice".to_string()),
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
        ]);
        let applied = flags.after(file);
        assert_eq!(applied.last().unwrap().1, "bob");
        assert_eq!(applied.len(), 3);
    }

    #[test]
    fn a_cluster_shows_its_brokers_and_never_its_properties() {
        let cluster = KafkaCluster {
            brokers: "k:9092".into(),
            properties: vec![("sasl.password".into(), "secret".into())],
        };
        assert_eq!(cluster.to_string(), "k:9092");
        assert!(!format!("{cluster:?}").contains("secret"));
    }
}
