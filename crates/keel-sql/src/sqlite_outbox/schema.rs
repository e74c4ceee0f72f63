//! Every SQL statement of the SQLite outbox, as named constants, and its versioned
//! migrations, recorded in `keel_outbox_migrations` (each component has its own track; see
//! `database.rs`).
//!
//! Not here: when the statements run (`mod.rs`).
//!
//! # Version history
//!
//! | version | what it adds |
//! |---|---|
//! | 1 | `keel_outbox` and `keel_outbox_dead`, with their indexes |

use crate::database::Track;
use crate::schema::Migration;

/// The outbox's schema history.
pub(crate) const TRACK: Track = Track {
    table: "keel_outbox_migrations",
    migrations: &[Migration {
        version: 1,
        name: "outbox tables",
        sql: CREATE_OUTBOX,
    }],
};

// The outbox, as on PostgreSQL (see `postgres/schema.rs` for the indexes' reasons), times
// in ms since the epoch. AUTOINCREMENT: an id is never reused after its row was deleted,
// so a dead row's id (its key in `keel_outbox_dead`) stays unique.
const CREATE_OUTBOX: &str = "
CREATE TABLE keel_outbox (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    topic               TEXT    NOT NULL,
    partition_key       TEXT,
    event_id            TEXT    NOT NULL,
    envelope            BLOB    NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    first_failure_at_ms INTEGER,
    retry_at_ms         INTEGER,
    published_at_ms     INTEGER
);
CREATE INDEX keel_outbox_pending ON keel_outbox (id) WHERE published_at_ms IS NULL;
CREATE INDEX keel_outbox_key_pending ON keel_outbox (partition_key, id)
    WHERE published_at_ms IS NULL;
CREATE INDEX keel_outbox_published ON keel_outbox (published_at_ms)
    WHERE published_at_ms IS NOT NULL;
CREATE TABLE keel_outbox_dead (
    id                  INTEGER PRIMARY KEY,
    topic               TEXT    NOT NULL,
    partition_key       TEXT,
    event_id            TEXT    NOT NULL,
    envelope            BLOB    NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    attempts            INTEGER NOT NULL,
    error               TEXT    NOT NULL,
    first_failure_at_ms INTEGER NOT NULL,
    dead_at_ms          INTEGER NOT NULL,
    dead_lettered_at_ms INTEGER
);
CREATE INDEX keel_outbox_dead_to_copy ON keel_outbox_dead (id) WHERE dead_lettered_at_ms IS NULL;
";

pub(crate) const INSERT_OUTBOX_ROW: &str = "
INSERT INTO keel_outbox (topic, partition_key, event_id, envelope, created_at_ms)
VALUES (?1, ?2, ?3, ?4, ?5)";

/// The claim of the (single) SQLite relay: unpublished rows in id order that are due and
/// have no earlier row of their key that failed before (that row goes first, alone). SQLite
/// has one writer at a time, so rows commit in id order and a key's visible rows are
/// always a prefix of its rows.
pub(crate) const CLAIM_OUTBOX_ROWS: &str = "
SELECT o.id, o.topic, o.partition_key, o.envelope, o.attempts FROM keel_outbox o
WHERE o.published_at_ms IS NULL
  AND (o.retry_at_ms IS NULL OR o.retry_at_ms <= ?2)
  AND (o.partition_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM keel_outbox b
      WHERE b.partition_key = o.partition_key AND b.id < o.id
        AND b.published_at_ms IS NULL AND b.retry_at_ms IS NOT NULL))
ORDER BY o.id LIMIT ?1";

pub(crate) const MARK_OUTBOX_PUBLISHED: &str =
    "UPDATE keel_outbox SET published_at_ms = ?2 WHERE id = ?1";
pub(crate) const DELETE_OUTBOX_ROW: &str = "DELETE FROM keel_outbox WHERE id = ?1";
pub(crate) const RECORD_OUTBOX_FAILURE: &str = "
UPDATE keel_outbox
SET attempts = attempts + 1, last_error = ?2,
    first_failure_at_ms = COALESCE(first_failure_at_ms, ?3), retry_at_ms = ?3 + ?4
WHERE id = ?1";
pub(crate) const COPY_OUTBOX_ROW_TO_DEAD: &str = "
INSERT INTO keel_outbox_dead
    (id, topic, partition_key, event_id, envelope, created_at_ms, attempts, error,
     first_failure_at_ms, dead_at_ms)
SELECT id, topic, partition_key, event_id, envelope, created_at_ms, attempts + 1, ?2,
       COALESCE(first_failure_at_ms, ?3), ?3
FROM keel_outbox WHERE id = ?1";
pub(crate) const SELECT_OUTBOX_DEAD_TO_COPY: &str = "
SELECT id, topic, event_id, envelope, attempts, error, first_failure_at_ms, dead_at_ms
FROM keel_outbox_dead WHERE dead_lettered_at_ms IS NULL ORDER BY id LIMIT ?1";
pub(crate) const MARK_OUTBOX_DEAD_COPIED: &str =
    "UPDATE keel_outbox_dead SET dead_lettered_at_ms = ?2 WHERE id = ?1";
pub(crate) const SELECT_OUTBOX_BACKLOG: &str = "
SELECT count(*), COALESCE(?1 - min(created_at_ms), 0), (SELECT count(*) FROM keel_outbox_dead)
FROM keel_outbox WHERE published_at_ms IS NULL";
pub(crate) const DELETE_OUTBOX_PUBLISHED_BEFORE: &str = "
DELETE FROM keel_outbox WHERE id IN (
    SELECT id FROM keel_outbox WHERE published_at_ms < ?1 ORDER BY published_at_ms LIMIT ?2)";
