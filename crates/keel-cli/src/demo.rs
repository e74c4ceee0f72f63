//! `keel demo`: runs the order system (`keel-demo`) on the embedded defaults, prints a live
//! timeline per order, rebuilds the order-summary projection with a progress bar, and ends
//! with the self-checking summary (exit code 1 when an invariant is broken).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use keel_demo::{DemoConfig, Summary, Timeline};

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
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print only the summary, not the timeline.
    #[arg(long)]
    quiet: bool,
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    println!(
        "keel demo: {} orders, payment outage {:?}, decline rate {}, data in {}",
        config.orders,
        config.payment_outage,
        config.decline_rate,
        config.data_dir.display()
    );
    let summary = runtime.block_on(demo(&config, args.quiet))?;
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

async fn demo(config: &DemoConfig, quiet: bool) -> anyhow::Result<Summary> {
    let (timeline, mut entries) = Timeline::channel();
    let bar = ProgressBar::new(config.orders as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} orders finished {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let printer = {
        let bar = bar.clone();
        tokio::spawn(async move {
            while let Some(entry) = entries.recv().await {
                if entry.service == "orders"
                    && (entry.what == "confirmed" || entry.what == "rejected")
                {
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
        })
    };
    let rebuild_bar = ProgressBar::hidden();
    let summary = keel_demo::run(config, timeline, |progress| {
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
