//! The event store on SQLite: [`SqliteEventStore`], one implementation of
//! [`keel_store::EventStore`] over a `keel_events` table with `UNIQUE (stream, version)`.
//!
//! Not here: the SQL text and migrations (`schema.rs`), and everything above the port
//! (aggregates, subscriptions: `keel-store`).
//!
//! # How an append keeps the promises of the port
//!
//! ```text
//! BEGIN IMMEDIATE                                   -- the database's write lock, at once
//!   SELECT MAX(version) WHERE stream = ?            -- check the expected version
//!   SELECT MAX(position) + 1                        -- next global position
//!   INSERT one row per event                        -- UNIQUE (stream, version) as a second guard
//! COMMIT                                            -- one WAL fsync (synchronous = FULL)
//! ```
//!
//! The write lock makes check and insert one step across threads *and processes*, and makes
//! positions commit in order, so a reader's snapshot always holds a prefix of positions
//! (what subscriptions need). One writer connection per store in this process; reads use a
//! second connection, so they never wait for an append's fsync.
//!
//! Appends of other processes are seen by [`EventStore::wait_for`] within its poll interval
//! ([`SUBSCRIPTION_POLL`]); appends of this store wake it at once.

mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::Event;
use keel_store::limits::READ_EVENTS_MAX;
use keel_store::{
    AllFilter, AppendError, Appended, ConcurrencyConflict, Direction, EventStore, ExpectedVersion,
    ReadError, RecordedEvent, Snapshot, category, check_append, one_line, validate_stream_id,
    version_range, wait_for_head,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::watch;

use crate::database::{self, blocking, wall_clock_ms};
use crate::error::OpenError;
use crate::limits::BUSY_TIMEOUT_DEFAULT;

/// An event store in one SQLite file. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct SqliteEventStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// The head after this store's latest append, to wake `wait_for` at once.
    head: watch::Sender<u64>,
}

impl std::fmt::Debug for SqliteEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteEventStore")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl SqliteEventStore {
    /// Opens (creating) the store in the database at `path` and migrates its tables.
    /// Blocking: call it at start. The file may be shared with the inbox, projections and
    /// sagas; each keeps its own tables and migration history.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteEventStore, OpenError> {
        let path = path.as_ref().to_path_buf();
        let mut writer = database::open(&path, BUSY_TIMEOUT_DEFAULT)?;
        database::migrate_on_open(&mut writer, &path, &schema::TRACK, wall_clock_ms())?;
        let reader = database::open(&path, BUSY_TIMEOUT_DEFAULT)?;
        let head: i64 = reader
            .query_row(schema::SELECT_HEAD, [], |row| row.get(0))
            .map_err(|e| OpenError::Configure {
                path: path.clone(),
                setting: "read head",
                reason: e.to_string(),
            })?;
        Ok(SqliteEventStore {
            shared: Arc::new(Shared {
                path,
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                head: watch::Sender::new(head as u64),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&Connection) -> rusqlite::Result<Result<T, ReadError>> + Send + 'static,
    ) -> Result<T, ReadError> {
        let shared = self.shared.clone();
        blocking(move || {
            let connection = shared.reader.lock().expect("reader lock");
            work(&connection).map_err(|e| ReadError::Storage {
                operation,
                reason: one_line(e),
            })?
        })
        .await
    }
}

impl Shared {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[Event],
    ) -> Result<Appended, AppendError> {
        let storage = |e: rusqlite::Error| AppendError::Storage {
            operation: "append",
            reason: one_line(e),
        };
        let mut connection = self.writer.lock().expect("writer lock");
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(storage)?;
        let actual: i64 = tx
            .prepare_cached(schema::SELECT_STREAM_VERSION)
            .and_then(|mut s| s.query_row([stream], |row| row.get(0)))
            .map_err(storage)?;
        let actual = actual as u64;
        if !expected.admits(actual) {
            return Err(ConcurrencyConflict {
                stream: stream.to_owned(),
                expected,
                actual,
            }
            .into());
        }
        let first: i64 = tx
            .query_row(schema::SELECT_HEAD, [], |row| row.get(0))
            .map_err(storage)?;
        let now_ms = wall_clock_ms();
        {
            let mut insert = tx.prepare_cached(schema::INSERT_EVENT).map_err(storage)?;
            for (offset, event) in events.iter().enumerate() {
                let envelope = serde_json::to_vec(&event.to_structured_json())
                    .expect("a JSON value serializes");
                insert
                    .execute(params![
                        first + offset as i64,
                        stream,
                        (actual + 1 + offset as u64) as i64,
                        category(stream),
                        event.id,
                        now_ms,
                        envelope
                    ])
                    .map_err(|e| match e.sqlite_error_code() {
                        // Another writer got past the check without the write lock
                        // (impossible through this type): still a conflict, not corruption.
                        Some(rusqlite::ErrorCode::ConstraintViolation) => {
                            AppendError::Conflict(ConcurrencyConflict {
                                stream: stream.to_owned(),
                                expected,
                                actual: actual + offset as u64 + 1,
                            })
                        }
                        _ => storage(e),
                    })?;
            }
        }
        tx.commit().map_err(storage)?;
        let last = (first as u64) + events.len() as u64 - 1;
        self.head.send_replace(last + 1);
        Ok(Appended {
            version: actual + events.len() as u64,
            first_position: first as u64,
            last_position: last,
        })
    }
}

/// Maps a result row (`position, stream, version, recorded_at_ms, envelope`).
fn recorded(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<RecordedEvent, ReadError>> {
    let position = row.get::<_, i64>(0)? as u64;
    let envelope: Vec<u8> = row.get(4)?;
    let event = Event::from_structured_json(&envelope).map_err(|e| ReadError::Corrupt {
        position,
        reason: one_line(e),
    });
    Ok(event.map(|event| RecordedEvent {
        stream: row.get(1).unwrap_or_default(),
        version: row.get::<_, i64>(2).unwrap_or_default() as u64,
        position,
        recorded_at_ms: row.get(3).unwrap_or_default(),
        event,
    }))
}

fn collect(
    rows: impl Iterator<Item = rusqlite::Result<Result<RecordedEvent, ReadError>>>,
) -> rusqlite::Result<Result<Vec<RecordedEvent>, ReadError>> {
    let mut events = Vec::new();
    for row in rows {
        match row? {
            Ok(event) => events.push(event),
            Err(error) => return Ok(Err(error)),
        }
    }
    Ok(Ok(events))
}

impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> Result<Appended, AppendError> {
        check_append(stream, &events)?;
        let shared = self.shared.clone();
        let stream = stream.to_owned();
        blocking(move || shared.append(&stream, expected, &events)).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        validate_stream_id(stream)?;
        let stream = stream.to_owned();
        self.read("read stream", move |connection| {
            let version: i64 = connection
                .prepare_cached(schema::SELECT_STREAM_VERSION)?
                .query_row([&stream], |row| row.get(0))?;
            let Some((low, high)) = version_range(version as u64, from, direction, max_count)
            else {
                return Ok(Ok(Vec::new()));
            };
            let sql = match direction {
                Direction::Forward => schema::SELECT_STREAM_FORWARD,
                Direction::Backward => schema::SELECT_STREAM_BACKWARD,
            };
            let mut statement = connection.prepare_cached(sql)?;
            let rows = statement.query_map(params![stream, low as i64, high as i64], recorded)?;
            collect(rows)
        })
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
        let filter = filter.clone();
        self.read("read all", move |connection| match &filter {
            AllFilter::All => {
                let mut statement = connection.prepare_cached(schema::SELECT_ALL)?;
                collect(statement.query_map(params![from, limit], recorded)?)
            }
            AllFilter::Category(category) => {
                let mut statement = connection.prepare_cached(schema::SELECT_CATEGORY)?;
                collect(statement.query_map(params![category, from, limit], recorded)?)
            }
        })
        .await
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, ReadError> {
        validate_stream_id(stream)?;
        let stream = stream.to_owned();
        self.read("read stream version", move |connection| {
            let version: i64 = connection
                .prepare_cached(schema::SELECT_STREAM_VERSION)?
                .query_row([&stream], |row| row.get(0))?;
            Ok(Ok(version as u64))
        })
        .await
    }

    async fn head(&self) -> Result<u64, ReadError> {
        self.read("read head", |connection| {
            let head: i64 = connection.query_row(schema::SELECT_HEAD, [], |row| row.get(0))?;
            Ok(Ok(head as u64))
        })
        .await
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> Result<u64, ReadError> {
        wait_for_head(&self.shared.head, position, timeout, || self.head()).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), AppendError> {
        validate_stream_id(&snapshot.stream)?;
        let shared = self.shared.clone();
        blocking(move || {
            let connection = shared.writer.lock().expect("writer lock");
            connection
                .prepare_cached(schema::UPSERT_SNAPSHOT)
                .and_then(|mut s| {
                    s.execute(params![
                        snapshot.stream,
                        snapshot.version as i64,
                        snapshot.state_version,
                        snapshot.state,
                        wall_clock_ms()
                    ])
                })
                .map(drop)
                .map_err(|e| AppendError::Storage {
                    operation: "save snapshot",
                    reason: one_line(e),
                })
        })
        .await
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, ReadError> {
        validate_stream_id(stream)?;
        let stream = stream.to_owned();
        self.read("load snapshot", move |connection| {
            let row = connection
                .prepare_cached(schema::SELECT_SNAPSHOT)?
                .query_row([&stream], |row| {
                    Ok(Snapshot {
                        stream: stream.clone(),
                        version: row.get::<_, i64>(0)? as u64,
                        state_version: row.get(1)?,
                        state: row.get(2)?,
                    })
                })
                .optional()?;
            Ok(Ok(row))
        })
        .await
    }
}
