//! Saga state on PostgreSQL: [`PgSagaStore`], the `keel_saga::SagaStore` port over
//! `keel_sagas` (migration 5 of the database's history), one row per instance updated by
//! compare-and-set on its version.
//!
//! Not here: the state machine (`keel-saga`) and the SQL text (`schema.rs`).
//!
//! Every transition is one autocommitted statement, durable when it returns
//! (`synchronous_commit = on`, the default), so the runner's "persist before acting" holds
//! across a crash of the process or the server. The compare-and-set `WHERE version = $9 - 1`
//! makes a second runner of the same instance (two processes resuming at once) lose
//! cleanly: under PostgreSQL's row locking the loser's `UPDATE` waits for the winner's
//! commit, re-checks the predicate on the new row and changes nothing.

use keel_saga::{SagaRecord, SagaStatus, SagaStore, SagaStoreError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::schema::{INSERT_SAGA, SELECT_SAGA, SELECT_UNFINISHED_SAGAS, UPDATE_SAGA};
use super::{PgDatabase, one_line};

/// Saga instances in a [`PgDatabase`]. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct PgSagaStore {
    db: PgDatabase,
}

impl PgSagaStore {
    /// The saga store of `db` (its table came with the connection's migrations).
    pub fn new(db: &PgDatabase) -> PgSagaStore {
        PgSagaStore { db: db.clone() }
    }

    async fn execute(
        &self,
        operation: &'static str,
        sql: &str,
        record: &SagaRecord,
    ) -> Result<u64, SagaStoreError> {
        let storage = |reason: String| SagaStoreError::Storage { operation, reason };
        let client = self.db.client().await.map_err(storage)?;
        let (step, attempt, version) = (
            i64::from(record.step),
            i64::from(record.attempt),
            record.version as i64,
        );
        let params: [&(dyn ToSql + Sync); 9] = [
            &record.id,
            &record.saga,
            &record.status.as_str(),
            &step,
            &attempt,
            &record.deadline_ms,
            &record.data,
            &record.error,
            &version,
        ];
        client
            .execute(sql, &params)
            .await
            .map_err(|e| storage(one_line(&e)))
    }

    async fn query(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<SagaRecord>, SagaStoreError> {
        let storage = |reason: String| SagaStoreError::Storage { operation, reason };
        let client = self.db.client().await.map_err(storage)?;
        let rows = client
            .query(sql, params)
            .await
            .map_err(|e| storage(one_line(&e)))?;
        rows.iter()
            .map(|row| record(row).map_err(storage))
            .collect()
    }
}

/// A row of `SELECT_SAGA`'s columns; a value out of range is a storage error, not a panic.
fn record(row: &Row) -> Result<SagaRecord, String> {
    let id: String = row.get(0);
    let status: String = row.get(2);
    let number = |index: usize, name: &str| -> Result<u32, String> {
        let value: i64 = row.get(index);
        u32::try_from(value).map_err(|_| format!("saga '{id}' has {name} {value}"))
    };
    Ok(SagaRecord {
        saga: row.get(1),
        status: SagaStatus::parse(&status)
            .ok_or_else(|| format!("saga '{id}' has unknown status '{status}'"))?,
        step: number(3, "step")?,
        attempt: number(4, "attempt")?,
        deadline_ms: row.get(5),
        data: row.get(6),
        error: row.get(7),
        version: row.get::<_, i64>(8) as u64,
        id,
    })
}

impl SagaStore for PgSagaStore {
    async fn create(&self, record: &SagaRecord) -> Result<bool, SagaStoreError> {
        Ok(self.execute("create", INSERT_SAGA, record).await? == 1)
    }

    async fn update(&self, record: &SagaRecord) -> Result<(), SagaStoreError> {
        if self.execute("update", UPDATE_SAGA, record).await? == 1 {
            Ok(())
        } else {
            Err(SagaStoreError::Conflict {
                id: record.id.clone(),
                expected: record.version.saturating_sub(1),
            })
        }
    }

    async fn load(&self, id: &str) -> Result<Option<SagaRecord>, SagaStoreError> {
        let records = self.query("load", SELECT_SAGA, &[&id]).await?;
        Ok(records.into_iter().next())
    }

    async fn unfinished(
        &self,
        saga: &str,
        limit: usize,
    ) -> Result<Vec<SagaRecord>, SagaStoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.query("list unfinished", SELECT_UNFINISHED_SAGAS, &[&saga, &limit])
            .await
    }
}
