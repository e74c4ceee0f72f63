//! Opening a SQLite database the way every keel-sql component needs it, and moving its
//! schema forward: [`open`] (WAL, `synchronous = FULL`, busy timeout) and [`migrate`], which
//! applies one component's versioned migrations recorded in that component's own table.
//!
//! Not here: any component's tables or statements (`schema.rs` for the inbox,
//! `event_store/schema.rs`, ...). Why one migrations table per component: the inbox, the
//! outbox, the event store, projections and sagas ship and evolve independently and may
//! share one database file; one shared version number would force them into one sequence.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::error::OpenError;
use crate::schema::Migration;

/// One component's schema history: the table recording applied steps, and the steps
/// (versions dense from 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Track {
    /// The migrations table, such as `keel_schema_migrations` (the inbox's, named before
    /// there were other components).
    pub(crate) table: &'static str,
    /// The steps, in order.
    pub(crate) migrations: &'static [Migration],
}

impl Track {
    /// The schema version this code writes.
    pub(crate) const fn version(&self) -> u32 {
        self.migrations[self.migrations.len() - 1].version
    }
}

/// Why migrating failed: a statement of a step (version 0: reading the version), or a
/// database newer than the code.
#[derive(Debug)]
pub(crate) enum MigrateError {
    Sql {
        version: u32,
        source: rusqlite::Error,
    },
    Newer {
        found: u32,
    },
}

/// Opens (creating) the database at `path` and configures it:
/// - `journal_mode = WAL`: readers never block the writer nor it them, and a commit appends
///   to one file instead of rewriting pages.
/// - `synchronous = FULL`: the WAL is fsynced at every commit, so what a component reports
///   committed survives power loss.
/// - `busy_timeout`: another connection's write lock makes a write wait, then fail, instead
///   of failing at once.
pub(crate) fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, OpenError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection =
        Connection::open_with_flags(path, flags).map_err(|source| OpenError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let configure = |setting: &'static str, reason: String| OpenError::Configure {
        path: path.to_path_buf(),
        setting,
        reason,
    };
    connection
        .busy_timeout(busy_timeout)
        .map_err(|e| configure("busy_timeout", e.to_string()))?;
    let mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| configure("journal_mode = WAL", e.to_string()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(configure(
            "journal_mode = WAL",
            format!("SQLite kept journal mode '{mode}'"),
        ));
    }
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(|e| configure("synchronous = FULL", e.to_string()))?;
    Ok(connection)
}

/// Brings `track` to its newest version, idempotently: reads the version and applies the
/// missing steps in one `BEGIN IMMEDIATE` transaction, so two processes opening one new file
/// at once apply each step once. A database newer than this code is refused, untouched.
/// Returns the version found before migrating.
pub(crate) fn migrate(
    connection: &mut Connection,
    track: &Track,
    now_ms: i64,
) -> Result<u32, MigrateError> {
    let sql = |version| move |source| MigrateError::Sql { version, source };
    let table = track.table;
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql(0))?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            version       INTEGER PRIMARY KEY,
            name          TEXT    NOT NULL,
            applied_at_ms INTEGER NOT NULL
        )"
    ))
    .map_err(sql(0))?;
    let found: u32 = tx
        .query_row(
            &format!("SELECT COALESCE(MAX(version), 0) FROM {table}"),
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql(0))?
        .unwrap_or(0);
    if found > track.version() {
        return Err(MigrateError::Newer { found });
    }
    for migration in track.migrations.iter().filter(|m| m.version > found) {
        tx.execute_batch(migration.sql)
            .map_err(sql(migration.version))?;
        tx.execute(
            &format!("INSERT INTO {table} (version, name, applied_at_ms) VALUES (?1, ?2, ?3)"),
            params![migration.version, migration.name, now_ms],
        )
        .map_err(sql(migration.version))?;
    }
    tx.commit().map_err(sql(track.version()))?;
    Ok(found)
}

/// [`migrate`] with its error as an [`OpenError`] naming the file.
pub(crate) fn migrate_on_open(
    connection: &mut Connection,
    path: &Path,
    track: &Track,
    now_ms: i64,
) -> Result<u32, OpenError> {
    migrate(connection, track, now_ms).map_err(|e| match e {
        MigrateError::Sql { version, source } => OpenError::Migrate {
            path: path.to_path_buf(),
            version,
            source,
        },
        MigrateError::Newer { found } => OpenError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known: track.version(),
        },
    })
}

/// Milliseconds since the Unix epoch on the wall clock (0 before 1970).
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs SQLite work off the executor (rusqlite blocks). A panic there is a broken invariant
/// and is re-raised in the caller rather than turned into an error to carry on from.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}
