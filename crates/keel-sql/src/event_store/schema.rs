//! The SQLite event store's tables, statements and migrations.
//!
//! # Version history (`keel_event_store_migrations`)
//!
//! | version | what it adds |
//! |---|---|
//! | 1 | `keel_events` (position, stream, version unique per stream, category, envelope), the category index, `keel_snapshots` |

use crate::database::Track;
use crate::schema::Migration;

/// The event store's schema history.
pub(crate) const TRACK: Track = Track {
    table: "keel_event_store_migrations",
    migrations: &[Migration {
        version: 1,
        name: "events, category index, snapshots",
        sql: CREATE_TABLES,
    }],
};

// `position` is the rowid: dense from 0, assigned as MAX + 1 inside the appending
// `BEGIN IMMEDIATE` transaction, so positions commit in order. `UNIQUE (stream, version)` is
// the database's own guard against two events claiming one version (the check in the
// append is the first one); its index also serves every per-stream read and the version
// lookup. The envelope is the CloudEvent in structured JSON mode.
const CREATE_TABLES: &str = "
CREATE TABLE keel_events (
    position       INTEGER PRIMARY KEY,
    stream         TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    category       TEXT    NOT NULL,
    event_id       TEXT    NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    envelope       BLOB    NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX keel_events_category ON keel_events (category, position);
CREATE TABLE keel_snapshots (
    stream        TEXT    PRIMARY KEY,
    version       INTEGER NOT NULL,
    state_version INTEGER NOT NULL,
    state         BLOB    NOT NULL,
    saved_at_ms   INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The stream's version: `SEARCH keel_events USING COVERING INDEX sqlite_autoindex_keel_events_1 (stream=?)`.
pub(crate) const SELECT_STREAM_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) FROM keel_events WHERE stream = ?1";
/// One past the last position: the rowid maximum, read from the end of the B-tree.
pub(crate) const SELECT_HEAD: &str = "SELECT COALESCE(MAX(position) + 1, 0) FROM keel_events";
pub(crate) const INSERT_EVENT: &str = "
INSERT INTO keel_events (position, stream, version, category, event_id, recorded_at_ms, envelope)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
pub(crate) const SELECT_STREAM_FORWARD: &str = "
SELECT position, stream, version, recorded_at_ms, envelope FROM keel_events
WHERE stream = ?1 AND version BETWEEN ?2 AND ?3 ORDER BY version ASC";
pub(crate) const SELECT_STREAM_BACKWARD: &str = "
SELECT position, stream, version, recorded_at_ms, envelope FROM keel_events
WHERE stream = ?1 AND version BETWEEN ?2 AND ?3 ORDER BY version DESC";
pub(crate) const SELECT_ALL: &str = "
SELECT position, stream, version, recorded_at_ms, envelope FROM keel_events
WHERE position >= ?1 ORDER BY position LIMIT ?2";
/// `SEARCH keel_events USING INDEX keel_events_category (category=? AND position>?)`.
pub(crate) const SELECT_CATEGORY: &str = "
SELECT position, stream, version, recorded_at_ms, envelope FROM keel_events
WHERE category = ?1 AND position >= ?2 ORDER BY position LIMIT ?3";
/// Keeps the newer snapshot: an older one arriving late changes nothing.
pub(crate) const UPSERT_SNAPSHOT: &str = "
INSERT INTO keel_snapshots (stream, version, state_version, state, saved_at_ms)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (stream) DO UPDATE SET
    version = excluded.version, state_version = excluded.state_version,
    state = excluded.state, saved_at_ms = excluded.saved_at_ms
WHERE excluded.version > keel_snapshots.version";
pub(crate) const SELECT_SNAPSHOT: &str =
    "SELECT version, state_version, state FROM keel_snapshots WHERE stream = ?1";

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn plan(sql: &str, params: impl rusqlite::Params) -> String {
        let mut connection = Connection::open_in_memory().unwrap();
        crate::database::migrate(&mut connection, &TRACK, 0).unwrap();
        let rows: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params, |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.join("; ")
    }

    #[test]
    fn reads_use_indexes() {
        let check = |sql, params: &[&dyn rusqlite::ToSql], expected: &str| {
            let plan = plan(sql, params);
            assert!(plan.contains(expected) && !plan.contains("SCAN"), "{plan}");
        };
        check(
            SELECT_STREAM_VERSION,
            &[&"s"],
            "sqlite_autoindex_keel_events_1",
        );
        check(
            SELECT_STREAM_FORWARD,
            &[&"s", &1, &2],
            "sqlite_autoindex_keel_events_1",
        );
        check(SELECT_CATEGORY, &[&"c", &0, &10], "keel_events_category");
        check(SELECT_ALL, &[&0, &10], "INTEGER PRIMARY KEY");
    }
}
