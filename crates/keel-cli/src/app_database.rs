//! The application database named by `--database-url`: PostgreSQL (`postgres://…`,
//! `postgresql://…`) or a SQLite file (`sqlite:PATH`), opened with its Keel tables migrated.
//!
//! Not here: what the verbs do with it (`migrate.rs`, `relay.rs`).

use std::sync::Arc;

use anyhow::{Context, bail};
use keel_core::PublishPort;
use keel_sql::{Backlog, OutboxMetrics, PgDatabase, RelayHandle, RelayOptions, SqliteOutbox};

/// An application database holding Keel's outbox.
pub(crate) enum AppDatabase {
    /// A PostgreSQL database (its tables in the URL's `search_path`).
    Postgres(Box<PgDatabase>),
    /// A SQLite file.
    Sqlite(SqliteOutbox),
}

impl AppDatabase {
    /// Opens the database `url` names and brings Keel's tables to the current version.
    pub(crate) async fn open(url: &str) -> anyhow::Result<AppDatabase> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let db = PgDatabase::connect(url).await?;
            Ok(AppDatabase::Postgres(Box::new(db)))
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//").to_string();
            let outbox = tokio::task::spawn_blocking(move || SqliteOutbox::open(path))
                .await
                .context("opening the sqlite database")??;
            Ok(AppDatabase::Sqlite(outbox))
        } else {
            bail!(
                "unsupported --database-url '{url}': expected postgres://…, postgresql://… or sqlite:PATH"
            )
        }
    }

    /// Where Keel's tables are, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            AppDatabase::Postgres(db) => format!("postgres schema '{}'", db.schema()),
            AppDatabase::Sqlite(outbox) => format!("sqlite {}", outbox.path().display()),
        }
    }

    /// The migration steps opening applied, as (version, name); empty when already current.
    pub(crate) fn applied_migrations(&self) -> &[(u32, &'static str)] {
        match self {
            AppDatabase::Postgres(db) => db.applied_migrations(),
            AppDatabase::Sqlite(outbox) => outbox.applied_migrations(),
        }
    }

    /// Starts a relay of this database's outbox through `port`.
    pub(crate) fn relay(
        &self,
        port: Arc<dyn PublishPort>,
        options: RelayOptions,
        metrics: OutboxMetrics,
    ) -> anyhow::Result<RelayHandle> {
        Ok(match self {
            AppDatabase::Postgres(db) => db.outbox().relay_with_metrics(port, options, metrics)?,
            AppDatabase::Sqlite(outbox) => outbox.relay_with_metrics(port, options, metrics)?,
        })
    }

    /// The outbox's backlog now.
    pub(crate) async fn backlog(&self) -> anyhow::Result<Backlog> {
        let backlog = match self {
            AppDatabase::Postgres(db) => db.outbox().backlog().await,
            AppDatabase::Sqlite(outbox) => outbox.backlog().await,
        };
        backlog.map_err(anyhow::Error::msg)
    }
}
