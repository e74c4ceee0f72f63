//! The event store on PostgreSQL: [`PgEventStore`], the `keel_store::EventStore` port over a
//! `keel_events` table with `UNIQUE (stream, version)` in the database's Keel schema.
//!
//! # How an append keeps the port's promises
//!
//! ```text
//! BEGIN
//!   SELECT pg_advisory_xact_lock(<keel_events of this schema>)   -- appends take turns
//!   SELECT MAX(version) WHERE stream = $1                         -- the expected-version check
//!   SELECT MAX(position) + 1                                      -- next global position
//!   INSERT one row per event                                      -- UNIQUE (stream, version) as a second guard
//! COMMIT
//! ```
//!
//! The advisory lock is what makes positions *commit* in order. With a sequence and
//! concurrent transactions, position 8 can commit before 7; a subscription that read 8 would
//! then never see 7. One lock per store costs concurrency (appends are serialised, as in
//! the embedded and SQLite stores) and buys the promise every reader relies on. The tables
//! have their own migration history (`keel_event_store_migrations`), applied under an
//! advisory lock like the outbox's.
//!
//! Appends of other processes are seen by `wait_for` by polling within its interval.

use std::time::Duration;

use keel_core::Event;
use keel_store::limits::READ_EVENTS_MAX;
use keel_store::{
    AllFilter, AppendError, Appended, ConcurrencyConflict, Direction, EventStore, ExpectedVersion,
    ReadError, RecordedEvent, Snapshot, category, check_append, validate_stream_id, version_range,
    wait_for_head,
};
use tokio::sync::watch;
use tokio_postgres::Row;

use super::{PgDatabase, PgError, one_line};

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
";
const SELECT_NEWEST_MIGRATION: &str = "SELECT MAX(version) FROM keel_event_store_migrations";
/// The event store's schema version (its history is the `MIGRATE` script's rows).
const VERSION: i32 = 1;
const LOCK_APPENDS: &str =
    "SELECT pg_advisory_xact_lock(hashtext('keel_events:' || current_schema()))";
const SELECT_STREAM_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0)::BIGINT FROM keel_events WHERE stream = $1";
const SELECT_HEAD: &str = "SELECT COALESCE(MAX(position) + 1, 0)::BIGINT FROM keel_events";
const INSERT_EVENT: &str = "
INSERT INTO keel_events (position, stream, version, category, event_id, recorded_at_ms, envelope)
VALUES ($1, $2, $3, $4, $5, $6, $7::TEXT::JSONB)";
const COLUMNS: &str = "position, stream, version, recorded_at_ms, envelope::TEXT";
const UPSERT_SNAPSHOT: &str = "
INSERT INTO keel_snapshots (stream, version, state_version, state) VALUES ($1, $2, $3, $4)
ON CONFLICT (stream) DO UPDATE SET version = excluded.version,
    state_version = excluded.state_version, state = excluded.state, saved_at = now()
WHERE excluded.version > keel_snapshots.version";
const SELECT_SNAPSHOT: &str =
    "SELECT version, state_version, state FROM keel_snapshots WHERE stream = $1";

/// An event store in a PostgreSQL schema. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct PgEventStore {
    db: PgDatabase,
    head: watch::Sender<u64>,
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
        Ok(PgEventStore {
            db: db.clone(),
            head: watch::Sender::new(head as u64),
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

    async fn try_append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[Event],
    ) -> Result<Appended, AppendError> {
        let storage = |reason: String| AppendError::Storage {
            operation: "append",
            reason,
        };
        let pg = |e: tokio_postgres::Error| storage(one_line(&e));
        let mut client = self.db.client().await.map_err(storage)?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.batch_execute(LOCK_APPENDS).await.map_err(pg)?;
        let actual: i64 = tx
            .query_one(SELECT_STREAM_VERSION, &[&stream])
            .await
            .map_err(pg)?
            .get(0);
        let actual = actual as u64;
        if !expected.admits(actual) {
            return Err(ConcurrencyConflict {
                stream: stream.to_owned(),
                expected,
                actual,
            }
            .into());
        }
        let first: i64 = tx.query_one(SELECT_HEAD, &[]).await.map_err(pg)?.get(0);
        let insert = tx.prepare(INSERT_EVENT).await.map_err(pg)?;
        let now_ms = crate::database::wall_clock_ms();
        for (offset, event) in events.iter().enumerate() {
            let envelope = event.to_structured_json().to_string();
            tx.execute(
                &insert,
                &[
                    &(first + offset as i64),
                    &stream,
                    &((actual + 1 + offset as u64) as i64),
                    &category(stream),
                    &event.id,
                    &now_ms,
                    &envelope,
                ],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        let last = first as u64 + events.len() as u64 - 1;
        self.head.send_replace(last + 1);
        Ok(Appended {
            version: actual + events.len() as u64,
            first_position: first as u64,
            last_position: last,
        })
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
        self.try_append(stream, expected, &events).await
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
