//! Read models on PostgreSQL: [`PgProjection`], the `keel_projection::ProjectionStore` port
//! whose batches run the application's async `apply` and the checkpoint update in one
//! transaction (checkpoints: migration 6 of the database's history).
//!
//! Not here: the SQL text (`schema.rs`) and the feeding loop (`keel-projection`).
//!
//! # One batch
//!
//! ```text
//! BEGIN
//!   SELECT next_position … FOR UPDATE        -- this partition's checkpoint, locked
//!   apply(tx, event)   for each event        -- the application's model writes
//!   UPSERT keel_projection_checkpoints       -- unless another projector moved it meanwhile
//! COMMIT                                     -- model and checkpoint together
//! ```
//!
//! Any failure (an `apply` error, a lost connection) rolls back the whole batch; a batch
//! dropped mid-way (the projector's task cancelled or the process killed) is rolled back by
//! the server. A checkpoint already past the batch's first position means another projector
//! runs the same model: the batch is refused unapplied (`ProjectionError::Conflict`).

use std::sync::Arc;

use keel_core::BoxFuture;
use keel_projection::{ProjectionError, ProjectionStore};
use keel_store::RecordedEvent;
use tokio_postgres::Transaction;

use super::schema::{
    DELETE_PROJECTION_CHECKPOINTS, LOCK_PROJECTION_CHECKPOINT, SELECT_PROJECTION_CHECKPOINTS,
    UPSERT_PROJECTION_CHECKPOINT,
};
use super::{PgDatabase, PgError, one_line};
use crate::projection::{ApplyError, by_partition};

/// What a [`PgProjection`]'s `apply` and `reset` return: a boxed future borrowing the
/// transaction for `'t`. Write the functions as `|tx, event| Box::pin(async move { ... })`.
pub type ApplyFuture<'t> = BoxFuture<'t, Result<(), ApplyError>>;

type ApplyFn =
    dyn for<'t, 'c> Fn(&'t Transaction<'c>, &'t RecordedEvent) -> ApplyFuture<'t> + Send + Sync;
type ResetFn = dyn for<'t, 'c> Fn(&'t Transaction<'c>) -> ApplyFuture<'t> + Send + Sync;

/// A read model in a PostgreSQL database: the application's tables, written by its
/// `apply` function, and the projection's checkpoints in `keel_projection_checkpoints`.
/// Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PgProjection {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    db: PgDatabase,
    apply: Box<ApplyFn>,
    reset: Box<ResetFn>,
}

impl std::fmt::Debug for PgProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgProjection")
            .field("name", &self.shared.name)
            .field("db", &self.shared.db)
            .finish()
    }
}

impl PgProjection {
    /// The projection `name` in `db`: runs `setup` (statements creating the model's tables,
    /// `IF NOT EXISTS`) and keeps `apply` (write one event into the model) and `reset`
    /// (empty the model) for the batches.
    pub async fn open<A, R>(
        db: &PgDatabase,
        name: impl Into<String>,
        setup: &str,
        apply: A,
        reset: R,
    ) -> Result<PgProjection, PgError>
    where
        A: for<'t, 'c> Fn(&'t Transaction<'c>, &'t RecordedEvent) -> ApplyFuture<'t>
            + Send
            + Sync
            + 'static,
        R: for<'t, 'c> Fn(&'t Transaction<'c>) -> ApplyFuture<'t> + Send + Sync + 'static,
    {
        let name = name.into();
        let failed = |reason: String| PgError::Option {
            setting: "projection setup",
            reason: format!("projection '{name}': {reason}"),
        };
        let client = db.client().await.map_err(failed)?;
        client
            .batch_execute(setup)
            .await
            .map_err(|e| failed(one_line(&e)))?;
        Ok(PgProjection {
            shared: Arc::new(Shared {
                name,
                db: db.clone(),
                apply: Box::new(apply),
                reset: Box::new(reset),
            }),
        })
    }

    /// The database, for the read side's queries.
    pub fn database(&self) -> &PgDatabase {
        &self.shared.db
    }

    fn storage(&self, operation: &'static str, reason: String) -> ProjectionError {
        ProjectionError::Storage {
            projection: self.shared.name.clone(),
            operation,
            reason,
        }
    }

    fn conflict(&self, partition: u32, stored: i64, first: u64) -> ProjectionError {
        ProjectionError::Conflict {
            projection: self.shared.name.clone(),
            partition,
            stored: stored as u64,
            position: first,
        }
    }
}

impl ProjectionStore for PgProjection {
    fn name(&self) -> &str {
        &self.shared.name
    }

    async fn checkpoints(&self) -> Result<Vec<u64>, ProjectionError> {
        let storage = |reason| self.storage("read checkpoints", reason);
        let client = self.shared.db.client().await.map_err(storage)?;
        let rows = client
            .query(SELECT_PROJECTION_CHECKPOINTS, &[&self.shared.name])
            .await
            .map_err(|e| storage(one_line(&e)))?;
        Ok(by_partition(rows.iter().map(|row| {
            (row.get::<_, i32>(0) as u32, row.get::<_, i64>(1) as u64)
        })))
    }

    async fn apply(
        &self,
        partition: u32,
        events: Vec<RecordedEvent>,
    ) -> Result<u64, ProjectionError> {
        let shared = &self.shared;
        let pg = |operation| move |e: tokio_postgres::Error| self.storage(operation, one_line(&e));
        let mut client = shared
            .db
            .client()
            .await
            .map_err(|reason| self.storage("connect", reason))?;
        let tx = client.transaction().await.map_err(pg("begin"))?;
        let partition_id = partition as i32;
        let first = events.first().map_or(0, |e| e.position);
        let stored = tx
            .query_opt(LOCK_PROJECTION_CHECKPOINT, &[&shared.name, &partition_id])
            .await
            .map_err(pg("checkpoint"))?
            .map(|row| row.get::<_, i64>(0));
        if let Some(stored) = stored.filter(|&stored| stored as u64 > first) {
            return Err(self.conflict(partition, stored, first));
        }
        for event in &events {
            (shared.apply)(&tx, event)
                .await
                .map_err(|e| ProjectionError::Apply {
                    projection: shared.name.clone(),
                    position: event.position,
                    stream: event.stream.clone(),
                    version: event.version,
                    reason: one_line(&*e),
                })?;
        }
        let checkpoint = events.last().map_or(0, |e| e.position + 1);
        let set = tx
            .execute(
                UPSERT_PROJECTION_CHECKPOINT,
                &[
                    &shared.name,
                    &partition_id,
                    &(checkpoint as i64),
                    &(first as i64),
                ],
            )
            .await
            .map_err(pg("checkpoint"))?;
        if set == 0 {
            let stored = tx
                .query_one(LOCK_PROJECTION_CHECKPOINT, &[&shared.name, &partition_id])
                .await
                .map_err(pg("checkpoint"))?
                .get::<_, i64>(0);
            return Err(self.conflict(partition, stored, first));
        }
        tx.commit().await.map_err(pg("commit"))?;
        Ok(checkpoint)
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        let shared = &self.shared;
        let pg = |operation| move |e: tokio_postgres::Error| self.storage(operation, one_line(&e));
        let mut client = shared
            .db
            .client()
            .await
            .map_err(|reason| self.storage("connect", reason))?;
        let tx = client.transaction().await.map_err(pg("begin"))?;
        (shared.reset)(&tx)
            .await
            .map_err(|e| self.storage("reset", one_line(&*e)))?;
        tx.execute(DELETE_PROJECTION_CHECKPOINTS, &[&shared.name])
            .await
            .map_err(pg("checkpoint"))?;
        tx.commit().await.map_err(pg("commit"))
    }
}
