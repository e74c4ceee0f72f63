//! Every SQL statement of the SQLite inbox, as named constants, and the versioned migrations
//! that create its tables.
//!
//! Not here: when the statements run and in which transaction (`sqlite.rs`). The schema is
//! Keel's; application tables are the application's and are never touched here.
//!
//! # Version history
//!
//! | version | what it adds |
//! |---|---|
//! | 1 | `keel_inbox`: one row per (consumer, event id) processed |
//! | 2 | `keel_inbox_handled_at`: index for retention by age |
//!
//! A database is only ever moved forward, one version at a time, each step in the same
//! transaction as its row in `keel_schema_migrations`; a database newer than this code is
//! refused rather than written. Old versions are kept as fixtures in the tests.

use crate::database::Track;

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub(crate) version: u32,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// The migrations, in order; `version` is dense from 1.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "inbox table",
        sql: CREATE_INBOX,
    },
    Migration {
        version: 2,
        name: "inbox retention index",
        sql: CREATE_INBOX_RETENTION_INDEX,
    },
];

/// The schema version this code writes.
pub(crate) const SCHEMA_VERSION: u32 = TRACK.version();

/// The inbox's schema history, recorded in `keel_schema_migrations`.
pub(crate) const TRACK: Track = Track {
    table: "keel_schema_migrations",
    migrations: MIGRATIONS,
};

// WITHOUT ROWID: the primary key is the only access path, so the rows live in the key's
// B-tree instead of a rowid B-tree plus a separate unique index — one B-tree write per mark
// instead of two.
const CREATE_INBOX: &str = "
CREATE TABLE keel_inbox (
    consumer      TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    handled_at_ms INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID";

// Retention deletes by age; without this index each delete would scan the whole table.
const CREATE_INBOX_RETENTION_INDEX: &str =
    "CREATE INDEX keel_inbox_handled_at ON keel_inbox (handled_at_ms)";

/// The mark. `ON CONFLICT DO NOTHING` makes a second mark of the same pair a no-op, and the
/// changed-row count (0 or 1) is the answer to "was it processed before?": one statement,
/// one B-tree probe, no separate SELECT that could race with another writer.
pub(crate) const INSERT_MARK: &str = "
INSERT INTO keel_inbox (consumer, event_id, handled_at_ms) VALUES (?1, ?2, ?3)
ON CONFLICT (consumer, event_id) DO NOTHING";

/// A point lookup on the primary key.
pub(crate) const SELECT_MARK: &str =
    "SELECT 1 FROM keel_inbox WHERE consumer = ?1 AND event_id = ?2";

pub(crate) const COUNT_MARKS: &str = "SELECT COUNT(*) FROM keel_inbox";

/// Deletes at most `?2` marks older than `?1`. The inner query walks
/// `keel_inbox_handled_at` from the oldest row and stops after the limit
/// (`SEARCH keel_inbox USING COVERING INDEX keel_inbox_handled_at (handled_at_ms<?)`), so one
/// call costs O(limit) whatever the table size; SQLite's DELETE has no LIMIT clause in the
/// default build, hence the row-value `IN`.
pub(crate) const DELETE_MARKS_BEFORE: &str = "
DELETE FROM keel_inbox WHERE (consumer, event_id) IN (
    SELECT consumer, event_id FROM keel_inbox WHERE handled_at_ms < ?1
    ORDER BY handled_at_ms LIMIT ?2
)";

/// Takes the write lock at once. A deferred `BEGIN` would take it at the first write, and
/// if another connection wrote in between SQLite fails that write with `SQLITE_BUSY`
/// *without* waiting (the snapshot is stale); `IMMEDIATE` waits `busy_timeout` up front.
pub(crate) const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";
pub(crate) const COMMIT: &str = "COMMIT";
pub(crate) const ROLLBACK: &str = "ROLLBACK";

/// One event's share of a group-commit transaction: its mark and its handler's writes.
pub(crate) const SAVEPOINT_EVENT: &str = "SAVEPOINT keel_event";
pub(crate) const RELEASE_EVENT: &str = "RELEASE keel_event";
/// Undoes the event's writes *and* its mark; the savepoint stays open until released.
pub(crate) const ROLLBACK_TO_EVENT: &str = "ROLLBACK TO keel_event";

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, params};

    #[test]
    fn versions_are_dense_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
        }
    }

    #[test]
    fn the_retention_delete_walks_the_index() {
        let mut connection = Connection::open_in_memory().unwrap();
        crate::database::migrate(&mut connection, &TRACK, 0).unwrap();
        let plan: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {DELETE_MARKS_BEFORE}"))
            .unwrap()
            .query_map(params![0, 10], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("keel_inbox_handled_at")),
            "plan: {plan:?}"
        );
    }
}
