//! `keel serve`: runs the server over the data directory until SIGTERM or Ctrl-C.
//!
//! Settings come from, last one winning: built-in defaults, the TOML config file
//! (`--config` / `$KEEL_CONFIG`), environment variables, flags. Logs are structured
//! (`--log-format json` for machines, `text` for people) and filtered by `$RUST_LOG`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use keel_log::FsyncPolicy;
use keel_server::{KAFKA_ADDR_DEFAULT, REGISTRY_ADDR_DEFAULT, Server, ServerConfig};
use serde::Deserialize;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

use crate::control;

/// Flags of `keel serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML config file; flags and environment variables override its values.
    #[arg(long, env = "KEEL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// HTTP listener for /health and /metrics [default: 127.0.0.1:8080].
    #[arg(long = "http", env = "KEEL_HTTP", value_name = "ADDR")]
    http_addr: Option<SocketAddr>,
    /// Kafka protocol listener [default: 127.0.0.1:9092].
    #[arg(long = "kafka", env = "KEEL_KAFKA", value_name = "ADDR")]
    kafka_addr: Option<SocketAddr>,
    /// Schema registry REST API (Confluent's shape) [default: 127.0.0.1:8081].
    #[arg(long = "registry", env = "KEEL_REGISTRY", value_name = "ADDR")]
    registry_addr: Option<SocketAddr>,
    /// Partitions of topics Kafka clients create without a count (Kafka's `num.partitions`)
    /// [default: 1].
    #[arg(long, env = "KEEL_KAFKA_PARTITIONS", value_name = "N")]
    kafka_partitions: Option<u32>,
    /// Durability of topics Kafka clients create: always, never or interval(<ms>)
    /// [default: always].
    #[arg(long, env = "KEEL_KAFKA_FSYNC", value_name = "POLICY")]
    kafka_fsync: Option<FsyncPolicy>,
    /// Whether a Metadata request for an unknown topic creates it [default: true].
    #[arg(long, env = "KEEL_KAFKA_AUTO_CREATE_TOPICS", value_name = "BOOL")]
    kafka_auto_create_topics: Option<bool>,
    /// Shortest session timeout a Kafka group member may ask for, in milliseconds (Kafka's
    /// `group.min.session.timeout.ms`) [default: 6000].
    #[arg(
        long,
        env = "KEEL_KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS",
        value_name = "MS"
    )]
    kafka_group_min_session_timeout_ms: Option<i32>,
    /// Longest session timeout a Kafka group member may ask for, in milliseconds
    /// (`group.max.session.timeout.ms`) [default: 1800000].
    #[arg(
        long,
        env = "KEEL_KAFKA_GROUP_MAX_SESSION_TIMEOUT_MS",
        value_name = "MS"
    )]
    kafka_group_max_session_timeout_ms: Option<i32>,
    /// How long the first rebalance of an empty Kafka group waits for more members, in
    /// milliseconds (`group.initial.rebalance.delay.ms`) [default: 3000].
    #[arg(
        long,
        env = "KEEL_KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS",
        value_name = "MS"
    )]
    kafka_group_initial_rebalance_delay_ms: Option<i32>,
    /// How long the committed offsets of a Kafka group without members are kept after its
    /// newest commit, in milliseconds (Kafka's `offsets.retention.minutes`, 7 days there)
    /// [default: kept forever].
    #[arg(long, env = "KEEL_KAFKA_OFFSETS_RETENTION_MS", value_name = "MS")]
    kafka_offsets_retention_ms: Option<u64>,
    /// Longest graceful shutdown waits for in-flight requests, in milliseconds
    /// [default: 10000].
    #[arg(long, env = "KEEL_SHUTDOWN_GRACE_MS", value_name = "MS")]
    shutdown_grace_ms: Option<u64>,
    /// Log line format.
    #[arg(long, env = "KEEL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Export spans over OTLP/HTTP to `$OTEL_EXPORTER_OTLP_ENDPOINT` [default:
    /// http://localhost:4318] as service `$OTEL_SERVICE_NAME` [default: keel].
    #[cfg(feature = "otel")]
    #[arg(long, env = "KEEL_OTEL", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    otel: Option<bool>,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The config file's keys; each is optional and has the flag's meaning.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    http: Option<SocketAddr>,
    kafka: Option<SocketAddr>,
    registry: Option<SocketAddr>,
    kafka_partitions: Option<u32>,
    kafka_fsync: Option<String>,
    kafka_auto_create_topics: Option<bool>,
    kafka_group_min_session_timeout_ms: Option<i32>,
    kafka_group_max_session_timeout_ms: Option<i32>,
    kafka_group_initial_rebalance_delay_ms: Option<i32>,
    kafka_offsets_retention_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    /// OTLP span export (needs keel built with the `otel` feature).
    otel: Option<bool>,
}

pub(crate) fn run(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => read_config_file(path)?,
        None => ConfigFile::default(),
    };
    let otel = init_logging(args.log_format, otel_wanted(&args, &file)?)?;
    let mut config = ServerConfig::new(data_dir);
    if let Some(addr) = args.http_addr.or(file.http) {
        config.http_addr = addr;
    }
    config.kafka_addr = Some(args.kafka_addr.or(file.kafka).unwrap_or_else(|| {
        KAFKA_ADDR_DEFAULT
            .parse()
            .expect("valid default Kafka address")
    }));
    config.registry_addr = Some(args.registry_addr.or(file.registry).unwrap_or_else(|| {
        REGISTRY_ADDR_DEFAULT
            .parse()
            .expect("valid default registry address")
    }));
    if let Some(partitions) = args.kafka_partitions.or(file.kafka_partitions) {
        config.kafka.topic_defaults.partitions = partitions;
    }
    let file_fsync = file
        .kafka_fsync
        .map(|text| text.parse::<FsyncPolicy>())
        .transpose()
        .map_err(|reason| {
            let path = args.config.as_deref().unwrap_or(Path::new("?")).display();
            anyhow::anyhow!("invalid config file {path}: kafka_fsync: {reason}")
        })?;
    if let Some(fsync) = args.kafka_fsync.or(file_fsync) {
        config.kafka.topic_defaults.fsync = fsync;
    }
    if let Some(auto) = args
        .kafka_auto_create_topics
        .or(file.kafka_auto_create_topics)
    {
        config.kafka.auto_create_topics = auto;
    }
    let groups = &mut config.groups;
    if let Some(ms) = args
        .kafka_group_min_session_timeout_ms
        .or(file.kafka_group_min_session_timeout_ms)
    {
        groups.session_timeout_ms_min = ms;
    }
    if let Some(ms) = args
        .kafka_group_max_session_timeout_ms
        .or(file.kafka_group_max_session_timeout_ms)
    {
        groups.session_timeout_ms_max = ms;
    }
    if let Some(ms) = args
        .kafka_group_initial_rebalance_delay_ms
        .or(file.kafka_group_initial_rebalance_delay_ms)
    {
        groups.initial_rebalance_delay_ms = ms;
    }
    if let Some(ms) = args
        .kafka_offsets_retention_ms
        .or(file.kafka_offsets_retention_ms)
    {
        groups.offsets_retention_ms = Some(ms);
    }
    if let Some(ms) = args.shutdown_grace_ms.or(file.shutdown_grace_ms) {
        config.shutdown_grace_ms = ms;
    }
    let server = Server::open(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let addr_file = control::server_addr_file(data_dir);
    let served = runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        server
            .run(shutdown, |bound| {
                // Tell local `keel groups` / `keel dlq` where the API of this data directory
                // is (they cannot open it while the server owns it). An unspecified listen
                // address is reached through loopback.
                let mut api = bound.http;
                if api.ip().is_unspecified() {
                    api.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                if let Err(error) = std::fs::write(&addr_file, api.to_string()) {
                    tracing::warn!(%error, file = %addr_file.display(), "cannot write the server address file; local `keel dlq` and `keel groups` need --server");
                }
                // One machine-readable line on stdout so scripts and tests learn the ports.
                let mut line = format!("keel serve listening http={}", bound.http);
                if let Some(kafka) = bound.kafka {
                    line.push_str(&format!(" kafka={kafka}"));
                }
                if let Some(registry) = bound.registry {
                    line.push_str(&format!(" registry={registry}"));
                }
                println!("{line}");
            })
            .await?;
        anyhow::Ok(())
    });
    // The lock is released now; a stale file would only point at a dead address, but the
    // CLI reads it only while the lock is held, so removing it is tidiness, not safety.
    let _ = std::fs::remove_file(&addr_file);
    otel.finish();
    served
}

fn read_config_file(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|error| {
        // toml's message spans several lines (it quotes the source); keep the first.
        let first = error
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_owned();
        anyhow::anyhow!("invalid config file {}: {first}", path.display())
    })
}

/// Whether spans are exported: the flag, else the config file's `otel`; refused when this
/// binary was built without the `otel` feature.
fn otel_wanted(args: &ServeArgs, file: &ConfigFile) -> anyhow::Result<bool> {
    #[cfg(feature = "otel")]
    let wanted = args.otel.or(file.otel).unwrap_or(false);
    #[cfg(not(feature = "otel"))]
    let wanted = {
        let _ = args;
        file.otel.unwrap_or(false)
    };
    if wanted && !cfg!(feature = "otel") {
        anyhow::bail!("otel = true needs keel built with the `otel` feature");
    }
    Ok(wanted)
}

/// Installs the log subscriber, with the OTLP span export layer when `otel` is set.
fn init_logging(format: LogFormat, otel: bool) -> anyhow::Result<SpanExport> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let export = SpanExport::start(otel)?;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(export.layer())
        .init();
    Ok(export)
}

/// The OTLP span export of `keel serve`, when built with the `otel` feature and asked for.
struct SpanExport {
    #[cfg(feature = "otel")]
    otel: Option<keel_otel::Otel>,
}

impl SpanExport {
    fn start(wanted: bool) -> anyhow::Result<SpanExport> {
        #[cfg(feature = "otel")]
        {
            let otel = if wanted {
                // The binary reads the environment: OTEL_SERVICE_NAME wins, else "keel"; the
                // SDK reads the OTEL_EXPORTER_OTLP_* variables itself.
                let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "keel".into());
                let config = keel_otel::OtelConfig::default().with_service_name(name);
                Some(keel_otel::init(&config)?)
            } else {
                None
            };
            Ok(SpanExport { otel })
        }
        #[cfg(not(feature = "otel"))]
        {
            debug_assert!(!wanted, "refused by otel_wanted");
            Ok(SpanExport {})
        }
    }

    fn layer<S>(&self) -> Option<Box<dyn tracing_subscriber::Layer<S> + Send + Sync>>
    where
        S: tracing::Subscriber
            + for<'span> tracing_subscriber::registry::LookupSpan<'span>
            + Send
            + Sync,
    {
        #[cfg(feature = "otel")]
        {
            use tracing_subscriber::Layer;
            self.otel.as_ref().map(|otel| otel.layer().boxed())
        }
        #[cfg(not(feature = "otel"))]
        None
    }

    /// Exports the spans still buffered (blocks up to the exporter's timeout).
    fn finish(self) {
        #[cfg(feature = "otel")]
        if let Some(otel) = self.otel
            && let Err(error) = otel.shutdown()
        {
            tracing::warn!(%error, "could not export the last spans");
        }
    }
}

/// Installs the SIGTERM (service managers) and SIGINT (Ctrl-C) handlers now — before the
/// server reports it is ready, so a signal sent right after that line is never the default
/// "terminate at once" — and returns a future that completes on the first of them.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    })
}
