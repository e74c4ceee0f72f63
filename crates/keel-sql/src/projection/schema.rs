//! The projection checkpoint table, its statements and migrations.
//!
//! # Version history (`keel_projection_migrations`)
//!
//! | version | what it adds |
//! |---|---|
//! | 1 | `keel_projection_checkpoints`: the position after the last event each projection applied |
//! | 2 | one checkpoint per (projection, source partition), for projections fed from a topic; version-1 rows become partition 0 |

use crate::database::Track;
use crate::schema::Migration;

/// The projections' schema history.
pub(crate) const TRACK: Track = Track {
    table: "keel_projection_migrations",
    migrations: &[
        Migration {
            version: 1,
            name: "projection checkpoints",
            sql: CREATE_CHECKPOINTS,
        },
        Migration {
            version: 2,
            name: "projection checkpoints per partition",
            sql: CHECKPOINTS_PER_PARTITION,
        },
    ],
};

const CREATE_CHECKPOINTS: &str = "
CREATE TABLE keel_projection_checkpoints (
    projection    TEXT    PRIMARY KEY,
    next_position INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID";

/// SQLite cannot change a primary key in place: copy into the new shape and swap names,
/// inside the migration's transaction.
const CHECKPOINTS_PER_PARTITION: &str = "
CREATE TABLE keel_projection_checkpoints_v2 (
    projection       TEXT    NOT NULL,
    source_partition INTEGER NOT NULL,
    next_position    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    PRIMARY KEY (projection, source_partition)
) WITHOUT ROWID;
INSERT INTO keel_projection_checkpoints_v2 (projection, source_partition, next_position, updated_at_ms)
SELECT projection, 0, next_position, updated_at_ms FROM keel_projection_checkpoints;
DROP TABLE keel_projection_checkpoints;
ALTER TABLE keel_projection_checkpoints_v2 RENAME TO keel_projection_checkpoints;
";

pub(crate) const SELECT_CHECKPOINTS: &str = "
SELECT source_partition, next_position FROM keel_projection_checkpoints
WHERE projection = ?1 ORDER BY source_partition";
pub(crate) const SELECT_CHECKPOINT: &str = "
SELECT next_position FROM keel_projection_checkpoints
WHERE projection = ?1 AND source_partition = ?2";
pub(crate) const UPSERT_CHECKPOINT: &str = "
INSERT INTO keel_projection_checkpoints (projection, source_partition, next_position, updated_at_ms)
VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (projection, source_partition) DO UPDATE SET
    next_position = excluded.next_position, updated_at_ms = excluded.updated_at_ms";
pub(crate) const DELETE_CHECKPOINTS: &str =
    "DELETE FROM keel_projection_checkpoints WHERE projection = ?1";
