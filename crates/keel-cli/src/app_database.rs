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
        match Url::parse(url)? {
            Url::Postgres => Ok(AppDatabase::Postgres(Box::new(
                PgDatabase::connect(url).await?,
            ))),
            Url::Sqlite(path) => {
                let outbox = tokio::task::spawn_blocking(move || SqliteOutbox::open(path))
                    .await
                    .context("opening the sqlite database")??;
                Ok(AppDatabase::Sqlite(outbox))
            }
        }
    }

    /// Brings every Keel table in the database `url` names to the current version (on
    /// PostgreSQL its one track; in a SQLite file the inbox's, outbox's, sagas' and
    /// projections' tracks). Returns where the tables are, for messages, and the steps
    /// applied as (version, name), oldest first; empty when all were current.
    pub(crate) async fn migrate(url: &str) -> anyhow::Result<(String, Vec<(u32, &'static str)>)> {
        match Url::parse(url)? {
            Url::Postgres => {
                let db = PgDatabase::connect(url).await?;
                Ok((describe_postgres(&db), db.applied_migrations().to_vec()))
            }
            Url::Sqlite(path) => {
                let place = format!("sqlite {path}");
                let applied = tokio::task::spawn_blocking(move || keel_sql::migrate_sqlite(path))
                    .await
                    .context("migrating the sqlite database")??;
                Ok((place, applied))
            }
        }
    }

    /// Where Keel's tables are, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            AppDatabase::Postgres(db) => describe_postgres(db),
            AppDatabase::Sqlite(outbox) => format!("sqlite {}", outbox.path().display()),
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

/// What `--database-url` names.
enum Url {
    Postgres,
    /// The file's path.
    Sqlite(String),
}

impl Url {
    fn parse(url: &str) -> anyhow::Result<Url> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Url::Postgres)
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            Ok(Url::Sqlite(path.trim_start_matches("//").to_string()))
        } else {
            bail!(
                "unsupported --database-url '{url}': expected postgres://…, postgresql://… or sqlite:PATH"
            )
        }
    }
}

/// Where a PostgreSQL database keeps Keel's tables, for messages.
fn describe_postgres(db: &PgDatabase) -> String {
    format!("postgres schema '{}'", db.schema())
}
