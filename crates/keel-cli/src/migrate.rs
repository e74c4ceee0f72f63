//! `keel migrate`: brings Keel's tables (outbox, inbox, saga state, projection checkpoints)
//! in an application database to the version this binary knows. Idempotent; libraries also
//! migrate on start, so this is for deployments that migrate before rolling out. It prints
//! each step it applied, or that the tables were already current.

use anyhow::Context;
use clap::Args;

use crate::app_database::AppDatabase;

/// Flags of `keel migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The application database: postgres://user@host:port/db (tables in its search_path;
    /// add `?options=-c%20search_path%3DNAME` for another schema than public) or sqlite:PATH.
    #[arg(long, env = "KEEL_DATABASE_URL", value_name = "URL")]
    database_url: String,
}

/// Runs `keel migrate`.
pub(crate) fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (place, applied) = runtime.block_on(AppDatabase::migrate(&args.database_url))?;
    if applied.is_empty() {
        println!("keel tables in {place} are already current");
        return Ok(());
    }
    for (version, name) in &applied {
        println!("applied version {version}: {name}");
    }
    println!(
        "keel tables in {place} migrated ({} step(s))",
        applied.len()
    );
    Ok(())
}
