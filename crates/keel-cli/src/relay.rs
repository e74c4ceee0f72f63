//! `keel relay`: publishes the committed events of an application database's outbox to a
//! transport until stopped (SIGTERM, Ctrl-C) or, with `--exit-when-idle`, until the outbox is
//! empty. Prints a progress line every `--progress-interval-ms`: published so far, rate,
//! backlog, age of the oldest unpublished row, dead rows. With `--metrics ADDR` it also
//! serves those numbers to Prometheus (`keel_outbox_*`, and `keel_cdc_*` for a CDC relay) at
//! `GET /metrics`, and `GET /health` (`keel_server::MetricsListener`).
//!
//! With `--cdc-slot NAME` (PostgreSQL with `wal_level=logical`) the outbox is streamed over
//! logical replication through that slot and publication instead of claimed by queries
//! (`keel_sql`'s `cdc` module: commit order, the slot's position as the checkpoint); the
//! progress line then shows the slot's lag, and the relay exits with an error if its slot
//! was lost while rows it will never stream were committed.
//!
//! Transports: `embedded` (the log in `--data-dir`, held for the relay's life — or, while
//! `keel serve` owns the directory, that server's Kafka listener), a Kafka cluster
//! (`--brokers`, `KEEL_BROKERS` or the config file's `brokers`), or an engine's URL
//! (`kafka://`, `amqp://`, `nats://`, `redis://`, `sqs://`: `engine.rs`, each behind its
//! feature). Their topics must exist. Other transports join through
//! `keel_core::PublishPort`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use keel_embedded::EmbeddedBus;
use keel_server::{HealthCheck, MetricsListener, MetricsListenerConfig};
use keel_sql::{AfterPublish, CdcMetrics, CdcSlot, OutboxMetrics, RelayOptions};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use crate::app_database::AppDatabase;
use crate::brokers::Brokers;
use crate::control::served_kafka;
use crate::engine::Engine;
use crate::metrics_flags::MetricsArgs;
use crate::store::open_log;

/// Flags of `keel relay`.
#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// The application database: postgres://… or sqlite:PATH (see `keel migrate --help`).
    #[arg(long, env = "KEEL_DATABASE_URL", value_name = "URL")]
    database_url: String,
    /// Where to publish: `embedded` (the log in the data directory, or the Kafka listener of
    /// the `keel serve` that owns it; the default unless --brokers names a cluster),
    /// `kafka://HOST:PORT[,…]` (a Kafka cluster; the `kafka` feature), `amqp://…` (a
    /// RabbitMQ; `rabbitmq`), `nats://…` (NATS JetStream; `nats`), `redis://…` (Redis
    /// Streams; `redis`) or `sqs://HOST:PORT` / `sqs://aws/REGION` (SNS/SQS; `sqs`).
    #[arg(long, value_parser = destination, value_name = "WHERE")]
    to: Option<Destination>,
    #[command(flatten)]
    brokers: Brokers,
    /// Rows claimed per transaction.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Relays to run in this process; they share the outbox by partition key (PostgreSQL
    /// only: a SQLite file takes one relay).
    #[arg(long, default_value_t = 1)]
    relays: usize,
    /// Stream the outbox over PostgreSQL logical replication (wal_level=logical) through the
    /// replication slot and publication NAME, created if missing, instead of claiming rows:
    /// events leave in commit order, without polling. One relay per slot. A new slot is
    /// refused while the outbox holds unpublished rows it would never stream (drain them with
    /// the polling relay first), and a slot lost or invalidated under a running relay is
    /// created again the same way: if rows committed meanwhile, the relay exits saying so. A
    /// slot whose relay is gone holds WAL until dropped: `SELECT
    /// pg_drop_replication_slot('NAME')`.
    #[arg(long, value_name = "NAME")]
    cdc_slot: Option<String>,
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
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// How long open scrapes may finish once the relay stops.
const METRICS_GRACE: Duration = Duration::from_secs(1);

/// The transports `keel relay` can publish to.
#[derive(Debug, Clone)]
enum Destination {
    /// The embedded log in the data directory.
    Embedded,
    /// A networked engine (`engine.rs`).
    Engine(Engine),
}

impl Destination {
    /// Where `--to` and `--brokers` send the outbox of a relay run on `data`: a named
    /// destination, else the cluster --brokers names, else the embedded log — reached
    /// through its server's Kafka listener while `keel serve` owns the directory, since
    /// the server holds the log.
    fn resolve(to: Option<Destination>, brokers: &Brokers, data: &Path) -> anyhow::Result<Self> {
        let cluster = brokers.resolve()?;
        let destination = match (to, cluster) {
            (Some(to), Some(cluster)) => anyhow::bail!(
                "--to {} and the Kafka cluster at {cluster} (--brokers, KEEL_BROKERS or the config file) are two destinations: give one",
                to.describe()
            ),
            (Some(Destination::Engine(engine)), None) => {
                Destination::Engine(engine.with_properties_of(brokers)?)
            }
            (Some(to), None) => to,
            (None, Some(cluster)) => Destination::Engine(Engine::Kafka(cluster)),
            (None, None) => Destination::Embedded,
        };
        Ok(match destination {
            Destination::Embedded => match served_kafka(data) {
                Some(listener) if cfg!(feature = "kafka") => {
                    Destination::Engine(Engine::Kafka(brokers.at(listener)?))
                }
                Some(listener) => anyhow::bail!(
                    "keel serve owns {}: the relay publishes into it through its Kafka listener at {listener}, which needs a keel built with the `kafka` feature",
                    data.display()
                ),
                None => Destination::Embedded,
            },
            named => named,
        })
    }

    /// What the progress lines call it (no credentials).
    fn describe(&self) -> &'static str {
        match self {
            Destination::Embedded => "the embedded log",
            Destination::Engine(engine) => engine.describe(),
        }
    }
}

/// Parses `--to`.
fn destination(text: &str) -> Result<Destination, String> {
    if text == "embedded" {
        return Ok(Destination::Embedded);
    }
    Engine::parse(text)
        .map(Destination::Engine)
        .map_err(|e| format!("{e}, nor 'embedded'"))
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
    let metrics_listener = args.metrics.config()?;
    let to = Destination::resolve(args.to, &args.brokers, data)?;
    let db = AppDatabase::open(&args.database_url).await?;
    let port = match &to {
        Destination::Embedded => {
            let log = open_log(data)?;
            Arc::new(EmbeddedBus::new(Arc::new(log)).publisher())
        }
        Destination::Engine(engine) => {
            Arc::new(engine.connect().await?.transport.publisher().clone())
        }
    };
    if args.relays == 0 || (args.relays > 1 && matches!(db, AppDatabase::Sqlite(_))) {
        anyhow::bail!(
            "--relays {} is not possible here: at least 1, and a SQLite outbox takes exactly 1",
            args.relays
        );
    }
    let metrics = OutboxMetrics::new();
    let cdc_metrics = CdcMetrics::new();
    let port: Arc<dyn keel_core::PublishPort> = port;
    let relays = match (&args.cdc_slot, &db) {
        (None, _) => (0..args.relays)
            .map(|_| db.relay(port.clone(), options.clone(), metrics.clone()))
            .collect::<anyhow::Result<Vec<_>>>()?,
        (Some(slot), AppDatabase::Postgres(pg)) if args.relays == 1 => vec![
            pg.outbox()
                .cdc_relay(
                    port,
                    options,
                    CdcSlot::named(slot),
                    metrics.clone(),
                    cdc_metrics.clone(),
                )
                .await?,
        ],
        (Some(_), _) => anyhow::bail!(
            "--cdc-slot needs a postgres:// database and --relays 1 (one relay per slot)"
        ),
    };
    let cdc = args.cdc_slot.is_some().then_some(&cdc_metrics);
    let metrics_listener = match metrics_listener {
        Some(config) => Some(serve_metrics(config, &metrics, cdc).await?),
        None => None,
    };
    eprintln!(
        "keel relay: publishing the outbox of {} to {}",
        db.describe(),
        to.describe()
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
            let lag = match args.cdc_slot {
                Some(_) => format!(
                    ", slot lag {} B, {} ms",
                    cdc_metrics.lag_bytes(),
                    cdc_metrics.lag_ms()
                ),
                None => String::new(),
            };
            eprintln!(
                "keel relay: published {published} ({rate:.0}/s), backlog {}, oldest {} ms, dead {}{lag}",
                backlog.pending, backlog.oldest_age_ms, backlog.dead
            );
            last = (Instant::now(), published);
        }
        if args.exit_when_idle && db.backlog().await?.pending == 0 {
            break;
        }
        if cdc_metrics.slot_lost() {
            break;
        }
    }
    for relay in relays {
        relay.shutdown().await;
    }
    if let Some(listener) = metrics_listener {
        listener.stop(METRICS_GRACE).await;
    }
    if cdc_metrics.slot_lost() {
        anyhow::bail!(
            "the CDC relay's replication slot was lost, and rows committed while it was gone would never be streamed: publish them with the polling relay (keel relay without --cdc-slot, --exit-when-idle), then start the CDC relay again"
        );
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

/// Starts the metrics listener: the outbox's families (and the replication slot's, for a CDC
/// relay) at `/metrics`; `/health` answers 200 with the relay's numbers while it runs, 503
/// once its replication slot was lost.
async fn serve_metrics(
    config: MetricsListenerConfig,
    metrics: &OutboxMetrics,
    cdc: Option<&CdcMetrics>,
) -> anyhow::Result<MetricsListener> {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    if let Some(cdc) = cdc {
        cdc.register(&mut registry);
    }
    let health: HealthCheck = {
        let metrics = metrics.clone();
        let cdc = cdc.cloned();
        Arc::new(move || {
            let backlog = metrics.backlog();
            let slot_lost = cdc.as_ref().is_some_and(CdcMetrics::slot_lost);
            let status = if slot_lost {
                "replication slot lost"
            } else {
                "ok"
            };
            let body = json!({
                "status": status,
                "published": metrics.published(),
                "backlog": backlog.pending,
                "oldest_unpublished_age_ms": backlog.oldest_age_ms,
                "dead": backlog.dead,
            });
            (!slot_lost, body)
        })
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let listener = MetricsListener::start(config, registry, health).await?;
    eprintln!(
        "keel relay: metrics at {scheme}://{}/metrics",
        listener.addr()
    );
    Ok(listener)
}
