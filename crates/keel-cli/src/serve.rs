//! `keel serve`: runs the server over the data directory until SIGTERM or Ctrl-C.
//!
//! Settings come from, last one winning: built-in defaults, the TOML config file
//! (`--config` / `$KEEL_CONFIG`), environment variables, flags. Logs are structured
//! (`--log-format json` for machines, `text` for people) and filtered by `$RUST_LOG`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use keel_kafka::sasl::SaslMechanism;
use keel_log::FsyncPolicy;
use keel_server::TlsIdentity;
use keel_server::{HttpToken, KAFKA_ADDR_DEFAULT, REGISTRY_ADDR_DEFAULT, Server, ServerConfig};
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
    /// Silence after which a member of a consumer-protocol (KIP-848) Kafka group is fenced,
    /// in milliseconds (`group.consumer.session.timeout.ms`) [default: 45000].
    #[arg(
        long,
        env = "KEEL_KAFKA_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        value_name = "MS"
    )]
    kafka_group_consumer_session_timeout_ms: Option<u64>,
    /// How often members of a consumer-protocol (KIP-848) Kafka group heartbeat, in
    /// milliseconds (`group.consumer.heartbeat.interval.ms`) [default: 5000].
    #[arg(
        long,
        env = "KEEL_KAFKA_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS",
        value_name = "MS"
    )]
    kafka_group_consumer_heartbeat_interval_ms: Option<u64>,
    /// How long the committed offsets of a Kafka group without members are kept after its
    /// newest commit, in milliseconds (Kafka's `offsets.retention.minutes`, 7 days there)
    /// [default: kept forever].
    #[arg(long, env = "KEEL_KAFKA_OFFSETS_RETENTION_MS", value_name = "MS")]
    kafka_offsets_retention_ms: Option<u64>,
    /// A transactional id with no transaction in progress and no request for this long is
    /// forgotten, in milliseconds (Kafka's `transactional.id.expiration.ms`) [default:
    /// 604800000, 7 days].
    #[arg(
        long,
        env = "KEEL_KAFKA_TRANSACTIONAL_ID_EXPIRATION_MS",
        value_name = "MS"
    )]
    kafka_transactional_id_expiration_ms: Option<u64>,
    /// Most Kafka connections open at once; at the limit the idlest is closed for a newcomer
    /// (Kafka's `max.connections`) [default: 8192].
    #[arg(long, env = "KEEL_KAFKA_CONNECTIONS_MAX", value_name = "N")]
    kafka_connections_max: Option<usize>,
    /// Kafka connections with nothing sent for this long are closed, in milliseconds (Kafka's
    /// `connections.max.idle.ms`) [default: 600000].
    #[arg(long, env = "KEEL_KAFKA_CONNECTION_IDLE_MS", value_name = "MS")]
    kafka_connection_idle_ms: Option<u64>,
    /// A Kafka request frame must arrive whole, and its response be read, within this once
    /// started, in milliseconds [default: 30000].
    #[arg(long, env = "KEEL_KAFKA_REQUEST_TIMEOUT_MS", value_name = "MS")]
    kafka_request_timeout_ms: Option<u64>,
    /// Bytes of Kafka request frames and fetch responses held at once; past it connections
    /// wait (Kafka's `queued.max.request.bytes`) [default: 536870912].
    #[arg(long, env = "KEEL_KAFKA_IN_FLIGHT_BYTES_MAX", value_name = "BYTES")]
    kafka_in_flight_bytes_max: Option<usize>,
    /// Most topics Kafka clients may have created on this server [default: 1000].
    #[arg(long, env = "KEEL_KAFKA_TOPICS_MAX", value_name = "N")]
    kafka_topics_max: Option<usize>,
    /// Most partitions over all topics Kafka clients may have created [default: 4000].
    #[arg(long, env = "KEEL_KAFKA_PARTITIONS_MAX", value_name = "N")]
    kafka_partitions_max: Option<usize>,
    /// Most segment and index files the log keeps open; the least recently used close beyond
    /// it and reopen when next used [default: the soft open-file limit less 4096, at least
    /// half of it].
    #[arg(long, env = "KEEL_LOG_OPEN_FILES_MAX", value_name = "N")]
    log_open_files_max: Option<usize>,
    /// Most connections per HTTP listener (API, schema registry); the idlest is closed for a
    /// newcomer [default: 1024].
    #[arg(long, env = "KEEL_HTTP_CONNECTIONS_MAX", value_name = "N")]
    http_connections_max: Option<usize>,
    /// Most schema pairs one compatibility check of the registry may visit before the schema
    /// is refused [default: 200000].
    #[arg(long, env = "KEEL_REGISTRY_CHECK_STEPS_MAX", value_name = "N")]
    registry_check_steps_max: Option<u64>,
    /// Longest one compatibility check of the registry may run before the schema is refused,
    /// in milliseconds [default: 500].
    #[arg(long, env = "KEEL_REGISTRY_CHECK_TIME_MS", value_name = "MS")]
    registry_check_time_ms: Option<u64>,
    /// An HTTP request's headers must arrive within this, also the longest a kept-alive
    /// connection waits for its next request, in milliseconds [default: 10000].
    #[arg(long, env = "KEEL_HTTP_HEADER_READ_TIMEOUT_MS", value_name = "MS")]
    http_header_read_timeout_ms: Option<u64>,
    /// HTTP connections on which nothing moved for this long are closed, in milliseconds
    /// [default: 60000].
    #[arg(long, env = "KEEL_HTTP_IDLE_MS", value_name = "MS")]
    http_idle_ms: Option<u64>,
    /// The host:port clients are told to connect to (Kafka's `advertised.listeners`)
    /// [default: the Kafka listener's address; an unspecified one such as 0.0.0.0 is
    /// replaced by this machine's host name].
    #[arg(long, env = "KEEL_KAFKA_ADVERTISED", value_name = "HOST:PORT")]
    kafka_advertised: Option<String>,
    /// PEM certificate chain of the Kafka listener: with --kafka-tls-key the listener speaks
    /// TLS (Kafka's `SSL`, or `SASL_SSL` with --kafka-sasl-mechanisms) [default: plaintext].
    #[arg(
        long,
        env = "KEEL_KAFKA_TLS_CERT",
        value_name = "FILE",
        requires = "kafka_tls_key"
    )]
    kafka_tls_cert: Option<PathBuf>,
    /// PEM private key of the Kafka listener's certificate.
    #[arg(
        long,
        env = "KEEL_KAFKA_TLS_KEY",
        value_name = "FILE",
        requires = "kafka_tls_cert"
    )]
    kafka_tls_key: Option<PathBuf>,
    /// PEM certificate chain of the HTTP listeners (API and console, schema registry): with
    /// --http-tls-key they speak HTTPS only [default: plain HTTP].
    #[arg(
        long,
        env = "KEEL_HTTP_TLS_CERT",
        value_name = "FILE",
        requires = "http_tls_key"
    )]
    http_tls_cert: Option<PathBuf>,
    /// PEM private key of the HTTP listeners' certificate.
    #[arg(
        long,
        env = "KEEL_HTTP_TLS_KEY",
        value_name = "FILE",
        requires = "http_tls_cert"
    )]
    http_tls_key: Option<PathBuf>,
    /// SASL mechanisms the Kafka listener requires, comma-separated: PLAIN, SCRAM-SHA-256,
    /// SCRAM-SHA-512 (Kafka's `sasl.enabled.mechanisms`); users come from `keel users`
    /// [default: none, every client unauthenticated].
    #[arg(
        long,
        env = "KEEL_KAFKA_SASL_MECHANISMS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    kafka_sasl_mechanisms: Option<Vec<String>>,
    /// Principals allowed everything by the Kafka listener's ACLs, comma-separated
    /// `User:<name>` (Kafka's `super.users`) [default: none].
    #[arg(
        long,
        env = "KEEL_KAFKA_SUPER_USERS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    kafka_super_users: Option<Vec<String>>,
    /// Whether a topic, group or cluster no ACL covers is open to every principal (Kafka's
    /// `allow.everyone.if.no.acl.found`) [default: false with --kafka-sasl-mechanisms, true
    /// without, where every client is User:ANONYMOUS].
    #[arg(long, env = "KEEL_KAFKA_ALLOW_IF_NO_ACL", value_name = "BOOL")]
    kafka_allow_if_no_acl: Option<bool>,
    /// Tokens the HTTP listeners (API, console, schema registry) accept, comma-separated
    /// `name:role:sha256` (role `admin` or `read-only`; the SHA-256 of the token in hex, e.g.
    /// from `printf %s "$TOKEN" | sha256sum`); clients send `Authorization: Bearer <token>`
    /// or Basic with the token as password [default: none, every caller is admin].
    #[arg(
        long,
        env = "KEEL_HTTP_TOKENS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    http_tokens: Option<Vec<String>>,
    /// Names (host names or addresses) the HTTP listeners answer to beyond localhost,
    /// 127.0.0.1, ::1 and their bound address, comma-separated; a request whose Host header
    /// names anything else is refused with 421 (DNS rebinding); `*` turns the check off
    /// [default: none; a listener on every interface also answers to any IP address and to
    /// this machine's host name].
    #[arg(
        long,
        env = "KEEL_HTTP_ALLOWED_HOSTS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    http_allowed_hosts: Option<Vec<String>>,
    /// Longest graceful shutdown waits for in-flight requests, in milliseconds
    /// [default: 10000].
    #[arg(long, env = "KEEL_SHUTDOWN_GRACE_MS", value_name = "MS")]
    shutdown_grace_ms: Option<u64>,
    /// How often the console samples throughput and lag for its charts, in milliseconds
    /// [default: 10000].
    #[arg(long, env = "KEEL_CONSOLE_SAMPLE_MS", value_name = "MS")]
    console_sample_ms: Option<u64>,
    /// Most consumer groups whose lag one console sample measures, new groups first, then
    /// the least recently measured; the others keep their last measure (metric
    /// keel_console_sample_groups_skipped) [default: 500].
    #[arg(long, env = "KEEL_CONSOLE_SAMPLE_GROUPS_MAX", value_name = "N")]
    console_sample_groups_max: Option<usize>,
    /// Lag above which the console raises an alert for a group, in milliseconds
    /// [default: 60000].
    #[arg(long, env = "KEEL_CONSOLE_LAG_ALERT_MS", value_name = "MS")]
    console_lag_alert_ms: Option<u64>,
    /// Trace viewer link for an event's trace, with {trace_id} where the id goes (e.g.
    /// http://127.0.0.1:16686/trace/{trace_id} for Jaeger).
    #[arg(long, env = "KEEL_CONSOLE_TRACE_URL", value_name = "URL")]
    console_trace_url: Option<String>,
    /// A SQLite application database whose sagas, event-sourced streams and outbox the
    /// console shows, read-only (repeat for several; comma-separated in the environment).
    #[arg(
        long = "console-database",
        env = "KEEL_CONSOLE_DATABASES",
        value_name = "PATH",
        value_delimiter = ','
    )]
    console_databases: Vec<PathBuf>,
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
    /// The operator verbs' Kafka cluster (`config_file.rs`), which `keel console` serves;
    /// `keel serve` has no use for it.
    brokers: Option<String>,
    /// That cluster's client properties (`brokers.rs`), which `keel console` uses too.
    kafka_properties: Option<BTreeMap<String, String>>,
    http: Option<SocketAddr>,
    kafka: Option<SocketAddr>,
    registry: Option<SocketAddr>,
    kafka_partitions: Option<u32>,
    kafka_fsync: Option<String>,
    kafka_auto_create_topics: Option<bool>,
    kafka_group_min_session_timeout_ms: Option<i32>,
    kafka_group_max_session_timeout_ms: Option<i32>,
    kafka_group_initial_rebalance_delay_ms: Option<i32>,
    kafka_group_consumer_session_timeout_ms: Option<u64>,
    kafka_group_consumer_heartbeat_interval_ms: Option<u64>,
    kafka_offsets_retention_ms: Option<u64>,
    kafka_transactional_id_expiration_ms: Option<u64>,
    kafka_connections_max: Option<usize>,
    kafka_connection_idle_ms: Option<u64>,
    kafka_request_timeout_ms: Option<u64>,
    kafka_in_flight_bytes_max: Option<usize>,
    kafka_topics_max: Option<usize>,
    kafka_partitions_max: Option<usize>,
    log_open_files_max: Option<usize>,
    http_connections_max: Option<usize>,
    http_header_read_timeout_ms: Option<u64>,
    http_idle_ms: Option<u64>,
    registry_check_steps_max: Option<u64>,
    registry_check_time_ms: Option<u64>,
    kafka_sasl_mechanisms: Option<Vec<String>>,
    kafka_super_users: Option<Vec<String>>,
    kafka_allow_if_no_acl: Option<bool>,
    http_tokens: Option<Vec<String>>,
    http_allowed_hosts: Option<Vec<String>>,
    kafka_advertised: Option<String>,
    kafka_tls_cert: Option<PathBuf>,
    kafka_tls_key: Option<PathBuf>,
    http_tls_cert: Option<PathBuf>,
    http_tls_key: Option<PathBuf>,
    shutdown_grace_ms: Option<u64>,
    console_sample_ms: Option<u64>,
    console_sample_groups_max: Option<usize>,
    console_lag_alert_ms: Option<u64>,
    console_trace_url: Option<String>,
    console_databases: Option<Vec<PathBuf>>,
    /// OTLP span export (needs keel built with the `otel` feature).
    otel: Option<bool>,
}

/// `host:port` of `--kafka-advertised`.
fn parse_advertised(text: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = text
        .rsplit_once(':')
        .with_context(|| format!("kafka_advertised: '{text}' is not HOST:PORT"))?;
    let port = port
        .parse()
        .with_context(|| format!("kafka_advertised: '{port}' is not a port"))?;
    anyhow::ensure!(!host.is_empty(), "kafka_advertised: '{text}' has no host");
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Parses a list of `name:role:sha256` tokens, blank entries skipped; `setting` names the
/// list in errors.
pub(crate) fn http_tokens(setting: &str, tokens: &[String]) -> anyhow::Result<Vec<HttpToken>> {
    tokens
        .iter()
        .filter(|token| !token.trim().is_empty())
        .map(|token| HttpToken::parse(token).map_err(|e| anyhow::anyhow!("{setting}: {e}")))
        .collect()
}

/// The certificate and key files of one listener's TLS setting (`<setting>_cert`,
/// `<setting>_key`), read; `None` when neither is set.
pub(crate) fn tls_identity(
    setting: &str,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<Option<TlsIdentity>> {
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsIdentity {
            cert_pem: read(&cert)?,
            key_pem: read(&key)?,
        })),
        (None, None) => Ok(None),
        _ => anyhow::bail!("{setting}_cert and {setting}_key go together"),
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`), or `localhost` when unreadable.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// What `keel serve`'s flags, environment and config file settle: the server's
/// configuration, the span export, and the config file's `brokers` entry and its
/// `[kafka_properties]` (which `keel console` serves; `keel serve` has no use for them).
pub(crate) struct Settings {
    pub(crate) config: ServerConfig,
    pub(crate) otel: SpanExport,
    pub(crate) file_brokers: Option<String>,
    /// The config file's `[kafka_properties]` for that cluster.
    pub(crate) file_kafka_properties: BTreeMap<String, String>,
}

impl ServeArgs {
    /// The flag of a listener the command line asks for, of the Kafka protocol or the
    /// schema registry, which `keel console` does not serve.
    pub(crate) fn own_listener(&self) -> Option<&'static str> {
        [
            ("--kafka", self.kafka_addr.is_some()),
            ("--registry", self.registry_addr.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

pub(crate) fn run(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    let Settings { config, otel, .. } = settings(data_dir, args)?;
    let server = Server::open(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let addr_file = control::server_addr_file(data_dir);
    let registry_file = control::registry_addr_file(data_dir);
    let kafka_file = control::kafka_addr_file(data_dir);
    let served = runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        server
            .run(shutdown, |bound| {
                // Tell local `keel groups` / `keel dlq` where the API of this data directory
                // is (they cannot open it while the server owns it). An unspecified listen
                // address is reached through loopback.
                if let Err(error) = std::fs::write(&addr_file, reachable(bound.http).to_string()) {
                    tracing::warn!(%error, file = %addr_file.display(), "cannot write the server address file; local `keel dlq` and `keel groups` need --server");
                }
                // One machine-readable line on stdout so scripts and tests learn the ports.
                let mut line = format!("keel serve listening http={}", bound.http);
                if let Some(kafka) = bound.kafka {
                    line.push_str(&format!(" kafka={kafka}"));
                    // `keel consume --group` joins its groups through this listener.
                    if let Err(error) = std::fs::write(&kafka_file, reachable(kafka).to_string()) {
                        tracing::warn!(%error, file = %kafka_file.display(), "cannot write the Kafka address file; local `keel consume --group` needs --brokers");
                    }
                }
                if let Some(registry) = bound.registry {
                    line.push_str(&format!(" registry={registry}"));
                    if let Err(error) = std::fs::write(&registry_file, reachable(registry).to_string()) {
                        tracing::warn!(%error, file = %registry_file.display(), "cannot write the registry address file; local `keel schema` needs --registry");
                    }
                }
                println!("{line}");
            })
            .await?;
        anyhow::Ok(())
    });
    // The lock is released now; a stale file would only point at a dead address, but the
    // CLI reads it only while the lock is held, so removing it is tidiness, not safety.
    let _ = std::fs::remove_file(&addr_file);
    let _ = std::fs::remove_file(&registry_file);
    let _ = std::fs::remove_file(&kafka_file);
    otel.finish();
    served
}

/// Settles `keel serve`'s configuration from defaults, the config file, the environment
/// and `args`, and starts logging.
pub(crate) fn settings(data_dir: &Path, args: ServeArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(path) => crate::config_file::read(path)?,
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
    // Limits: each flag, else the file, else the default already in `config`.
    macro_rules! merge {
        ($($field:ident => $target:expr),* $(,)?) => {
            $(if let Some(value) = args.$field.or(file.$field) {
                $target = value;
            })*
        };
    }
    merge! {
        kafka_group_consumer_session_timeout_ms => config.groups.consumer_session_timeout_ms,
        kafka_group_consumer_heartbeat_interval_ms => config.groups.consumer_heartbeat_interval_ms,
        kafka_connections_max => config.kafka.connections_max,
        kafka_connection_idle_ms => config.kafka.connection_idle_ms,
        kafka_request_timeout_ms => config.kafka.request_timeout_ms,
        kafka_transactional_id_expiration_ms => config.kafka.transactional_id_expiration_ms,
        kafka_in_flight_bytes_max => config.kafka.in_flight_bytes_max,
        kafka_topics_max => config.kafka.topics_max,
        kafka_partitions_max => config.kafka.partitions_max,
        http_connections_max => config.http_limits.connections_max,
        http_header_read_timeout_ms => config.http_limits.header_read_timeout_ms,
        http_idle_ms => config.http_limits.idle_ms,
        registry_check_steps_max => config.registry_checks.steps_max,
        registry_check_time_ms => config.registry_checks.time_max_ms,
    }
    config.log_open_files_max = args.log_open_files_max.or(file.log_open_files_max);
    config.kafka.advertised = match args.kafka_advertised.or(file.kafka_advertised) {
        Some(advertised) => Some(parse_advertised(&advertised)?),
        // A listener on every interface advertising 0.0.0.0 sends remote clients nowhere:
        // advertise this machine's name instead, as Kafka does for an empty host.
        None => config
            .kafka_addr
            .filter(|addr| addr.ip().is_unspecified())
            .map(|addr| (host_name(), addr.port())),
    };
    config.kafka_tls = tls_identity(
        "kafka_tls",
        args.kafka_tls_cert.or(file.kafka_tls_cert),
        args.kafka_tls_key.or(file.kafka_tls_key),
    )?;
    config.http_tls = tls_identity(
        "http_tls",
        args.http_tls_cert.or(file.http_tls_cert),
        args.http_tls_key.or(file.http_tls_key),
    )?;
    if let Some(names) = args.kafka_sasl_mechanisms.or(file.kafka_sasl_mechanisms) {
        config.kafka_sasl = names
            .iter()
            .filter(|name| !name.trim().is_empty())
            .map(|name| {
                SaslMechanism::from_name(name.trim()).with_context(|| {
                    format!("kafka_sasl_mechanisms: '{name}' is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(users) = args.kafka_super_users.or(file.kafka_super_users) {
        config.kafka_super_users = users
            .iter()
            .map(|user| user.trim())
            .filter(|user| !user.is_empty())
            .map(|user| match user.strip_prefix("User:") {
                Some(name) if !name.is_empty() => Ok(user.to_string()),
                _ => anyhow::bail!("kafka_super_users: '{user}' is not User:<name>"),
            })
            .collect::<anyhow::Result<_>>()?;
    }
    config.kafka_allow_if_no_acl = args.kafka_allow_if_no_acl.or(file.kafka_allow_if_no_acl);
    if let Some(tokens) = args.http_tokens.or(file.http_tokens) {
        config.http_tokens = http_tokens("http_tokens", &tokens)?;
    }
    config.http_allowed_hosts = args
        .http_allowed_hosts
        .or(file.http_allowed_hosts)
        .unwrap_or_default();
    // A listener on every interface is reached by this machine's name too, as the Kafka
    // listener advertises it.
    let everywhere = |addr: Option<SocketAddr>| addr.is_some_and(|a| a.ip().is_unspecified());
    if everywhere(Some(config.http_addr)) || everywhere(config.registry_addr) {
        config.http_allowed_hosts.push(host_name());
    }
    if let Some(ms) = args.shutdown_grace_ms.or(file.shutdown_grace_ms) {
        config.shutdown_grace_ms = ms;
    }
    if let Some(ms) = args.console_sample_ms.or(file.console_sample_ms) {
        config.console.history.interval_ms = ms;
    }
    if let Some(n) = args
        .console_sample_groups_max
        .or(file.console_sample_groups_max)
    {
        config.console.history.groups_max = n;
    }
    if let Some(ms) = args.console_lag_alert_ms.or(file.console_lag_alert_ms) {
        config.console.lag_alert_ms = ms;
    }
    if let Some(url) = args.console_trace_url.or(file.console_trace_url) {
        config.console.trace_url = Some(url);
    }
    config.console.databases = if args.console_databases.is_empty() {
        file.console_databases.unwrap_or_default()
    } else {
        args.console_databases
    };
    Ok(Settings {
        config,
        otel,
        file_brokers: file.brokers,
        file_kafka_properties: file.kafka_properties.unwrap_or_default(),
    })
}

/// `addr` as a local client reaches it: an unspecified listen address through loopback.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
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
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(crate::terminal::stderr_colours());
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
pub(crate) struct SpanExport {
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
    pub(crate) fn finish(self) {
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
