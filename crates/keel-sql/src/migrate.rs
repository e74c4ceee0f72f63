//! `keel migrate` on a SQLite file: the tracks of every SQLite component the PostgreSQL
//! migration covers — inbox, outbox, saga instances, projection checkpoints — applied in one
//! call, so a deployment can migrate a file before rolling out, as it can a PostgreSQL
//! schema. Each track keeps its own history table and is applied in its own transaction,
//! exactly as opening the component would apply it.
//!
//! Not here: the steps themselves (each component's `schema.rs`), or PostgreSQL
//! (`PgDatabase::connect` migrates its one track).

use std::path::Path;

use crate::database::{self, wall_clock_ms};
use crate::error::OpenError;
use crate::limits::BUSY_TIMEOUT_DEFAULT;

/// Brings every SQLite component's tables in the file at `path` (created if missing) to
/// their newest version. Returns the steps applied, as (version, name) — versions count per
/// component, names say which — oldest first per component; empty when all were current.
/// Blocking.
pub fn migrate_sqlite(path: impl AsRef<Path>) -> Result<Vec<(u32, &'static str)>, OpenError> {
    let path = path.as_ref();
    let mut connection = database::open(path, BUSY_TIMEOUT_DEFAULT)?;
    let mut applied = Vec::new();
    for track in [
        &crate::schema::TRACK,
        &crate::sqlite_outbox::schema::TRACK,
        &crate::saga::schema::TRACK,
        &crate::projection::schema::TRACK,
    ] {
        let found = database::migrate_on_open(&mut connection, path, track, wall_clock_ms())?;
        applied.extend(
            track
                .migrations
                .iter()
                .filter(|m| m.version > found)
                .map(|m| (m.version, m.name)),
        );
    }
    Ok(applied)
}
