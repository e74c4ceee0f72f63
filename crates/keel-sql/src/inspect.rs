//! Read-only views of a SQLite application database for operators (the web console): saga
//! instances by state with the stuck ones named, event-sourced streams by category, and the
//! outbox's backlog and relay throughput.
//!
//! [`inspect_sqlite`] opens the file read-only (`SQLITE_OPEN_READ_ONLY`, so it never creates,
//! migrates or locks for writing a database a service owns) and reads whichever of Keel's
//! tables the file has: a service's database holds only the components it uses. Every list
//! is bounded ([`INSPECT_ROWS_MAX`]).
//!
//! Not here: PostgreSQL (its read-only views are not written yet), changing anything.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

/// Most rows a list of an inspection holds (sagas needing attention, categories).
pub const INSPECT_ROWS_MAX: usize = 200;

/// What a database holds of Keel's components.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inspection {
    /// Sagas, when the database has `keel_sagas`.
    pub sagas: Option<SagaOverview>,
    /// Event-sourced streams, when it has `keel_events`.
    pub streams: Option<StreamOverview>,
    /// The outbox, when it has `keel_outbox`.
    pub outbox: Option<OutboxOverview>,
}

/// Saga instances by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SagaOverview {
    /// Instances per (saga, status), by saga then status.
    pub counts: Vec<SagaCount>,
    /// Running or compensating instances past their step's deadline, then failed ones, then
    /// the other unfinished ones, oldest change first; at most [`INSPECT_ROWS_MAX`].
    pub attention: Vec<SagaInstance>,
}

/// How many instances of one saga are in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SagaCount {
    /// The saga's name.
    pub saga: String,
    /// `running`, `compensating`, `completed`, `compensated` or `failed`.
    pub status: String,
    /// Instances.
    pub instances: u64,
}

/// One saga instance as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SagaInstance {
    /// The instance id.
    pub id: String,
    /// The saga's name.
    pub saga: String,
    /// Its status.
    pub status: String,
    /// The step it is at (from 0; steps before it completed, or were compensated).
    pub step: u32,
    /// Attempts of that step so far.
    pub attempt: u32,
    /// The step's durable deadline, ms since the epoch.
    pub deadline_ms: Option<i64>,
    /// Whether the deadline has passed while the saga still runs or compensates.
    pub stuck: bool,
    /// The last error.
    pub error: Option<String>,
    /// The saga's data as stored (JSON).
    pub data: String,
    /// When it last changed, ms since the epoch.
    pub updated_at_ms: i64,
}

/// Event-sourced streams by category.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamOverview {
    /// Per category: streams, events, latest event; at most [`INSPECT_ROWS_MAX`].
    pub categories: Vec<StreamCategory>,
    /// Streams with a snapshot.
    pub snapshots: u64,
}

/// One category of streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamCategory {
    /// The category (a stream id's part before its first `-`).
    pub category: String,
    /// Streams in it.
    pub streams: u64,
    /// Events in it.
    pub events: u64,
    /// When its latest event was recorded, ms since the epoch.
    pub latest_ms: i64,
}

/// The outbox's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutboxOverview {
    /// Rows not yet published.
    pub pending: u64,
    /// When the oldest unpublished row was enqueued, ms since the epoch.
    pub oldest_pending_ms: Option<i64>,
    /// Rows published in the minute before the inspection (published rows are cleaned up
    /// after a while, so this counts only recent ones).
    pub published_last_minute: u64,
    /// Rows moved aside as dead after repeated rejections.
    pub dead: u64,
}

/// Why a database could not be inspected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// Opening or reading the database failed.
    #[error("cannot read {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// Why.
        source: rusqlite::Error,
    },
}

/// Reads what `path` holds of Keel's tables, at `now_ms`.
pub fn inspect_sqlite(path: &Path, now_ms: i64) -> Result<Inspection, InspectError> {
    let fail = |source| InspectError::Sqlite {
        path: path.display().to_string(),
        source,
    };
    let connection =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
    let has = |table: &str| -> Result<bool, rusqlite::Error> {
        connection
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
    };
    let mut inspection = Inspection::default();
    if has("keel_sagas").map_err(fail)? {
        inspection.sagas = Some(sagas(&connection, now_ms).map_err(fail)?);
    }
    if has("keel_events").map_err(fail)? {
        let snapshots = has("keel_snapshots").map_err(fail)?;
        inspection.streams = Some(streams(&connection, snapshots).map_err(fail)?);
    }
    if has("keel_outbox").map_err(fail)? {
        let dead = has("keel_outbox_dead").map_err(fail)?;
        inspection.outbox = Some(outbox(&connection, dead, now_ms).map_err(fail)?);
    }
    Ok(inspection)
}

/// A bound for `LIMIT`.
fn rows_max() -> i64 {
    INSPECT_ROWS_MAX as i64
}

fn sagas(connection: &Connection, now_ms: i64) -> Result<SagaOverview, rusqlite::Error> {
    let mut counts = connection.prepare(
        "SELECT saga, status, COUNT(*) FROM keel_sagas GROUP BY saga, status ORDER BY saga, status",
    )?;
    let counts = counts
        .query_map([], |row| {
            Ok(SagaCount {
                saga: row.get(0)?,
                status: row.get(1)?,
                instances: row.get::<_, i64>(2)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // Stuck first (past their deadline while unfinished), then failed, then the rest of the
    // unfinished, each oldest change first. A full scan: an operator's page, not a hot path.
    let mut attention = connection.prepare(
        "SELECT id, saga, status, step, attempt, deadline_ms, error, data, updated_at_ms,
                status IN ('running', 'compensating') AND deadline_ms IS NOT NULL
                    AND deadline_ms < ?1 AS stuck
         FROM keel_sagas WHERE status IN ('running', 'compensating', 'failed')
         ORDER BY stuck DESC, status = 'failed' DESC, updated_at_ms LIMIT ?2",
    )?;
    let attention = attention
        .query_map((now_ms, rows_max()), |row| {
            Ok(SagaInstance {
                id: row.get(0)?,
                saga: row.get(1)?,
                status: row.get(2)?,
                step: row.get(3)?,
                attempt: row.get(4)?,
                deadline_ms: row.get(5)?,
                error: row.get(6)?,
                data: row.get(7)?,
                updated_at_ms: row.get(8)?,
                stuck: row.get(9)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SagaOverview { counts, attention })
}

fn streams(connection: &Connection, snapshots: bool) -> Result<StreamOverview, rusqlite::Error> {
    let mut categories = connection.prepare(
        "SELECT category, COUNT(DISTINCT stream), COUNT(*), MAX(recorded_at_ms)
         FROM keel_events GROUP BY category ORDER BY category LIMIT ?1",
    )?;
    let categories = categories
        .query_map([rows_max()], |row| {
            Ok(StreamCategory {
                category: row.get(0)?,
                streams: row.get::<_, i64>(1)? as u64,
                events: row.get::<_, i64>(2)? as u64,
                latest_ms: row.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let snapshots = if snapshots {
        connection.query_row("SELECT COUNT(*) FROM keel_snapshots", [], |row| {
            row.get::<_, i64>(0)
        })? as u64
    } else {
        0
    };
    Ok(StreamOverview {
        categories,
        snapshots,
    })
}

fn outbox(
    connection: &Connection,
    dead_table: bool,
    now_ms: i64,
) -> Result<OutboxOverview, rusqlite::Error> {
    let (pending, oldest_pending_ms) = connection.query_row(
        "SELECT COUNT(*), MIN(created_at_ms) FROM keel_outbox WHERE published_at_ms IS NULL",
        [],
        |row| Ok((row.get::<_, i64>(0)? as u64, row.get(1)?)),
    )?;
    let published_last_minute = connection.query_row(
        "SELECT COUNT(*) FROM keel_outbox WHERE published_at_ms >= ?1",
        [now_ms - 60_000],
        |row| row.get::<_, i64>(0),
    )? as u64;
    let dead = if dead_table {
        connection.query_row("SELECT COUNT(*) FROM keel_outbox_dead", [], |row| {
            row.get::<_, i64>(0)
        })? as u64
    } else {
        0
    };
    Ok(OutboxOverview {
        pending,
        oldest_pending_ms,
        published_last_minute,
        dead,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteEventStore, SqliteOutbox, SqliteSagaStore};

    const NOW_MS: i64 = 1_000_000;

    #[test]
    fn an_inspection_reads_what_each_component_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        drop(SqliteSagaStore::open(&path).unwrap());
        drop(SqliteOutbox::open(&path).unwrap());
        drop(SqliteEventStore::open(&path).unwrap());
        let db = Connection::open(&path).unwrap();
        let saga = "INSERT INTO keel_sagas (id, saga, status, step, attempt, deadline_ms, data, error, version, updated_at_ms)
                    VALUES (?1, 'order', ?2, 1, 2, ?3, '{}', ?4, 1, ?5)";
        db.execute(saga, ("late", "running", NOW_MS - 1, None::<String>, 10))
            .unwrap();
        db.execute(saga, ("waiting", "running", NOW_MS + 1, None::<String>, 5))
            .unwrap();
        db.execute(
            saga,
            ("broken", "failed", None::<i64>, Some("card refused"), 20),
        )
        .unwrap();
        db.execute(saga, ("done", "completed", None::<i64>, None::<String>, 1))
            .unwrap();
        let outbox =
            "INSERT INTO keel_outbox (topic, event_id, envelope, created_at_ms, published_at_ms)
                      VALUES ('orders', ?1, x'00', ?2, ?3)";
        db.execute(outbox, ("a", 100, None::<i64>)).unwrap();
        db.execute(outbox, ("b", 200, None::<i64>)).unwrap();
        db.execute(outbox, ("c", 300, Some(NOW_MS - 30_000)))
            .unwrap();
        db.execute(outbox, ("d", 300, Some(NOW_MS - 90_000)))
            .unwrap();
        let event = "INSERT INTO keel_events (stream, version, category, event_id, recorded_at_ms, envelope)
                     VALUES (?1, ?2, ?3, ?4, ?5, x'00')";
        db.execute(event, ("order-1", 1, "order", "e1", 7)).unwrap();
        db.execute(event, ("order-1", 2, "order", "e2", 8)).unwrap();
        db.execute(event, ("order-2", 1, "order", "e3", 9)).unwrap();

        let inspection = inspect_sqlite(&path, NOW_MS).unwrap();
        let sagas = inspection.sagas.unwrap();
        let order: Vec<(&str, bool)> = sagas
            .attention
            .iter()
            .map(|s| (s.id.as_str(), s.stuck))
            .collect();
        assert_eq!(
            order,
            [("late", true), ("broken", false), ("waiting", false)]
        );
        assert_eq!(sagas.counts.iter().map(|c| c.instances).sum::<u64>(), 4);
        let outbox = inspection.outbox.unwrap();
        assert_eq!(
            (
                outbox.pending,
                outbox.oldest_pending_ms,
                outbox.published_last_minute
            ),
            (2, Some(100), 1)
        );
        let streams = inspection.streams.unwrap();
        assert_eq!(
            streams.categories,
            [StreamCategory {
                category: "order".into(),
                streams: 2,
                events: 3,
                latest_ms: 9
            }]
        );
    }

    #[test]
    fn a_database_without_keel_tables_has_nothing_to_show() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute("CREATE TABLE t (x)", [])
            .unwrap();
        assert_eq!(
            inspect_sqlite(&path, NOW_MS).unwrap(),
            Inspection::default()
        );
        assert!(inspect_sqlite(&dir.path().join("missing.db"), NOW_MS).is_err());
    }
}
