//! `keel schema register|config|check|list|diff`: the schema registry from the command line — the
//! data directory's, or a running registry's API (`--registry URL`, or found automatically
//! when a local `keel serve` owns the data directory), so it works in CI against a shared
//! registry. `check` is a CI gate: it exits non-zero when the schema would break its
//! subject's compatibility level, printing every incompatibility with its path, and with
//! `--against-events TOPIC` when a stored event of the subject's type cannot be read with it.
//!
//! All logic is `keel_schema`; this module parses, reads files and prints.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keel_log::{Log, OpenError};
use keel_schema::{
    CompatibilityLevel, Reference, Registry, Schema, SchemaType, StoredCheck, VersionSelector,
    check_compatibility, check_stored_events, diff,
};

use crate::control::registry_addr_file;
use crate::registry_client::RegistryClient;
use crate::store::open_log;

/// Flags of `keel schema`.
#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    /// Base URL of a running schema registry to work against instead of the data directory
    /// (found automatically when a local `keel serve` owns the data directory).
    #[arg(long, global = true, env = "KEEL_REGISTRY", value_name = "URL")]
    registry: Option<String>,
    #[command(subcommand)]
    command: SchemaCommand,
}

/// How a schema file is read: its type and the registered schemas it references.
#[derive(Debug, Args)]
struct SchemaFile {
    /// The schema file: JSON Schema (`.json`), Avro (`.avsc`) or Protobuf (`.proto`).
    file: PathBuf,
    /// The schema type, when the file's extension does not say it (json, avro, protobuf).
    #[arg(long = "type", value_name = "TYPE")]
    schema_type: Option<SchemaType>,
    /// A registered schema this one references, as NAME=SUBJECT@VERSION (NAME as the schema
    /// uses it: a `$ref` URI, an Avro full name). Repeatable.
    #[arg(long = "reference", value_name = "NAME=SUBJECT@VERSION", value_parser = parse_reference)]
    references: Vec<Reference>,
}

/// `keel schema check --against-events`: the stored events to read with the new schema.
#[derive(Debug, Args)]
struct EventsArgs {
    /// Also read the stored events of the subject's type on this topic with the new schema;
    /// exits 1 at the first it cannot read, naming its partition, offset and path.
    #[arg(long, value_name = "TOPIC")]
    against_events: Option<String>,
    /// Read only the newest N records of each partition.
    #[arg(long, value_name = "N", requires = "against_events")]
    sample: Option<u64>,
    /// Report every unreadable event instead of stopping at the first.
    #[arg(long, requires = "against_events")]
    keep_going: bool,
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Register a schema file as the next version of a subject (an event type).
    Register {
        /// The subject, by default the event's CloudEvents type (`order.placed`).
        subject: String,
        #[command(flatten)]
        file: SchemaFile,
        /// Set the subject's compatibility level first (BACKWARD, FORWARD, FULL, NONE, or a
        /// _TRANSITIVE one), so this version is checked under it.
        #[arg(long, value_name = "LEVEL")]
        compatibility: Option<CompatibilityLevel>,
    },
    /// Show the compatibility level of a subject (or the global one), or set it with --set.
    Config {
        /// The subject; without it, the registry's global level.
        subject: Option<String>,
        /// The level to set (BACKWARD, FORWARD, FULL, NONE, or a _TRANSITIVE one).
        #[arg(long, value_name = "LEVEL")]
        set: Option<CompatibilityLevel>,
    },
    /// Check a schema file against a subject without registering it; exits 1 on a breaking change.
    Check {
        /// The subject.
        subject: String,
        #[command(flatten)]
        file: SchemaFile,
        /// Check under this level instead of the subject's own.
        #[arg(long, value_name = "LEVEL")]
        level: Option<CompatibilityLevel>,
        #[command(flatten)]
        events: EventsArgs,
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

/// Where `keel schema` works: the data directory's registry, or a running registry's API.
/// One value per command, so the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Target {
    /// This process opened the log.
    Local { log: Log, registry: Registry },
    /// A registry's REST API.
    Remote(RegistryClient),
}

impl Target {
    /// The registry at `url` if given; else the data directory's, or — when a running
    /// `keel serve` owns the directory — that server's registry.
    fn open(data_dir: &Path, url: Option<&str>) -> anyhow::Result<Target> {
        if let Some(url) = url {
            return Ok(Target::Remote(RegistryClient::new(url)));
        }
        let log = match Log::open(data_dir) {
            Ok(log) => log,
            Err(OpenError::Locked { .. }) => {
                match std::fs::read_to_string(registry_addr_file(data_dir)) {
                    Ok(addr) => {
                        let url = format!("http://{}", addr.trim());
                        return Ok(Target::Remote(RegistryClient::new(&url)));
                    }
                    Err(_) => open_log(data_dir)?,
                }
            }
            Err(_) => open_log(data_dir)?,
        };
        let registry = Registry::open(&log).context("cannot open the schema registry")?;
        Ok(Target::Local { log, registry })
    }
}

pub(crate) fn run(data_dir: &Path, args: SchemaArgs) -> anyhow::Result<()> {
    let target = Target::open(data_dir, args.registry.as_deref())?;
    match args.command {
        SchemaCommand::Register {
            subject,
            file,
            compatibility,
        } => {
            if let Some(level) = compatibility {
                set_level(&target, Some(&subject), level)?;
            }
            register(&target, &subject, &file)
        }
        SchemaCommand::Config { subject, set } => match set {
            Some(level) => set_level(&target, subject.as_deref(), level),
            None => show_level(&target, subject.as_deref()),
        },
        SchemaCommand::Check {
            subject,
            file,
            level,
            events,
        } => {
            check(&target, &subject, &file, level)?;
            match &events.against_events {
                Some(topic) => check_events(&target, &subject, &file, topic, &events),
                None => Ok(()),
            }
        }
        SchemaCommand::List { subject } => list(&target, subject.as_deref()),
        SchemaCommand::Diff { old, new } => {
            let found = diff(&resolve(&target, &old)?, &resolve(&target, &new)?)?;
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
            Ok(())
        }
    }
}

fn register(target: &Target, subject: &str, file: &SchemaFile) -> anyhow::Result<()> {
    let (version, id, already) = match target {
        Target::Local { registry, .. } => {
            let schema = file.read(target)?;
            let before = registry.versions(subject, true).unwrap_or_default();
            let registered = registry.register(subject, schema.schema_type(), schema)?;
            let already = before.contains(&registered.version);
            (registered.version, registered.id, already)
        }
        Target::Remote(client) => {
            let (schema_type, text) = file.text()?;
            client.register(subject, schema_type, &text, &file.references)?
        }
    };
    let what = if already {
        "already registered as"
    } else {
        "registered"
    };
    println!("{subject}: {what} version {version} (id {id})");
    Ok(())
}

/// Sets the level of `subject` (`None`: the global one) and says so.
fn set_level(
    target: &Target,
    subject: Option<&str>,
    level: CompatibilityLevel,
) -> anyhow::Result<()> {
    match target {
        Target::Local { registry, .. } => registry.set_level(subject, Some(level))?,
        Target::Remote(client) => client.set_level(subject, level.as_str())?,
    }
    println!(
        "{}: compatibility {}",
        subject.unwrap_or("(global)"),
        level.as_str()
    );
    Ok(())
}

/// Prints the level of `subject` (`None`: the global one), and where it comes from.
fn show_level(target: &Target, subject: Option<&str>) -> anyhow::Result<()> {
    let (level, own) = match target {
        Target::Local { registry, .. } => match (subject, registry.level(subject)) {
            (_, Some(level)) => (level.as_str().to_string(), true),
            (Some(subject), None) => (
                registry.effective_level(subject).as_str().to_string(),
                false,
            ),
            (None, None) => (CompatibilityLevel::default().as_str().to_string(), false),
        },
        Target::Remote(client) => client.configured_level(subject)?,
    };
    let from = if own {
        ""
    } else {
        " (inherited: global or default)"
    };
    println!(
        "{}: compatibility {level}{from}",
        subject.unwrap_or("(global)")
    );
    Ok(())
}

fn check(
    target: &Target,
    subject: &str,
    file: &SchemaFile,
    level: Option<CompatibilityLevel>,
) -> anyhow::Result<()> {
    let shown = file.file.display();
    let (found, level, earlier): (Vec<String>, String, String) = match target {
        Target::Local { registry, .. } => {
            let schema = file.read(target)?;
            let level = level.unwrap_or_else(|| registry.effective_level(subject));
            let earlier: Vec<(u32, Schema)> = registry
                .versions(subject, false)
                .unwrap_or_default()
                .into_iter()
                .map(|v| {
                    let found = registry.version(subject, VersionSelector::Number(v), false)?;
                    Ok((v, found.schema))
                })
                .collect::<Result<_, keel_schema::RegistryError>>()?;
            let compared: Vec<(u32, &Schema)> = earlier.iter().map(|(v, s)| (*v, s)).collect();
            let found = check_compatibility(level, &schema, &compared)?;
            let found = found.iter().map(ToString::to_string).collect();
            (
                found,
                level.to_string(),
                format!(" ({} earlier version(s))", earlier.len()),
            )
        }
        Target::Remote(client) => {
            if level.is_some() {
                bail!(
                    "--level needs the data directory; a registry checks under the subject's own level"
                );
            }
            let (schema_type, text) = file.text()?;
            let found = client.check(subject, schema_type, &text, &file.references)?;
            (
                found,
                client.level(subject)?,
                format!(" (registry {})", client.base()),
            )
        }
    };
    for incompatibility in &found {
        println!("{incompatibility}");
    }
    if !found.is_empty() {
        bail!(
            "{shown} breaks {subject} under {level}: {} incompatible change(s)",
            found.len()
        );
    }
    println!("{shown}: compatible with {subject} under {level}{earlier}");
    Ok(())
}

/// `--against-events`: the stored events of type `subject` on `topic`, read with the new
/// schema, with a progress bar; the first unreadable one fails the check (all of them with
/// `--keep-going`), named by partition, offset and path.
fn check_events(
    target: &Target,
    subject: &str,
    file: &SchemaFile,
    topic: &str,
    events: &EventsArgs,
) -> anyhow::Result<()> {
    let Target::Local { log, registry } = target else {
        bail!(
            "--against-events reads the data directory's log, which a running server owns; run it where the log is not served (stop the server or use a copy)"
        );
    };
    let schema = file.read(target)?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} records")
            .expect("a valid progress template"),
    );
    bar.set_message(format!("reading {topic}"));
    let options = StoredCheck {
        sample_per_partition: events.sample,
        stop_at_first: !events.keep_going,
        upcaster: None,
    };
    let report = check_stored_events(
        log,
        registry,
        topic,
        subject,
        &schema,
        options,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    for unreadable in &report.unreadable {
        println!("{topic}/{unreadable}");
    }
    let unreadable = report.unreadable.len() as u64 + report.unreadable_unlisted;
    if let Some(first) = report.unreadable.first() {
        bail!(
            "{} cannot read {unreadable} stored {subject} event(s) on {topic}; the first at partition {} offset {}{}",
            file.file.display(),
            first.partition,
            first.offset,
            if first.path.is_empty() {
                String::new()
            } else {
                format!(", path {}", first.path)
            }
        );
    }
    println!(
        "{}: reads all {} stored {subject} event(s) on {topic} ({} record(s) read)",
        file.file.display(),
        report.checked,
        report.read
    );
    Ok(())
}

fn list(target: &Target, subject: Option<&str>) -> anyhow::Result<()> {
    match (target, subject) {
        (Target::Local { registry, .. }, None) => {
            for subject in registry.subjects(false) {
                let latest = registry.version(&subject, VersionSelector::Latest, false)?;
                let level = registry.effective_level(&subject);
                println!(
                    "{subject}\tversion {}\tid {}\t{level}",
                    latest.version, latest.id
                );
            }
        }
        (Target::Local { registry, .. }, Some(subject)) => {
            for version in registry.versions(subject, true)? {
                let found = registry.version(subject, VersionSelector::Number(version), true)?;
                let deleted = if found.deleted { "\tdeleted" } else { "" };
                let text = found.schema.canonical();
                println!(
                    "{subject}\tversion {version}\tid {}\t{text}{deleted}",
                    found.id
                );
            }
        }
        (Target::Remote(client), None) => {
            for subject in client.subjects()? {
                let latest = client.version(&subject, "latest")?;
                let level = client.level(&subject)?;
                println!(
                    "{subject}\tversion {}\tid {}\t{level}",
                    latest.version, latest.id
                );
            }
        }
        (Target::Remote(client), Some(subject)) => {
            for version in client.versions(subject)? {
                let found = client.version(subject, &version.to_string())?;
                println!(
                    "{subject}\tversion {version}\tid {}\t{}",
                    found.id, found.schema
                );
            }
        }
    }
    Ok(())
}

impl SchemaFile {
    /// The file's schema type and text.
    fn text(&self) -> anyhow::Result<(SchemaType, String)> {
        let file = &self.file;
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        Ok((self.schema_type.unwrap_or_else(|| type_of(file)), text))
    }

    /// Reads and parses the file, its references resolved in the target's registry.
    fn read(&self, target: &Target) -> anyhow::Result<Schema> {
        let (schema_type, text) = self.text()?;
        let parsed = match target {
            Target::Local { registry, .. } => registry
                .parse(schema_type, &text, &self.references)
                .map_err(anyhow::Error::from),
            Target::Remote(client) => client.parse(schema_type, &text, &self.references),
        };
        parsed.with_context(|| self.file.display().to_string())
    }
}

/// The schema type a file's extension names: `.avsc` Avro, `.proto` Protobuf, else JSON Schema.
fn type_of(file: &Path) -> SchemaType {
    match file.extension().and_then(|e| e.to_str()) {
        Some("avsc") => SchemaType::Avro,
        Some("proto") => SchemaType::Protobuf,
        _ => SchemaType::Json,
    }
}

fn parse_reference(text: &str) -> Result<Reference, String> {
    let malformed = || format!("{text:?}: expected NAME=SUBJECT@VERSION");
    let (name, target) = text.split_once('=').ok_or_else(malformed)?;
    let (subject, version) = target.rsplit_once('@').ok_or_else(malformed)?;
    Ok(Reference {
        name: name.to_string(),
        subject: subject.to_string(),
        version: version.parse().map_err(|_| malformed())?,
    })
}

fn read_schema(file: &Path) -> anyhow::Result<Schema> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Schema::parse(type_of(file), &text).with_context(|| file.display().to_string())
}

/// A schema named as `SUBJECT@VERSION`, `SUBJECT@latest`, or a file path.
fn resolve(target: &Target, name: &str) -> anyhow::Result<Schema> {
    if let Some((subject, version)) = name.rsplit_once('@')
        && !Path::new(name).exists()
    {
        return match target {
            Target::Local { registry, .. } => {
                let selector = match version {
                    "latest" => VersionSelector::Latest,
                    number => VersionSelector::Number(number.parse().with_context(|| {
                        format!("{name}: version must be a number or 'latest'")
                    })?),
                };
                Ok(registry.version(subject, selector, true)?.schema)
            }
            Target::Remote(client) => {
                let found = client.version(subject, version)?;
                client.parse(found.schema_type()?, &found.schema, &found.references)
            }
        };
    }
    read_schema(Path::new(name))
}
