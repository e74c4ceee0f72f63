//! `keel relay`: publishes the committed events of an application database's outbox to a
//! transport until stopped (SIGTERM, Ctrl-C) or, with `--exit-when-idle`, until the outbox is
//! empty. Prints a progress line every `--progress-interval-ms`: published so far, rate,
//! backlog, age of the oldest unpublished row, dead rows.
//!
//! Transports: `embedded` (the log in `--data-dir`, held for the relay's life); with the
//! `rabbitmq` feature, a RabbitMQ at `amqp://…`; with the `nats` feature, NATS JetStream at
//! `nats://…`; with the `redis` feature, Redis Streams at `redis://…`; with the `sqs`
//! feature, SNS/SQS at
//! `sqs://HOST:PORT` (an API-compatible server over HTTP, such as moto) or `sqs://aws/REGION`
//! (Amazon's endpoints, signed with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`). Their
//! topics must exist. Other transports join through `keel_core::PublishPort`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use keel_embedded::EmbeddedBus;
use keel_sql::{AfterPublish, OutboxMetrics, RelayOptions};
use tokio::signal::unix::{SignalKind, signal};

use crate::app_database::AppDatabase;
use crate::store::open_log;

/// Flags of `keel relay`.
#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// The application database: postgres://… or sqlite:PATH (see `keel migrate --help`).
    #[arg(long, env = "KEEL_DATABASE_URL", value_name = "URL")]
    database_url: String,
    /// Where to publish: `embedded` (the log in the data directory), `amqp://…` (a
    /// RabbitMQ; the `rabbitmq` feature), `nats://…` (NATS JetStream; the `nats` feature),
    /// `redis://…` (Redis Streams; the `redis` feature) or `sqs://HOST:PORT` /
    /// `sqs://aws/REGION` (SNS/SQS; the `sqs` feature).
    #[arg(long, default_value = "embedded", value_parser = destination, value_name = "WHERE")]
    to: Destination,
    /// Rows claimed per transaction.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Relays to run in this process; they share the outbox by partition key (PostgreSQL
    /// only: a SQLite file takes one relay).
    #[arg(long, default_value_t = 1)]
    relays: usize,
    /// Delete published rows instead of marking them (no trail, smallest table).
    #[arg(long)]
    delete: bool,
    /// Longest wait between two looks at the outbox when nothing woke the relay.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    poll_interval_ms: u64,
    /// Interval between two progress lines on stderr (0: none).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    progress_interval_ms: u64,
    /// Exit once the outbox has no unpublished row.
    #[arg(long)]
    exit_when_idle: bool,
}

/// The transports `keel relay` can publish to.
#[derive(Debug, Clone)]
enum Destination {
    /// The embedded log in the data directory.
    Embedded,
    /// The RabbitMQ at this `amqp://` URL (read only with the `rabbitmq` feature; without
    /// it `--to` is refused in words).
    Rabbit(#[cfg_attr(not(feature = "rabbitmq"), allow(dead_code))] String),
    /// The NATS server at this `nats://` URL (read only with the `nats` feature).
    Nats(#[cfg_attr(not(feature = "nats"), allow(dead_code))] String),
    /// The Redis at this `redis://` URL (read only with the `redis` feature).
    Redis(#[cfg_attr(not(feature = "redis"), allow(dead_code))] String),
    /// SNS/SQS at this `sqs://` URL (read only with the `sqs` feature).
    Sqs(#[cfg_attr(not(feature = "sqs"), allow(dead_code))] String),
}

impl Destination {
    /// What the progress lines call it (no credentials).
    fn describe(&self) -> &'static str {
        match self {
            Destination::Embedded => "the embedded log",
            Destination::Rabbit(_) => "RabbitMQ",
            Destination::Nats(_) => "NATS JetStream",
            Destination::Redis(_) => "Redis",
            Destination::Sqs(_) => "SNS/SQS",
        }
    }

    /// The cargo feature that builds this destination's client into keel.
    fn feature(&self) -> &'static str {
        match self {
            Destination::Embedded => "default",
            Destination::Rabbit(_) => "rabbitmq",
            Destination::Nats(_) => "nats",
            Destination::Redis(_) => "redis",
            Destination::Sqs(_) => "sqs",
        }
    }
}

/// Parses `--to`.
fn destination(text: &str) -> Result<Destination, String> {
    let url = text.to_string();
    match text.split_once("://").map(|(scheme, _)| scheme) {
        _ if text == "embedded" => Ok(Destination::Embedded),
        Some("amqp") => Ok(Destination::Rabbit(url)),
        Some("nats") => Ok(Destination::Nats(url)),
        Some("redis") => Ok(Destination::Redis(url)),
        Some("sqs") => Ok(Destination::Sqs(url)),
        _ => Err(format!(
            "'{text}' is not 'embedded' nor an amqp://, nats://, redis:// or sqs:// URL"
        )),
    }
}

/// Runs `keel relay`.
pub(crate) fn run(data: &Path, args: RelayArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(relay(data, args))
}

async fn relay(data: &Path, args: RelayArgs) -> anyhow::Result<()> {
    let options = RelayOptions {
        batch_rows_max: args.batch,
        poll_interval: Duration::from_millis(args.poll_interval_ms),
        after_publish: if args.delete {
            AfterPublish::Delete
        } else {
            AfterPublish::MarkPublished
        },
        housekeeping_interval: Duration::from_millis(200),
        name: "keel relay".to_string(),
        ..RelayOptions::default()
    };
    options.validate()?;
    let db = AppDatabase::open(&args.database_url).await?;
    let port = match &args.to {
        Destination::Embedded => {
            let log = open_log(data)?;
            Arc::new(EmbeddedBus::new(Arc::new(log)).publisher())
        }
        engine => Arc::new(engine_publisher(engine).await?),
    };
    if args.relays == 0 || (args.relays > 1 && matches!(db, AppDatabase::Sqlite(_))) {
        anyhow::bail!(
            "--relays {} is not possible here: at least 1, and a SQLite outbox takes exactly 1",
            args.relays
        );
    }
    let metrics = OutboxMetrics::new();
    let port: Arc<dyn keel_core::PublishPort> = port;
    let relays = (0..args.relays)
        .map(|_| db.relay(port.clone(), options.clone(), metrics.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "keel relay: publishing the outbox of {} to {}",
        db.describe(),
        args.to.describe()
    );
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let started = Instant::now();
    let progress = Duration::from_millis(args.progress_interval_ms.max(100));
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = tokio::time::sleep(progress) => {}
        }
        let published = metrics.published();
        if args.progress_interval_ms > 0 {
            let rate = (published - last.1) as f64 / last.0.elapsed().as_secs_f64();
            let backlog = metrics.backlog();
            eprintln!(
                "keel relay: published {published} ({rate:.0}/s), backlog {}, oldest {} ms, dead {}",
                backlog.pending, backlog.oldest_age_ms, backlog.dead
            );
            last = (Instant::now(), published);
        }
        if args.exit_when_idle && db.backlog().await?.pending == 0 {
            break;
        }
    }
    for relay in relays {
        relay.shutdown().await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "keel relay: stopped after {elapsed:.1} s; published {} ({:.0}/s), moved aside {}",
        metrics.published(),
        metrics.published() as f64 / elapsed,
        metrics.dead_lettered()
    );
    Ok(())
}

/// The publisher on a networked engine, or a one-line error naming the feature that builds
/// its client in when this binary was built without it.
async fn engine_publisher(to: &Destination) -> anyhow::Result<keel_runtime::Publisher> {
    #[cfg(feature = "rabbitmq")]
    if let Destination::Rabbit(url) = to {
        let config = keel_rabbitmq::RabbitConfig::new(url);
        return Ok(keel_rabbitmq::RabbitTransport::connect(&config)?.publisher());
    }
    #[cfg(feature = "nats")]
    if let Destination::Nats(url) = to {
        let config = keel_nats::NatsConfig::new(url);
        return Ok(keel_nats::NatsTransport::connect(&config)
            .await?
            .publisher());
    }
    #[cfg(feature = "redis")]
    if let Destination::Redis(url) = to {
        let config = keel_redis::RedisConfig::new(url);
        return Ok(keel_redis::RedisTransport::connect(&config)
            .await?
            .publisher());
    }
    #[cfg(feature = "sqs")]
    if let Destination::Sqs(url) = to {
        return sqs_publisher(url).await;
    }
    let feature = to.feature();
    anyhow::bail!(
        "--to {} needs keel built with the {feature} feature (cargo build -p keel-cli --features {feature})",
        to.describe()
    )
}

/// The publisher on SNS/SQS at `url`: `sqs://HOST:PORT` is an API-compatible server over
/// HTTP (no credentials checked), `sqs://aws/REGION` Amazon's endpoints with the key in
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
#[cfg(feature = "sqs")]
async fn sqs_publisher(url: &str) -> anyhow::Result<keel_runtime::Publisher> {
    let rest = url.strip_prefix("sqs://").unwrap_or(url);
    let config = match rest.strip_prefix("aws/") {
        Some(region) => {
            let key = |name: &str| {
                std::env::var(name).with_context(|| format!("--to {url} needs {name} set"))
            };
            keel_sqs::SqsConfig::aws(
                region,
                key("AWS_ACCESS_KEY_ID")?,
                key("AWS_SECRET_ACCESS_KEY")?,
            )
        }
        None => keel_sqs::SqsConfig::local(format!("http://{rest}")),
    };
    Ok(keel_sqs::SqsPublisher::connect(&config).await?.publisher())
}
