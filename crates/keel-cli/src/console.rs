//! `keel console`: the web console and the operator API of a Kafka cluster (Apache Kafka,
//! Redpanda, another `keel serve`) — `keel serve`'s pages, served by
//! `keel_server::ClusterServer` over the cluster's ports (`KafkaAdmin` to read and commit,
//! `KafkaPublisher` to replay and audit), with no data directory of its own.
//!
//! The cluster is named as for `keel groups`: `--brokers`, else `KEEL_BROKERS`, else the
//! config file's `brokers` entry, with the client properties of `--kafka-property` and the
//! file's `[kafka_properties]`. The HTTP settings are `keel serve`'s (flags, environment
//! and the same config file); its Kafka listener and schema registry are the cluster's
//! business, so `--kafka` and `--registry` are refused and the file's entries for them left
//! alone (one file serves both verbs).
//!
//! Not here: the pages (keel-server), the client (keel-kafka-client, the `kafka` feature).

use clap::Args;

use crate::brokers::{KafkaCluster, KafkaProperties};
use crate::serve::{self, ServeArgs, Settings};

/// Flags of `keel console`.
#[derive(Debug, Args)]
pub(crate) struct ConsoleArgs {
    /// The Kafka cluster at these brokers (host:port[,host:port…]); else the config file's
    /// `brokers` entry.
    #[arg(long = "brokers", env = "KEEL_BROKERS", value_name = "HOST:PORT[,…]")]
    brokers: Option<String>,
    #[command(flatten)]
    properties: KafkaProperties,
    /// `keel serve`'s settings: those of the HTTP listener and the console apply; the others
    /// are hidden from `keel console --help` ([`hide_serve_only`]).
    #[command(flatten)]
    serve: ServeArgs,
}

/// Hides `keel serve`'s flags for what `keel console` does not run — the Kafka listener, the
/// schema registry and the log of a data directory — from `keel console --help` (clap's
/// `mut_args` on the subcommand), so its help lists only what applies.
pub(crate) fn hide_serve_only(arg: clap::Arg) -> clap::Arg {
    let id = arg.get_id().as_str();
    if id.starts_with("kafka_") || id.starts_with("registry_") || id == "log_open_files_max" {
        arg.hide(true)
    } else {
        arg
    }
}

pub(crate) fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    if let Some(flag) = args.serve.own_listener() {
        anyhow::bail!(
            "keel console serves no {flag} listener: the cluster has its own; drop {flag}"
        );
    }
    let Settings {
        mut config,
        otel,
        file_brokers,
        file_kafka_properties,
    } = serve::settings(std::path::Path::new(""), args.serve)?;
    let Some(brokers) = args.brokers.or(file_brokers) else {
        anyhow::bail!(
            "say which Kafka cluster: --brokers HOST:PORT[,…], KEEL_BROKERS, or the config file's brokers entry"
        );
    };
    let cluster = KafkaCluster {
        brokers,
        properties: args.properties.after(file_kafka_properties),
    };
    config.kafka_addr = None;
    config.registry_addr = None;
    let served = serve_cluster(config, &cluster);
    otel.finish();
    served
}

#[cfg(feature = "kafka")]
fn serve_cluster(config: keel_server::ServerConfig, cluster: &KafkaCluster) -> anyhow::Result<()> {
    use anyhow::Context;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let cluster = crate::cluster::console_ports(cluster)?;
        let server = keel_server::ClusterServer::new(config, cluster)?;
        server
            .run(serve::shutdown_signal()?, |bound| {
                // One machine-readable line on stdout so scripts and tests learn the port.
                println!("keel console listening http={}", bound.http);
            })
            .await?;
        anyhow::Ok(())
    })
}

#[cfg(not(feature = "kafka"))]
fn serve_cluster(
    _config: keel_server::ServerConfig,
    _cluster: &KafkaCluster,
) -> anyhow::Result<()> {
    anyhow::bail!("keel console needs a keel built with the `kafka` feature")
}
