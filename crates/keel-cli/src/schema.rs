//! `keel schema register|check|list|diff`: the schema registry of the data directory from the
//! command line. `check` is a CI gate: it exits non-zero when the schema would break its
//! subject's compatibility level, printing every incompatibility with its path.
//!
//! All logic is `keel_schema`; this module parses, reads files and prints.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keel_schema::{
    CompatibilityLevel, Registry, Schema, SchemaType, VersionSelector, check_compatibility, diff,
};

use crate::store::open_log;

/// Flags of `keel schema`.
#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Register a JSON Schema file as the next version of a subject (an event type).
    Register {
        /// The subject, by default the event's CloudEvents type (`order.placed`).
        subject: String,
        /// The JSON Schema file.
        file: PathBuf,
    },
    /// Check a schema file against a subject without registering it; exits 1 on a breaking change.
    Check {
        /// The subject.
        subject: String,
        /// The JSON Schema file.
        file: PathBuf,
        /// Check under this level instead of the subject's own.
        #[arg(long, value_name = "LEVEL")]
        level: Option<CompatibilityLevel>,
    },
    /// List subjects, or the versions of one subject.
    List {
        /// Show this subject's versions.
        subject: Option<String>,
    },
    /// Compare two schemas in both directions; each is a file or SUBJECT@VERSION (or @latest).
    Diff {
        /// The old schema.
        old: String,
        /// The new schema.
        new: String,
    },
}

pub(crate) fn run(data_dir: &Path, args: SchemaArgs) -> anyhow::Result<()> {
    let log = open_log(data_dir)?;
    let registry = Registry::open(&log).context("cannot open the schema registry")?;
    match args.command {
        SchemaCommand::Register { subject, file } => {
            let schema = read_schema(&file)?;
            let before = registry.versions(&subject, true).unwrap_or_default();
            let registered = registry.register(&subject, SchemaType::Json, schema)?;
            let what = if before.contains(&registered.version) {
                "already registered as"
            } else {
                "registered"
            };
            println!(
                "{subject}: {what} version {} (id {})",
                registered.version, registered.id
            );
        }
        SchemaCommand::Check {
            subject,
            file,
            level,
        } => {
            let schema = read_schema(&file)?;
            let level = level.unwrap_or_else(|| registry.effective_level(&subject));
            let earlier: Vec<(u32, Schema)> = registry
                .versions(&subject, false)
                .unwrap_or_default()
                .into_iter()
                .map(|v| {
                    let found = registry.version(&subject, VersionSelector::Number(v), false)?;
                    Ok((v, found.schema))
                })
                .collect::<Result<_, keel_schema::RegistryError>>()?;
            let earlier: Vec<(u32, &serde_json::Value)> =
                earlier.iter().map(|(v, s)| (*v, s.document())).collect();
            let found = check_compatibility(level, schema.document(), &earlier);
            for incompatibility in &found {
                println!("{incompatibility}");
            }
            if !found.is_empty() {
                bail!(
                    "{} breaks {subject} under {level}: {} incompatible change(s)",
                    file.display(),
                    found.len()
                );
            }
            println!(
                "{}: compatible with {subject} under {level} ({} earlier version(s))",
                file.display(),
                earlier.len()
            );
        }
        SchemaCommand::List { subject: None } => {
            for subject in registry.subjects(false) {
                let latest = registry.version(&subject, VersionSelector::Latest, false)?;
                println!(
                    "{subject}\tversion {}\tid {}\t{}",
                    latest.version,
                    latest.id,
                    registry.effective_level(&subject)
                );
            }
        }
        SchemaCommand::List {
            subject: Some(subject),
        } => {
            for version in registry.versions(&subject, true)? {
                let found = registry.version(&subject, VersionSelector::Number(version), true)?;
                let deleted = if found.deleted { "\tdeleted" } else { "" };
                println!(
                    "{subject}\tversion {version}\tid {}\t{}{deleted}",
                    found.id,
                    found.schema.canonical()
                );
            }
        }
        SchemaCommand::Diff { old, new } => {
            let old = resolve(&registry, &old)?;
            let new = resolve(&registry, &new)?;
            let found = diff(old.document(), new.document());
            let verdict = |ok: bool| if ok { "compatible" } else { "breaks" };
            println!(
                "BACKWARD {} (new readers of old data), FORWARD {} (old readers of new data), FULL {}",
                verdict(found.backward.is_empty()),
                verdict(found.forward.is_empty()),
                verdict(found.backward.is_empty() && found.forward.is_empty())
            );
            for difference in &found.backward {
                println!("backward\t{difference}");
            }
            for difference in &found.forward {
                println!("forward\t{difference}");
            }
        }
    }
    Ok(())
}

fn read_schema(file: &Path) -> anyhow::Result<Schema> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Schema::parse(SchemaType::Json, &text).with_context(|| file.display().to_string())
}

/// A schema named as `SUBJECT@VERSION`, `SUBJECT@latest`, or a file path.
fn resolve(registry: &Registry, name: &str) -> anyhow::Result<Schema> {
    if let Some((subject, version)) = name.rsplit_once('@')
        && !Path::new(name).exists()
    {
        let selector = match version {
            "latest" => VersionSelector::Latest,
            number => VersionSelector::Number(
                number
                    .parse()
                    .with_context(|| format!("{name}: version must be a number or 'latest'"))?,
            ),
        };
        return Ok(registry.version(subject, selector, true)?.schema);
    }
    read_schema(Path::new(name))
}
