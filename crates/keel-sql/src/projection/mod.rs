//! Read models on SQLite: [`SqliteProjection`], the `keel_projection::ProjectionStore` port
//! whose batches run the application's `apply` and the checkpoint update in one
//! `BEGIN IMMEDIATE … COMMIT`.
//!
//! Not here: the checkpoint SQL (`schema.rs`) and the feeding loop (`keel-projection`).
//!
//! # One batch
//!
//! ```text
//! BEGIN IMMEDIATE
//!   SELECT next_position (partition)       -- refuse a batch another projector applied
//!   apply(tx, event)   for each event      -- the application's model writes
//!   UPSERT keel_projection_checkpoints     -- (projection, partition): last position + 1
//! COMMIT                                   -- one fsync; model and checkpoint together
//! ```
//!
//! Any failure (an `apply` error, a busy database) rolls back the whole batch, so the model
//! never holds an event its checkpoint does not cover, or the reverse. A batch whose
//! partition is stored past the batch's first position was applied by another projector
//! of the same model (two processes running it); it is refused, unapplied
//! (`ProjectionError::Conflict`). `reset` runs the application's `reset` and deletes every
//! checkpoint of the projection in one transaction.

pub(crate) mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keel_projection::{ProjectionError, ProjectionStore};
use keel_store::{RecordedEvent, one_line};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::database::{self, blocking, wall_clock_ms};
use crate::error::OpenError;
use crate::limits::BUSY_TIMEOUT_DEFAULT;

/// What an `apply` or `reset` function of a projection may fail with.
pub type ApplyError = Box<dyn std::error::Error + Send + Sync>;

type ApplyFn = dyn Fn(&Transaction<'_>, &RecordedEvent) -> Result<(), ApplyError> + Send + Sync;
type ResetFn = dyn Fn(&Transaction<'_>) -> Result<(), ApplyError> + Send + Sync;

/// A read model in a SQLite database: the application's tables, written by its `apply`
/// function, and the projection's checkpoint in `keel_projection_checkpoints`. Cheap to
/// clone; clones share one connection.
#[derive(Clone)]
pub struct SqliteProjection {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    path: PathBuf,
    connection: Mutex<Connection>,
    apply: Box<ApplyFn>,
    reset: Box<ResetFn>,
}

impl std::fmt::Debug for SqliteProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteProjection")
            .field("name", &self.shared.name)
            .field("path", &self.shared.path)
            .finish()
    }
}

impl SqliteProjection {
    /// Opens the projection `name` in the database at `path`: migrates the checkpoint
    /// table, runs `setup` (create the model's tables, `IF NOT EXISTS`), and keeps `apply`
    /// (write one event into the model) and `reset` (empty the model) for the batches.
    pub fn open(
        path: impl AsRef<Path>,
        name: impl Into<String>,
        setup: impl FnOnce(&Connection) -> rusqlite::Result<()>,
        apply: impl Fn(&Transaction<'_>, &RecordedEvent) -> Result<(), ApplyError>
        + Send
        + Sync
        + 'static,
        reset: impl Fn(&Transaction<'_>) -> Result<(), ApplyError> + Send + Sync + 'static,
    ) -> Result<SqliteProjection, OpenError> {
        let path = path.as_ref().to_path_buf();
        let mut connection = database::open(&path, BUSY_TIMEOUT_DEFAULT)?;
        database::migrate_on_open(&mut connection, &path, &schema::TRACK, wall_clock_ms())?;
        setup(&connection).map_err(|e| OpenError::Configure {
            path: path.clone(),
            setting: "projection setup",
            reason: e.to_string(),
        })?;
        Ok(SqliteProjection {
            shared: Arc::new(Shared {
                name: name.into(),
                path,
                connection: Mutex::new(connection),
                apply: Box::new(apply),
                reset: Box::new(reset),
            }),
        })
    }

    /// Runs `f` on the model's connection (queries for the read side), off the executor.
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, ProjectionError> {
        let shared = self.shared.clone();
        blocking(move || {
            let connection = shared.connection.lock().expect("projection connection");
            f(&connection).map_err(|e| shared.storage("query", e))
        })
        .await
    }
}

impl Shared {
    fn storage(&self, operation: &'static str, error: impl std::fmt::Display) -> ProjectionError {
        ProjectionError::Storage {
            projection: self.name.clone(),
            operation,
            reason: one_line(error),
        }
    }

    fn apply_batch(
        &self,
        partition: u32,
        events: &[RecordedEvent],
    ) -> Result<u64, ProjectionError> {
        let mut connection = self.connection.lock().expect("projection connection");
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.storage("begin", e))?;
        let first = events.first().map_or(0, |e| e.position);
        let stored: Option<i64> = tx
            .query_row(
                schema::SELECT_CHECKPOINT,
                params![self.name, partition],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.storage("checkpoint", e))?;
        if let Some(stored) = stored.filter(|&stored| stored as u64 > first) {
            return Err(ProjectionError::Conflict {
                projection: self.name.clone(),
                partition,
                stored: stored as u64,
                position: first,
            });
        }
        for event in events {
            (self.apply)(&tx, event).map_err(|e| ProjectionError::Apply {
                projection: self.name.clone(),
                position: event.position,
                stream: event.stream.clone(),
                version: event.version,
                reason: one_line(e),
            })?;
        }
        let checkpoint = events.last().map_or(0, |e| e.position + 1);
        tx.execute(
            schema::UPSERT_CHECKPOINT,
            params![self.name, partition, checkpoint as i64, wall_clock_ms()],
        )
        .map_err(|e| self.storage("checkpoint", e))?;
        tx.commit().map_err(|e| self.storage("commit", e))?;
        Ok(checkpoint)
    }

    fn reset(&self) -> Result<(), ProjectionError> {
        let mut connection = self.connection.lock().expect("projection connection");
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.storage("begin", e))?;
        (self.reset)(&tx).map_err(|e| self.storage("reset", e))?;
        tx.execute(schema::DELETE_CHECKPOINTS, params![self.name])
            .map_err(|e| self.storage("checkpoint", e))?;
        tx.commit().map_err(|e| self.storage("commit", e))
    }
}

/// Checkpoint rows `(partition, next position)` as the port's vector indexed by partition
/// (partitions without a row are at 0).
pub(crate) fn by_partition(rows: impl IntoIterator<Item = (u32, u64)>) -> Vec<u64> {
    let mut checkpoints = Vec::new();
    for (partition, position) in rows {
        let index = partition as usize;
        if checkpoints.len() <= index {
            checkpoints.resize(index + 1, 0);
        }
        checkpoints[index] = position;
    }
    checkpoints
}

impl ProjectionStore for SqliteProjection {
    fn name(&self) -> &str {
        &self.shared.name
    }

    async fn checkpoints(&self) -> Result<Vec<u64>, ProjectionError> {
        let name = self.shared.name.clone();
        let rows: Vec<(u32, i64)> = self
            .query(move |connection| {
                connection
                    .prepare_cached(schema::SELECT_CHECKPOINTS)?
                    .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .await?;
        Ok(by_partition(
            rows.into_iter()
                .map(|(partition, position)| (partition, position as u64)),
        ))
    }

    async fn apply(
        &self,
        partition: u32,
        events: Vec<RecordedEvent>,
    ) -> Result<u64, ProjectionError> {
        let shared = self.shared.clone();
        blocking(move || shared.apply_batch(partition, &events)).await
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        let shared = self.shared.clone();
        blocking(move || shared.reset()).await
    }
}
