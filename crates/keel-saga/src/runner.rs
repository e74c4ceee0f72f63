//! [`SagaRunner`]: drives instances of one [`Saga`] through its state machine, persisting
//! every transition to a [`SagaStore`] before acting on it.
//!
//! Not here: the definition (`definition.rs`) and storage (`store.rs`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::definition::{Saga, Step, StepContext, StepError};
use crate::store::{SagaRecord, SagaStatus, SagaStore, SagaStoreError};

/// Unfinished instances one [`SagaRunner::resume_unfinished`] call picks up.
const RESUME_BATCH: usize = 1_000;

/// Runs instances of one saga definition against one store. Cheap to clone.
pub struct SagaRunner<D, S> {
    saga: Arc<Saga<D>>,
    store: Arc<S>,
}

impl<D, S> Clone for SagaRunner<D, S> {
    fn clone(&self) -> Self {
        SagaRunner {
            saga: self.saga.clone(),
            store: self.store.clone(),
        }
    }
}

/// How an instance ended (or where it stopped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaOutcome<D> {
    /// The instance.
    pub id: String,
    /// Its final status.
    pub status: SagaStatus,
    /// Its data.
    pub data: D,
    /// Why it compensated or failed.
    pub error: Option<String>,
}

/// What [`SagaRunner::resume_unfinished`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TickReport {
    /// Instances driven to an end.
    pub finished: usize,
    /// Instances another runner owned (compare-and-set lost).
    pub skipped: usize,
}

impl<D, S> SagaRunner<D, S>
where
    D: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    S: SagaStore,
{
    /// A runner of `saga` over `store`.
    pub fn new(saga: Saga<D>, store: Arc<S>) -> SagaRunner<D, S> {
        SagaRunner {
            saga: Arc::new(saga),
            store,
        }
    }

    /// Starts instance `id` with `data` and drives it to an end. Starting an id that exists
    /// drives the stored instance instead (a redelivered "start" does not run it twice).
    pub async fn start(&self, id: &str, data: D) -> Result<SagaOutcome<D>, SagaStoreError> {
        let record = SagaRecord {
            id: id.to_owned(),
            saga: self.saga.name.clone(),
            status: if self.saga.steps.is_empty() {
                SagaStatus::Completed
            } else {
                SagaStatus::Running
            },
            step: 0,
            attempt: 0,
            deadline_ms: None,
            data: encode(id, &data)?,
            error: None,
            version: 0,
        };
        if self.store.create(&record).await? {
            self.drive(record).await
        } else {
            self.resume(id).await
        }
    }

    /// Drives stored instance `id` from its persisted state to an end.
    pub async fn resume(&self, id: &str) -> Result<SagaOutcome<D>, SagaStoreError> {
        match self.store.load(id).await? {
            Some(record) => self.drive(record).await,
            None => Err(SagaStoreError::Data {
                id: id.to_owned(),
                reason: "no such saga instance".into(),
            }),
        }
    }

    /// Drives every unfinished instance of this saga (after a restart), concurrently.
    pub async fn resume_unfinished(&self) -> Result<TickReport, SagaStoreError> {
        let records = self.store.unfinished(&self.saga.name, RESUME_BATCH).await?;
        let tasks: Vec<_> = records
            .into_iter()
            .map(|record| {
                let runner = self.clone();
                tokio::spawn(async move { runner.drive(record).await })
            })
            .collect();
        let mut report = TickReport::default();
        for task in tasks {
            match task.await {
                Ok(Ok(_)) => report.finished += 1,
                Ok(Err(SagaStoreError::Conflict { .. })) => report.skipped += 1,
                Ok(Err(error)) => return Err(error),
                Err(panic) => std::panic::resume_unwind(panic.into_panic()),
            }
        }
        Ok(report)
    }

    async fn drive(&self, mut record: SagaRecord) -> Result<SagaOutcome<D>, SagaStoreError> {
        loop {
            match record.status {
                SagaStatus::Running => self.run_step(&mut record).await?,
                SagaStatus::Compensating => self.compensate_step(&mut record).await?,
                SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::Failed => {
                    return Ok(SagaOutcome {
                        data: decode(&record)?,
                        id: record.id,
                        status: record.status,
                        error: record.error,
                    });
                }
            }
        }
    }

    /// One transition out of `Running(step)`.
    async fn run_step(&self, record: &mut SagaRecord) -> Result<(), SagaStoreError> {
        let step = &self.saga.steps[record.step as usize];
        if record.deadline_ms.is_none() || record.attempt == 0 {
            // The durable timer starts once, at the step's first attempt.
            let deadline = record
                .deadline_ms
                .unwrap_or_else(|| now_ms() + step.timeout.as_millis() as i64);
            self.persist(record, |r| {
                r.deadline_ms = Some(deadline);
                r.attempt = 1;
            })
            .await?;
        }
        let deadline = record.deadline_ms.expect("deadline set");
        let Some(remaining) = remaining(deadline) else {
            return self
                .fail(
                    record,
                    format!("step '{}' timed out after {:?}", step.name, step.timeout),
                )
                .await;
        };
        let context = self.context(record, step, "do")?;
        let result = tokio::time::timeout(remaining, (step.action)(context)).await;
        match result {
            Ok(Ok(data)) => {
                let data = encode(&record.id, &data)?;
                let last = record.step as usize + 1 == self.saga.steps.len();
                self.persist(record, |r| {
                    r.data = data;
                    r.step += 1;
                    r.attempt = 0;
                    r.deadline_ms = None;
                    if last {
                        r.status = SagaStatus::Completed;
                    }
                })
                .await
            }
            Ok(Err(StepError::Transient(reason))) if record.attempt < step.attempts_max => {
                tracing::debug!(saga = %record.id, step = %step.name, attempt = record.attempt, %reason, "retrying step");
                let delay = step.delay(record.attempt);
                tokio::time::sleep(delay.min(remaining)).await;
                self.persist(record, |r| r.attempt += 1).await
            }
            Ok(Err(error)) => {
                self.fail(record, format!("step '{}' failed: {error}", step.name))
                    .await
            }
            Err(_) => {
                self.fail(
                    record,
                    format!("step '{}' timed out after {:?}", step.name, step.timeout),
                )
                .await
            }
        }
    }

    /// One transition out of `Compensating(left)`.
    async fn compensate_step(&self, record: &mut SagaRecord) -> Result<(), SagaStoreError> {
        if record.step == 0 {
            return self
                .persist(record, |r| r.status = SagaStatus::Compensated)
                .await;
        }
        let step = &self.saga.steps[record.step as usize - 1];
        let Some(compensation) = &step.compensation else {
            return self.persist(record, |r| r.step -= 1).await;
        };
        if record.attempt == 0 {
            self.persist(record, |r| r.attempt = 1).await?;
        }
        let context = self.context(record, step, "undo")?;
        let result = tokio::time::timeout(step.timeout, compensation(context)).await;
        let error = match result {
            Ok(Ok(data)) => {
                let data = encode(&record.id, &data)?;
                return self
                    .persist(record, |r| {
                        r.data = data;
                        r.step -= 1;
                        r.attempt = 0;
                    })
                    .await;
            }
            Ok(Err(error)) => error,
            Err(_) => StepError::Transient(format!("timed out after {:?}", step.timeout)),
        };
        match error {
            StepError::Transient(_) if record.attempt < step.attempts_max => {
                tokio::time::sleep(step.delay(record.attempt)).await;
                self.persist(record, |r| r.attempt += 1).await
            }
            error => {
                let reason = format!(
                    "compensation of step '{}' failed: {error}; {}",
                    step.name,
                    record.error.as_deref().unwrap_or("")
                );
                self.persist(record, |r| {
                    r.status = SagaStatus::Failed;
                    r.error = Some(reason);
                })
                .await
            }
        }
    }

    /// Leaves `Running(i)` for `Compensating(i)`: the `i` completed steps are undone next.
    async fn fail(&self, record: &mut SagaRecord, reason: String) -> Result<(), SagaStoreError> {
        tracing::info!(saga = %record.id, %reason, "saga compensating");
        self.persist(record, |r| {
            r.status = SagaStatus::Compensating;
            r.attempt = 0;
            r.deadline_ms = None;
            r.error = Some(reason);
        })
        .await
    }

    fn context(
        &self,
        record: &SagaRecord,
        step: &Step<D>,
        verb: &str,
    ) -> Result<StepContext<D>, SagaStoreError> {
        Ok(StepContext {
            saga_id: record.id.clone(),
            step: step.name.clone(),
            attempt: record.attempt,
            data: decode(record)?,
            command_id: format!("{}/{}/{verb}", record.id, step.name),
        })
    }

    /// Applies `change` and stores the result with compare-and-set; the in-memory record
    /// changes only if the store accepted it.
    async fn persist(
        &self,
        record: &mut SagaRecord,
        change: impl FnOnce(&mut SagaRecord),
    ) -> Result<(), SagaStoreError> {
        let mut next = record.clone();
        change(&mut next);
        next.version += 1;
        self.store.update(&next).await?;
        *record = next;
        Ok(())
    }
}

fn encode<D: Serialize>(id: &str, data: &D) -> Result<String, SagaStoreError> {
    serde_json::to_string(data).map_err(|e| SagaStoreError::Data {
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

fn decode<D: DeserializeOwned>(record: &SagaRecord) -> Result<D, SagaStoreError> {
    serde_json::from_str(&record.data).map_err(|e| SagaStoreError::Data {
        id: record.id.clone(),
        reason: e.to_string(),
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Time left until `deadline_ms`, `None` once it passed.
fn remaining(deadline_ms: i64) -> Option<Duration> {
    let left = deadline_ms - now_ms();
    (left > 0).then(|| Duration::from_millis(left as u64))
}
