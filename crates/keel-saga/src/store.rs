//! Saga persistence: [`SagaRecord`] (one instance's state), [`SagaStatus`], the
//! [`SagaStore`] port with compare-and-set updates, and [`MemorySagaStore`] for tests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

/// Where an instance is in its state machine (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaStatus {
    /// Running step `step`.
    Running,
    /// Undoing: `step` completed steps remain to compensate, the last of them next.
    Compensating,
    /// Every step completed.
    Completed,
    /// A step failed and every completed step was compensated.
    Compensated,
    /// A compensation failed for good; an operator must look at `error`.
    Failed,
}

impl SagaStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Completed => "completed",
            SagaStatus::Compensated => "compensated",
            SagaStatus::Failed => "failed",
        }
    }

    /// The status a stored name stands for.
    pub fn parse(name: &str) -> Option<SagaStatus> {
        [
            SagaStatus::Running,
            SagaStatus::Compensating,
            SagaStatus::Completed,
            SagaStatus::Compensated,
            SagaStatus::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == name)
    }

    /// Whether the instance reached an end (nothing more will run).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::Failed
        )
    }
}

/// One saga instance as stored after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaRecord {
    /// The instance id (for an order saga, the order id).
    pub id: String,
    /// The saga definition's name.
    pub saga: String,
    /// Where it is.
    pub status: SagaStatus,
    /// Running: the step index; Compensating: completed steps left to undo.
    pub step: u32,
    /// Attempts started of the current action or compensation (0: not started).
    pub attempt: u32,
    /// The current step's durable deadline, ms since the Unix epoch.
    pub deadline_ms: Option<i64>,
    /// The saga data, JSON.
    pub data: String,
    /// Why the saga is compensating or failed.
    pub error: Option<String>,
    /// Transitions stored so far; an update must name the version it read.
    pub version: u64,
}

/// Why the saga store refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SagaStoreError {
    /// The record changed since it was read: another runner drives this instance.
    #[error("saga '{id}' was changed by another runner (expected version {expected})")]
    Conflict {
        /// The instance.
        id: String,
        /// The version the update expected.
        expected: u64,
    },
    /// The saga data does not (de)serialize.
    #[error("saga '{id}' data: {reason}")]
    Data {
        /// The instance.
        id: String,
        /// Why.
        reason: String,
    },
    /// The database failed.
    #[error("saga store {operation} failed: {reason}")]
    Storage {
        /// What it was doing.
        operation: &'static str,
        /// Why, one line.
        reason: String,
    },
}

/// Durable saga state.
pub trait SagaStore: Send + Sync + 'static {
    /// Stores a new instance at version 0; `false` (and nothing changed) if the id exists.
    fn create(
        &self,
        record: &SagaRecord,
    ) -> impl Future<Output = Result<bool, SagaStoreError>> + Send;

    /// Replaces the instance if its stored version is `record.version - 1`
    /// ([`SagaStoreError::Conflict`] otherwise).
    fn update(
        &self,
        record: &SagaRecord,
    ) -> impl Future<Output = Result<(), SagaStoreError>> + Send;

    /// The instance, if stored.
    fn load(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<SagaRecord>, SagaStoreError>> + Send;

    /// Instances of `saga` not in a final state, oldest first, at most `limit`.
    fn unfinished(
        &self,
        saga: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SagaRecord>, SagaStoreError>> + Send;
}

/// Saga state in memory: for tests and examples that need no durability.
#[derive(Debug, Default)]
pub struct MemorySagaStore {
    records: Mutex<HashMap<String, SagaRecord>>,
}

impl SagaStore for MemorySagaStore {
    async fn create(&self, record: &SagaRecord) -> Result<bool, SagaStoreError> {
        let mut records = self.records.lock().expect("records");
        if records.contains_key(&record.id) {
            return Ok(false);
        }
        records.insert(record.id.clone(), record.clone());
        Ok(true)
    }

    async fn update(&self, record: &SagaRecord) -> Result<(), SagaStoreError> {
        let mut records = self.records.lock().expect("records");
        match records.get_mut(&record.id) {
            Some(stored) if stored.version + 1 == record.version => {
                *stored = record.clone();
                Ok(())
            }
            _ => Err(SagaStoreError::Conflict {
                id: record.id.clone(),
                expected: record.version.saturating_sub(1),
            }),
        }
    }

    async fn load(&self, id: &str) -> Result<Option<SagaRecord>, SagaStoreError> {
        Ok(self.records.lock().expect("records").get(id).cloned())
    }

    async fn unfinished(
        &self,
        saga: &str,
        limit: usize,
    ) -> Result<Vec<SagaRecord>, SagaStoreError> {
        let records = self.records.lock().expect("records");
        let mut found: Vec<_> = records
            .values()
            .filter(|r| r.saga == saga && !r.status.is_final())
            .cloned()
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found.truncate(limit);
        Ok(found)
    }
}
