//! The saga state table, its statements and migrations.
//!
//! # Version history (`keel_saga_migrations`)
//!
//! | version | what it adds |
//! |---|---|
//! | 1 | `keel_sagas`: one row per instance, updated by compare-and-set on `version`; the unfinished index |

use crate::database::Track;
use crate::schema::Migration;

/// The sagas' schema history.
pub(crate) const TRACK: Track = Track {
    table: "keel_saga_migrations",
    migrations: &[Migration {
        version: 1,
        name: "saga instances",
        sql: CREATE_SAGAS,
    }],
};

const CREATE_SAGAS: &str = "
CREATE TABLE keel_sagas (
    id            TEXT    PRIMARY KEY,
    saga          TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    step          INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    deadline_ms   INTEGER,
    data          TEXT    NOT NULL,
    error         TEXT,
    version       INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX keel_sagas_unfinished ON keel_sagas (saga, status, id);
";

pub(crate) const INSERT_SAGA: &str = "
INSERT INTO keel_sagas (id, saga, status, step, attempt, deadline_ms, data, error, version, updated_at_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
ON CONFLICT (id) DO NOTHING";
/// Compare-and-set: changes one row only if nobody stored a transition since it was read.
pub(crate) const UPDATE_SAGA: &str = "
UPDATE keel_sagas SET status = ?3, step = ?4, attempt = ?5, deadline_ms = ?6, data = ?7,
    error = ?8, version = ?9, updated_at_ms = ?10
WHERE id = ?1 AND saga = ?2 AND version = ?9 - 1";
/// Both readers return the columns in this order (see `record` in `mod.rs`).
pub(crate) const SELECT_SAGA: &str = "
SELECT id, saga, status, step, attempt, deadline_ms, data, error, version
FROM keel_sagas WHERE id = ?1";
/// `SEARCH keel_sagas USING INDEX keel_sagas_unfinished (saga=? AND status=?)`.
pub(crate) const SELECT_UNFINISHED: &str = "
SELECT id, saga, status, step, attempt, deadline_ms, data, error, version
FROM keel_sagas WHERE saga = ?1 AND status IN ('running', 'compensating') ORDER BY id LIMIT ?2";
