//! `keel catalog`: writes the event catalog of the data directory — an AsyncAPI 3.0 document
//! (`asyncapi.json`) and a readable page (`catalog.html`) — from the topics' events, the
//! consumer groups' commits and the schema registry. The logic is `keel_schema`'s catalog.
//!
//! The schemas come from a running registry with `--registry URL`, or when a local
//! `keel serve` owns the data directory (its registry is found there); the log is then that
//! server's, so only the registered event types are catalogued, without topics or consumers.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use keel_log::{Log, OpenError};
use keel_schema::{Catalog, Registry, SchemaSource, SubjectVersion, asyncapi, html, scan};

use crate::control::registry_addr_file;
use crate::registry_client::RegistryClient;
use crate::store::open_log;

/// Flags of `keel catalog`.
#[derive(Debug, Args)]
pub(crate) struct CatalogArgs {
    /// Directory to write `asyncapi.json` and `catalog.html` into (created if missing).
    #[arg(long, default_value = "catalog", value_name = "DIR")]
    out: PathBuf,
    /// The catalog's title.
    #[arg(long, default_value = "Keel event catalog")]
    title: String,
    /// Base URL of a running schema registry to take the schemas from (found automatically
    /// when a local `keel serve` owns the data directory).
    #[arg(long, env = "KEEL_REGISTRY", value_name = "URL")]
    registry: Option<String>,
}

/// A registry's REST API as the catalog's source of schemas.
struct Remote(RegistryClient);

impl SchemaSource for Remote {
    fn subjects(&self) -> Vec<String> {
        self.0.subjects().unwrap_or_else(|error| {
            eprintln!("keel: warning: cannot list the registry's subjects: {error:#}");
            Vec::new()
        })
    }

    fn latest(&self, subject: &str) -> Option<SubjectVersion> {
        let found = self.0.version(subject, "latest").ok()?;
        let schema_type = found.schema_type().ok()?;
        let schema = self
            .0
            .parse(schema_type, &found.schema, &found.references)
            .ok()?;
        Some(SubjectVersion {
            subject: subject.to_string(),
            version: found.version,
            id: found.id,
            schema_type,
            schema,
            deleted: false,
        })
    }
}

pub(crate) fn run(data_dir: &Path, args: CatalogArgs) -> anyhow::Result<()> {
    let log = match Log::open(data_dir) {
        Ok(log) => Some(log),
        Err(OpenError::Locked { .. }) if args.registry.is_some() => None,
        Err(OpenError::Locked { .. }) => {
            match std::fs::read_to_string(registry_addr_file(data_dir)) {
                Ok(addr) => {
                    eprintln!(
                        "keel: the running server owns {}: cataloguing its registry's event types, without topics or consumers",
                        data_dir.display()
                    );
                    return write(
                        &Catalog::default(),
                        &Remote(RegistryClient::new(&format!("http://{}", addr.trim()))),
                        &args,
                    );
                }
                Err(_) => Some(open_log(data_dir)?),
            }
        }
        Err(_) => Some(open_log(data_dir)?),
    };
    let catalog = match &log {
        Some(log) => {
            let (catalog, errors) = scan(log);
            for error in &errors {
                eprintln!("keel: warning: partition left out of the catalog: {error}");
            }
            catalog
        }
        None => Catalog::default(),
    };
    match (&args.registry, &log) {
        (Some(url), _) => write(&catalog, &Remote(RegistryClient::new(url)), &args),
        (None, Some(log)) => {
            let registry = Registry::open(log).context("cannot open the schema registry")?;
            write(&catalog, &registry, &args)
        }
        (None, None) => unreachable!("a locked log without --registry returned above"),
    }
}

/// Writes the catalog's two files.
fn write(catalog: &Catalog, registry: &dyn SchemaSource, args: &CatalogArgs) -> anyhow::Result<()> {
    let document = asyncapi(catalog, registry, &args.title);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let json_path = args.out.join("asyncapi.json");
    let html_path = args.out.join("catalog.html");
    let text = serde_json::to_string_pretty(&document).context("cannot encode the document")?;
    std::fs::write(&json_path, text + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    std::fs::write(&html_path, html(&document))
        .with_context(|| format!("cannot write {}", html_path.display()))?;
    let event_types: usize = catalog.topics.values().map(|t| t.events.len()).sum();
    println!(
        "catalog: {} topic(s), {event_types} event type(s) on them, {} registered subject(s)",
        catalog.topics.len(),
        registry.subjects().len()
    );
    println!("wrote {}", json_path.display());
    println!("wrote {}", html_path.display());
    Ok(())
}
