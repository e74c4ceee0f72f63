//! The `keel` binary: parses flags and dispatches one module per verb.
//!
//! This is the only crate that reads environment variables or prints for humans. Every verb
//! lives in its own module; the logic each one needs belongs in the libraries, so this file
//! holds no more than the command tree and the error report.

mod app_database;
mod bench;
mod brokers;
mod catalog;
#[cfg(feature = "kafka")]
mod cluster;
mod config_file;
mod console;
mod consume;
mod control;
mod demo;
mod dlq;
mod engine;
#[cfg(feature = "kafka")]
mod group_member;
mod groups;
mod metrics_flags;
mod migrate;
mod produce;
mod registry_client;
mod relay;
mod schema;
mod serve;
mod served_consume;
mod store;
mod target;
mod terminal;
mod time;
mod topics;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keel: an event backbone for services. Durable, partitioned event logs on one machine.
#[derive(Debug, Parser)]
#[command(name = "keel", version = env!("KEEL_LONG_VERSION"), about, long_about = None)]
struct Cli {
    /// Data directory of the embedded log.
    #[arg(
        long = "data-dir",
        global = true,
        env = "KEEL_DATA",
        default_value = "keel-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Base URL of a `keel serve` whose API `topics`, `groups`, `dlq`, `produce` and
    /// `consume` (without --group) use instead of the data directory (found automatically when a local server owns the data directory); the
    /// other verbs refuse it.
    #[arg(long, global = true, env = "KEEL_SERVER", value_name = "URL")]
    server: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe and delete topics.
    Topics(topics::TopicsArgs),
    /// Publish events: JSON lines on stdin, or one event from flags.
    Produce(produce::ProduceArgs),
    /// Read events from a topic, alone or as a consumer group.
    Consume(consume::ConsumeArgs),
    /// Run the order system (orders, inventory, payment, shipping, email, analytics) with a
    /// live timeline and a self-checking summary.
    Demo(demo::DemoArgs),
    /// Measure append, read and end-to-end latency of the embedded log.
    Bench(bench::BenchArgs),
    /// List consumer groups, show their lag, reset their offsets.
    Groups(groups::GroupsArgs),
    /// List, show, replay and purge dead letters; show the audit log.
    Dlq(dlq::DlqArgs),
    /// Serve the data directory to other processes: HTTP health and metrics.
    Serve(Box<serve::ServeArgs>),
    /// Serve the web console and the operator API of a Kafka cluster (--brokers; needs the
    /// `kafka` feature).
    #[command(mut_args(console::hide_serve_only))]
    Console(Box<console::ConsoleArgs>),
    /// Bring Keel's tables (outbox, inbox, sagas, projection checkpoints) in an application
    /// database to the current version.
    Migrate(migrate::MigrateArgs),
    /// Publish the outbox of an application database to a transport.
    Relay(relay::RelayArgs),
    /// Register, check, list and diff event schemas in the schema registry.
    Schema(schema::SchemaArgs),
    /// Write the event catalog: an AsyncAPI 3.0 document and an HTML page.
    Catalog(catalog::CatalogArgs),
    /// Add, list and remove the SASL users of the Kafka listener.
    Users(users::UsersArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match refuse_server(&cli).and_then(|()| run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprint!("{}", error_report(&error));
            ExitCode::FAILURE
        }
    }
}

/// An error as printed: "what failed: why" on one line when that is all the chain holds;
/// a longer chain puts each cause on its own indented line under the top one, so no line
/// strings three or more messages together.
fn error_report(error: &anyhow::Error) -> String {
    let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
    match chain.as_slice() {
        [what] => format!("keel: error: {what}\n"),
        [what, why] => format!("keel: error: {what}: {why}\n"),
        [what, causes @ ..] => {
            let mut report = format!("keel: error: {what}\n");
            for cause in causes {
                report.push_str(&format!("  caused by: {cause}\n"));
            }
            report
        }
        [] => unreachable!("an error chain holds at least the error"),
    }
}

/// `--server` (or `$KEEL_SERVER`) with a verb that cannot work through a server is an error:
/// ignoring it would run the verb on the local data directory instead, silently.
fn refuse_server(cli: &Cli) -> anyhow::Result<()> {
    let verb = match (&cli.server, &cli.command) {
        (None, _)
        | (
            _,
            Command::Topics(_)
            | Command::Groups(_)
            | Command::Dlq(_)
            | Command::Produce(_)
            | Command::Consume(_),
        ) => {
            return Ok(());
        }
        (_, Command::Demo(_)) => "demo",
        (_, Command::Bench(_)) => "bench",
        (_, Command::Serve(_)) => "serve",
        (_, Command::Console(_)) => "console",
        (_, Command::Migrate(_)) => "migrate",
        (_, Command::Relay(_)) => "relay",
        (_, Command::Schema(_)) => "schema",
        (_, Command::Catalog(_)) => "catalog",
        (_, Command::Users(_)) => "users",
    };
    anyhow::bail!(
        "`keel {verb}` does not work through a server's API, so --server (or $KEEL_SERVER) cannot be honoured: unset it (Kafka clients reach the server's Kafka listener; `schema` and `catalog` take --registry)"
    )
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Topics(args) => topics::run(&cli.data_dir, cli.server.as_deref(), args),
        Command::Produce(args) => produce::run(&cli.data_dir, cli.server.as_deref(), args),
        Command::Consume(args) => consume::run(&cli.data_dir, cli.server.as_deref(), args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(&cli.data_dir, args),
        Command::Groups(args) => groups::run(&cli.data_dir, cli.server.as_deref(), args),
        Command::Dlq(args) => dlq::run(&cli.data_dir, cli.server.as_deref(), args),
        Command::Serve(args) => serve::run(&cli.data_dir, *args),
        Command::Console(args) => console::run(*args),
        Command::Migrate(args) => migrate::run(args),
        Command::Relay(args) => relay::run(&cli.data_dir, args),
        Command::Schema(args) => schema::run(&cli.data_dir, args),
        Command::Catalog(args) => catalog::run(&cli.data_dir, args),
        Command::Users(args) => users::run(&cli.data_dir, args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own checks of every verb's flags (unique names, shorts, globals), which it
    /// otherwise makes only when that verb is run.
    #[test]
    fn every_verb_s_flags_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
