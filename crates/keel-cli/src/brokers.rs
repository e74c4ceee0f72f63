//! The Kafka cluster a verb runs on: `--brokers`, else `KEEL_BROKERS`, else the config
//! file's `brokers` entry (`--config` / `KEEL_CONFIG`). Resolved here once, so `keel
//! groups`, `keel dlq`, `keel consume`, `keel demo` and `keel relay` find the same cluster
//! from the same settings.
//!
//! Not here: connecting (the `kafka` feature's `cluster.rs` and keel-demo), or what a verb
//! does without a cluster.

use std::path::PathBuf;

use crate::config_file::{self, OperatorEntries};

/// The `--brokers` flag, and the config file whose `brokers` entry stands in for it.
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
    /// TOML config file (as `keel serve --config`) whose `brokers` entry is used when
    /// neither --brokers nor KEEL_BROKERS is given.
    #[arg(long, global = true, env = "KEEL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Brokers {
    /// The cluster to run on: the flag, else `KEEL_BROKERS`, else the config file's entry;
    /// `None` when none names one.
    pub(crate) fn resolve(&self) -> anyhow::Result<Option<String>> {
        if self.list.is_some() {
            return Ok(self.list.clone());
        }
        let Some(path) = &self.config else {
            return Ok(None);
        };
        let entries: OperatorEntries = config_file::read(path)?;
        Ok(entries.brokers)
    }
}
