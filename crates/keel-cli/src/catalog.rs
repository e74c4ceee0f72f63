//! `keel catalog`: writes the event catalog of the data directory — an AsyncAPI 3.0 document
//! (`asyncapi.json`) and a readable page (`catalog.html`) — from the topics' events, the
//! consumer groups' commits and the schema registry. The logic is `keel_schema`'s catalog.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use keel_schema::{Registry, asyncapi, html, scan};

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
}

pub(crate) fn run(data_dir: &Path, args: CatalogArgs) -> anyhow::Result<()> {
    let log = open_log(data_dir)?;
    let registry = Registry::open(&log).context("cannot open the schema registry")?;
    let (catalog, errors) = scan(&log);
    for error in &errors {
        eprintln!("keel: warning: partition left out of the catalog: {error}");
    }
    let document = asyncapi(&catalog, &registry, &args.title);
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
        registry.subjects(false).len()
    );
    println!("wrote {}", json_path.display());
    println!("wrote {}", html_path.display());
    Ok(())
}
