//! `keel demo`: runs the order system (`keel-demo`) on the embedded defaults, prints a live
//! timeline per order, rebuilds the order-summary projection with a progress bar, and ends
//! with the self-checking summary (exit code 1 when an invariant is broken). With
//! `--brokers` (or `KEEL_BROKERS`, or the config file's `brokers` entry) the services run
//! against a Kafka cluster such as `keel serve`, with `--engine URL` on NATS, Redis,
//! RabbitMQ or SNS/SQS (`engine.rs`), as many processes as wanted: the one running the
//! order service places the orders and checks; the others run until SIGTERM or Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use keel_demo::{Backbone, DemoConfig, Entry, Service, Summary, Timeline};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::brokers::{Brokers, KafkaCluster};
use crate::engine::Engine;

/// Flags of `keel demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Orders to place.
    #[arg(long, default_value_t = 30)]
    orders: usize,
    /// How long the payment provider is down from the first charge (e.g. 30s, 500ms, 2m):
    /// orders wait and complete after, none lost, none charged twice.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    payment_outage: Duration,
    /// Share of cards declined (0.0–1.0): declined orders release their stock and are rejected.
    #[arg(long, default_value_t = 0.1)]
    decline_rate: f64,
    /// Delay between two orders.
    #[arg(long, default_value = "40ms", value_parser = parse_duration)]
    place_interval: Duration,
    /// Every n-th order has an invalid email address, a poison event for the dead letters (0: none).
    #[arg(long, default_value_t = 25)]
    poison_every: usize,
    /// Directory for the run's log and databases (default: a fresh temporary directory).
    /// With --brokers or --engine, the directory every process of the demo shares: each service keeps
    /// its own database in it, and the ordering process reads them for the summary.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print only the summary, not the timeline.
    #[arg(long)]
    quiet: bool,
    // --brokers: run on a Kafka cluster instead of the embedded log (e.g. the Kafka listener
    // of a running `keel serve`), with --dir; lets the services run as separate processes.
    #[command(flatten)]
    brokers: Brokers,
    /// Run on another engine instead of the embedded log: `kafka://HOST:PORT[,…]` (as
    /// --brokers), `nats://HOST:PORT`, `redis://HOST:PORT`, `amqp://USER:PASS@HOST:PORT/VHOST`
    /// or `sqs://HOST:PORT` / `sqs://aws/REGION`, as `keel relay --to` (each needs keel built
    /// with its feature: kafka, nats, redis, rabbitmq, sqs). The demo's topics are created when missing. Lets the
    /// services run as separate processes (--service, with --dir).
    #[arg(long, value_name = "URL", value_parser = Engine::parse)]
    engine: Option<Engine>,
    /// The services this process runs, comma-separated: orders, inventory, payment,
    /// shipping, email, analytics, or all. The process with `orders` places the orders and
    /// prints the summary; one without it runs until SIGTERM or Ctrl-C. Other than `all`
    /// only with --brokers or --engine.
    #[arg(long, value_name = "NAMES", value_delimiter = ',', default_value = "all", value_parser = parse_services)]
    service: Vec<Vec<Service>>,
}

/// Where the demo's topics live.
enum Backend {
    Embedded,
    Kafka(KafkaCluster),
    Engine(Engine),
}

impl Backend {
    /// `--engine`, else the Kafka cluster of `--brokers` / `KEEL_BROKERS` / the config
    /// file, else the embedded log. The engine and a named cluster together are refused
    /// (the config file's entry gives way: it names the operators' cluster).
    fn of(args: &DemoArgs) -> anyhow::Result<Backend> {
        match (&args.engine, &args.brokers.list) {
            (Some(_), Some(_)) => {
                bail!("--engine and --brokers (or KEEL_BROKERS) both say where to run: give one")
            }
            (Some(engine), None) => Ok(Backend::Engine(
                engine.clone().with_properties_of(&args.brokers)?,
            )),
            (None, _) => Ok(match args.brokers.resolve()? {
                Some(cluster) => Backend::Kafka(cluster),
                None => Backend::Embedded,
            }),
        }
    }

    /// Opens it (the embedded log in `data_dir`), the demo's topics created when missing.
    async fn open(&self, data_dir: &Path) -> anyhow::Result<Backbone> {
        match self {
            Backend::Embedded => {
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("create {}", data_dir.display()))?;
                Ok(Backbone::embedded(&data_dir.join("log"))?)
            }
            Backend::Kafka(cluster) => kafka(cluster).await,
            Backend::Engine(engine) => {
                let connected = engine.connect().await?;
                Backbone::on(connected.transport, connected.admin.as_ref())
                    .await
                    .with_context(|| format!("the demo on {}", engine.describe()))
            }
        }
    }
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
    let mut services: Vec<Service> = args.service.iter().flatten().copied().collect();
    services.sort_by_key(|s| Service::ALL.iter().position(|all| all == s));
    services.dedup();
    let backend = Backend::of(&args)?;
    match backend {
        Backend::Embedded if services != Service::ALL => bail!(
            "--service: without --brokers or --engine every service runs in this process (the embedded log is not shared)"
        ),
        Backend::Kafka(_) if args.dir.is_none() => {
            bail!("--brokers needs --dir: the directory every process of the demo shares")
        }
        Backend::Engine(_) if services != Service::ALL && args.dir.is_none() => {
            bail!("--service needs --dir: the directory every process of the demo shares")
        }
        _ => {}
    }
    let temporary = tempfile::tempdir().context("create a temporary directory")?;
    let data_dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    let config = DemoConfig {
        data_dir,
        orders: args.orders,
        payment_outage: args.payment_outage,
        decline_rate: args.decline_rate,
        place_interval: args.place_interval,
        poison_every: args.poison_every,
    };
    config.validate()?;
    if !matches!(backend, Backend::Embedded) || std::env::var_os("RUST_LOG").is_some() {
        init_logging();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async {
        let backbone = backend.open(&config.data_dir).await?;
        if services.contains(&Service::Orders) {
            place(&config, &backbone, &services, args.quiet).await
        } else {
            serve(&config, &backbone, &services, args.quiet).await
        }
    })
}

/// Logs warnings and errors to stderr (`RUST_LOG` overrides): on an engine, a service that
/// cannot join its group or reach the broker says so instead of waiting silently.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::terminal::stderr_colours())
        .init();
}

/// The Kafka cluster `cluster`, with the demo's topics checked.
#[cfg(feature = "kafka")]
async fn kafka(cluster: &KafkaCluster) -> anyhow::Result<Backbone> {
    Backbone::kafka(&cluster.config("keel-demo")?)
        .await
        .with_context(|| format!("the demo on Kafka at {cluster}"))
}

/// Without the `kafka` feature there is no Kafka client in this binary.
#[cfg(not(feature = "kafka"))]
async fn kafka(_: &KafkaCluster) -> anyhow::Result<Backbone> {
    bail!("--brokers: this keel was built without Kafka; build it with `--features kafka`")
}

/// Runs the order service here: places the orders, prints the timeline and the summary,
/// fails on a broken invariant.
async fn place(
    config: &DemoConfig,
    backbone: &Backbone,
    services: &[Service],
    quiet: bool,
) -> anyhow::Result<()> {
    // The outage and the decline rate are the payment service's: say them where it runs.
    let payment = if services.contains(&Service::Payment) {
        format!(
            ", payment outage {:?}, decline rate {}",
            config.payment_outage, config.decline_rate
        )
    } else {
        String::new()
    };
    println!(
        "keel demo: {} orders{payment}, data in {}",
        config.orders,
        config.data_dir.display()
    );
    let summary = demo(config, backbone, services, quiet).await?;
    print_summary(&summary);
    let violations = summary.violations();
    if !violations.is_empty() {
        for violation in &violations {
            eprintln!("keel: demo check failed: {violation}");
        }
        bail!("{} invariant(s) broken", violations.len());
    }
    println!("all checks passed");
    Ok(())
}

/// Runs services other than the order service until SIGTERM or Ctrl-C, printing their
/// timeline.
async fn serve(
    config: &DemoConfig,
    backbone: &Backbone,
    services: &[Service],
    quiet: bool,
) -> anyhow::Result<()> {
    let names: Vec<&str> = services.iter().map(|s| s.name()).collect();
    let stop = crate::serve::shutdown_signal()?;
    let (timeline, entries) = Timeline::channel();
    let started = Instant::now();
    let printer = tokio::spawn(print_timeline(entries, started, quiet, None));
    println!(
        "keel demo: serving {} (data in {}); SIGTERM or Ctrl-C stops",
        names.join(", "),
        config.data_dir.display()
    );
    keel_demo::serve(config, backbone, services, timeline, stop).await?;
    printer.await.ok();
    Ok(())
}

async fn demo(
    config: &DemoConfig,
    backbone: &Backbone,
    services: &[Service],
    quiet: bool,
) -> anyhow::Result<Summary> {
    let (timeline, entries) = Timeline::channel();
    let bar = ProgressBar::new(config.orders as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} orders finished {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let printer = tokio::spawn(print_timeline(entries, started, quiet, Some(bar.clone())));
    let rebuild_bar = ProgressBar::hidden();
    let summary = keel_demo::drive(config, backbone, services, timeline, |progress| {
        if rebuild_bar.is_hidden() {
            rebuild_bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            rebuild_bar.set_style(
                ProgressStyle::with_template(
                    "rebuilding order-summary [{bar:30}] {pos}/{len} positions",
                )
                .expect("valid template"),
            );
        }
        rebuild_bar.set_length(progress.head);
        rebuild_bar.set_position(progress.position);
    })
    .await?;
    rebuild_bar.finish();
    bar.finish_with_message("");
    printer.await.ok();
    Ok(summary)
}

/// Prints timeline entries as they come (unless `quiet`), counting finished orders on
/// `bar`, until every sender is gone.
async fn print_timeline(
    mut entries: UnboundedReceiver<Entry>,
    started: Instant,
    quiet: bool,
    bar: Option<ProgressBar>,
) {
    let bar = bar.unwrap_or_else(ProgressBar::hidden);
    while let Some(entry) = entries.recv().await {
        if entry.service == "orders" && (entry.what == "confirmed" || entry.what == "rejected") {
            bar.inc(1);
        }
        if !quiet {
            let line = format!(
                "{:>8.3}s  order {:<5} {:<9} {}",
                started.elapsed().as_secs_f64(),
                entry.order_id,
                entry.service,
                entry.what
            );
            // A bar drawn nowhere (output not a terminal) prints nothing itself.
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
    }
}

fn print_summary(s: &Summary) {
    let o = s.orders;
    let r = s.reservations;
    println!();
    println!("summary");
    println!(
        "  orders placed      {:>6}   (confirmed {}, rejected {})",
        o.placed, o.confirmed, o.rejected
    );
    println!(
        "  cards charged      {:>6}   (declines {})",
        s.charges, s.declines
    );
    println!(
        "  stock reserved     {:>6}   (released {}, shipped {}, still held {})",
        r.made, r.released, r.shipped, r.held
    );
    println!("  shipments          {:>6}", s.shipments);
    println!(
        "  emails sent        {:>6}   (dead letters: {}, invalid addresses placed: {})",
        s.emails, s.dead_letters, s.poison_orders
    );
    println!(
        "  projection rebuild {:>6}   orders, same as live: {}",
        s.rebuilt.placed,
        s.rebuilt == o
    );
}

/// Parses `all` or one service name.
fn parse_services(text: &str) -> Result<Vec<Service>, String> {
    match text.trim() {
        "all" => Ok(Service::ALL.to_vec()),
        name => Service::parse(name).map(|s| vec![s]).ok_or_else(|| {
            let names: Vec<&str> = Service::ALL.iter().map(|s| s.name()).collect();
            format!("'{name}' is not a service ({} or all)", names.join(", "))
        }),
    }
}

/// Parses `500ms`, `30s`, `2m` (or a bare number of seconds).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 500ms, 30s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("'{text}': unknown unit '{unit}' (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("'{text}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let check = |text, expected: Option<u64>| {
            assert_eq!(
                parse_duration(text).ok().map(|d| d.as_millis() as u64),
                expected,
                "{text}"
            )
        };
        check("30s", Some(30_000));
        check("500ms", Some(500));
        check("2m", Some(120_000));
        check("1.5s", Some(1_500));
        check("7", Some(7_000));
        check("3h", None);
        check("fast", None);
        check("-1s", None);
    }
}
