//! The projection checkpoint table, its statements and migrations.
//!
//! # Version history (`keel_projection_migrations`)
//!
//! | version | what it adds |
//! |---|---|
//! | 1 | `keel_projection_checkpoints`: the position after the last event each projection applied |

use crate::database::Track;
use crate::schema::Migration;

/// The projections' schema history.
pub(crate) const TRACK: Track = Track {
    table: "keel_projection_migrations",
    migrations: &[Migration {
        version: 1,
        name: "projection checkpoints",
        sql: CREATE_CHECKPOINTS,
    }],
};

const CREATE_CHECKPOINTS: &str = "
CREATE TABLE keel_projection_checkpoints (
    projection    TEXT    PRIMARY KEY,
    next_position INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID";

pub(crate) const SELECT_CHECKPOINT: &str =
    "SELECT next_position FROM keel_projection_checkpoints WHERE projection = ?1";
pub(crate) const UPSERT_CHECKPOINT: &str = "
INSERT INTO keel_projection_checkpoints (projection, next_position, updated_at_ms)
VALUES (?1, ?2, ?3)
ON CONFLICT (projection) DO UPDATE SET
    next_position = excluded.next_position, updated_at_ms = excluded.updated_at_ms";
