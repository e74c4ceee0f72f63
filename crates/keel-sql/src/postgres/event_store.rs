//! The event store on PostgreSQL: [`PgEventStore`], the `keel_store::EventStore` port over a
//! `keel_events` table with `UNIQUE (stream, version)` in the database's Keel schema.
//!
//! # How an append keeps the port's promises
//!
//! Appends of one process go through one committer task, which takes every append waiting
//! (up to [`PG_APPEND_BATCH_MAX`]) into one transaction — group commit:
//!
//! ```text
//! BEGIN
//!   SELECT next_position FROM keel_event_positions FOR UPDATE  -- appends take turns here
//!   SELECT stream, MAX(version) … WHERE stream = ANY($1)        -- every expected-version check
//!   WITH … INSERT every admitted event (unnest), UPDATE next_position
//! COMMIT                                                        -- one WAL flush for the batch
//! ```
//!
//! Why a lock at all: positions must *commit* in order. With a sequence and concurrent
//! transactions, position 8 can commit before 7; a subscription that read 8 would then never
//! see 7. The one `keel_event_positions` row is that order: whoever holds its row lock owns
//! the next positions until it commits, so positions become visible in order across
//! processes, and the version checks under the same lock cannot race another appender. The
//! `UNIQUE (stream, version)` constraint and the position primary key stay as guards: a
//! writer that did not take the lock (an older keel-sql during an upgrade) fails its insert
//! instead of forking a stream or reusing a position.
//!
//! What this costs and buys: the lock is held from the allocation to the commit, so
//! transactions of appends still commit one after another, but one transaction now carries
//! every append that arrived while the previous one committed. The advisory lock this
//! replaced was taken per append, so each append paid its own commit (and five round trips)
//! inside the lock; concurrent writers could never share a WAL flush. Measured in
//! `BENCHMARKS.md`.
//!
//! A conflicting append is answered alone; the others of its batch commit. A database error
//! fails every append of the batch (none was stored). The tables have their own migration
//! history (`keel_event_store_migrations`), applied under an advisory lock like the
//! outbox's. Appends of other processes are seen by `wait_for` by polling within its
//! interval.

use std::collections::HashMap;
use std::time::Duration;

use keel_core::Event;
use keel_store::limits::READ_EVENTS_MAX;
use keel_store::{
    AllFilter, AppendError, Appended, ConcurrencyConflict, Direction, EventStore, ExpectedVersion,
    ReadError, RecordedEvent, Snapshot, category, check_append, validate_stream_id, version_range,
    wait_for_head,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::Row;

use super::{PgDatabase, PgError, one_line};
use crate::limits::PG_APPEND_BATCH_MAX;

const MIGRATE: &str = "
SELECT pg_advisory_xact_lock(hashtext('keel_event_store_migrate:' || current_schema()));
CREATE TABLE IF NOT EXISTS keel_event_store_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS keel_events (
    position       BIGINT PRIMARY KEY,
    stream         TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    category       TEXT   NOT NULL,
    event_id       TEXT   NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    envelope       JSONB  NOT NULL,
    UNIQUE (stream, version));
CREATE INDEX IF NOT EXISTS keel_events_category ON keel_events (category, position);
CREATE TABLE IF NOT EXISTS keel_snapshots (
    stream TEXT PRIMARY KEY, version BIGINT NOT NULL, state_version INTEGER NOT NULL,
    state BYTEA NOT NULL, saved_at TIMESTAMPTZ NOT NULL DEFAULT now());
INSERT INTO keel_event_store_migrations (version, name)
VALUES (1, 'events, category index, snapshots') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS keel_event_positions (
    singleton     BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    next_position BIGINT  NOT NULL);
INSERT INTO keel_event_positions (next_position)
SELECT COALESCE(MAX(position) + 1, 0) FROM keel_events ON CONFLICT DO NOTHING;
INSERT INTO keel_event_store_migrations (version, name)
VALUES (2, 'the positions row appends lock instead of an advisory lock') ON CONFLICT DO NOTHING;
";
const SELECT_NEWEST_MIGRATION: &str = "SELECT MAX(version) FROM keel_event_store_migrations";
/// The event store's schema version (its history is the `MIGRATE` script's rows).
const VERSION: i32 = 2;
const LOCK_POSITIONS: &str = "SELECT next_position FROM keel_event_positions FOR UPDATE";
const SELECT_STREAM_VERSIONS: &str = "
SELECT stream, MAX(version) FROM keel_events WHERE stream = ANY($1) GROUP BY stream";
/// One statement for a batch: the events in array order, then the next free position.
const INSERT_EVENTS: &str = "
WITH inserted AS (
    INSERT INTO keel_events (position, stream, version, category, event_id, recorded_at_ms, envelope)
    SELECT p, s, v, c, i, $6, e::JSONB
    FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $7::TEXT[])
        AS r (p, s, v, c, i, e)
    RETURNING 1)
UPDATE keel_event_positions SET next_position = $8";
const SELECT_STREAM_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0)::BIGINT FROM keel_events WHERE stream = $1";
const SELECT_HEAD: &str = "SELECT COALESCE(MAX(position) + 1, 0)::BIGINT FROM keel_events";
const COLUMNS: &str = "position, stream, version, recorded_at_ms, envelope::TEXT";
const UPSERT_SNAPSHOT: &str = "
INSERT INTO keel_snapshots (stream, version, state_version, state) VALUES ($1, $2, $3, $4)
ON CONFLICT (stream) DO UPDATE SET version = excluded.version,
    state_version = excluded.state_version, state = excluded.state, saved_at = now()
WHERE excluded.version > keel_snapshots.version";
const SELECT_SNAPSHOT: &str =
    "SELECT version, state_version, state FROM keel_snapshots WHERE stream = $1";

/// An event store in a PostgreSQL schema. Cheap to clone; clones share the pool and the
/// committer task, which ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PgEventStore {
    db: PgDatabase,
    head: watch::Sender<u64>,
    appends: mpsc::Sender<Pending>,
}

/// One append waiting for the committer, its events already encoded.
#[derive(Debug)]
struct Pending {
    stream: String,
    expected: ExpectedVersion,
    /// `(event id, structured-mode JSON)` per event.
    events: Vec<(String, String)>,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

impl PgEventStore {
    /// Creates the event store's tables in `db`'s schema if missing (idempotent, safe when
    /// several processes start at once) and returns the store.
    pub async fn open(db: &PgDatabase) -> Result<PgEventStore, PgError> {
        let migrate = |reason: String| PgError::Migrate {
            target: db.schema().to_owned(),
            version: VERSION,
            reason,
        };
        let mut client = db.client().await.map_err(migrate)?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| migrate(one_line(&e)))?;
        tx.batch_execute(MIGRATE)
            .await
            .map_err(|e| migrate(one_line(&e)))?;
        let found: Option<i32> = tx
            .query_one(SELECT_NEWEST_MIGRATION, &[])
            .await
            .map_err(|e| migrate(one_line(&e)))?
            .get(0);
        if found.unwrap_or(0) > VERSION {
            return Err(PgError::SchemaVersion {
                target: db.schema().to_owned(),
                found: found.unwrap_or(0),
                known: VERSION,
            });
        }
        tx.commit().await.map_err(|e| migrate(one_line(&e)))?;
        let head: i64 = client
            .query_one(SELECT_HEAD, &[])
            .await
            .map_err(|e| migrate(one_line(&e)))?
            .get(0);
        let head = watch::Sender::new(head as u64);
        let (appends, queue) = mpsc::channel(PG_APPEND_BATCH_MAX);
        tokio::spawn(commit_appends(db.clone(), queue, head.clone()));
        Ok(PgEventStore {
            db: db.clone(),
            head,
            appends,
        })
    }

    async fn read<T>(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        map: impl Fn(&Row) -> Result<T, ReadError>,
    ) -> Result<Vec<T>, ReadError> {
        let storage = |reason: String| ReadError::Storage { operation, reason };
        let client = self.db.client().await.map_err(storage)?;
        let rows = client
            .query(sql, params)
            .await
            .map_err(|e| storage(one_line(&e)))?;
        rows.iter().map(map).collect()
    }
}

/// The committer: takes every append waiting, commits them in one transaction, answers each.
/// Runs until every sender (every clone of the store) is gone.
async fn commit_appends(
    db: PgDatabase,
    mut queue: mpsc::Receiver<Pending>,
    head: watch::Sender<u64>,
) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, PG_APPEND_BATCH_MAX).await > 0 {
        match commit_batch(&db, &batch).await {
            Ok(outcomes) => {
                let next = outcomes
                    .iter()
                    .filter_map(|outcome| outcome.as_ref().ok())
                    .map(|appended| appended.last_position + 1)
                    .max();
                if let Some(next) = next {
                    head.send_if_modified(|head| {
                        let moved = next > *head;
                        *head = (*head).max(next);
                        moved
                    });
                }
                for (pending, outcome) in batch.drain(..).zip(outcomes) {
                    // An append whose caller stopped waiting is committed all the same.
                    let _ = pending.reply.send(outcome);
                }
            }
            Err(reason) => {
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(AppendError::Storage {
                        operation: "append",
                        reason: reason.clone(),
                    }));
                }
            }
        }
    }
}

/// One transaction for `batch` (see the module docs): each append's outcome, in order, or
/// why the transaction failed (then nothing was stored).
async fn commit_batch(
    db: &PgDatabase,
    batch: &[Pending],
) -> Result<Vec<Result<Appended, AppendError>>, String> {
    let pg = |e: tokio_postgres::Error| one_line(&e);
    let mut client = db.client().await?;
    let tx = client.transaction().await.map_err(pg)?;
    // Prepared once per pooled connection: a statement run by text is parsed each time, one
    // more round trip while the lock is held.
    let lock = tx.prepare_cached(LOCK_POSITIONS).await.map_err(pg)?;
    let select_versions = tx
        .prepare_cached(SELECT_STREAM_VERSIONS)
        .await
        .map_err(pg)?;
    let insert = tx.prepare_cached(INSERT_EVENTS).await.map_err(pg)?;
    // The lock is a statement of its own: the version read after it takes a new snapshot,
    // which sees every append committed by the lock's previous holder.
    let first: i64 = tx.query_one(&lock, &[]).await.map_err(pg)?.get(0);
    let mut streams: Vec<&str> = batch.iter().map(|p| p.stream.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let mut versions: HashMap<String, u64> = tx
        .query(&select_versions, &[&streams])
        .await
        .map_err(pg)?
        .iter()
        .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
        .collect();
    let mut rows = EventRows::default();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut next = first;
    for pending in batch {
        let actual = versions.get(&pending.stream).copied().unwrap_or(0);
        if !pending.expected.admits(actual) {
            outcomes.push(Err(ConcurrencyConflict {
                stream: pending.stream.clone(),
                expected: pending.expected,
                actual,
            }
            .into()));
            continue;
        }
        let count = pending.events.len() as i64;
        rows.push(next, actual, pending);
        outcomes.push(Ok(Appended {
            version: actual + count as u64,
            first_position: next as u64,
            last_position: (next + count - 1) as u64,
        }));
        versions.insert(pending.stream.clone(), actual + count as u64);
        next += count;
    }
    if next > first {
        let now_ms = crate::database::wall_clock_ms();
        tx.execute(
            &insert,
            &[
                &rows.positions,
                &rows.streams,
                &rows.versions,
                &rows.categories,
                &rows.event_ids,
                &now_ms,
                &rows.envelopes,
                &next,
            ],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
    }
    Ok(outcomes)
}

/// A batch's events as the columns `INSERT_EVENTS` unnests.
#[derive(Default)]
struct EventRows {
    positions: Vec<i64>,
    streams: Vec<String>,
    versions: Vec<i64>,
    categories: Vec<String>,
    event_ids: Vec<String>,
    envelopes: Vec<String>,
}

impl EventRows {
    /// The events of `pending`, from position `first`, on a stream at version `actual`.
    fn push(&mut self, first: i64, actual: u64, pending: &Pending) {
        for (offset, (id, envelope)) in (0..).zip(&pending.events) {
            self.positions.push(first + offset);
            self.streams.push(pending.stream.clone());
            self.versions.push(actual as i64 + 1 + offset);
            self.categories.push(category(&pending.stream).to_owned());
            self.event_ids.push(id.clone());
            self.envelopes.push(envelope.clone());
        }
    }
}

/// Maps a row of [`COLUMNS`].
fn recorded(row: &Row) -> Result<RecordedEvent, ReadError> {
    let position = row.get::<_, i64>(0) as u64;
    let envelope: String = row.get(4);
    let event =
        Event::from_structured_json(envelope.as_bytes()).map_err(|e| ReadError::Corrupt {
            position,
            reason: one_line(&e),
        })?;
    Ok(RecordedEvent {
        stream: row.get(1),
        version: row.get::<_, i64>(2) as u64,
        position,
        recorded_at_ms: row.get(3),
        event,
    })
}

impl EventStore for PgEventStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> Result<Appended, AppendError> {
        check_append(stream, &events)?;
        let (reply, outcome) = oneshot::channel();
        let pending = Pending {
            stream: stream.to_owned(),
            expected,
            events: events
                .iter()
                .map(|event| (event.id.clone(), event.to_structured_json().to_string()))
                .collect(),
            reply,
        };
        let stopped = || AppendError::Storage {
            operation: "append",
            reason: "the event store's committer stopped (its runtime shut down)".into(),
        };
        self.appends.send(pending).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let version = self.stream_version(stream).await?;
        let Some((low, high)) = version_range(version, from, direction, max_count) else {
            return Ok(Vec::new());
        };
        let order = match direction {
            Direction::Forward => "ASC",
            Direction::Backward => "DESC",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM keel_events WHERE stream = $1 AND version BETWEEN $2 AND $3 ORDER BY version {order}"
        );
        self.read(
            "read stream",
            &sql,
            &[&stream, &(low as i64), &(high as i64)],
            recorded,
        )
        .await
    }

    async fn read_all(
        &self,
        from: u64,
        max_count: usize,
        filter: &AllFilter,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let limit = max_count.min(READ_EVENTS_MAX) as i64;
        let from = from.min(i64::MAX as u64) as i64;
        match filter {
            AllFilter::All => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM keel_events WHERE position >= $1 ORDER BY position LIMIT $2"
                );
                self.read("read all", &sql, &[&from, &limit], recorded)
                    .await
            }
            AllFilter::Category(category) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM keel_events WHERE category = $1 AND position >= $2 ORDER BY position LIMIT $3"
                );
                self.read("read category", &sql, &[category, &from, &limit], recorded)
                    .await
            }
        }
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, ReadError> {
        validate_stream_id(stream)?;
        let rows = self
            .read(
                "read stream version",
                SELECT_STREAM_VERSION,
                &[&stream],
                |row| Ok(row.get::<_, i64>(0) as u64),
            )
            .await?;
        Ok(rows.first().copied().unwrap_or(0))
    }

    async fn head(&self) -> Result<u64, ReadError> {
        let rows = self
            .read("read head", SELECT_HEAD, &[], |row| {
                Ok(row.get::<_, i64>(0) as u64)
            })
            .await?;
        Ok(rows.first().copied().unwrap_or(0))
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> Result<u64, ReadError> {
        wait_for_head(&self.head, position, timeout, || self.head()).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), AppendError> {
        validate_stream_id(&snapshot.stream)?;
        let storage = |reason: String| AppendError::Storage {
            operation: "save snapshot",
            reason,
        };
        let client = self.db.client().await.map_err(storage)?;
        client
            .execute(
                UPSERT_SNAPSHOT,
                &[
                    &snapshot.stream,
                    &(snapshot.version as i64),
                    &(snapshot.state_version as i32),
                    &snapshot.state,
                ],
            )
            .await
            .map_err(|e| storage(one_line(&e)))?;
        Ok(())
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, ReadError> {
        validate_stream_id(stream)?;
        let rows = self
            .read("load snapshot", SELECT_SNAPSHOT, &[&stream], |row| {
                Ok(Snapshot {
                    stream: stream.to_owned(),
                    version: row.get::<_, i64>(0) as u64,
                    state_version: row.get::<_, i32>(1) as u32,
                    state: row.get(2),
                })
            })
            .await?;
        Ok(rows.into_iter().next())
    }
}
