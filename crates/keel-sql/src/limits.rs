//! Every limit keel-sql enforces, in one place: the ceilings options are validated against
//! and the defaults they start from.
//!
//! A limit that is not written here does not exist. Numbers only; the options that use them
//! are in `sqlite.rs`.

use std::time::Duration;

/// Default number of events one SQLite transaction commits together (group commit).
pub const BATCH_EVENTS_DEFAULT: usize = 512;
/// Most events one SQLite transaction may commit together.
pub const BATCH_EVENTS_MAX: usize = 65_536;
/// Default time a write waits for another connection's write lock before it fails as busy.
pub const BUSY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Longest busy timeout an option may ask for.
pub const BUSY_TIMEOUT_MAX: Duration = Duration::from_secs(600);
/// Most follow-up events one handled event may publish after its commit.
pub const FOLLOW_UPS_MAX: usize = 1024;
/// Most inbox rows one retention call deletes, so a cleanup never holds the write lock for
/// long; call again until it returns fewer.
pub const RETENTION_DELETE_MAX: u64 = 10_000;
