//! `keel users add|list|remove`: the SASL users of the Kafka listener (`keel serve
//! --kafka-sasl-mechanisms ...`), stored salted in the data directory's `__keel_users` topic
//! as Kafka stores SCRAM credentials: salt, iterations, stored key, server key.
//!
//! The verbs open the data directory, so they run while no server owns it; a running server
//! is changed through Kafka's own AlterUserScramCredentials API instead. Passwords come from
//! `--password`, `$KEEL_USER_PASSWORD` or the first line of standard input, never echoed.

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use clap::{Args, Subcommand};
use keel_kafka::sasl::Users;
use keel_kafka::sasl::scram::{SCRAM_ITERATIONS_DEFAULT, ScramCredential, ScramMechanism};

use crate::store::open_log;

/// Flags of `keel users`.
#[derive(Debug, Args)]
pub(crate) struct UsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a user, or replace their password, for SCRAM-SHA-256 and SCRAM-SHA-512 (PLAIN
    /// checks passwords against these).
    Add {
        /// The user name (the principal is `User:<name>`).
        name: String,
        /// The password [default: $KEEL_USER_PASSWORD, else the first line of stdin].
        #[arg(long, env = "KEEL_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Only this mechanism: SCRAM-SHA-256 or SCRAM-SHA-512 [default: both].
        #[arg(long, value_name = "MECHANISM")]
        mechanism: Option<String>,
        /// PBKDF2 iterations (4096..=16384).
        #[arg(long, default_value_t = SCRAM_ITERATIONS_DEFAULT)]
        iterations: u32,
    },
    /// List users and their mechanisms (never a secret).
    List,
    /// Remove a user (or one mechanism of theirs).
    Remove {
        /// The user name.
        name: String,
        /// Only this mechanism [default: all].
        #[arg(long, value_name = "MECHANISM")]
        mechanism: Option<String>,
    },
}

pub(crate) fn run(data_dir: &Path, args: UsersArgs) -> anyhow::Result<()> {
    let log = open_log(data_dir)?;
    let users = Users::open(&log)?;
    match args.command {
        UsersCommand::Add {
            name,
            password,
            mechanism,
            iterations,
        } => {
            let password = match password {
                Some(password) => password,
                None => read_password()?,
            };
            anyhow::ensure!(!password.is_empty(), "the password is empty");
            for mechanism in mechanisms(mechanism.as_deref())? {
                let credential = ScramCredential::new(mechanism, &password, iterations)?;
                users.upsert(&name, credential)?;
                println!("user '{name}': {} set", mechanism.name());
            }
        }
        UsersCommand::List => {
            for (name, mechanisms) in users.list() {
                let described: Vec<String> = mechanisms
                    .iter()
                    .map(|(m, iterations)| format!("{} ({iterations} iterations)", m.name()))
                    .collect();
                println!("{name}\t{}", described.join(", "));
            }
        }
        UsersCommand::Remove { name, mechanism } => {
            let mechanism = mechanism.as_deref().map(parse_mechanism).transpose()?;
            anyhow::ensure!(
                users.remove(&name, mechanism)?,
                "user '{name}' has no such credential"
            );
            println!("user '{name}' removed");
        }
    }
    Ok(())
}

fn parse_mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::from_name(name)
        .with_context(|| format!("'{name}' is not SCRAM-SHA-256 or SCRAM-SHA-512"))
}

fn mechanisms(name: Option<&str>) -> anyhow::Result<Vec<ScramMechanism>> {
    Ok(match name {
        Some(name) => vec![parse_mechanism(name)?],
        None => ScramMechanism::ALL.to_vec(),
    })
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
