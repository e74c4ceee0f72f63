//! The event store on PostgreSQL: [`PgEventStore`], the `keel_store::EventStore` port over a
//! `keel_events` table with `UNIQUE (stream, version)` in the database's Keel schema.
//!
//! # How an append keeps the port's promises
//!
//! Appends of one process go through two committer tasks. Each takes every append waiting
//! (up to [`PG_APPEND_BATCH_MAX`]) and sends them as one statement outside any explicit
//! transaction — one round trip and one commit (one WAL flush) for the batch:
//!
//! ```text
//! SELECT * FROM keel_append_events(streams, categories, expected, counts, ids, envelopes, now)
//!   -- in the function, one implicit transaction:
//!   UPDATE keel_event_positions … RETURNING   -- appends take turns here; reserves positions
//!   per append, MAX(version) … WHERE stream = its stream          -- its index's last entry
//!   per append, in memory: the expected-version check against the stream as the batch's
//!     earlier appends leave it
//!   INSERT every admitted event (unnest)
//!   only if an append was refused: UPDATE keel_event_positions   -- give its positions back
//! ```
//!
//! Why a lock at all: positions must *commit* in order. With a sequence and concurrent
//! transactions, position 8 can commit before 7; a subscription that read 8 would then never
//! see 7. The one `keel_event_positions` row is that order: whoever holds its row lock owns
//! the next positions until it commits, so positions become visible in order across
//! processes, and the version checks under the same lock cannot race another appender. The
//! `UNIQUE (stream, version)` constraint and the position primary key stay as guards: a
//! writer that did not take the lock fails its insert instead of forking a stream or reusing
//! a position.
//!
//! Why two committers: batches take turns on the positions lock, so with one committer the
//! lock sat idle from each commit until the next batch arrived (the answer's trip back, the
//! writers' wake-up, the next statement's trip out). With two, the next batch is already
//! waiting on the lock when the current one commits; a batch of one process queued behind
//! another's is exactly what two processes appending at once do, so nothing else changes.
//!
//! Why a function: an append's cost is its round trips plus one WAL flush. The explicit
//! transaction this replaced (`BEGIN`, lock, version read, insert, `COMMIT`) paid five round
//! trips per batch, and the lock was held across all of them, so one writer reached about a
//! ninth of the server's one-row commit rate. In the function, the lock is held for the
//! function's own work and the commit only. Measured in `BENCHMARKS.md`.
//!
//! A conflicting append is answered alone; the others of its batch commit. A database error
//! fails every append of the batch (none was stored). The tables and the function have their
//! own migration history (`keel_event_store_migrations`), applied under an advisory lock
//! like the outbox's. Appends of other processes are seen by `wait_for` by polling within
//! its interval.

use std::sync::Arc;
use std::time::Duration;

use keel_core::Event;
use keel_store::limits::READ_EVENTS_MAX;
use keel_store::{
    AllFilter, AppendError, Appended, ConcurrencyConflict, Direction, EventStore, ExpectedVersion,
    ReadError, RecordedEvent, Snapshot, category, check_append, validate_stream_id, version_range,
    wait_for_head,
};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
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
-- One statement per batch of appends (see the module docs). `expected` is -1 for any version,
-- else the exact version the stream must have (0: no stream). `first_position` is NULL for
-- an append refused by its expected version; `actual` is then the version it found. Set-based
-- (one version read, one insert) so the positions lock is held for a few statements whatever
-- the batch holds. Redefined at every open: the rows below record which definitions a schema
-- has had.
--
-- Generic plans (`plan_cache_mode`): with the default, PL/pgSQL planned the version read and
-- the insert afresh on every call, their array arguments making a custom plan look cheaper
-- (0.55 ms to plan the version read; the function cost 260-290 us of server CPU per
-- one-event append, 140-160 us with generic plans, `perf stat -p` on the backend). The
-- generic plans are the same index probes and inserts.
CREATE OR REPLACE FUNCTION keel_append_events(
    streams TEXT[], categories TEXT[], expected BIGINT[], counts INTEGER[],
    event_ids TEXT[], envelopes TEXT[], now_ms BIGINT)
RETURNS TABLE (actual BIGINT, first_position BIGINT)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    events BIGINT := 0;
    next BIGINT;
    -- Per append: its stream's version before the batch (0: no stream). The slot of a
    -- stream's first append in the batch then follows the stream through the batch.
    versions BIGINT[];
    slot INTEGER;
    -- Events of the appends before this one in the arrays, admitted or not.
    skipped INTEGER := 0;
    -- Per admitted append: its index, first position, version before it, events skipped.
    admitted INTEGER[] := '{}';
    firsts BIGINT[] := '{}';
    bases BIGINT[] := '{}';
    skips INTEGER[] := '{}';
BEGIN
    FOR i IN 1 .. cardinality(counts) LOOP
        events := events + counts[i];
    END LOOP;
    -- Takes the positions lock and reserves a position for every event in one statement
    -- (a `SELECT … FOR UPDATE` then an `UPDATE` cost ~20 us more); a refused append's
    -- positions are given back below, under the same lock.
    UPDATE keel_event_positions SET next_position = next_position + events
    RETURNING next_position - events INTO next;
    -- Each stream's last index entry (one backward probe of UNIQUE (stream, version)), not a
    -- MAX over a GROUP BY, which read every version of the stream: O(stream length) per
    -- append (3.7 ms for a stream of 4,000 events against 0.03 ms, EXPLAIN ANALYZE).
    versions := ARRAY(
        SELECT COALESCE((SELECT MAX(e.version) FROM keel_events AS e WHERE e.stream = s.stream), 0)
        FROM unnest(streams) WITH ORDINALITY AS s (stream, n) ORDER BY s.n);
    FOR i IN 1 .. cardinality(streams) LOOP
        slot := array_position(streams, streams[i]);
        actual := versions[slot];
        IF expected[i] < 0 OR expected[i] = actual THEN
            admitted := admitted || i;
            firsts := firsts || next;
            bases := bases || actual;
            skips := skips || skipped;
            first_position := next;
            next := next + counts[i];
            versions[slot] := actual + counts[i];
        ELSE
            first_position := NULL;
            events := events - counts[i];
        END IF;
        skipped := skipped + counts[i];
        RETURN NEXT;
    END LOOP;
    INSERT INTO keel_events
        (position, stream, version, category, event_id, recorded_at_ms, envelope)
    SELECT r.first + n - 1, streams[r.a], r.base + n, categories[r.a], event_ids[r.skip + n],
        now_ms, envelopes[r.skip + n]::JSONB
    FROM unnest(admitted, firsts, bases, skips) AS r (a, first, base, skip),
        generate_series(1, counts[r.a]) AS n;
    IF events < skipped THEN
        UPDATE keel_event_positions SET next_position = next;
    END IF;
END $$;
INSERT INTO keel_event_store_migrations (version, name)
VALUES (3, 'keel_append_events: a batch of appends in one statement') ON CONFLICT DO NOTHING;
INSERT INTO keel_event_store_migrations (version, name)
VALUES (4, 'keel_append_events reads each stream''s version from the end of its index')
ON CONFLICT DO NOTHING;
INSERT INTO keel_event_store_migrations (version, name)
VALUES (5, 'keel_append_events: generic plans, positions reserved by one UPDATE, no JSONB map')
ON CONFLICT DO NOTHING;
";
const SELECT_NEWEST_MIGRATION: &str = "SELECT MAX(version) FROM keel_event_store_migrations";
/// The event store's schema version (its history is the `MIGRATE` script's rows).
const VERSION: i32 = 5;
const APPEND_EVENTS: &str =
    "SELECT actual, first_position FROM keel_append_events($1, $2, $3, $4, $5, $6, $7)";
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

/// Committer tasks per store: one batch commits while the next waits on the positions lock
/// (see the module docs). More would only queue more batches behind the same lock.
const COMMITTERS: usize = 2;

/// An event store in a PostgreSQL schema. Cheap to clone; clones share the pool and the
/// committer tasks, which end when the last clone is dropped.
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
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..COMMITTERS {
            tokio::spawn(commit_appends(db.clone(), queue.clone(), head.clone()));
        }
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

/// A committer: takes every append waiting, commits them in one transaction, answers each.
/// It holds the queue only while it waits for appends, so the other committer gathers the
/// next batch while this one's commits. Runs until every sender (every clone of the store)
/// is gone.
async fn commit_appends(
    db: PgDatabase,
    queue: Arc<Mutex<mpsc::Receiver<Pending>>>,
    head: watch::Sender<u64>,
) {
    let mut batch = Vec::new();
    loop {
        let taken = queue
            .lock()
            .await
            .recv_many(&mut batch, PG_APPEND_BATCH_MAX)
            .await;
        if taken == 0 {
            break;
        }
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

/// One statement for `batch` (see the module docs): each append's outcome, in order, or why
/// the statement failed (then nothing was stored).
async fn commit_batch(
    db: &PgDatabase,
    batch: &[Pending],
) -> Result<Vec<Result<Appended, AppendError>>, String> {
    let pg = |e: tokio_postgres::Error| one_line(&e);
    let client = db.client().await?;
    // Prepared once per pooled connection: a statement run by text is parsed each time.
    let append = client.prepare_cached(APPEND_EVENTS).await.map_err(pg)?;
    let args = AppendArgs::new(batch);
    let rows = client
        .query(
            &append,
            &[
                &args.streams,
                &args.categories,
                &args.expected,
                &args.counts,
                &args.event_ids,
                &args.envelopes,
                &crate::database::wall_clock_ms(),
            ],
        )
        .await
        .map_err(pg)?;
    if rows.len() != batch.len() {
        return Err(format!(
            "keel_append_events answered {} rows for {} appends",
            rows.len(),
            batch.len()
        ));
    }
    Ok(batch
        .iter()
        .zip(&rows)
        .map(|(pending, row)| {
            let actual = row.get::<_, i64>(0) as u64;
            let count = pending.events.len() as u64;
            match row.get::<_, Option<i64>>(1) {
                Some(first) => Ok(Appended {
                    version: actual + count,
                    first_position: first as u64,
                    last_position: first as u64 + count - 1,
                }),
                None => Err(ConcurrencyConflict {
                    stream: pending.stream.clone(),
                    expected: pending.expected,
                    actual,
                }
                .into()),
            }
        })
        .collect())
}

/// A batch as the arrays `keel_append_events` takes: one element per append, then one per
/// event in append order.
struct AppendArgs<'a> {
    streams: Vec<&'a str>,
    categories: Vec<&'a str>,
    expected: Vec<i64>,
    counts: Vec<i32>,
    event_ids: Vec<&'a str>,
    envelopes: Vec<&'a str>,
}

impl<'a> AppendArgs<'a> {
    fn new(batch: &'a [Pending]) -> AppendArgs<'a> {
        let events = batch.iter().map(|p| p.events.len()).sum();
        let mut args = AppendArgs {
            streams: Vec::with_capacity(batch.len()),
            categories: Vec::with_capacity(batch.len()),
            expected: Vec::with_capacity(batch.len()),
            counts: Vec::with_capacity(batch.len()),
            event_ids: Vec::with_capacity(events),
            envelopes: Vec::with_capacity(events),
        };
        for pending in batch {
            args.streams.push(&pending.stream);
            args.categories.push(category(&pending.stream));
            args.expected.push(match pending.expected {
                ExpectedVersion::Any => -1,
                ExpectedVersion::NoStream => 0,
                ExpectedVersion::Exact(version) => version.min(i64::MAX as u64) as i64,
            });
            // `check_append` bounds an append to APPEND_EVENTS_MAX events.
            args.counts.push(pending.events.len() as i32);
            for (id, envelope) in &pending.events {
                args.event_ids.push(id);
                args.envelopes.push(envelope);
            }
        }
        args
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
