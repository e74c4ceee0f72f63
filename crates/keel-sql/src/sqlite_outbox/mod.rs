//! The outbox on SQLite: [`SqliteOutbox::enqueue`] inside the caller's transaction (or
//! [`SqliteTx::enqueue`](crate::SqliteTx::enqueue) inside an inbox handler's), and the
//! relay's claim and write-back, with the same API and decisions as on PostgreSQL.
//!
//! What differs, honestly: **one relay per database file.** SQLite has one writer at a
//! time, so rows commit in id order and per-key order needs no enqueue lock; but the claim
//! takes no locks (holding SQLite's write lock while publishing would stall the
//! application's writers), so two relays on one file would publish rows twice and could
//! interleave a key. And no `NOTIFY`: the relay polls every
//! [`RelayOptions::poll_interval`], or sooner when woken with [`RelayHandle::wake`].
//!
//! A relay that stops between the publish and its write-back publishes those rows again
//! when it restarts, as on PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use keel_core::BoxFuture;
use keel_core::{Event, PublishPort};
use rusqlite::{Connection, params};
use tokio::sync::Notify;

use crate::error::OpenError;
use crate::limits::{BUSY_TIMEOUT_DEFAULT, CLEANUP_DELETE_MAX};
use crate::outbox::{
    AfterPublish, Backlog, DeadRow, EnqueueError, Envelope, OutboxMetrics, OutboxRow,
    RelayOptionError, RelayOptions, Settlement, check_batch, envelope,
};
use crate::relay::{self, Claimed, OutboxStore, RelayHandle, StoreError};
pub(crate) mod schema;

use self::schema::{
    CLAIM_OUTBOX_ROWS, COPY_OUTBOX_ROW_TO_DEAD, DELETE_OUTBOX_PUBLISHED_BEFORE, DELETE_OUTBOX_ROW,
    INSERT_OUTBOX_ROW, MARK_OUTBOX_DEAD_COPIED, MARK_OUTBOX_PUBLISHED, RECORD_OUTBOX_FAILURE,
    SELECT_OUTBOX_BACKLOG, SELECT_OUTBOX_DEAD_TO_COPY,
};
use crate::database::{self, wall_clock_ms};

/// The transactional outbox in one SQLite file. Cheap to clone; clones share the relay's
/// connection.
///
/// ```no_run
/// # fn run(event: keel_core::Event) -> Result<(), Box<dyn std::error::Error>> {
/// let outbox = keel_sql::SqliteOutbox::open("app.db")?;
/// let mut connection = rusqlite::Connection::open("app.db")?;
/// let tx = connection.transaction()?;
/// tx.execute("UPDATE orders SET state = 'placed' WHERE id = ?1", ["o-7"])?;
/// outbox.enqueue(&tx, "orders", &event)?;
/// tx.commit()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteOutbox {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOutbox")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteOutbox {
    /// Opens (creating if needed) the database at `path`, configured as the inbox's, and
    /// brings the outbox's tables to their current version. Blocking.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteOutbox, OpenError> {
        let path = path.as_ref().to_path_buf();
        let mut connection = database::open(&path, BUSY_TIMEOUT_DEFAULT)?;
        database::migrate_on_open(&mut connection, &path, &schema::TRACK, wall_clock_ms())?;
        Ok(SqliteOutbox {
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `event` for `topic` in the transaction `tx` (any connection to this file).
    /// Validates the event first and gives it a root trace if it has none.
    pub fn enqueue(
        &self,
        tx: &rusqlite::Transaction<'_>,
        topic: &str,
        event: &Event,
    ) -> Result<(), EnqueueError> {
        insert(tx, &[envelope(topic, event)?])
    }

    /// As [`SqliteOutbox::enqueue`] for several events, keeping their order; at most
    /// [`ENQUEUE_BATCH_MAX`](crate::limits::ENQUEUE_BATCH_MAX).
    pub fn enqueue_batch(
        &self,
        tx: &rusqlite::Transaction<'_>,
        events: &[(&str, Event)],
    ) -> Result<(), EnqueueError> {
        check_batch(events.len())?;
        let envelopes = events
            .iter()
            .map(|(topic, event)| envelope(topic, event))
            .collect::<Result<Vec<_>, _>>()?;
        insert(tx, &envelopes)
    }

    /// Starts the relay of this file publishing through `port`, with fresh metrics. Call
    /// inside a tokio runtime; run one relay per file (module docs).
    pub fn relay(
        &self,
        port: Arc<dyn PublishPort>,
        options: RelayOptions,
    ) -> Result<RelayHandle, RelayOptionError> {
        self.relay_with_metrics(port, options, OutboxMetrics::new())
    }

    /// As [`SqliteOutbox::relay`], updating `metrics` registered by the caller.
    pub fn relay_with_metrics(
        &self,
        port: Arc<dyn PublishPort>,
        options: RelayOptions,
        metrics: OutboxMetrics,
    ) -> Result<RelayHandle, RelayOptionError> {
        options.validate()?;
        let store = SqliteStore {
            outbox: self.clone(),
            wake: Arc::new(Notify::new()),
        };
        Ok(relay::start(store, port, options, metrics))
    }

    /// The backlog now (pending rows, age of the oldest, dead rows).
    pub async fn backlog(&self) -> Result<Backlog, String> {
        self.run("measure backlog", backlog).await.map_err(|e| e.0)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Runs `f` on the relay's connection on a blocking thread.
    async fn run<T, F>(&self, step: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let outbox = self.clone();
        let describe = move |e: &dyn std::fmt::Display| {
            StoreError(format!(
                "sqlite outbox {}: {step}: {e}",
                outbox.path.display()
            ))
        };
        let this = self.clone();
        match tokio::task::spawn_blocking(move || f(&mut this.lock())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(describe(&error)),
            Err(error) => Err(describe(&error)),
        }
    }
}

/// Inserts `envelopes` with `connection` (inside the caller's transaction).
pub(crate) fn insert(connection: &Connection, envelopes: &[Envelope]) -> Result<(), EnqueueError> {
    let now_ms = wall_clock_ms();
    let mut statement = connection
        .prepare_cached(INSERT_OUTBOX_ROW)
        .map_err(|e| EnqueueError::Database(e.to_string()))?;
    for e in envelopes {
        statement
            .execute(params![
                e.topic,
                e.partition_key,
                e.event_id,
                e.bytes,
                now_ms
            ])
            .map_err(|e| EnqueueError::Database(e.to_string()))?;
    }
    Ok(())
}

fn backlog(connection: &mut Connection) -> rusqlite::Result<Backlog> {
    connection.query_row(SELECT_OUTBOX_BACKLOG, [wall_clock_ms()], |row| {
        Ok(Backlog {
            pending: row.get::<_, i64>(0)?.max(0) as u64,
            oldest_age_ms: row.get::<_, i64>(1)?.max(0) as u64,
            dead: row.get::<_, i64>(2)?.max(0) as u64,
        })
    })
}

/// The relay's view of the SQLite outbox.
struct SqliteStore {
    outbox: SqliteOutbox,
    wake: Arc<Notify>,
}

impl OutboxStore for SqliteStore {
    /// Nothing is held between claim and write-back (module docs).
    type Claim = ();

    /// Nothing marks a claimed row, so a second claim would take the same rows again.
    const CLAIMS_OVERLAP: bool = false;

    fn claim(&self, limit: usize) -> BoxFuture<'_, Result<Claimed<()>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .outbox
                .run("claim", move |connection| {
                    let mut statement = connection.prepare_cached(CLAIM_OUTBOX_ROWS)?;
                    let rows = statement
                        .query_map(params![limit as i64, wall_clock_ms()], |row| {
                            Ok(OutboxRow {
                                id: row.get(0)?,
                                topic: row.get(1)?,
                                partition_key: row.get(2)?,
                                envelope: row.get(3)?,
                                attempts: row.get::<_, i64>(4)?.max(0) as u32,
                            })
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok(rows)
                })
                .await?;
            Ok(((), rows))
        })
    }

    fn finish(
        &self,
        _claim: (),
        settlements: Vec<Settlement>,
        after_publish: AfterPublish,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if settlements.is_empty() {
                return Ok(());
            }
            self.outbox
                .run("write back", move |connection| {
                    let tx = connection.transaction()?;
                    let now_ms = wall_clock_ms();
                    for settlement in &settlements {
                        match settlement {
                            Settlement::Published { id } => match after_publish {
                                AfterPublish::MarkPublished => {
                                    tx.prepare_cached(MARK_OUTBOX_PUBLISHED)?
                                        .execute(params![id, now_ms])?;
                                }
                                AfterPublish::Delete => {
                                    tx.prepare_cached(DELETE_OUTBOX_ROW)?.execute([id])?;
                                }
                            },
                            Settlement::Retry { id, error, delay } => {
                                let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                                tx.prepare_cached(RECORD_OUTBOX_FAILURE)?
                                    .execute(params![id, error, now_ms, delay_ms])?;
                            }
                            Settlement::Dead { id, error, .. } => {
                                tx.execute(COPY_OUTBOX_ROW_TO_DEAD, params![id, error, now_ms])?;
                                tx.execute(DELETE_OUTBOX_ROW, [id])?;
                            }
                        }
                    }
                    tx.commit()
                })
                .await
        })
    }

    fn dead_rows_to_copy(&self, limit: i64) -> BoxFuture<'_, Result<Vec<DeadRow>, StoreError>> {
        Box::pin(self.outbox.run("read dead rows", move |connection| {
            connection
                .prepare_cached(SELECT_OUTBOX_DEAD_TO_COPY)?
                .query_map([limit], |row| {
                    Ok(DeadRow {
                        id: row.get(0)?,
                        topic: row.get(1)?,
                        event_id: row.get(2)?,
                        envelope: row.get(3)?,
                        attempts: row.get::<_, i64>(4)?.max(0) as u32,
                        error: row.get(5)?,
                        first_failure_ms: row.get(6)?,
                        dead_at_ms: row.get(7)?,
                    })
                })?
                .collect()
        }))
    }

    fn dead_row_copied(&self, id: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.outbox.run("mark dead row copied", move |connection| {
            connection
                .execute(MARK_OUTBOX_DEAD_COPIED, params![id, wall_clock_ms()])
                .map(|_| ())
        }))
    }

    fn backlog(&self) -> BoxFuture<'_, Result<Backlog, StoreError>> {
        Box::pin(self.outbox.run("measure backlog", backlog))
    }

    fn delete_published_before(&self, age: Duration) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.outbox.run("delete published rows", move |connection| {
            let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            let cutoff_ms = wall_clock_ms().saturating_sub(age_ms);
            connection
                .execute(
                    DELETE_OUTBOX_PUBLISHED_BEFORE,
                    params![cutoff_ms, CLEANUP_DELETE_MAX],
                )
                .map(|n| n as u64)
        }))
    }

    fn wake_signal(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
