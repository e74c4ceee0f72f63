//! Why a SQLite inbox could not be opened ([`OpenError`]). Each message is one line naming
//! the database file and the step that failed.
//!
//! Not here: errors while handling events, which are the runtime's
//! [`HandlerError`](keel_runtime::HandlerError) (a busy or failing database is transient, so
//! the runtime retries), and errors of maintenance calls, which are the runtime's
//! [`InboxError`](keel_runtime::InboxError).

use std::path::PathBuf;

/// Why [`SqliteInbox::open`](crate::SqliteInbox::open) failed. Nothing is handled with a
/// database that failed to open, so these surface at start, never mid-stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// An option is out of range.
    #[error("invalid sqlite inbox option '{setting}': {reason}")]
    Option {
        /// The option, as `options.field`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// SQLite could not open or create the file (missing directory, no permission, ...).
    #[error("cannot open sqlite database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// The file opened but a setting the inbox's promise depends on could not be applied
    /// (this is also where a file that is not a SQLite database is found out).
    #[error("cannot configure sqlite database {} ({setting}): {reason}", path.display())]
    Configure {
        /// The database file.
        path: PathBuf,
        /// The setting, as its PRAGMA.
        setting: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A schema migration failed; the database keeps its previous version.
    #[error("cannot migrate sqlite database {} to schema version {version}: {source}", path.display())]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The version being applied (0: reading the current version).
        version: u32,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// The database was written by a newer keel-sql; it is left untouched.
    #[error(
        "sqlite database {} has schema version {found}, newer than version {known} this keel-sql knows; upgrade keel-sql",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this code knows.
        known: u32,
    },
}
