//! The outbox relay's loop, the same on every database: claim a batch, publish it
//! ([`publish_rows`](crate::outbox::publish_rows)), write back what happened, and now and
//! then refresh the metrics, delete old published rows and copy dead rows to the
//! dead-letter topic. [`RelayHandle`] is the running relay.
//!
//! # Pipelining
//!
//! Where the database's claims exclude each other ([`OutboxStore::CLAIMS_OVERLAP`]:
//! PostgreSQL, whose claim holds its keys' locks until its write-back commits), a full batch
//! is published and written back while the next batch is claimed, so the claim's round
//! trips overlap the transport's acknowledgement and the write-back's commit instead of
//! following them. The claim ahead is exactly what a second relay would claim at that
//! moment — keys the batch in flight holds are skipped — so per-key order holds for the
//! reasons it holds across relays. A claim ahead is never held across a pause: when the
//! relay backs off, fails or stops, it releases the claim (writes nothing, commits) first.
//! A claim ahead that found nothing is released and claimed again at once, not taken as an
//! idle outbox: the batch in flight may have held every key it would have found.
//!
//! Not here: how rows are claimed, locked and written (the database's [`OutboxStore`]), or
//! what to write back (`outbox.rs`).
//!
//! # Failures
//!
//! A failed database call (connection lost, server restarting, `pg_terminate_backend`)
//! ends the batch without writing back: its claim is rolled back by the database, so its
//! rows are claimed again — and, if they were already published, published again (the
//! inbox absorbs the duplicate). The relay then waits `retry_delay_min`, doubling up to
//! `retry_delay_max` while calls keep failing, and goes on by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_core::BoxFuture;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::limits::DEAD_LETTER_BATCH_MAX;
use crate::outbox::{
    AfterPublish, Backlog, DeadRow, OutboxMetrics, OutboxRow, Outcome, Port, RelayOptions,
    Settlement, copy_dead_letter, publish_rows, settle,
};

/// A database call of the relay that failed; one line naming the step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StoreError(pub(crate) String);

/// A claim and its rows, oldest first.
pub(crate) type Claimed<C> = (C, Vec<OutboxRow>);

/// What the relay needs from a database: the outbox tables behind claim and write-back.
pub(crate) trait OutboxStore: Send + Sync + 'static {
    /// A claimed batch: whatever holds the claim (an open transaction) until `finish`.
    type Claim: Send;

    /// Whether a second claim made before the first one's `finish` skips the first one's
    /// rows and keys (as another relay's would). Only then does the relay claim ahead.
    const CLAIMS_OVERLAP: bool;

    /// Claims up to `limit` publishable rows in id order such that no earlier row of the
    /// same partition key is unpublished and unclaimed by this batch (see the database's
    /// docs for how that holds with several relays).
    fn claim(&self, limit: usize) -> BoxFuture<'_, Result<Claimed<Self::Claim>, StoreError>>;

    /// Writes `settlements` and releases the claim (commits).
    fn finish(
        &self,
        claim: Self::Claim,
        settlements: Vec<Settlement>,
        after_publish: AfterPublish,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Dead rows not yet copied to the dead-letter topic.
    fn dead_rows_to_copy(&self, limit: i64) -> BoxFuture<'_, Result<Vec<DeadRow>, StoreError>>;

    /// Records that a dead row was copied.
    fn dead_row_copied(&self, id: i64) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Pending rows, the age of the oldest, dead rows.
    fn backlog(&self) -> BoxFuture<'_, Result<Backlog, StoreError>>;

    /// Deletes (a bounded number of) rows published more than `age` ago; returns how many.
    fn delete_published_before(&self, age: Duration) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The signal that says new rows may have committed (`NOTIFY`, or an in-process wake).
    fn wake_signal(&self) -> Arc<Notify>;

    /// Ends what `finish` left running when the relay stops (the CDC relay's write-back in
    /// flight); nothing by default.
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A running relay. Dropping the handle leaves the relay running until the runtime shuts
/// down; call [`RelayHandle::shutdown`] to stop it between batches.
#[derive(Debug)]
pub struct RelayHandle {
    stop: watch::Sender<bool>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
    metrics: OutboxMetrics,
}

impl RelayHandle {
    /// Stops the relay after its current batch and waits for it.
    ///
    /// Cancel safety: cancel safe; the relay stops anyway once asked.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Wakes the relay now (useful where no `NOTIFY` exists: after committing to SQLite).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The relay's metrics.
    pub fn metrics(&self) -> &OutboxMetrics {
        &self.metrics
    }

    /// Whether the relay task ended (it only ends when asked, or if it panicked).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Starts the relay on the current tokio runtime.
pub(crate) fn start<S: OutboxStore>(
    store: S,
    port: Port,
    options: RelayOptions,
    metrics: OutboxMetrics,
) -> RelayHandle {
    let (stop, stopped) = watch::channel(false);
    let wake = store.wake_signal();
    let relay = Relay {
        store,
        port,
        options,
        metrics: metrics.clone(),
        stopped,
        failures: 0,
    };
    RelayHandle {
        stop,
        wake,
        task: tokio::spawn(relay.run()),
        metrics,
    }
}

struct Relay<S> {
    store: S,
    port: Port,
    options: RelayOptions,
    metrics: OutboxMetrics,
    stopped: watch::Receiver<bool>,
    /// Database calls failed in a row; sets the reconnect backoff.
    failures: u32,
}

impl<S: OutboxStore> Relay<S> {
    async fn run(mut self) {
        let wake = self.store.wake_signal();
        let mut housekeeping_due = Instant::now();
        // A batch claimed while the previous one was published (module docs, Pipelining).
        let mut ahead = None;
        while !*self.stopped.borrow() {
            if Instant::now() >= housekeeping_due {
                self.housekeeping().await;
                housekeeping_due = Instant::now() + self.options.housekeeping_interval;
            }
            let pause = match self.batch(&mut ahead).await {
                Ok(BatchEnd::Full) => None,
                Ok(BatchEnd::Idle) => Some(self.options.poll_interval),
                Ok(BatchEnd::Backoff(delay)) => Some(delay),
                Err(error) => {
                    self.failures = self.failures.saturating_add(1);
                    let delay = self.options.retry_delay(self.failures);
                    tracing::warn!(relay = %self.options.name, %error, ?delay, "outbox relay batch failed; retrying");
                    Some(delay)
                }
            };
            if let Some(pause) = pause {
                self.release(ahead.take()).await;
                let pause = pause.min(housekeeping_due.saturating_duration_since(Instant::now()));
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                    _ = self.stopped.changed() => {}
                }
            }
        }
        self.release(ahead.take()).await;
        if let Err(error) = self.store.close().await {
            tracing::warn!(relay = %self.options.name, %error, "outbox relay's last write-back failed");
        }
    }

    /// One claim → publish → write back, starting from the batch claimed ahead if there is
    /// one; a full batch has the next one claimed into `ahead` meanwhile.
    async fn batch(
        &mut self,
        ahead: &mut Option<Claimed<S::Claim>>,
    ) -> Result<BatchEnd, StoreError> {
        let limit = self.options.batch_rows_max;
        let (claim, rows) = match ahead.take() {
            Some((claim, rows)) if rows.is_empty() => {
                // Claimed while the full batch before held its keys — every key, when the
                // backlog has no more keys than a batch has rows — so it found nothing free;
                // that batch has committed since. Taken as idle, the relay slept a poll
                // interval after each batch (draining 100,000 rows over 1,000 keys: 3.3 k
                // events/s against 10.5 k once the claim got faster than the commit).
                self.store
                    .finish(claim, Vec::new(), self.options.after_publish)
                    .await?;
                self.store.claim(limit).await?
            }
            Some(claimed) => claimed,
            None => self.store.claim(limit).await?,
        };
        self.failures = 0;
        if rows.is_empty() {
            self.store
                .finish(claim, Vec::new(), self.options.after_publish)
                .await?;
            return Ok(BatchEnd::Idle);
        }
        let full = rows.len() >= limit;
        let this = &*self;
        let claim_next = async {
            if S::CLAIMS_OVERLAP && full {
                Some(this.store.claim(limit).await)
            } else {
                None
            }
        };
        let (published, next) = tokio::join!(this.publish(claim, &rows), claim_next);
        match next {
            Some(Ok(claimed)) => *ahead = Some(claimed),
            Some(Err(error)) => {
                published?;
                return Err(error);
            }
            None => {}
        }
        if !published? {
            // Nothing went through: the transport is likely down. Do not spin.
            let attempts = rows.iter().map(|r| r.attempts + 1).min().unwrap_or(1);
            return Ok(BatchEnd::Backoff(self.options.retry_delay(attempts)));
        }
        Ok(if full { BatchEnd::Full } else { BatchEnd::Idle })
    }

    /// Publishes a claimed batch and writes back what happened; whether any row went through.
    async fn publish(&self, claim: S::Claim, rows: &[OutboxRow]) -> Result<bool, StoreError> {
        let outcomes = publish_rows(self.port.as_ref(), rows).await;
        let settlements: Vec<Settlement> = rows
            .iter()
            .zip(&outcomes)
            .filter_map(|(row, outcome)| settle(row, outcome, &self.options))
            .collect();
        log_failures(&self.options.name, rows, &outcomes);
        self.store
            .finish(claim, settlements.clone(), self.options.after_publish)
            .await?;
        self.metrics.count(&settlements);
        Ok(outcomes.contains(&Outcome::Published))
    }

    /// Gives a claim made ahead back unpublished (nothing written), so its keys are not held
    /// while the relay pauses or after it stops. A failure is logged: the database drops the
    /// claim with its connection anyway.
    async fn release(&self, ahead: Option<Claimed<S::Claim>>) {
        if let Some((claim, _)) = ahead
            && let Err(error) = self
                .store
                .finish(claim, Vec::new(), self.options.after_publish)
                .await
        {
            tracing::warn!(relay = %self.options.name, %error, "outbox claim made ahead not released cleanly");
        }
    }

    /// Metrics, cleanup of published rows, copies of dead rows. Failures are logged and
    /// tried again next time; none of this blocks publishing.
    async fn housekeeping(&mut self) {
        match self.store.backlog().await {
            Ok(backlog) => self.metrics.set_backlog(backlog),
            Err(error) => {
                tracing::warn!(relay = %self.options.name, %error, "outbox backlog not measured")
            }
        }
        if self.options.after_publish == AfterPublish::MarkPublished
            && let Err(error) = self
                .store
                .delete_published_before(self.options.published_retention)
                .await
        {
            tracing::warn!(relay = %self.options.name, %error, "published outbox rows not cleaned up");
        }
        let rows = match self.store.dead_rows_to_copy(DEAD_LETTER_BATCH_MAX).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(relay = %self.options.name, %error, "dead outbox rows not read");
                return;
            }
        };
        for row in rows {
            match copy_dead_letter(self.port.as_ref(), &row, &self.options.name).await {
                Ok(()) => {
                    tracing::error!(
                        relay = %self.options.name,
                        event_id = %row.event_id,
                        topic = %row.topic,
                        error = %row.error,
                        "outbox row moved aside and stored as a dead letter"
                    );
                    if let Err(error) = self.store.dead_row_copied(row.id).await {
                        tracing::warn!(relay = %self.options.name, %error, "dead outbox row not marked copied");
                    }
                }
                Err(error) => {
                    tracing::warn!(relay = %self.options.name, event_id = %row.event_id, %error, "dead outbox row not copied to the dead letters yet");
                }
            }
        }
    }
}

enum BatchEnd {
    /// The batch was full: claim again at once.
    Full,
    /// Fewer rows than asked: wait for a wake or the poll interval.
    Idle,
    /// Nothing could be published: wait this long (or for a wake).
    Backoff(Duration),
}

/// Logs a batch's failures: one warning per batch for rows the transport refused (a broker
/// outage fails every row of every batch alike, and a line per row flooded the log), one
/// error per row that is not an event (poison, each worth finding).
fn log_failures(relay: &str, rows: &[OutboxRow], outcomes: &[Outcome]) {
    let mut failed = rows
        .iter()
        .zip(outcomes)
        .filter_map(|(row, outcome)| match outcome {
            Outcome::Failed(error) => Some((row, error)),
            _ => None,
        });
    if let Some((first, error)) = failed.next() {
        let others = failed.count();
        tracing::warn!(
            relay, id = first.id, topic = %first.topic, attempts = first.attempts + 1, %error,
            rows = others + 1, "outbox rows not published (the first one's error shown)"
        );
    }
    for (row, outcome) in rows.iter().zip(outcomes) {
        if let Outcome::Unreadable(reason) = outcome {
            tracing::error!(
                relay, id = row.id, topic = %row.topic, %reason, "outbox row is not an event"
            );
        }
    }
}
