//! The outbox, its relay, the inbox, the event store, saga state and read models on
//! PostgreSQL (cargo feature `postgres`): [`PgDatabase`] (a connection pool whose schema is
//! migrated on connect), [`PgOutbox`] (enqueue inside the caller's transaction), the relay
//! it starts, [`PgInbox`], [`PgEventStore`], [`PgSagaStore`] and [`PgProjection`].
//!
//! Driver: `tokio-postgres` with a `deadpool-postgres` pool, statements written by hand
//! (`schema.rs`), nothing checked against a live database at compile time. No TLS in this
//! version (`NoTls`): run the relay next to the database or through a tunnel.
//!
//! Not here: the database-independent relay logic (`relay.rs`, `outbox.rs`).

#[cfg(feature = "cdc")]
mod cdc;
#[cfg(feature = "cdc")]
mod cdc_slot;
#[cfg(feature = "cdc")]
mod cdc_stream;
mod event_store;
mod inbox;
mod listen;
mod outbox;
mod projection;
mod saga;
mod schema;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

#[cfg(feature = "cdc")]
pub use cdc::{CdcError, CdcMetrics, CdcSlot};
pub use event_store::PgEventStore;
pub use inbox::{PgInbox, PgTx, TxFuture};
pub use outbox::PgOutbox;
pub use projection::{ApplyFuture, PgProjection};
pub use saga::PgSagaStore;
pub use schema::PG_SCHEMA_VERSION;

use crate::limits::{PG_POOL_SIZE_DEFAULT, PG_POOL_SIZE_MAX};

/// A PostgreSQL database holding Keel's tables: a pool of connections plus what it was
/// connected with. Cheap to clone; clones share the pool.
///
/// The tables live in the first schema of the connection's `search_path`; pick another
/// than `public` with the URL's `options=-c search_path=NAME`.
#[derive(Clone)]
pub struct PgDatabase {
    pool: Pool,
    config: tokio_postgres::Config,
    schema: String,
    /// The steps connecting applied, as (version, name).
    applied: Vec<(u32, &'static str)>,
}

/// Settings of [`PgDatabase::connect_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Most pooled connections, 1..=[`PG_POOL_SIZE_MAX`].
    pub pool_size: usize,
    /// Whether connecting applies the migrations (the default). Without it, connecting
    /// fails unless the schema is already at [`PG_SCHEMA_VERSION`].
    pub migrate: bool,
    /// How long connecting waits for the server to accept a connection.
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            pool_size: PG_POOL_SIZE_DEFAULT,
            migrate: true,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why [`PgDatabase::connect`] failed; one line naming the database (without password)
/// and the step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The URL does not parse.
    #[error("invalid postgres url: {0}")]
    Url(String),
    /// An option is out of range.
    #[error("invalid postgres option '{setting}': {reason}")]
    Option {
        /// The option.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be made (server down, wrong host, authentication).
    #[error("cannot connect to postgres {target}: {reason}")]
    Connect {
        /// Host and database.
        target: String,
        /// The driver's reason.
        reason: String,
    },
    /// A migration failed; the schema keeps its previous version.
    #[error("cannot migrate postgres {target} to schema version {version}: {reason}")]
    Migrate {
        /// Host and database.
        target: String,
        /// The version being applied (0: reading the current version).
        version: i32,
        /// The server's reason.
        reason: String,
    },
    /// The schema was written by a newer keel-sql (or, with `migrate: false`, is older);
    /// it is left untouched.
    #[error("postgres {target} has keel schema version {found}; this keel-sql needs {known}")]
    SchemaVersion {
        /// Host and database.
        target: String,
        /// The version found.
        found: i32,
        /// The version this code writes.
        known: i32,
    },
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase")
            .field("target", &target(&self.config))
            .field("schema", &self.schema)
            .finish()
    }
}

impl PgDatabase {
    /// Connects with default options (and so migrates). See [`PgDatabase::connect_with`].
    pub async fn connect(url: &str) -> Result<PgDatabase, PgError> {
        PgDatabase::connect_with(url, PgOptions::default()).await
    }

    /// Parses `url` (`postgres://user@host:port/db?options=...`), builds the pool, checks
    /// one connection and brings Keel's tables to [`PG_SCHEMA_VERSION`] (idempotent; safe
    /// when several processes start at once).
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<PgDatabase, PgError> {
        if !(1..=PG_POOL_SIZE_MAX).contains(&options.pool_size) {
            return Err(PgError::Option {
                setting: "options.pool_size",
                reason: format!("{} is not in 1..={PG_POOL_SIZE_MAX}", options.pool_size),
            });
        }
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::Url(one_line(&e)))?;
        config.connect_timeout(options.connect_timeout);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .build()
            .map_err(|e| PgError::Url(e.to_string()))?;
        let target = target(&config);
        let mut client = pool.get().await.map_err(|e| PgError::Connect {
            target: target.clone(),
            reason: one_line(&e),
        })?;
        let found = if options.migrate {
            schema::migrate(&mut client).await.map_err(|e| match e {
                schema::MigrateError::Sql { version, source } => PgError::Migrate {
                    target: target.clone(),
                    version,
                    reason: one_line(&source),
                },
                schema::MigrateError::Newer { found } => PgError::SchemaVersion {
                    target: target.clone(),
                    found,
                    known: PG_SCHEMA_VERSION,
                },
            })?
        } else {
            let found = current_version(&client)
                .await
                .map_err(|e| PgError::Migrate {
                    target: target.clone(),
                    version: 0,
                    reason: one_line(&e),
                })?;
            if found != PG_SCHEMA_VERSION {
                return Err(PgError::SchemaVersion {
                    target,
                    found,
                    known: PG_SCHEMA_VERSION,
                });
            }
            found
        };
        let schema: String = client
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(|e| PgError::Connect {
                target: target.clone(),
                reason: one_line(&e),
            })?
            .get(0);
        if found < PG_SCHEMA_VERSION {
            tracing::info!(%target, %schema, from = found, to = PG_SCHEMA_VERSION, "migrated the keel schema");
        }
        drop(client);
        let applied = schema::MIGRATIONS
            .iter()
            .filter(|m| m.version > found)
            .map(|m| (m.version as u32, m.name))
            .collect();
        Ok(PgDatabase {
            pool,
            config,
            schema,
            applied,
        })
    }

    /// The pool: take connections from it for the transactions that enqueue.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The migration steps connecting applied, as (version, name), oldest first; empty
    /// when the schema was already current.
    pub fn applied_migrations(&self) -> &[(u32, &'static str)] {
        &self.applied
    }

    /// The schema holding Keel's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The outbox in this database.
    pub fn outbox(&self) -> PgOutbox {
        PgOutbox::new(self.clone())
    }

    /// The inbox in this database.
    pub fn inbox(&self) -> PgInbox {
        PgInbox::new(self.clone())
    }

    /// The saga store in this database.
    pub fn saga_store(&self) -> PgSagaStore {
        PgSagaStore::new(self)
    }

    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub(crate) async fn client(&self) -> Result<Object, String> {
        self.pool.get().await.map_err(|e| one_line(&e))
    }
}

async fn current_version(client: &Object) -> Result<i32, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('keel_schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM keel_schema_migrations",
            &[],
        )
        .await?
        .get(0))
}

/// `host:port/db` of a config, for messages (never the password).
fn target(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("");
    format!("{host}:{port}/{db}")
}

/// An error (with its sources) as one line: the driver's `Display` alone often says only
/// "db error"; the cause holds the server's message.
pub(crate) fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace(['\n', '\r'], " ")
}
