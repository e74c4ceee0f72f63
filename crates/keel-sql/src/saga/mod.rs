//! Saga state on SQLite: [`SqliteSagaStore`], the `keel_saga::SagaStore` port over
//! `keel_sagas`, one row per instance updated by compare-and-set on its version.
//!
//! Not here: the state machine (`keel-saga`) and the SQL text (`schema.rs`).
//!
//! Every transition is its own committed statement (`synchronous = FULL`), so the saga
//! runner's "persist before acting" holds across power loss, and the compare-and-set makes
//! a second runner of the same instance (two processes resuming at once) lose cleanly.

pub(crate) mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keel_saga::{SagaRecord, SagaStatus, SagaStore, SagaStoreError};
use keel_store::one_line;
use rusqlite::{Connection, OptionalExtension, params};

use crate::database::{self, blocking, wall_clock_ms};
use crate::error::OpenError;
use crate::limits::BUSY_TIMEOUT_DEFAULT;

/// Saga instances in one SQLite file. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct SqliteSagaStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteSagaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSagaStore")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl SqliteSagaStore {
    /// Opens (creating) the saga tables in the database at `path`. Blocking: call at start.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteSagaStore, OpenError> {
        let path = path.as_ref().to_path_buf();
        let mut connection = database::open(&path, BUSY_TIMEOUT_DEFAULT)?;
        database::migrate_on_open(&mut connection, &path, &schema::TRACK, wall_clock_ms())?;
        Ok(SqliteSagaStore {
            shared: Arc::new(Shared {
                path,
                connection: Mutex::new(connection),
            }),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, SagaStoreError> {
        let shared = self.shared.clone();
        blocking(move || {
            let connection = shared.connection.lock().expect("saga connection");
            work(&connection).map_err(|e| SagaStoreError::Storage {
                operation,
                reason: one_line(e),
            })
        })
        .await
    }
}

/// The parameters `INSERT_SAGA` and `UPDATE_SAGA` share, in their order.
fn write(connection: &Connection, sql: &str, r: &SagaRecord) -> rusqlite::Result<usize> {
    connection.prepare_cached(sql)?.execute(params![
        r.id,
        r.saga,
        r.status.as_str(),
        r.step,
        r.attempt,
        r.deadline_ms,
        r.data,
        r.error,
        r.version as i64,
        wall_clock_ms()
    ])
}

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<SagaRecord> {
    let status: String = row.get(2)?;
    Ok(SagaRecord {
        id: row.get(0)?,
        saga: row.get(1)?,
        status: SagaStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("unknown saga status '{status}'").into(),
            )
        })?,
        step: row.get(3)?,
        attempt: row.get(4)?,
        deadline_ms: row.get(5)?,
        data: row.get(6)?,
        error: row.get(7)?,
        version: row.get::<_, i64>(8)? as u64,
    })
}

impl SagaStore for SqliteSagaStore {
    async fn create(&self, record: &SagaRecord) -> Result<bool, SagaStoreError> {
        let record = record.clone();
        self.run("create", move |connection| {
            write(connection, schema::INSERT_SAGA, &record).map(|rows| rows == 1)
        })
        .await
    }

    async fn update(&self, record: &SagaRecord) -> Result<(), SagaStoreError> {
        let record = record.clone();
        let (id, expected) = (record.id.clone(), record.version.saturating_sub(1));
        let rows = self
            .run("update", move |connection| {
                write(connection, schema::UPDATE_SAGA, &record)
            })
            .await?;
        if rows == 1 {
            Ok(())
        } else {
            Err(SagaStoreError::Conflict { id, expected })
        }
    }

    async fn load(&self, id: &str) -> Result<Option<SagaRecord>, SagaStoreError> {
        let id = id.to_owned();
        self.run("load", move |connection| {
            connection
                .prepare_cached(schema::SELECT_SAGA)?
                .query_row([id], record)
                .optional()
        })
        .await
    }

    async fn unfinished(
        &self,
        saga: &str,
        limit: usize,
    ) -> Result<Vec<SagaRecord>, SagaStoreError> {
        let saga = saga.to_owned();
        self.run("list unfinished", move |connection| {
            connection
                .prepare_cached(schema::SELECT_UNFINISHED)?
                .query_map(params![saga, limit as i64], record)?
                .collect()
        })
        .await
    }
}
